"""The composition root: the one place where concrete classes meet (dependency-injector)."""

from __future__ import annotations

from pathlib import Path

from dependency_injector import containers, providers
from redis.asyncio import Redis

from mn_api.adapters.bundles.filesystem import FilesystemBundleStore
from mn_api.adapters.bundles.redis import RedisBundleStore
from mn_api.adapters.idempotency.redis import RedisIdempotencyStore
from mn_api.adapters.idempotency.sqlite import SqliteIdempotencyStore
from mn_api.adapters.manifests import FileManifestSource
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.ratelimit import LimitsRateLimiter, Unlimited
from mn_api.adapters.telemetry.prometheus import PrometheusTelemetry
from mn_api.application import use_cases as uc
from mn_api.application.idempotency import Idempotency
from mn_api.application.ports import RateLimiter
from mn_api.config import Settings
from mn_api.domain.bundle_rules import Limits


def _grpc_runtime(settings: Settings, telemetry: PrometheusTelemetry) -> object:
    # Imported here so that the memory runtime never loads grpc.
    from mn_api.adapters.grpc.runtime import GrpcRuntime

    return GrpcRuntime.from_settings(settings, telemetry)


def _redis(settings: Settings) -> Redis:
    # Short timeouts: a Redis that went away must give a prompt 503, never a hang.
    return Redis.from_url(str(settings.redis_url), socket_timeout=2, socket_connect_timeout=2)


def _rate_limiter(settings: Settings) -> RateLimiter:
    if not settings.rate_limit:
        return Unlimited()
    return LimitsRateLimiter(settings.rate_limit, settings.redis_url)


def _limits(settings: Settings) -> Limits:
    return Limits(max_files=settings.bundle_max_files, max_bytes=settings.bundle_max_bytes)


def _idempotency_file(settings: Settings) -> Path:
    return Path(settings.bundle_dir) / "idempotency.sqlite3"


class Container(containers.DeclarativeContainer):
    """Built once per application; tests override providers instead of patching modules."""

    settings = providers.Singleton(Settings)
    telemetry = providers.Singleton(PrometheusTelemetry)

    runtime = providers.Selector(
        providers.Callable(lambda s: s.runtime, settings),
        memory=providers.Singleton(
            InMemoryRuntime,
            step_seconds=providers.Callable(lambda s: s.fake_step_ms / 1000, settings),
        ),
        grpc=providers.Singleton(_grpc_runtime, settings, telemetry),
    )

    # Uploaded bundles and idempotency keys: on local disk, or in Redis when several
    # replicas must share them.
    shared_state = providers.Callable(lambda s: "redis" if s.redis_url else "local", settings)
    redis = providers.Singleton(_redis, settings)
    bundle_store = providers.Selector(
        shared_state,
        local=providers.Singleton(
            FilesystemBundleStore,
            root=providers.Callable(lambda s: s.bundle_dir, settings),
            limits=providers.Callable(_limits, settings),
            ttl_seconds=providers.Callable(lambda s: s.bundle_ttl_seconds, settings),
        ),
        redis=providers.Singleton(
            RedisBundleStore,
            client=redis,
            scratch=providers.Callable(lambda s: s.bundle_dir, settings),
            limits=providers.Callable(_limits, settings),
            ttl_seconds=providers.Callable(lambda s: s.bundle_ttl_seconds, settings),
        ),
    )
    idempotency_store = providers.Selector(
        shared_state,
        local=providers.Singleton(
            SqliteIdempotencyStore, path=providers.Callable(_idempotency_file, settings)
        ),
        redis=providers.Singleton(RedisIdempotencyStore, client=redis),
    )
    idempotency = providers.Singleton(
        Idempotency,
        store=idempotency_store,
        ttl_seconds=providers.Callable(lambda s: s.idempotency_ttl_seconds, settings),
    )
    rate_limiter = providers.Singleton(_rate_limiter, settings)
    manifest_source = providers.Singleton(FileManifestSource)

    submit_job = providers.Factory(uc.SubmitJob, runtime=runtime, bundles=bundle_store)
    submit_bundle = providers.Factory(uc.SubmitBundle, bundles=bundle_store, submit_job=submit_job)
    list_jobs = providers.Factory(uc.ListJobs, runtime=runtime)
    get_job = providers.Factory(uc.GetJob, runtime=runtime)
    get_job_graph = providers.Factory(uc.GetJobGraph, runtime=runtime, manifests=manifest_source)
    list_events = providers.Factory(uc.ListEvents, runtime=runtime)
    list_dead_letters = providers.Factory(uc.ListDeadLetters, runtime=runtime)
    stream_events = providers.Factory(
        uc.StreamEvents,
        runtime=runtime,
        heartbeat_seconds=providers.Callable(lambda s: s.sse_heartbeat_seconds, settings),
    )
    replay_dead_letter = providers.Factory(uc.ReplayDeadLetter, runtime=runtime)
    cancel_job = providers.Factory(uc.CancelJob, runtime=runtime)
    pause_job = providers.Factory(uc.PauseJob, runtime=runtime)
    resume_job = providers.Factory(uc.ResumeJob, runtime=runtime)
    clear_jobs = providers.Factory(uc.ClearJobs, runtime=runtime)
    get_system_summary = providers.Factory(uc.GetSystemSummary, runtime=runtime)
    get_runtime_metrics = providers.Factory(uc.GetRuntimeMetrics, runtime=runtime)
    check_readiness = providers.Factory(
        uc.CheckReadiness,
        runtime=runtime,
        timeout_seconds=providers.Callable(lambda s: s.ready_timeout_seconds, settings),
    )
