"""The later services of the core (1.2.5 and newer), simulated over the in-memory runtime.

One group per part of the core's API, each in its own module; a release offers the groups
its profile names (`CoreRelease.later_services`), and every other method of these services
is missing there, as on a core of that release. docs/LATER_SERVICES.md says what each
answers and where that comes from.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from mn_api.adapters.memory.services._base import (
    Answer,
    CoreRefusal,
    Request,
    Streaming,
    Unary,
)

if TYPE_CHECKING:
    from mn_api.adapters.memory.runtime import InMemoryRuntime

__all__ = ["CoreRefusal", "LaterServices", "ServiceGroup"]


class ServiceGroup(Protocol):
    """A part of the core's later API: the methods it serves, by full gRPC path."""

    name: ClassVar[str]

    def unary(self) -> Mapping[str, Unary]: ...

    def streaming(self) -> Mapping[str, Streaming]: ...

    def reset(self) -> None:
        """Forget everything, as a freshly started core."""


def _groups(runtime: InMemoryRuntime) -> Iterable[ServiceGroup]:
    from mn_api.adapters.memory.services.backups import Backups
    from mn_api.adapters.memory.services.definitions import JobDefinitions
    from mn_api.adapters.memory.services.deployments import Deployments
    from mn_api.adapters.memory.services.nodes import Nodes
    from mn_api.adapters.memory.services.operations import Operations
    from mn_api.adapters.memory.services.registry import ServiceRegistry
    from mn_api.adapters.memory.services.resources import Resources
    from mn_api.adapters.memory.services.schedules import Schedules

    return (
        Resources(runtime),
        Nodes(runtime),
        Operations(runtime),
        ServiceRegistry(runtime),
        Backups(runtime),
        JobDefinitions(runtime),
        Schedules(runtime),
        Deployments(runtime),
    )


class LaterServices:
    """Every later method a release offers, answered from the simulation's state."""

    def __init__(self, runtime: InMemoryRuntime) -> None:
        offered = runtime.release.later_services
        self.groups = [g for g in _groups(runtime) if g.name in offered]
        self._unary: dict[str, Unary] = {}
        self._streaming: dict[str, Streaming] = {}
        for group in self.groups:
            self._unary.update(group.unary())
            self._streaming.update(group.streaming())

    def group(self, name: str) -> Any:
        """The group by its name (groups that work together find each other here); None
        when the release does not offer it."""
        return next((g for g in self.groups if g.name == name), None)

    def offers(self, method: str) -> bool:
        """Whether the release serves this method (`/package.Service/Method`)."""
        return method in self._unary or method in self._streaming

    @property
    def methods(self) -> list[str]:
        return sorted({*self._unary, *self._streaming})

    async def call(self, method: str, request: Request) -> Answer:
        """The answer's fields; CoreRefusal as the core refuses (UNIMPLEMENTED when the
        release lacks the method)."""
        handler = self._unary.get(method)
        if handler is None:
            raise CoreRefusal("UNIMPLEMENTED", "Method not found!")
        return await handler(request)

    def stream(self, method: str, request: Request) -> AsyncIterator[Answer]:
        handler = self._streaming.get(method)
        if handler is None:
            raise CoreRefusal("UNIMPLEMENTED", "Method not found!")
        return handler(request)

    def reset(self) -> None:
        for group in self.groups:
            group.reset()

    async def close(self) -> None:
        """Stop what groups run in the background (the runtime closes)."""
        for group in self.groups:
            close = getattr(group, "close", None)
            if close is not None:
                await close()
