"""What each released MirrorNeuron core does differently: the profiles the simulation follows.

Every difference the in-memory runtime and mn-fake-core reproduce is one field here, so a
profile reads as a row of the release table in the core's documentation.
"""

from __future__ import annotations

from dataclasses import dataclass

# The later services of 1.2.5 (node administration, resources, service discovery, backups,
# deployments, schedules) and those 1.2.31 adds (operations, job definitions and runs).
SERVICES_1_2_5 = frozenset(
    {"resources", "nodes", "services", "backups", "deployments", "schedules"}
)
SERVICES_1_2_31 = SERVICES_1_2_5 | {"operations", "jobs_v2"}


@dataclass(frozen=True, slots=True)
class CoreRelease:
    name: str
    # StreamEvents honours `follow` and `heartbeat_interval_ms` (else: history, then the end).
    follows_streams: bool
    # StreamEventsRequest.limit: only the last N events of the history.
    stream_tail_limit: bool
    # `version` = 1 in every answer and every streamed event.
    version_field: bool
    # The `authorization` metadata is checked on protected RPCs.
    checks_credentials: bool
    # ClearJobs compares its `admin_token` field with the separate admin secret.
    clear_with_admin_token: bool
    # ClearJobs and CancelAllJobs are protected RPCs (checked through the metadata).
    clear_is_protected: bool
    cancel_all: bool
    # Refusals of Cancel/Pause/Resume get a status code chosen from their text; else INTERNAL.
    refusal_codes_by_text: bool
    resume_of_running_succeeds: bool
    cancel_of_terminal_succeeds: bool
    # A cancelled job with messages still in flight answers `cancellation_pending`.
    cancellation_pending: bool
    # A job whose coordinator is gone is force-written to cancelled (`force cancelled`).
    force_cancel: bool
    recent_events: int
    result_in_details: bool
    # dead_letter events carry `payload` = {reason, message_id, attempt}.
    dead_letter_payload: bool
    # Job ids: the graph id's initials and 8 hex characters (else graph id, millis, 12 hex).
    short_job_ids: bool
    summary_metrics: bool
    # SubmitJob refuses manifests whose `requirements` the node cannot meet.
    checks_requirements: bool
    # GetJob's answer for an unknown id.
    unknown_job_json: str
    # ClearJobs and ClusterService.RemoveNode exist (generation A cores answer UNIMPLEMENTED).
    clear_jobs: bool = True
    # The gateway's ReplayDeadLetter extension is offered by the simulation.
    replay: bool = True
    # Agents act by their type (routers forward by message type, aggregators count and
    # complete the job, executors lease a slot and need a runner): a job completes only when
    # an agent completes it. Else a job without a daemon flag completes once idle.
    agents_complete_jobs: bool = False
    # Pause/Resume of an unknown job, a finished one or one whose coordinator is gone are all
    # refused with "job <id> is not running in the connected cluster".
    gone_coordinator_refusal: bool = False
    # The documents of wire generation A: no `daemon`, `result` written as null while the job
    # runs, agents with a `lease` and `sandbox_name`, `paused?` never set, `live?` kept after
    # the end, a GPU described as text, placement `local`, the node `nonode@nohost`, and
    # job-level events without details beyond the node that was scheduled.
    generation_a_documents: bool = False
    # The release runs as a cluster of several nodes (1.1 cores run alone).
    clusters: bool = True
    # The groups of later methods it serves (adapters/memory/services): resources, nodes,
    # services, backups, deployments, schedules (1.2.5), operations and jobs_v2 (1.2.31).
    later_services: frozenset[str] = frozenset()
    # The schema of the job backups it writes, and the only one it restores.
    backup_schema: str = "mn.backup.v1"


_OLDER = {
    "stream_tail_limit": False,
    "version_field": False,
    "clear_is_protected": False,
    "cancel_all": False,
    "refusal_codes_by_text": False,
    "resume_of_running_succeeds": False,
    "cancel_of_terminal_succeeds": False,
    "cancellation_pending": False,
    "force_cancel": True,
    "recent_events": 25,
    "result_in_details": True,
    "dead_letter_payload": False,
    "short_job_ids": False,
    "summary_metrics": False,
    "checks_requirements": False,
    "unknown_job_json": "{}",
}

RELEASE_1_1 = CoreRelease(
    name="1.1",
    follows_streams=False,
    checks_credentials=False,
    clear_with_admin_token=False,
    clusters=False,
    **_OLDER,
)
RELEASE_1_2_5 = CoreRelease(
    name="1.2.5",
    follows_streams=True,
    checks_credentials=True,
    clear_with_admin_token=True,
    later_services=SERVICES_1_2_5,
    **_OLDER,
)
RELEASE_1_2_31 = CoreRelease(
    name="1.2.31",
    follows_streams=True,
    stream_tail_limit=True,
    version_field=True,
    checks_credentials=True,
    clear_with_admin_token=False,
    clear_is_protected=True,
    cancel_all=True,
    refusal_codes_by_text=True,
    resume_of_running_succeeds=True,
    cancel_of_terminal_succeeds=True,
    cancellation_pending=True,
    force_cancel=False,
    recent_events=0,
    result_in_details=False,
    dead_letter_payload=True,
    short_job_ids=True,
    summary_metrics=True,
    checks_requirements=True,
    unknown_job_json='{"version":1}',
    later_services=SERVICES_1_2_31,
    backup_schema="mn.backup.v2",
)

# The real core built from source commit d26bef71 (wire generation A), measured against it.
RELEASE_D26BEF71 = CoreRelease(
    name="d26bef71",
    follows_streams=False,
    checks_credentials=False,
    clear_with_admin_token=False,
    clear_jobs=False,
    replay=False,
    agents_complete_jobs=True,
    gone_coordinator_refusal=True,
    generation_a_documents=True,
    **_OLDER,
)

RELEASES: dict[str, CoreRelease] = {
    r.name: r for r in (RELEASE_1_1, RELEASE_1_2_5, RELEASE_1_2_31, RELEASE_D26BEF71)
}
LATEST = RELEASE_1_2_31.name


def core_release(name: str) -> CoreRelease:
    """The profile of a release by name; ValueError names the known ones."""
    try:
        return RELEASES[name]
    except KeyError:
        known = ", ".join(RELEASES)
        raise ValueError(f"unknown core release {name!r} (known: {known})") from None
