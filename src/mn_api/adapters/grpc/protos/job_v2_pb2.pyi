from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class CreateJobRequest(_message.Message):
    __slots__ = ("manifest_json", "payloads", "job_id", "resolved_configuration_json", "storage_json", "version")
    class PayloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_CONFIGURATION_JSON_FIELD_NUMBER: _ClassVar[int]
    STORAGE_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    manifest_json: str
    payloads: _containers.ScalarMap[str, bytes]
    job_id: str
    resolved_configuration_json: str
    storage_json: str
    version: int
    def __init__(self, manifest_json: _Optional[str] = ..., payloads: _Optional[_Mapping[str, bytes]] = ..., job_id: _Optional[str] = ..., resolved_configuration_json: _Optional[str] = ..., storage_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class JobRequest(_message.Message):
    __slots__ = ("job_id", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("include_archived", "version")
    INCLUDE_ARCHIVED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    include_archived: bool
    version: int
    def __init__(self, include_archived: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class UpdateJobRequest(_message.Message):
    __slots__ = ("job_id", "attrs_json", "version", "manifest_json", "payloads")
    class PayloadsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: bytes
        def __init__(self, key: _Optional[str] = ..., value: _Optional[bytes] = ...) -> None: ...
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRS_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_JSON_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    attrs_json: str
    version: int
    manifest_json: str
    payloads: _containers.ScalarMap[str, bytes]
    def __init__(self, job_id: _Optional[str] = ..., attrs_json: _Optional[str] = ..., version: _Optional[int] = ..., manifest_json: _Optional[str] = ..., payloads: _Optional[_Mapping[str, bytes]] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("job_id", "confirmed", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    confirmed: bool
    version: int
    def __init__(self, job_id: _Optional[str] = ..., confirmed: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("job_id", "run_id", "inputs_json", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INPUTS_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    run_id: str
    inputs_json: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., run_id: _Optional[str] = ..., inputs_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class RunRequest(_message.Message):
    __slots__ = ("run_id", "version")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    version: int
    def __init__(self, run_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class DeleteRunRequest(_message.Message):
    __slots__ = ("run_id", "confirmed", "version")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CONFIRMED_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    confirmed: bool
    version: int
    def __init__(self, run_id: _Optional[str] = ..., confirmed: _Optional[bool] = ..., version: _Optional[int] = ...) -> None: ...

class SendRunInputRequest(_message.Message):
    __slots__ = ("run_id", "input_id", "payload_json", "idempotency_key", "version")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    INPUT_ID_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_JSON_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    input_id: str
    payload_json: str
    idempotency_key: str
    version: int
    def __init__(self, run_id: _Optional[str] = ..., input_id: _Optional[str] = ..., payload_json: _Optional[str] = ..., idempotency_key: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class CreateJobScheduleRequest(_message.Message):
    __slots__ = ("job_id", "schedule_json", "source_json", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_JSON_FIELD_NUMBER: _ClassVar[int]
    SOURCE_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    schedule_json: str
    source_json: str
    version: int
    def __init__(self, job_id: _Optional[str] = ..., schedule_json: _Optional[str] = ..., source_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class JsonResponse(_message.Message):
    __slots__ = ("result_json", "version")
    RESULT_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    result_json: str
    version: int
    def __init__(self, result_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...
