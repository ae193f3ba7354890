"""What the setting groups share: list parsing and where Redis is."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from mn_api.domain.urls import without_credentials

_RATE = re.compile(
    r"^\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?$", re.IGNORECASE
)


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


CLUSTER_SCHEME = "redis+cluster://"


@dataclass(frozen=True)
class RedisTarget:
    """Where the shared state lives: one server (`url`), a cluster (seed `nodes`), or the
    primary that the sentinels in `nodes` name `master`."""

    mode: Literal["server", "cluster", "sentinel"]
    url: str | None = None
    nodes: tuple[tuple[str, int], ...] = ()
    master: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def where(self) -> str:
        """Where it is, for people: no user name, no password."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.nodes)
        if self.mode == "server":
            return without_credentials(self.url or "")
        if self.mode == "cluster":
            return f"cluster {hosts}"
        return f"sentinel {hosts} (master {self.master})"


def _nodes(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (IPv6 hosts in brackets) as pairs; ValueError names the bad one."""
    nodes = []
    for part in _split(value):
        host, sep, port = part.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} is not host:port")
        nodes.append((host, int(port)))
    if not nodes:
        raise ValueError("names no host:port")
    return tuple(nodes)
