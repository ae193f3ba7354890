"""CheckReadiness: whether the runtime, and the shared state when there is one, answer
within a short deadline."""

from __future__ import annotations

from mn_api.application.ports import RuntimePort, SharedStateProbe


class CheckReadiness:
    def __init__(
        self,
        runtime: RuntimePort,
        timeout_seconds: float,
        shared_state: SharedStateProbe | None = None,
    ) -> None:
        self._runtime = runtime
        self._timeout = timeout_seconds
        self._shared_state = shared_state

    async def __call__(self) -> None:
        """Raises the first failing dependency's error, which names it."""
        await self._runtime.ping(self._timeout)
        if self._shared_state is not None:
            await self._shared_state.ping(self._timeout)
