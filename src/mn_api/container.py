"""The composition root: the one place where concrete classes meet (dependency-injector)."""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
from dependency_injector import containers, providers

from mn_api._version import __version__
from mn_api.adapters.blueprints import FolderBlueprints
from mn_api.adapters.bundles.filesystem import FilesystemBundleStore
from mn_api.adapters.bundles.redis import RedisBundleStore
from mn_api.adapters.idempotency.redis import RedisIdempotencyStore
from mn_api.adapters.idempotency.sqlite import SqliteIdempotencyStore
from mn_api.adapters.manifests import FileManifestSource
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.ratelimit import LimitsRateLimiter, Unlimited
from mn_api.adapters.redis_client import (
    RedisClient,
    RedisProbe,
    connect,
    replicas_to_wait_for,
)
from mn_api.adapters.redis_client import close as close_redis
from mn_api.adapters.telemetry.prometheus import PrometheusTelemetry
from mn_api.adapters.topologies.batched import BatchedTopologyStore
from mn_api.adapters.topologies.redis import RedisTopologyStore
from mn_api.adapters.topologies.sqlite import SqliteTopologyStore
from mn_api.adapters.webhooks.notifier import HttpxNotifier
from mn_api.adapters.webhooks.redis import RedisWebhookStore
from mn_api.adapters.webhooks.resolver import SystemResolver
from mn_api.adapters.webhooks.sqlite import SqliteWebhookStore
from mn_api.application import use_cases as uc
from mn_api.application.cluster import ClusterWatch
from mn_api.application.housekeeping import Housekeeping
from mn_api.application.idempotency import Idempotency
from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import RateLimiter, RemoteCorePort, RuntimePort
from mn_api.application.webhooks import (
    DeliverySender,
    WebhookConfig,
    Webhooks,
    WebhookWorker,
)
from mn_api.config import Settings
from mn_api.domain.bundle_rules import Limits
from mn_api.domain.webhooks.records import DEFAULT_EVENTS


def _grpc_runtime(settings: Settings, telemetry: PrometheusTelemetry) -> object:
    # Imported here so that the memory runtime never loads grpc.
    from mn_api.adapters.grpc.runtime import GrpcRuntime

    return GrpcRuntime.from_settings(settings, telemetry)


# The longest a join's handshake with another core may take, per port tried.
JOIN_DEADLINE_SECONDS = 10.0


class _RemoteCores(RemoteCorePort):
    """Other cores reached over gRPC (with the core's TLS settings), loaded on first use so
    that the memory runtime never loads grpc."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._remote: RemoteCorePort | None = None

    async def handshake(
        self, host: str, port: int, request: Mapping[str, Any], *, deadline_seconds: float
    ) -> dict[str, Any]:
        if self._remote is None:
            from mn_api.adapters.grpc.remote import GrpcRemoteCores
            from mn_api.adapters.grpc.runtime import channel_credentials

            self._remote = GrpcRemoteCores(channel_credentials(self._settings))
        return await self._remote.handshake(host, port, request, deadline_seconds=deadline_seconds)


def _redis(settings: Settings) -> RedisClient:
    assert settings.redis is not None  # only built when shared state is in Redis
    return connect(settings.redis)


def _replicas(settings: Settings) -> int:
    return replicas_to_wait_for(settings.redis) if settings.redis else 0


def _rate_limiter(settings: Settings) -> RateLimiter:
    if not settings.rate_limit:
        return Unlimited()
    return LimitsRateLimiter(settings.rate_limit, settings.redis)


def _limits(settings: Settings) -> Limits:
    # A bundle is sent in one message: it must fit what one submission may carry.
    return Limits(
        max_files=settings.bundle_max_files,
        max_bytes=settings.bundle_max_bytes,
        message_bytes=settings.request_size_limit_bytes,
    )


def _state_file(settings: Settings) -> Path:
    """The SQLite file holding idempotency keys and webhook state on one host."""
    return Path(settings.bundle_dir) / "state.sqlite3"


def _webhook_config(settings: Settings) -> WebhookConfig:
    return WebhookConfig(
        policy=settings.webhook_policy,
        secrets=settings.webhook_keys,
        global_urls=settings.webhook_urls,
        global_events=settings.webhook_events or DEFAULT_EVENTS,
        max_attempts=settings.webhook_max_attempts,
        retry_base_seconds=settings.webhook_retry_base_seconds,
        lease_seconds=settings.webhook_lease_seconds,
        poll_seconds=settings.webhook_poll_seconds,
        retention_seconds=settings.webhook_retention_seconds,
        concurrency=settings.webhook_concurrency,
        receiver_concurrency=settings.webhook_receiver_concurrency,
    )


def _owner() -> str:
    """Names this process in the leases it takes on shared webhook state."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"


def _journal(
    settings: Settings, runtime: RuntimePort, telemetry: PrometheusTelemetry
) -> HistoryJournal | None:
    if settings.history_cache_mb <= 0:
        return None
    budget = int(settings.history_cache_mb * 1024 * 1024)
    journal = HistoryJournal(
        runtime,
        budget_bytes=budget,
        job_bytes=int(settings.history_job_cache_mb * 1024 * 1024) or None,
        heartbeat_seconds=settings.sse_heartbeat_seconds,
    )
    telemetry.observe_journal(journal)
    return journal


class FixedSettings(providers.Provider):  # type: ignore[type-arg]
    """The settings every object is built from: read from the environment on first use,
    or given once by `override()` before anything used them. An override after that is
    refused: objects built from other settings than the rest would run side by side."""

    def __init__(self) -> None:
        self._value: Settings | None = None
        self._used = False
        super().__init__()

    def __deepcopy__(self, memo: dict[int, Any]) -> FixedSettings:
        copied = memo.get(id(self))
        if copied is None:
            copied = memo[id(self)] = FixedSettings()
            self._copy_overridings(copied, memo)
        return copied

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._used = True
        return super().__call__(*args, **kwargs)

    def _provide(self, args: Any, kwargs: Any) -> Settings:
        if self._value is None:
            self._value = Settings()
        return self._value

    def override(self, provider: Any) -> Any:
        if self._used:
            raise RuntimeError(
                "the settings are already in use: override them before building anything "
                "(or use mn_api.open_gateway, which does)"
            )
        return super().override(provider)


class Container(containers.DeclarativeContainer):
    """Built once per application; tests override providers instead of patching modules."""

    settings = FixedSettings()
    telemetry = providers.Singleton(PrometheusTelemetry)

    # The runtime itself: the in-memory one, or a core (or a cluster of core nodes) over gRPC.
    core = providers.Selector(
        providers.Callable(lambda s: s.runtime, settings),
        memory=providers.Singleton(
            InMemoryRuntime,
            release=providers.Callable(lambda s: s.fake_core_release, settings),
            step_seconds=providers.Callable(lambda s: s.fake_step_ms / 1000, settings),
            nodes=providers.Callable(lambda s: s.fake_core_nodes, settings),
        ),
        grpc=providers.Singleton(_grpc_runtime, settings, telemetry),
    )
    # What every use case talks to: the runtime with what the gateway has seen of its
    # cluster (members, lost nodes, coordinators, a state store that is down).
    runtime = providers.Singleton(ClusterWatch, core)

    # Each job's history, read from the runtime once and shared by every reader (None when
    # MN_HISTORY_CACHE_MB is 0). Replicas keep their own: nothing here is shared.
    journal = providers.Singleton(_journal, settings, runtime, telemetry)

    # Uploaded bundles and idempotency keys: on local disk, or in Redis when several
    # replicas must share them.
    shared_state = providers.Callable(lambda s: "redis" if s.redis else "local", settings)
    redis = providers.Singleton(_redis, settings)
    shared_state_probe = providers.Selector(
        shared_state,
        local=providers.Object(None),
        redis=providers.Singleton(
            RedisProbe,
            client=redis,
            where=providers.Callable(lambda s: s.redis.where() if s.redis else "", settings),
        ),
    )
    bundle_store = providers.Selector(
        shared_state,
        local=providers.Singleton(
            FilesystemBundleStore,
            root=providers.Callable(lambda s: s.bundle_dir, settings),
            limits=providers.Callable(_limits, settings),
            ttl_seconds=providers.Callable(lambda s: s.bundle_ttl_seconds, settings),
            quota_bytes=providers.Callable(lambda s: s.bundle_quota_bytes or None, settings),
        ),
        redis=providers.Singleton(
            RedisBundleStore,
            client=redis,
            scratch=providers.Callable(lambda s: s.bundle_dir, settings),
            limits=providers.Callable(_limits, settings),
            ttl_seconds=providers.Callable(lambda s: s.bundle_ttl_seconds, settings),
            quota_bytes=providers.Callable(lambda s: s.bundle_quota_bytes or None, settings),
            replicas=providers.Callable(_replicas, settings),
        ),
    )
    idempotency_store = providers.Selector(
        shared_state,
        local=providers.Singleton(
            SqliteIdempotencyStore, path=providers.Callable(_state_file, settings)
        ),
        redis=providers.Singleton(
            RedisIdempotencyStore,
            client=redis,
            replicas=providers.Callable(_replicas, settings),
        ),
    )
    idempotency = providers.Singleton(
        Idempotency,
        store=idempotency_store,
        ttl_seconds=providers.Callable(lambda s: s.idempotency_ttl_seconds, settings),
    )
    kept_topologies = providers.Selector(
        shared_state,
        local=providers.Singleton(
            SqliteTopologyStore,
            path=providers.Callable(_state_file, settings),
            ttl_seconds=providers.Callable(lambda s: s.topology_ttl_seconds, settings),
        ),
        redis=providers.Singleton(
            RedisTopologyStore,
            client=redis,
            ttl_seconds=providers.Callable(lambda s: s.topology_ttl_seconds, settings),
        ),
    )
    # Written behind each answer, many at once: a submission does not wait for its own.
    topology_store = providers.Singleton(BatchedTopologyStore, inner=kept_topologies)
    housekeeping = providers.Singleton(
        Housekeeping,
        idempotency=idempotency_store,
        bundles=bundle_store,
        topologies=topology_store,
        idempotency_ttl_seconds=providers.Callable(lambda s: s.idempotency_ttl_seconds, settings),
        interval_seconds=providers.Callable(lambda s: s.purge_interval_seconds, settings),
    )
    rate_limiter = providers.Singleton(_rate_limiter, settings)
    manifest_source = providers.Singleton(FileManifestSource)

    # Webhooks: subscriptions and deliveries live beside the idempotency keys.
    webhook_config = providers.Singleton(_webhook_config, settings)
    webhook_store = providers.Selector(
        shared_state,
        local=providers.Singleton(
            SqliteWebhookStore, path=providers.Callable(_state_file, settings)
        ),
        redis=providers.Singleton(
            RedisWebhookStore, client=redis, replicas=providers.Callable(_replicas, settings)
        ),
    )
    resolver = providers.Singleton(SystemResolver)
    notifier = providers.Singleton(
        HttpxNotifier,
        policy=providers.Callable(lambda c: c.policy, webhook_config),
        resolver=resolver,
        read_timeout=providers.Callable(lambda s: s.webhook_timeout_seconds, settings),
        max_connections=providers.Callable(lambda c: c.concurrency, webhook_config),
    )
    owner = providers.Singleton(_owner)
    webhooks = providers.Singleton(
        Webhooks, store=webhook_store, resolver=resolver, config=webhook_config
    )
    delivery_sender = providers.Singleton(
        DeliverySender,
        store=webhook_store,
        notifier=notifier,
        telemetry=telemetry,
        config=webhook_config,
        user_agent=f"MirrorNeuron-Webhooks/{__version__}",
    )
    webhook_worker = providers.Singleton(
        WebhookWorker,
        store=webhook_store,
        sender=delivery_sender,
        # The worker's own feed: its heartbeats renew the watch's lease in time.
        events=providers.Factory(
            uc.StreamEvents,
            runtime=runtime,
            heartbeat_seconds=providers.Callable(lambda c: c.lease_seconds / 4, webhook_config),
        ),
        config=webhook_config,
        owner=owner,
    )
    list_webhooks = providers.Factory(uc.ListWebhooks, store=webhook_store, runtime=runtime)
    redeliver_webhook = providers.Factory(
        uc.RedeliverWebhook,
        store=webhook_store,
        sender=delivery_sender,
        config=webhook_config,
        owner=owner,
    )

    submit_job = providers.Singleton(
        uc.SubmitJob,
        runtime=runtime,
        bundles=bundle_store,
        webhooks=webhooks,
        topologies=topology_store,
        bundle_submissions=providers.Callable(lambda s: s.bundle_submissions_at_once, settings),
    )
    blueprints = providers.Singleton(
        FolderBlueprints,
        catalog=providers.Callable(lambda s: s.blueprint_dir, settings),
        roots=providers.Callable(lambda s: s.launch_roots, settings),
        limits=providers.Callable(_limits, settings),
    )
    launch_log = providers.Singleton(uc.LaunchLog)
    launch_blueprint = providers.Factory(
        uc.LaunchBlueprint,
        blueprints=blueprints,
        bundles=bundle_store,
        submit_job=submit_job,
        log=launch_log,
    )
    submit_bundle = providers.Factory(uc.SubmitBundle, bundles=bundle_store, submit_job=submit_job)
    list_jobs = providers.Factory(uc.ListJobs, runtime=runtime)
    topology_lookup = providers.Singleton(
        uc.TopologyLookup, topologies=topology_store, manifests=manifest_source
    )
    get_job = providers.Factory(
        uc.GetJob, runtime=runtime, topology=topology_lookup, journal=journal, cluster=runtime
    )
    get_job_graph = providers.Factory(
        uc.GetJobGraph, runtime=runtime, topology=topology_lookup, journal=journal
    )
    list_events = providers.Factory(uc.ListEvents, runtime=runtime, journal=journal)
    list_dead_letters = providers.Factory(uc.ListDeadLetters, runtime=runtime, journal=journal)
    stream_events = providers.Factory(
        uc.StreamEvents,
        runtime=runtime,
        heartbeat_seconds=providers.Callable(lambda s: s.sse_heartbeat_seconds, settings),
        journal=journal,
    )
    # One for the process: viewers of the same job share the snapshots it builds.
    workflow_progress = providers.Singleton(
        uc.WorkflowProgress,
        runtime=runtime,
        topology=topology_lookup,
        journal=journal,
        heartbeat_seconds=providers.Callable(lambda s: min(5.0, s.sse_heartbeat_seconds), settings),
        encode=providers.Object(orjson.dumps),
    )
    replay_dead_letter = providers.Factory(uc.ReplayDeadLetter, runtime=runtime, journal=journal)
    cancel_job = providers.Factory(uc.CancelJob, runtime=runtime)
    pause_job = providers.Factory(uc.PauseJob, runtime=runtime)
    resume_job = providers.Factory(uc.ResumeJob, runtime=runtime)
    clear_jobs = providers.Factory(
        uc.ClearJobs,
        runtime=runtime,
        topologies=topology_store,
        journal=journal,
        cluster=runtime,
    )
    cancel_all_jobs = providers.Factory(uc.CancelAllJobs, runtime=runtime)
    get_system_summary = providers.Factory(uc.GetSystemSummary, runtime=runtime, cluster=runtime)
    core_services = providers.Factory(uc.CoreServices, runtime=runtime)
    check_required_services = providers.Factory(
        uc.CheckRequiredServices, runtime=runtime, bundles=bundle_store
    )
    job_definitions = providers.Factory(uc.JobDefinitions, runtime=runtime)
    remote_cores = providers.Singleton(_RemoteCores, settings)
    join_node = providers.Factory(
        uc.JoinNode,
        runtime=runtime,
        remote=remote_cores,
        allowed_hosts=providers.Callable(lambda s: s.cluster_join_hosts, settings),
        deadline_seconds=providers.Callable(
            lambda s: min(s.grpc_timeout_seconds or JOIN_DEADLINE_SECONDS, JOIN_DEADLINE_SECONDS),
            settings,
        ),
    )
    get_runtime_metrics = providers.Factory(uc.GetRuntimeMetrics, runtime=runtime)
    runtime_report = providers.Factory(
        uc.RuntimeReport,
        runtime=runtime,
        timeout_seconds=providers.Callable(lambda s: s.ready_timeout_seconds, settings),
        shared_state=shared_state_probe,
        cluster=runtime,
    )
    check_readiness = providers.Factory(
        uc.CheckReadiness,
        runtime=runtime,
        timeout_seconds=providers.Callable(lambda s: s.ready_timeout_seconds, settings),
        shared_state=providers.Selector(
            providers.Callable(lambda s: "yes" if s.ready_requires_redis else "no", settings),
            yes=shared_state_probe,
            no=providers.Object(None),
        ),
    )


def build_container(settings: Settings | None = None) -> Container:
    """The one way a gateway's objects are put together: from these settings, or from the
    environment's when none are given (read on first use)."""
    container = Container()
    if settings is not None:
        container.settings.override(providers.Object(settings))
    return container


class Running:
    """What runs around the use cases, started and stopped in one order whoever runs them
    (the HTTP app's lifespan, and so each `mn-api` worker; the embedding entry): the
    runtime, housekeeping and the webhook worker; then stopped in reverse, every store
    closed before the runtime."""

    def __init__(self, container: Container) -> None:
        self._container = container
        self._runtime: Any = None
        self._housekeeping: Any = None
        self._worker: Any = None

    async def start(self) -> None:
        container = self._container
        self._runtime = container.runtime()
        await self._runtime.start()
        try:
            self._housekeeping = container.housekeeping()
            self._housekeeping.start()
            if container.webhook_config().enabled:
                self._worker = container.webhook_worker()
                container.webhooks().on_subscribed(self._worker.wake)
                self._worker.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        container = self._container
        if self._housekeeping is not None:
            await self._housekeeping.stop()
        await container.idempotency().close()
        await container.topology_store().close()
        if self._worker is not None:
            await self._worker.stop()
            await container.notifier().close()
        await container.workflow_progress().close()
        journal = container.journal()
        if journal is not None:
            await journal.close()
        if self._runtime is not None:
            await self._runtime.close()
        if container.settings().redis is not None:
            await close_redis(container.redis())
        container.blueprints().close()
        self._runtime = self._housekeeping = self._worker = None
