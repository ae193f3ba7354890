from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class StreamEventsRequest(_message.Message):
    __slots__ = ("job_id", "follow", "heartbeat_interval_ms", "limit", "version")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    follow: bool
    heartbeat_interval_ms: int
    limit: int
    version: int
    def __init__(self, job_id: _Optional[str] = ..., follow: _Optional[bool] = ..., heartbeat_interval_ms: _Optional[int] = ..., limit: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class EventResponse(_message.Message):
    __slots__ = ("event_json", "version")
    EVENT_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    event_json: str
    version: int
    def __init__(self, event_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...
