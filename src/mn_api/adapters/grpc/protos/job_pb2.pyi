from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SubmitJobRequest(_message.Message):
    __slots__ = ("manifest_json", "payloads", "version")
    class PayloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    manifest_json: str
    payloads: _containers.ScalarMap[str, bytes]
    version: int
    def __init__(self, manifest_json: _Optional[str] = ..., payloads: _Optional[_Mapping[str, bytes]] = ..., version: _Optional[int] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id", "status", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("job_id", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetJobResponse(_message.Message):
    __slots__ = ("job_json", "version")
    JOB_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_json: str
    version: int
    def __init__(self, job_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("limit", "include_terminal", "version")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TERMINAL_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    limit: int
    include_terminal: bool
    version: int
    def __init__(self, limit: _Optional[int] = ..., include_terminal: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs_json", "version")
    JOBS_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    jobs_json: str
    version: int
    def __init__(self, jobs_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("job_id", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CancelJobResponse(_message.Message):
    __slots__ = ("job_id", "status", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class PauseJobRequest(_message.Message):
    __slots__ = ("job_id", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class PauseJobResponse(_message.Message):
    __slots__ = ("job_id", "status", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ResumeJobRequest(_message.Message):
    __slots__ = ("job_id", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ResumeJobResponse(_message.Message):
    __slots__ = ("job_id", "status", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ClearJobsRequest(_message.Message):
    __slots__ = ("admin_token", "version")
    ADMIN_TOKEN_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    admin_token: str
    version: int
    def __init__(self, admin_token: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ClearJobsResponse(_message.Message):
    __slots__ = ("cleared_count", "version")
    CLEARED_COUNT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    cleared_count: int
    version: int
    def __init__(self, cleared_count: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class CancelAllJobsRequest(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class CancelAllJobsResponse(_message.Message):
    __slots__ = ("result_json", "version")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    version: int
    def __init__(self, result_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ReplayDeadLetterRequest(_message.Message):
    __slots__ = ("job_id", "event_index")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_INDEX_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    event_index: int
    def __init__(self, job_id: _Optional[str] = ..., event_index: _Optional[int] = ...) -> None: ...

class ReplayDeadLetterResponse(_message.Message):
    __slots__ = ("job_id", "status", "agent_id")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: str
    agent_id: str
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[str] = ..., agent_id: _Optional[str] = ...) -> None: ...

class ExportJobBackupRequest(_message.Message):
    __slots__ = ("job_id", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ExportJobBackupResponse(_message.Message):
    __slots__ = ("backup_json", "bundle_files", "version")
    class BundleFilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    BACKUP_JSON_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FILES_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    backup_json: str
    bundle_files: _containers.ScalarMap[str, bytes]
    version: int
    def __init__(self, backup_json: _Optional[str] = ..., bundle_files: _Optional[_Mapping[str, bytes]] = ..., version: _Optional[int] = ...) -> None: ...

class RestoreJobBackupRequest(_message.Message):
    __slots__ = ("backup_json", "bundle_files", "blueprint_id", "run_id", "version")
    class BundleFilesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    BACKUP_JSON_FIELD_NUMBER: _ClassVar[int]
    BUNDLE_FILES_FIELD_NUMBER: _ClassVar[int]
    BLUEPRINT_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    backup_json: str
    bundle_files: _containers.ScalarMap[str, bytes]
    blueprint_id: str
    run_id: str
    version: int
    def __init__(self, backup_json: _Optional[str] = ..., bundle_files: _Optional[_Mapping[str, bytes]] = ..., blueprint_id: _Optional[str] = ..., run_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RestoreJobBackupResponse(_message.Message):
    __slots__ = ("result_json", "version")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    version: int
    def __init__(self, result_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DeployJobRequest(_message.Message):
    __slots__ = ("manifest_json", "payloads", "deployment_key", "update_policy_json", "wait", "version")
    class PayloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    DEPLOYMENT_KEY_FIELD_NUMBER: _ClassVar[int]
    UPDATE_POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    manifest_json: str
    payloads: _containers.ScalarMap[str, bytes]
    deployment_key: str
    update_policy_json: str
    wait: bool
    version: int
    def __init__(self, manifest_json: _Optional[str] = ..., payloads: _Optional[_Mapping[str, bytes]] = ..., deployment_key: _Optional[str] = ..., update_policy_json: _Optional[str] = ..., wait: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class UpdateDeploymentRequest(_message.Message):
    __slots__ = ("deployment_key", "manifest_json", "payloads", "update_policy_json", "wait", "version")
    class PayloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    DEPLOYMENT_KEY_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    UPDATE_POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    WAIT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    deployment_key: str
    manifest_json: str
    payloads: _containers.ScalarMap[str, bytes]
    update_policy_json: str
    wait: bool
    version: int
    def __init__(self, deployment_key: _Optional[str] = ..., manifest_json: _Optional[str] = ..., payloads: _Optional[_Mapping[str, bytes]] = ..., update_policy_json: _Optional[str] = ..., wait: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class GetDeploymentRequest(_message.Message):
    __slots__ = ("id_or_key", "version")
    ID_OR_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id_or_key: str
    version: int
    def __init__(self, id_or_key: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListDeploymentsRequest(_message.Message):
    __slots__ = ("query_json", "version")
    QUERY_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    query_json: str
    version: int
    def __init__(self, query_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class PromoteDeploymentRequest(_message.Message):
    __slots__ = ("id_or_key", "version")
    ID_OR_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id_or_key: str
    version: int
    def __init__(self, id_or_key: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RollbackDeploymentRequest(_message.Message):
    __slots__ = ("id_or_key", "version", "tag", "reason")
    ID_OR_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    id_or_key: str
    version: str
    tag: str
    reason: str
    def __init__(self, id_or_key: _Optional[str] = ..., version: _Optional[str] = ..., tag: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class DeploymentActionRequest(_message.Message):
    __slots__ = ("id_or_key", "reason", "version")
    ID_OR_KEY_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    id_or_key: str
    reason: str
    version: int
    def __init__(self, id_or_key: _Optional[str] = ..., reason: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DeploymentResponse(_message.Message):
    __slots__ = ("result_json", "version")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    version: int
    def __init__(self, result_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CreateScheduleRequest(_message.Message):
    __slots__ = ("manifest_json", "payloads", "schedule_json", "source_json", "version")
    class PayloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    manifest_json: str
    payloads: _containers.ScalarMap[str, bytes]
    schedule_json: str
    source_json: str
    version: int
    def __init__(self, manifest_json: _Optional[str] = ..., payloads: _Optional[_Mapping[str, bytes]] = ..., schedule_json: _Optional[str] = ..., source_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ScheduleActionRequest(_message.Message):
    __slots__ = ("schedule_id", "attrs_json", "reason", "version")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRS_JSON_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    attrs_json: str
    reason: str
    version: int
    def __init__(self, schedule_id: _Optional[str] = ..., attrs_json: _Optional[str] = ..., reason: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetScheduleRequest(_message.Message):
    __slots__ = ("schedule_id", "version")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    version: int
    def __init__(self, schedule_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListSchedulesRequest(_message.Message):
    __slots__ = ("query_json", "version")
    QUERY_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    query_json: str
    version: int
    def __init__(self, query_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DispatchScheduleRequest(_message.Message):
    __slots__ = ("schedule_id", "payload_json", "reason", "version")
    SCHEDULE_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    schedule_id: str
    payload_json: str
    reason: str
    version: int
    def __init__(self, schedule_id: _Optional[str] = ..., payload_json: _Optional[str] = ..., reason: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class EmitTriggerEventRequest(_message.Message):
    __slots__ = ("event_type", "payload_json", "source", "version")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    payload_json: str
    source: str
    version: int
    def __init__(self, event_type: _Optional[str] = ..., payload_json: _Optional[str] = ..., source: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListTriggerEventsRequest(_message.Message):
    __slots__ = ("limit", "version")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    limit: int
    version: int
    def __init__(self, limit: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class ScheduleResponse(_message.Message):
    __slots__ = ("result_json", "version")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    version: int
    def __init__(self, result_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...
