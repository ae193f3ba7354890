"""The core's later methods (schedules, deployments, backups, operations, job definitions
and runs, node administration) served from the simulation's LaterServices.

`serves_later` gives a servicer class every method of its service that it does not define
itself: each reads the request message as a dict of its fields, asks the simulation, and
answers its fields as the response message, or aborts with the core's status and text (as
a release without the method does when the simulation does not offer it there).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.descriptor import ServiceDescriptor
from google.protobuf.message import Message

from mn_api.adapters.grpc.later import fields_of
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.memory.services import CoreRefusal
from mn_api.entrypoints.fake_core.refusals import _Answers

C = TypeVar("C", bound=type)


class _Servicer(Protocol):
    _runtime: InMemoryRuntime
    _answers: _Answers


def serves_later(service: ServiceDescriptor, messages: ModuleType) -> Callable[[C], C]:
    def decorate(cls: C) -> C:
        for method in service.methods:
            if method.name in cls.__dict__:
                continue
            path = f"/{service.full_name}/{method.name}"
            answer_type = getattr(messages, method.output_type.name)
            if method.server_streaming:
                setattr(cls, method.name, _streaming(path, answer_type))
            else:
                setattr(cls, method.name, _unary(path, answer_type))
        return cls

    return decorate


def _unary(path: str, answer_type: type[Message]) -> Callable[..., Any]:
    async def handle(self: _Servicer, request: Message, context: grpc.aio.ServicerContext) -> Any:
        services = self._runtime.services
        await self._answers.missing(context, services.offers(path))
        try:
            answer = await services.call(path, fields_of(request))
        except CoreRefusal as refused:
            await context.abort(getattr(grpc.StatusCode, refused.code), refused.message)
        return answer_type(**answer)

    handle.__name__ = path.rsplit("/", 1)[-1]
    return handle


def _streaming(path: str, answer_type: type[Message]) -> Callable[..., Any]:
    async def handle(
        self: _Servicer, request: Message, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[Any]:
        services = self._runtime.services
        await self._answers.missing(context, services.offers(path))
        try:
            async for answer in services.stream(path, fields_of(request)):
                yield answer_type(**answer)
        except CoreRefusal as refused:
            await context.abort(getattr(grpc.StatusCode, refused.code), refused.message)

    handle.__name__ = path.rsplit("/", 1)[-1]
    return handle
