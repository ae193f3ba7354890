"""GetSystemSummary: the runtime's nodes, executor pools and jobs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mn_api.application.cluster import ClusterWatch
from mn_api.application.ports import RuntimePort
from mn_api.domain.cluster import with_lost_nodes
from mn_api.domain.errors import RuntimeProtocolError
from mn_api.domain.views import system_summary_view


class GetSystemSummary:
    def __init__(self, runtime: RuntimePort, cluster: ClusterWatch | None = None) -> None:
        self._runtime = runtime
        self._cluster = cluster

    async def __call__(self) -> Mapping[str, Any]:
        """The core's summary (`nodes`, `executor_pools`, `jobs`, ...); the nodes that left
        the cluster follow its members, marked `lost`."""
        view = system_summary_view((await self._runtime.system_summary()).value)
        if not isinstance(view, Mapping):
            raise RuntimeProtocolError("the runtime answered a summary that is no object")
        if self._cluster is not None:
            view = with_lost_nodes(view, self._cluster.membership)
        summary: Mapping[str, Any] = view
        return summary
