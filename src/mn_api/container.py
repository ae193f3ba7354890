"""The composition root: the one place where concrete classes meet (dependency-injector)."""

from __future__ import annotations

from dependency_injector import containers, providers

from mn_api.adapters.bundles.filesystem import FilesystemBundleStore
from mn_api.adapters.manifests import FileManifestSource
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.adapters.telemetry.prometheus import PrometheusTelemetry
from mn_api.application import use_cases as uc
from mn_api.config import Settings
from mn_api.domain.bundle_rules import Limits


def _grpc_runtime(settings: Settings) -> object:
    # Imported here so that the memory runtime never loads grpc.
    from mn_api.adapters.grpc.runtime import GrpcRuntime

    return GrpcRuntime.from_settings(settings)


class Container(containers.DeclarativeContainer):
    """Built once per application; tests override providers instead of patching modules."""

    settings = providers.Singleton(Settings)

    runtime = providers.Selector(
        providers.Callable(lambda s: s.runtime, settings),
        memory=providers.Singleton(
            InMemoryRuntime,
            step_seconds=providers.Callable(lambda s: s.fake_step_ms / 1000, settings),
        ),
        grpc=providers.Singleton(_grpc_runtime, settings),
    )

    bundle_store = providers.Singleton(
        FilesystemBundleStore,
        root=providers.Callable(lambda s: s.bundle_dir, settings),
        limits=providers.Callable(
            lambda s: Limits(max_files=s.bundle_max_files, max_bytes=s.bundle_max_bytes), settings
        ),
        ttl_seconds=providers.Callable(lambda s: s.bundle_ttl_seconds, settings),
    )
    manifest_source = providers.Singleton(FileManifestSource)
    telemetry = providers.Singleton(PrometheusTelemetry)

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
