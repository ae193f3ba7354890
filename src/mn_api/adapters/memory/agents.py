"""What each built-in agent does with a message on a generation A core (source d26bef71).

Measured against the real core: a router forwards a message along the edges whose
`message_type` is the message's type (or its `emit_type`); an aggregator counts what it
receives and completes the job on `complete_on_message` or once `complete_after` messages
came; a sensor counts observations; an executor leases a slot of the default pool and runs
its command through a runner: the sandbox runner is absent on a machine without OpenShell,
so only `runner_module: MirrorNeuron.Runner.HostLocal` succeeds. A job completes only when
an agent completes it; otherwise it runs until it is cancelled.

An executor's `config.simulate.run_ms` keeps its host command running that long: the agent
holds its lease meanwhile and sends no heartbeat, and its result goes on once it ends.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mn_api.adapters.memory.model import _milliseconds, _Run
from mn_api.domain import events as ev
from mn_api.domain.status import JobStatus

if TYPE_CHECKING:
    from mn_api.adapters.memory.model import _Agent, _Delivery, _Job
    from mn_api.adapters.memory.runtime import InMemoryRuntime

HOST_LOCAL_RUNNER = "MirrorNeuron.Runner.HostLocal"
# What the job's failure says when an executor's sandbox runner cannot be started.
NO_SANDBOX_ERROR = (
    '%{"attempts" => 1, "error" => "\\"failed to invoke openshell: Erlang error: :enoent\\""}'
)
EXECUTOR_OUTPUT_TYPE = "executor_result"
DEFAULT_POOL = "default"
# The sender and message type of the messages a job starts with.
RUNTIME_SENDER = "runtime"
START_TYPE = "init"
COMMAND_CLASS = "command"
EVENT_CLASS = "event"
CANCELLED_RESULT = {"reason": "cancelled by operator"}
# How the host runner frames what the command reported on its output.
RESULT_START = "__MIRROR_NEURON_RESULT_START__\n"
RESULT_END = "\n__MIRROR_NEURON_RESULT_END__\n"


def act(runtime: InMemoryRuntime, job: _Job, agent: _Agent, delivery: _Delivery) -> None:
    """Let `agent` handle the message it was just delivered."""
    kind = agent.agent_type
    if kind in ("router", "relay"):
        agent.processed += 1
        out_type = _text(agent.config.get("emit_type")) or delivery.type
        _send(runtime, job, agent, out_type, delivery.message, delivery, delivery.message_class)
    elif kind in ("aggregator", "collector"):
        agent.received.append(delivery.message)
        runtime._emit(
            job, ev.AGGREGATOR_RECEIVED, agent_id=agent.node_id, payload={"count": agent.count}
        )
        target = agent.config.get("complete_after")
        enough = _count(target) > 0 and agent.count >= _count(target)
        if agent.config.get("complete_on_message") is True or enough:
            output = {
                "count": agent.count,
                "last_message": delivery.message,
                "messages": list(agent.received),
            }
            # The job ends before the aggregator records the message that completed it.
            runtime._complete(job, agent, output)
        else:
            agent.processed += 1
    elif kind == "sensor":
        agent.processed += 1
        agent.received.append(delivery.message)
        runtime._emit(
            job, ev.SENSOR_OBSERVED, agent_id=agent.node_id, payload={"count": agent.count}
        )
    elif kind in ("executor", "sandbox_worker"):
        _execute(runtime, job, agent, delivery)
    else:
        agent.processed += 1


def _execute(runtime: InMemoryRuntime, job: _Job, agent: _Agent, delivery: _Delivery) -> None:
    lease_id = secrets.token_urlsafe(8)[:11]
    slots = {"pool": DEFAULT_POOL, "slots": 1}
    runtime._emit(job, ev.EXECUTOR_LEASE_REQUESTED, agent_id=agent.node_id, payload=slots)
    runtime._emit(
        job,
        ev.EXECUTOR_LEASE_ACQUIRED,
        agent_id=agent.node_id,
        payload={"lease_id": lease_id, "pool": DEFAULT_POOL, "queue_wait_ms": 0, "slots": 1},
    )
    now = runtime._clock()
    run_seconds = _milliseconds(_mapping(agent.config.get("simulate")).get("run_ms"))
    if agent.config.get("runner_module") == HOST_LOCAL_RUNNER and run_seconds > 0:
        # The command runs on the host, holding the lease; its result comes once it ends.
        # Meanwhile the agent's document shows an empty lease, as the core's does.
        agent.lease = None
        agent.run = _Run(delivery, lease_id, now, now + run_seconds)
        return
    _ran(runtime, job, agent, delivery, lease_id, now)


def end_runs(runtime: InMemoryRuntime, job: _Job, now: float) -> bool:
    """End the host commands of the job's executors whose time is up; answers whether any
    ended."""
    ended = False
    for agent in job.agents.values():
        run = agent.run
        if run is None or run.ends_at > now or job.status is not JobStatus.RUNNING:
            continue
        agent.run = None
        _ran(runtime, job, agent, run.delivery, run.lease_id, run.started_at)
        ended = True
    return ended


def _ran(
    runtime: InMemoryRuntime,
    job: _Job,
    agent: _Agent,
    delivery: _Delivery,
    lease_id: str,
    acquired_at: float,
) -> None:
    """The executor's command has run: its lease goes back and its result goes on."""
    slots = {"pool": DEFAULT_POOL, "slots": 1}
    agent.lease = {"lease_id": lease_id, **slots}
    released = {"lease_id": lease_id, **slots}
    runtime._emit(job, ev.EXECUTOR_LEASE_RELEASED, agent_id=agent.node_id, payload=released)
    if agent.config.get("runner_module") != HOST_LOCAL_RUNNER:
        agent.lease = None  # a failed run leaves no lease behind
        agent.error = NO_SANDBOX_ERROR
        runtime._fail(job, agent, NO_SANDBOX_ERROR)
        return
    agent.processed += 1
    agent.sandbox_name = f"host-local-{job.job_id}-{agent.node_id}"
    node = agent.node
    runtime_dir = "/tmp"
    runtime._emit(
        job,
        ev.SANDBOX_JOB_COMPLETED,
        agent_id=agent.node_id,
        payload={
            "attempts": 1,
            "exit_code": 0,
            "lease_id": lease_id,
            "pool": DEFAULT_POOL,
            "sandbox_name": agent.sandbox_name,
        },
    )
    job.sandbox_runs.append(
        {
            "agent_id": agent.node_id,
            "exit_code": 0,
            "pool": DEFAULT_POOL,
            "sandbox_name": agent.sandbox_name,
            "timestamp": runtime._now(),
        }
    )
    stdout = _text(_mapping(agent.config.get("simulate")).get("stdout"))
    acquired_ms = int(acquired_at * 1000)
    output = {
        "agent_id": agent.node_id,
        "input": delivery.message,
        "sandbox": {
            "attempts": 1,
            "exit_code": 0,
            "lease": {
                "acquired_at_ms": acquired_ms,
                "lease_id": lease_id,
                "metadata": {"agent_id": agent.node_id, "job_id": job.job_id, "node": node},
                "pool": DEFAULT_POOL,
                "queue_wait_ms": 0,
                "requested_at_ms": acquired_ms,
                "slots": 1,
            },
            "logs": "",
            "node_name": node,
            "raw_output": RESULT_START
            # The runner's reporter writes JSON with a space after each separator.
            + json.dumps({"exit_code": 0, "stdout": stdout, "stderr": ""})
            + RESULT_END,
            "remote_dir": f"{runtime_dir}/mirror_neuron_host_local_{agent.sandbox_name}_{job.seq}",
            "runner": "host_local",
            "runner_exit_code": 0,
            "sandbox_name": agent.sandbox_name,
            "stderr": "",
            "stdout": stdout,
        },
    }
    if agent.config.get("complete_job") is True:
        runtime._complete(job, agent, output)
        return
    out_type = _text(agent.config.get("output_message_type")) or EXECUTOR_OUTPUT_TYPE
    _send(runtime, job, agent, out_type, output, delivery, EVENT_CLASS)


def _send(
    runtime: InMemoryRuntime,
    job: _Job,
    agent: _Agent,
    message_type: str,
    message: Any,
    cause: _Delivery,
    message_class: str,
) -> None:
    """Send along every outbound edge declared for this message type."""
    for edge in job.manifest.edges:
        if edge.from_node == agent.node_id and edge.message_type == message_type:
            runtime._enqueue(
                job,
                agent.node_id,
                edge.to_node,
                message_type,
                message,
                cause.hops + 1,
                runtime._clock(),
                message_class=message_class,
            )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
