"""CheckReadiness: whether the runtime answers within a short deadline."""

from __future__ import annotations

from mn_api.application.ports import RuntimePort


class CheckReadiness:
    def __init__(self, runtime: RuntimePort, timeout_seconds: float) -> None:
        self._runtime = runtime
        self._timeout = timeout_seconds

    async def __call__(self) -> None:
        await self._runtime.ping(self._timeout)
