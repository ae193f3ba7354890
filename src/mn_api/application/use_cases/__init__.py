"""One use case per operation of the gateway; each is a small class with `async __call__`."""

from mn_api.application.use_cases._topology import TopologyLookup
from mn_api.application.use_cases.cancel_all_jobs import CancelAllJobs
from mn_api.application.use_cases.cancel_job import CancelJob
from mn_api.application.use_cases.check_readiness import CheckReadiness
from mn_api.application.use_cases.check_services import CheckRequiredServices
from mn_api.application.use_cases.clear_jobs import ClearJobs
from mn_api.application.use_cases.core_services import CoreServices
from mn_api.application.use_cases.get_job import GetJob
from mn_api.application.use_cases.get_job_graph import GetJobGraph
from mn_api.application.use_cases.get_runtime_metrics import GetRuntimeMetrics
from mn_api.application.use_cases.get_system_summary import GetSystemSummary
from mn_api.application.use_cases.job_definitions import DefinitionSource, JobDefinitions
from mn_api.application.use_cases.join_node import JoinNode
from mn_api.application.use_cases.launch_blueprint import (
    Launch,
    LaunchBlueprint,
    LaunchLog,
    LaunchRequest,
)
from mn_api.application.use_cases.list_dead_letters import ListDeadLetters
from mn_api.application.use_cases.list_events import EventPage, ListEvents
from mn_api.application.use_cases.list_jobs import ListJobs
from mn_api.application.use_cases.list_webhooks import JobWebhooks, ListWebhooks
from mn_api.application.use_cases.pause_job import PauseJob
from mn_api.application.use_cases.redeliver_webhook import RedeliverWebhook
from mn_api.application.use_cases.replay_dead_letter import ReplayDeadLetter, ReplayResult
from mn_api.application.use_cases.resume_job import ResumeJob
from mn_api.application.use_cases.runtime_report import RuntimeReport
from mn_api.application.use_cases.stream_events import FeedItem, StreamEnd, StreamEvents
from mn_api.application.use_cases.submit_bundle import BundleUpload, SubmitBundle
from mn_api.application.use_cases.submit_job import SubmitJob, SubmitJobCommand
from mn_api.application.use_cases.workflow_progress import WorkflowProgress

__all__ = [
    "BundleUpload",
    "CancelAllJobs",
    "CancelJob",
    "CheckReadiness",
    "CheckRequiredServices",
    "ClearJobs",
    "CoreServices",
    "DefinitionSource",
    "EventPage",
    "FeedItem",
    "GetJob",
    "GetJobGraph",
    "GetRuntimeMetrics",
    "GetSystemSummary",
    "JobDefinitions",
    "JobWebhooks",
    "JoinNode",
    "Launch",
    "LaunchBlueprint",
    "LaunchLog",
    "LaunchRequest",
    "ListDeadLetters",
    "ListEvents",
    "ListJobs",
    "ListWebhooks",
    "PauseJob",
    "RedeliverWebhook",
    "ReplayDeadLetter",
    "ReplayResult",
    "ResumeJob",
    "RuntimeReport",
    "StreamEnd",
    "StreamEvents",
    "SubmitBundle",
    "SubmitJob",
    "SubmitJobCommand",
    "TopologyLookup",
    "WorkflowProgress",
]
