"""Ports: what the use cases need from the outside world, as small abstract classes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from mn_api.domain.documents import JsonDocument
from mn_api.domain.errors import NotSupportedError
from mn_api.domain.events import EventRecord, Heartbeat
from mn_api.domain.webhooks.records import Delivery, Subscription, Watch


@dataclass(frozen=True, slots=True)
class JobAck:
    """The runtime's short answer to an operation on one job."""

    job_id: str
    status: str


@dataclass(frozen=True, slots=True)
class ReplayAck:
    job_id: str
    status: str
    agent_id: str


class RuntimePort(ABC):
    """The MirrorNeuron runtime, as the core's gRPC services expose it."""

    # The most bytes one submission (manifest and payloads) may carry; None: no limit.
    message_limit_bytes: int | None = None

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Acquire what the runtime needs inside the running event loop."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what `start` acquired."""

    @abstractmethod
    async def submit_job(self, manifest_json: str, payloads: Mapping[str, bytes]) -> JobAck: ...

    @abstractmethod
    async def get_job(self, job_id: str) -> JsonDocument:
        """The job's details; raises JobNotFoundError for an unknown id."""

    @abstractmethod
    async def list_jobs(self, limit: int, include_terminal: bool) -> JsonDocument:
        """`{"data": [job summaries]}`, newest first; a limit of 0 means 100."""

    @abstractmethod
    async def cancel_job(self, job_id: str) -> JobAck: ...

    @abstractmethod
    async def pause_job(self, job_id: str) -> JobAck: ...

    @abstractmethod
    async def resume_job(self, job_id: str) -> JobAck: ...

    @abstractmethod
    async def clear_jobs(self) -> int:
        """Remove terminal jobs; answers how many went."""

    @abstractmethod
    async def cancel_all_jobs(self) -> JsonDocument:
        """Cancel every live job (cores from 1.2.31): the core's account of what it did."""

    @abstractmethod
    async def replay_dead_letter(self, job_id: str, event_index: int) -> ReplayAck: ...

    @abstractmethod
    async def remove_node(self, node_name: str) -> str:
        """Take a node out of the cluster (RemoveNode): the core's word for what it did;
        NodeNotFoundError for a node that is no member."""

    @abstractmethod
    async def system_summary(self) -> JsonDocument: ...

    @abstractmethod
    def stream_events(
        self,
        job_id: str,
        *,
        follow: bool,
        after: int = -1,
        heartbeat_seconds: float | None = None,
    ) -> AsyncIterator[EventRecord | Heartbeat]:
        """The job's events after position `after`, oldest first.

        With `follow` the stream stays open for new events until the job reaches a
        terminal status, yielding a Heartbeat whenever `heartbeat_seconds` pass quietly.
        """

    @abstractmethod
    async def ping(self, deadline_seconds: float) -> None:
        """Return when the runtime answers within `deadline_seconds`, else raise."""

    async def call_service(
        self, method: str, request: Mapping[str, Any], *, kind: str = "record"
    ) -> dict[str, Any]:
        """One call of the core's later services (`/package.Service/Method`, see
        docs/LATER_SERVICES.md) with the request message's fields: the answer message's
        fields. A refusal is the domain error it means (a NOT_FOUND: RecordNotFoundError of
        `kind`); a core without the service: NotSupportedError."""
        raise NotSupportedError("this runtime does not offer the core's later services")

    def stream_service(
        self, method: str, request: Mapping[str, Any], *, kind: str = "record"
    ) -> AsyncIterator[dict[str, Any]]:
        """A streaming method of the later services: each answer message's fields."""
        raise NotSupportedError("this runtime does not offer the core's later services")


class RemoteCorePort(ABC):
    """Another cluster's core, reached only to ask it to take this core's node in."""

    @abstractmethod
    async def handshake(
        self, host: str, port: int, request: Mapping[str, Any], *, deadline_seconds: float
    ) -> dict[str, Any]:
        """NetworkHandshake on the core at host:port with the request message's fields
        (no credentials but the join token in it): the answer message's fields. Raises
        RemoteCoreUnavailableError when it cannot be reached in time, JoinRefusedError
        when it refuses the token, and the domain error of any other refusal."""


@dataclass(frozen=True, slots=True)
class StoredBundle:
    bundle_id: str
    manifest: Mapping[str, Any]
    files: int
    bytes: int


@dataclass(frozen=True, slots=True)
class BundleContents:
    manifest_json: str
    payloads: dict[str, bytes] = field(default_factory=dict)


class BundleStore(ABC):
    """Where uploaded bundles are checked, unpacked and kept until they expire; expired
    bundles are removed by the store itself."""

    @abstractmethod
    async def save(self, archive: BinaryIO) -> StoredBundle:
        """Check and unpack a zip archive; raises BundleRejectedError and leaves nothing."""

    @abstractmethod
    async def load(self, bundle_id: str) -> BundleContents:
        """The manifest and payloads of a stored bundle; BundleNotFoundError when gone."""

    @abstractmethod
    async def purge(self) -> int:
        """Remove what has expired or was abandoned; how many bundles went."""


class TopologyStore(ABC):
    """The declared nodes and edges of each job the gateway submitted: no real core returns
    a job's topology, so the gateway keeps it, for as long as the job's other records."""

    @abstractmethod
    async def save(self, job_id: str, manifest_json: str) -> None:
        """Keep the topology of the manifest the runtime accepted for `job_id`."""

    @abstractmethod
    async def save_many(self, topologies: Sequence[tuple[str, bytes]]) -> None:
        """Keep several topologies at once, each as its JSON text, by job id."""

    @abstractmethod
    async def load(self, job_id: str) -> Mapping[str, Any] | None:
        """`{"nodes": [...], "edges": [...], "entrypoints": [...]}`, or None when unknown."""

    @abstractmethod
    async def forget(self, job_id: str) -> None: ...

    @abstractmethod
    async def purge(self) -> int:
        """Remove expired topologies; how many went (stores that expire keys: 0)."""


class SharedStateProbe(ABC):
    """Whether the store the replicas share (Redis) answers."""

    @abstractmethod
    async def ping(self, deadline_seconds: float) -> None:
        """Return when it answers; SharedStateUnavailableError, naming it, when not."""


@dataclass(frozen=True, slots=True)
class Blueprint:
    """A blueprint of the catalogue: a folder with a manifest and its payloads."""

    id: str
    name: str
    description: str = ""
    category: str = ""


class BlueprintSource(ABC):
    """Blueprints on the gateway's host: a catalogue, and folders under the launch roots.
    Nothing is ever fetched from the network."""

    @abstractmethod
    async def catalog(self) -> list[Blueprint]:
        """Every blueprint of the catalogue (none when no catalogue is configured)."""

    @abstractmethod
    async def blueprint(self, blueprint_id: str) -> tuple[Blueprint, BundleContents]:
        """A catalogue blueprint's manifest and payloads; BlueprintNotFoundError."""

    @abstractmethod
    async def at_path(self, path: str) -> BundleContents | BinaryIO:
        """What a path holds: a blueprint folder (or its manifest.json) as its contents,
        or a .zip archive as the file, opened once and read from where it was checked
        (the caller closes it). LaunchPathNotAllowedError outside the roots,
        BlueprintNotFoundError when nothing usable is there."""


class ManifestSource(ABC):
    """Reads a manifest file the runtime names in a job's details, when it can."""

    @abstractmethod
    async def read(self, path: str) -> Mapping[str, Any] | None: ...


class Telemetry(ABC):
    """Counts what the gateway does, for operators (Prometheus in production)."""

    @abstractmethod
    def core_call(self, rpc: str, code: str, seconds: float) -> None:
        """One call to the runtime finished with `code` (a gRPC status name) in `seconds`."""

    @abstractmethod
    def stream_opened(self) -> None: ...

    @abstractmethod
    def stream_closed(self) -> None: ...

    @abstractmethod
    def bundle_uploaded(self, outcome: str, size: int) -> None:
        """One bundle upload ended as `outcome` (`stored` or an error code)."""

    @abstractmethod
    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        """One webhook attempt led to `outcome` (delivered, retry, gone, exhausted, refused)."""


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """An answer worth giving again unchanged: status, body and the headers that matter."""

    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Claim:
    """What the store knew about a key when a request tried to claim it.

    `won` is True when this request now owns the key; otherwise `answer` holds the stored
    answer (the same request was answered before), or is None while the first request is
    still in flight, or `unknown` says the first request may have reached the runtime but
    its answer was lost (or its process went away while holding it). `fingerprint` is the
    first request's, to tell a reuse from a retry.
    """

    won: bool
    fingerprint: str
    answer: StoredAnswer | None = None
    unknown: bool = False


class IdempotencyStore(ABC):
    """Remembers answers by Idempotency-Key; every claim is atomic across processes."""

    @abstractmethod
    async def claim(
        self, key: str, fingerprint: str, lease_seconds: float, ttl_seconds: float
    ) -> Claim:
        """Take `key` for a request unless another holds or answered it. A claim left
        unanswered past `lease_seconds` becomes "outcome unknown" (kept `ttl_seconds`)."""

    @abstractmethod
    async def complete(
        self, key: str, fingerprint: str, answer: StoredAnswer, ttl_seconds: float
    ) -> None:
        """Store the answer for `key` (claimed with `fingerprint`), kept `ttl_seconds`."""

    @abstractmethod
    async def mark_unknown(self, key: str, fingerprint: str, ttl_seconds: float) -> None:
        """Record that the request may have reached the runtime and its answer was lost."""

    @abstractmethod
    async def purge(self, ttl_seconds: float) -> int:
        """Remove expired records, and turn claims whose lease ran out into outcomes
        unknown (kept `ttl_seconds`); how many went (stores that expire keys: 0)."""

    @abstractmethod
    async def release(self, key: str) -> None:
        """Give up a claim without an answer, so the request may be sent again."""


class RateLimiter(ABC):
    @abstractmethod
    async def hit(self, caller: str) -> int | None:
        """Count one request; None when allowed, else the seconds to wait."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What came back from one webhook request: a status code, or an error.

    `refused` means the request was never sent because its address is not allowed.
    """

    seconds: float
    status_code: int | None = None
    error: str | None = None
    refused: bool = False


class NotifierPort(ABC):
    """Sends webhook requests (outbound HTTP)."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    @abstractmethod
    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        """POST `body` to `url` once; never raises for what the receiver or network did."""


class HostResolver(ABC):
    @abstractmethod
    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to (empty when it does not resolve)."""


class WebhookStore(ABC):
    """Subscriptions, the jobs being watched for them, and deliveries with their attempts.

    Watches and deliveries are claimed with a lease: a claim is atomic across processes,
    and whatever a stopped holder had becomes claimable again when its lease runs out.
    Writes by a holder whose lease was taken over are ignored (they answer False).
    """

    @abstractmethod
    async def subscribe(self, subscriptions: Sequence[Subscription], watch: Watch) -> None:
        """Record a job's subscriptions and start watching it, in one step."""

    @abstractmethod
    async def subscriptions(self, job_id: str) -> list[Subscription]: ...

    @abstractmethod
    async def claim_watches(
        self, owner: str, now: float, lease_until: float, limit: int
    ) -> list[Watch]:
        """Up to `limit` watches nobody holds (or whose lease ran out), now held by `owner`."""

    @abstractmethod
    async def advance_watch(self, watch: Watch, owner: str, lease_until: float) -> bool:
        """Save how far the watch has read and extend its lease; False if it was lost."""

    @abstractmethod
    async def end_watch(self, job_id: str, owner: str, retry_at: float | None) -> None:
        """Stop holding a watch: finished for good (`retry_at` None) or to retry later."""

    @abstractmethod
    async def add_deliveries(self, deliveries: Sequence[Delivery]) -> None:
        """Store new deliveries; one whose id is already stored is left as it is."""

    @abstractmethod
    async def claim_deliveries(
        self, owner: str, now: float, lease_until: float, limit: int
    ) -> list[Delivery]:
        """Up to `limit` pending deliveries due by `now`, now held by `owner`."""

    @abstractmethod
    async def claim_delivery(
        self, job_id: str, delivery_id: str, owner: str, now: float, lease_until: float
    ) -> Delivery:
        """Hold one delivery whatever its state, to send it again by hand; raises
        WebhookDeliveryNotFoundError, or WebhookDeliveryBusyError while another holds it."""

    @abstractmethod
    async def save_delivery(self, delivery: Delivery, owner: str) -> bool:
        """Write a held delivery back and let go of it; False if the lease was lost."""

    @abstractmethod
    async def release_delivery(self, delivery_id: str, owner: str) -> None:
        """Let go of a held delivery unchanged, so it can be claimed at once."""

    @abstractmethod
    async def deliveries(self, job_id: str) -> list[Delivery]:
        """The job's deliveries, in the order of the events they tell."""

    @abstractmethod
    async def purge(self, before: float) -> None:
        """Forget finished deliveries and watches last changed before `before`."""
