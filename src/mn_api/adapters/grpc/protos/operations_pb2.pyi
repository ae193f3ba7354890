from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class StartOperationRequest(_message.Message):
    __slots__ = ("kind", "options_json", "version")
    KIND_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    kind: str
    options_json: str
    version: int
    def __init__(self, kind: _Optional[str] = ..., options_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class StartOperationResponse(_message.Message):
    __slots__ = ("operation_json", "version")
    OPERATION_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    operation_json: str
    version: int
    def __init__(self, operation_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetOperationRequest(_message.Message):
    __slots__ = ("operation_id", "version")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    version: int
    def __init__(self, operation_id: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class GetOperationResponse(_message.Message):
    __slots__ = ("operation_json", "version")
    OPERATION_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    operation_json: str
    version: int
    def __init__(self, operation_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...

class StreamOperationEventsRequest(_message.Message):
    __slots__ = ("operation_id", "after_sequence", "follow", "heartbeat_interval_ms", "version")
    OPERATION_ID_FIELD_NUMBER: _ClassVar[int]
    AFTER_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    operation_id: str
    after_sequence: int
    follow: bool
    heartbeat_interval_ms: int
    version: int
    def __init__(self, operation_id: _Optional[str] = ..., after_sequence: _Optional[int] = ..., follow: _Optional[bool] = ..., heartbeat_interval_ms: _Optional[int] = ..., version: _Optional[int] = ...) -> None: ...

class OperationEventResponse(_message.Message):
    __slots__ = ("event_json", "version")
    EVENT_JSON_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    event_json: str
    version: int
    def __init__(self, event_json: _Optional[str] = ..., version: _Optional[int] = ...) -> None: ...
