from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class GetSystemSummaryRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetSystemSummaryResponse(_message.Message):
    __slots__ = ("summary_json",)
    SUMMARY_JSON_FIELD_NUMBER: _ClassVar[int]
    summary_json: str
    def __init__(self, summary_json: _Optional[str] = ...) -> None: ...
