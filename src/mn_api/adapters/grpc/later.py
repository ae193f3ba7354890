"""The core's later methods by their full gRPC path: the message types each takes and
answers, read from the service descriptors (so a call needs no stub of its own)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from mn_api.adapters.grpc.protos import cluster_pb2, job_pb2, job_v2_pb2, operations_pb2


@dataclass(frozen=True, slots=True)
class Method:
    path: str
    name: str
    request: type[Message]
    answer: type[Message]
    streaming: bool


def _methods() -> dict[str, Method]:
    table: dict[str, Method] = {}
    for module in (job_pb2, job_v2_pb2, operations_pb2, cluster_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                path = f"/{service.full_name}/{method.name}"
                table[path] = Method(
                    path,
                    method.name,
                    getattr(module, method.input_type.name),
                    getattr(module, method.output_type.name),
                    method.server_streaming,
                )
    return table


METHODS = _methods()


def method(path: str) -> Method:
    """The method at `path`; KeyError for a path no service of the core has."""
    return METHODS[path]


def fields_of(message: Message) -> dict[str, Any]:
    """A message as a dict of every field (maps as plain dicts)."""
    fields: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        fields[field.name] = dict(value) if field.message_type is not None else value
    return fields
