"""The in-memory runtime's model: its node, jobs, agents and deliveries, the constants
of the releases it simulates, and the helpers they share."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from mn_api.domain.errors import (
    ManifestInvalidError,
)
from mn_api.domain.manifest import Manifest, check_manifest, parse_manifest
from mn_api.domain.status import (
    JobStatus,
)

MAX_HOPS = 64


START_MESSAGE = {"type": "start"}


EXECUTOR_TYPES = frozenset({"executor", "sandbox_worker"})


# What a message summary and a dead letter say of how a message is encoded.
CONTENT_TYPE = "application/json"


CONTENT_ENCODING = "identity"


MESSAGE_CLASS = "event"


# 1.2.31 gives up on a message after this many failed durable deliveries.
DURABLE_ATTEMPTS = 10


JOB_ROOT = "/var/lib/mirrorneuron/jobs"


# Where a generation A core writes each submission's manifest and payloads.
BUNDLE_ROOT = "/tmp"


# Live agents record a heartbeat this often; an orphaned job's agents stop.
HEARTBEAT_SECONDS = 2.0


# How a generation A core names its node and architecture when it runs alone.
GENERATION_A_NODE = "nonode@nohost"


# The host part of the node names of a simulated cluster (`mn1@127.0.0.1`, ...).
CLUSTER_HOST = "127.0.0.1"


# How long an agent may go without a heartbeat before its documents say it is not live (an
# executor running a host command sends none until the command ends): a generation A core's
# monitor allows three heartbeat intervals, and at least 10 s.
HEARTBEAT_LAPSE_SECONDS = 10.0


# How long the cluster's leader lease, and each job's lease, last: a state store away longer
# than this loses them all, and the leader sweeps again once it has taken its lease back.
LEADER_LEASE_SECONDS = 10.0


# A new leader leaves alone the orphaned jobs whose record changed less than this long ago
# (a generation A core's guard against sweeping jobs still being set up).
SWEEP_GUARD_SECONDS = 15.0


# Why a job whose coordinator is gone was cancelled: as the event that ends it says, and as
# the job's result says on generation A cores.
FORCED_CANCELLATION = "forced cancellation"


FORCED_CANCELLATION_RESULT = {"reason": "forced cancellation of orphaned job"}


# Why the leader fails an orphaned job that is not configured for cluster recovery.
ORPHAN_FAILURE = "Node running the job died and job is not configured for cluster recovery."


# What SubmitJob answers when the core cannot reach its state store (its Redis).
STORE_DOWN_REFUSAL = "failed to persist initial job: %Redix.ConnectionError{reason: :closed}"


GENERATION_A_ARCHITECTURE = "x86_64-pc-linux-gnu"


# Manifests longer than this are judged off the event loop.
LARGE_MANIFEST_CHARS = 256 * 1024


class PersistFailedError(ManifestInvalidError):
    """The core validated the manifest but could not write the job to its state store; it
    refuses the submission as it refuses a bad manifest, with the store's error as the one
    problem (sent as it is, not as a list)."""

    def __init__(self, text: str = STORE_DOWN_REFUSAL) -> None:
        super().__init__([text])


def _loads(raw: bytes) -> Any:
    return orjson.loads(raw)


@dataclass(frozen=True, slots=True)
class SimulatedNode:
    """A cluster node of the simulation, as GetSystemSummary describes it (every node of a
    simulated cluster has the same hardware and its own executor pool).

    Fixed numbers rather than the host's, so answers are the same on every machine; a
    manifest whose `requirements` exceed them is refused by releases that check them.
    """

    name: str = "mn1@127.0.0.1"
    logical_processors: int = 8
    architecture: str = "x86_64"
    memory_mb: int = 16_384
    gpus: int = 0
    pool_capacity: int = 4


@dataclass(slots=True)
class _Delivery:
    source: str | None
    target: str
    type: str
    message: Any
    hops: int
    ready_at: float
    message_id: str
    replay: bool = False
    message_class: str = MESSAGE_CLASS


@dataclass(slots=True)
class _Run:
    """An executor's host command while it runs: the message it runs for, its lease, and
    when it started and ends."""

    delivery: _Delivery
    lease_id: str
    started_at: float
    ends_at: float


@dataclass(slots=True)
class _Agent:
    node_id: str
    agent_type: str
    executor: bool
    outbound: list[str]
    fail: bool
    drop_first: int
    delay_seconds: float
    last_seen: str
    config: Mapping[str, Any] = field(default_factory=dict)
    processed: int = 0
    mailbox: int = 0
    dropped: int = 0
    error: str | None = None
    # Generation A: what an aggregator or sensor received, an executor's lease and sandbox.
    received: list[Any] = field(default_factory=list)
    lease: dict[str, Any] | None = None
    sandbox_name: str | None = None
    # The cluster node the agent runs on.
    node: str = ""
    # The host command a generation A executor is running (`config.simulate.run_ms`).
    run: _Run | None = None

    @property
    def count(self) -> int:
        return len(self.received)


@dataclass(slots=True)
class _Job:
    job_id: str
    seq: int
    manifest: Manifest
    payload_keys: list[str]
    submitted_at: str
    updated_at: str
    agents: dict[str, _Agent]
    coordinator_lost: bool = False
    lose_coordinator: bool = False
    # The node coordinating the job, once it is scheduled.
    coordinator: str | None = None
    # Its coordinator's node died: the record and its agents stay live, but nothing runs the
    # job until a new leader recovers or fails it.
    orphaned: bool = False
    # Its lease lapsed while the state store was away: its coordinator still runs it, but the
    # next leader to sweep treats it as an orphan.
    lease_lost: bool = False
    duplicate_boundary: bool = False
    # When the scheduler finds room for the job: it stays pending until then.
    schedulable_at: float = 0.0
    status: JobStatus = JobStatus.PENDING
    stage: int = 0
    events: list[bytes] = field(default_factory=list)
    base: int = 0
    last_event: str = ""
    inflight: deque[_Delivery] = field(default_factory=deque)
    messages: int = 0
    dead_letters: int = 0
    replayed: set[int] = field(default_factory=set)
    result: dict[str, Any] | None = None
    # What the leader wrote of a job it failed (generation A records it beside the result).
    error: str | None = None
    sandbox_runs: list[dict[str, Any]] = field(default_factory=list)
    # When the job's coordinator was lost: its agents' heartbeats stop there.
    lost_at: float | None = None
    started_at: float = 0.0
    changed: asyncio.Event | None = None
    # The payload files themselves, kept where the release can back a job up or run it
    # again (a core keeps them in the job's bundle on its disk).
    payloads: Mapping[str, bytes] = field(default_factory=dict)
    # The serialized details, kept until the job next changes: readers far outnumber steps.
    details: bytes | None = None
    # What the kept details depend on besides the job's changes: heartbeats and lapses.
    details_key: tuple[float, int] = (0.0, 0)

    @property
    def end(self) -> int:
        return self.base + len(self.events)

    @property
    def live(self) -> bool:
        return not self.status.is_terminal and not self.coordinator_lost

    @property
    def coordinated(self) -> bool:
        """Whether a coordinator runs the job (else nothing moves it)."""
        return not self.coordinator_lost and not self.orphaned


def _type_of(raw: bytes) -> str:
    kind = orjson.loads(raw).get("type")
    return kind if isinstance(kind, str) else ""


def _judge(manifest_json: str) -> Manifest:
    """The manifest the text holds, or the core's refusal of it."""
    try:
        raw = orjson.loads(manifest_json)
    except orjson.JSONDecodeError as err:
        raise ManifestInvalidError([_parser_message(manifest_json, err)]) from err
    problems = check_manifest(raw)
    if problems:
        raise ManifestInvalidError(problems.listed, problems.total)
    return parse_manifest(raw)


def _milliseconds(value: Any) -> float:
    """A simulated delay in seconds, from milliseconds (anything else: none)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        return 0.0
    return value / 1000


def _simulate(config: Mapping[str, Any]) -> Mapping[str, Any]:
    simulate = config.get("simulate")
    return simulate if isinstance(simulate, Mapping) else {}


def _placement(manifest: Manifest) -> str:
    placement = manifest.policies.get("placement_policy", manifest.policies.get("placement"))
    return placement if isinstance(placement, str) else "spread"


def _recovery(manifest: Manifest) -> str:
    mode = manifest.policies.get("recovery_mode")
    return mode if isinstance(mode, str) else "local_restart"


def _sandbox_name(job: _Job, agent: _Agent) -> str:
    return f"{job.job_id}-{agent.node_id}"


def _parser_message(text: str, err: orjson.JSONDecodeError) -> str:
    """The JSON parser's own words for text that is not JSON, as cores pass them on."""
    position = err.pos
    if position >= len(text):
        return f"unexpected end of input at position {position}"
    char = text[position]
    return f'unexpected byte at position {position}: 0x{ord(char) & 0xFF:02X} ("{char}")'
