"""Test data and waiting: manifests, a controllable clock, zips, problems, SSE."""

from __future__ import annotations

import io
import stat
import struct
import time
import zipfile
from typing import Any

# The benchmark's process helpers serve the tests as they are.

EPOCH = 1_764_000_000.0


class FakeClock:
    """Moves one millisecond per reading, so timestamps differ and order is stable."""

    def __init__(self, start: float = EPOCH) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 0.001
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def pipeline_manifest(**node_config: dict[str, Any]) -> dict[str, Any]:
    """router -> executor -> aggregator; `node_config` adds a config to nodes by id."""
    nodes = [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor", "type": "map"},
        {"node_id": "collect", "agent_type": "aggregator"},
    ]
    for node in nodes:
        if node["node_id"] in node_config:
            node["config"] = node_config[node["node_id"]]
    return {
        "manifest_version": "1",
        "graph_id": "pipeline",
        "job_name": "three steps",
        "nodes": nodes,
        "edges": [
            {"from_node": "router", "to_node": "worker", "message_type": "task"},
            {"from_node": "worker", "to_node": "collect", "message_type": "result"},
        ],
        "entrypoints": ["router"],
    }


def daemon_manifest(**extra: Any) -> dict[str, Any]:
    """router -> worker, kept running until it is cancelled; `extra` members added."""
    return {
        "manifest_version": "1",
        "graph_id": "daemon-hello",
        "daemon": True,
        "nodes": [
            {"node_id": "router", "agent_type": "router"},
            {"node_id": "worker", "agent_type": "executor"},
        ],
        "edges": [{"from_node": "router", "to_node": "worker", "message_type": "task"}],
        "entrypoints": ["router"],
        **extra,
    }


def waiting_manifest(graph_id: str = "wait", recovery: str | None = None) -> dict[str, Any]:
    """A job that runs until it is cancelled on a generation A core (only an agent that
    completes it ends it, and this aggregator is never told to); `recovery` is the manifest's
    `recovery_mode` (`local_restart`, `cluster_recover`)."""
    manifest: dict[str, Any] = {
        "manifest_version": "1",
        "graph_id": graph_id,
        "nodes": [
            {"node_id": "router", "agent_type": "router"},
            {"node_id": "aggregator", "agent_type": "aggregator"},
        ],
        "edges": [{"from_node": "router", "to_node": "aggregator", "message_type": "task"}],
        "entrypoints": ["router"],
    }
    if recovery is not None:
        manifest["policies"] = {"recovery_mode": recovery}
    return manifest


def make_zip(members: dict[str, bytes | str], *, symlinks: dict[str, str] | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buffer.getvalue()


_LOCAL = struct.Struct("<4s5H3L2H")
_CENTRAL = struct.Struct("<4s6H3L5H2L")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_END = struct.Struct("<4s4H2LH")


def zip_of_many_entries(count: int, *, stated: int | None = None, comment: bytes = b"") -> bytes:
    """A zip of `count` empty members, written as zipfile would but at a fraction of its
    time; Zip64 records when the count needs them; the end record says `stated` entries
    when given."""
    local, central, offset = [], [], 0
    for n in range(count):
        name = f"payloads/{n}".encode()
        header = _LOCAL.pack(b"PK\x03\x04", 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0)
        local.append(header + name)
        fields = (20, 20, 0, 0, 0, 0, 0, 0, 0, len(name), 0, 0, 0, 0, 0, offset)
        central.append(_CENTRAL.pack(b"PK\x01\x02", *fields) + name)
        offset += len(header) + len(name)
    directory = b"".join(central)
    entries = count if stated is None else stated
    tail = b""
    if entries > 0xFFFF:
        sizes = (entries, entries, len(directory), offset)
        tail = _ZIP64_END.pack(b"PK\x06\x06", 44, 45, 45, 0, 0, *sizes)
        tail += _ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, offset + len(directory), 1)
    shown = min(entries, 0xFFFF)
    end = _END.pack(b"PK\x05\x06", 0, 0, shown, shown, len(directory), offset, len(comment))
    return b"".join(local) + directory + tail + end + comment


async def read_sse(lines, stop=None, on_event=None) -> list[dict]:
    """Parse Server-Sent Events from an async iterator of lines until it ends (or `stop`);
    `on_event` (a coroutine function) is awaited with each event as it comes."""
    events: list[dict] = []
    current: dict = {}
    async for line in lines:
        if line == "":
            if current:
                events.append(current)
                if on_event is not None:
                    await on_event(current, events)
                if stop is not None and stop(current, events):
                    return events
            current = {}
        elif line.startswith(":"):
            current.setdefault("comments", []).append(line[1:].strip())
        else:
            name, _, value = line.partition(":")
            current[name] = value[1:] if value.startswith(" ") else value
    if current:
        events.append(current)
    return events


def check_problem(body: dict[str, Any]) -> dict[str, Any]:
    """A problem answer as every client may read it: the stable code, and `errors` as
    sentences with codes (what the newest Web UI shows)."""
    assert isinstance(body.get("error"), str) and body["error"], body
    items = body.get("errors")
    assert isinstance(items, list) and items, body
    for item in items:
        assert isinstance(item.get("code"), str) and item["code"], item
        assert isinstance(item.get("message"), str) and item["message"].strip(), item
    return body


async def settled(client, listing_url: str, count: int, within: float = 60.0):
    """A job's webhook listing (GET `listing_url`) once `count` of its deliveries have
    their outcome recorded: a receiver counts a delivery before its answer reaches the
    gateway, so what the gateway shows comes a little later."""

    async def listing():
        answer = (await client.get(listing_url)).json()
        done = [d for d in answer["deliveries"] if d["state"] != "pending"]
        return answer if len(done) >= count else None

    return await eventually(listing, within=within)


async def eventually(check, within: float = 15.0, every: float = 0.05):
    """Wait until `check()` (sync or async) gives a truthy value; that value."""
    import asyncio
    import inspect

    deadline = time.monotonic() + within
    while True:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {within} s")
        await asyncio.sleep(every)
