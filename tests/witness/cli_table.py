"""The table of a published CLI's commands (a row a command) and the sequence that runs the
69 runtime commands of CLI 1.2.32, each on an object it can act on (see test_cli_commands)."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.published_cli import ERROR_BANNERS, PublishedCli, bundle, printed_json

JOIN_TOKEN = "join-secret"
MN1, MN2 = "mn1@127.0.0.1", "mn2@127.0.0.1"

COMMANDS_1_2_32 = (
    "job submit", "job status", "job list", "job unfinished", "job pause", "job backup",
    "job resume", "job dead-letters", "job monitor", "job result", "job cancel", "job restore",
    "job cancel-all", "job clear", "operation status", "operation watch",
    "job create", "job definitions", "job inspect", "job start", "job runs", "run status",
    "run pause", "run resume", "run cancel", "run delete", "job archive", "job reset-data",
    "job delete", "blueprint run",
    "deployment deploy", "deployment list", "deployment status", "deployment promote",
    "deployment pause", "deployment resume", "deployment rollback", "deployment fail",
    "schedule create", "schedule delay", "schedule list", "schedule status", "schedule pause",
    "schedule resume", "schedule run-now", "schedule delete", "trigger create", "trigger list",
    "event emit", "event list", "trigger delete",
    "resource list", "resource set", "resource ports",
    "service list", "service resolve", "service check",
    "node list", "runtime metrics", "node add", "node join", "node maintenance", "node drain",
    "node undrain", "node reconcile", "runtime status", "runtime health", "runtime doctor",
    "node leave",
)  # fmt: skip


@dataclass
class Row:
    command: str
    argv: tuple[str, ...]
    code: int
    output: str
    expected: int  # the exit code the command has here
    held: bool  # what it printed shows it did what it is for

    @property
    def ok(self) -> bool:
        """Exit code 0 and no error printed (CLI 1.1.0 exits 0 on errors too)."""
        return self.code == 0 and not any(banner in self.output for banner in ERROR_BANNERS)


class Table:
    """The commands run so far, a row each (the last run of a command is its row)."""

    def __init__(self, mn: PublishedCli) -> None:
        self.mn = mn
        self.rows: dict[str, Row] = {}

    def run(self, *argv: Any, shows: str | Callable[[str], Any], expect: int = 0) -> str:
        """Runs `mn argv...` as its command's row; `shows` is a text its output holds, or a
        test of the output."""
        words = 2 if self.mn.version != "1.1.0" or argv[0] == "blueprint" else 1
        command = " ".join(map(str, argv[:words]))
        code, output = self.mn(*argv)
        try:
            held = shows in output if isinstance(shows, str) else bool(shows(output))
        except (ValueError, KeyError, IndexError, TypeError, StopIteration):
            held = False  # not the document the command prints
        self.rows[command] = Row(command, tuple(map(str, argv)), code, output, expect, held)
        return output

    def markdown(self, title: str, commands: tuple[str, ...]) -> str:
        rows = [self.rows[c] for c in commands if c in self.rows]
        return "\n".join(
            [
                f"{title}: {sum(r.ok for r in rows)}/{len(commands)} ok",
                "",
                "| command | exit code | ok |",
                "|---|---|---|",
                *(f"| `mn {r.command}` | {r.code} | {'yes' if r.ok else 'no'} |" for r in rows),
            ]
        )


def found(output: str, pattern: str) -> str:
    """What `pattern`'s group matched, else a name no object has (the commands that need
    it then fail on their own)."""
    match = re.search(pattern, output)
    return match.group(1) if match else "missing"


def wait_for(read: Callable[[], Any], wanted: Callable[[Any], bool], within: float = 20) -> None:
    """Reads until what is read is as wanted, within a bound (no timing is asserted)."""
    deadline = time.monotonic() + within
    while not wanted(read()) and time.monotonic() < deadline:
        time.sleep(0.1)


def _document(t: Table, *argv: Any) -> Any:
    """The JSON document a command prints, read as a step of the sequence (not a row)."""
    code, output = t.mn(*argv)
    return printed_json(output) if code == 0 else {}


def _listed(key: str, *expected: str) -> Callable[[str], bool]:
    """The printed document lists exactly these (by `key`) in its `data`."""
    return lambda out: [item[key] for item in printed_json(out)["data"]] == list(expected)


def _status(*wanted: str) -> Callable[[str], bool]:
    """The printed document's status is one of these."""
    return lambda out: printed_json(out)["status"] in wanted


def _components(output: str) -> dict[str, str]:
    return {c["name"]: c["status"] for c in printed_json(output)["components"]}


def _jobs(t: Table, work: Path) -> None:
    hello, daemon = work / "hello" / "manifest.json", work / "daemon" / "manifest.json"
    job = found(t.run("job", "submit", hello, shows="Job submit successful."), r"Job ID: (\S+)")
    running = found(t.mn("job", "submit", daemon)[1], r"Job ID: (\S+)")
    t.run("job", "status", running, shows=lambda out: printed_json(out)["job"]["job_id"] == running)
    t.run("job", "list", shows=lambda out: job in out and running in out)
    t.run("job", "unfinished", shows=f"{running} recovery=normal review=no")
    t.run("job", "pause", running, shows="Status: paused")
    backups = work / "backups"
    t.run(
        "job", "backup", running, "-o", backups,
        shows=lambda out: "Job backup successful." in out and any(backups.glob("*.mnbackup.zip")),
    )  # fmt: skip
    t.run("job", "resume", running, shows="Status: resumed")
    t.run("job", "dead-letters", job, shows=lambda out: printed_json(out)["data"] == [])
    t.run("job", "monitor", job, shows="Status: Completed")
    t.run("job", "result", job, shows=f"Fetching results for {job}...")
    t.run("job", "cancel", running, shows="Status: cancelled")
    archive = next(iter(backups.glob("*.mnbackup.zip")), backups / "missing.mnbackup.zip")
    restored = found(
        t.run(
            "job", "restore", "daemon-hello", "-i", archive,
            shows=lambda out: "Status: paused" in out and f"Original job: {running}" in out,
        ),
        r"Job ID: (\S+)",
    )  # fmt: skip

    # The restored job is paused: cancel-all cancels it, then clear clears every job.
    said = t.run("job", "cancel-all", "-y", shows=f"✓ {restored}: cancelled")
    operation = found(said, r"operation (op-\S+?)\)")
    finished = (job, running, restored)

    def cleared(out: str) -> bool:
        listed = t.mn("job", "list")[1]
        return all(f"✓ {j}: cleared" in out and j not in listed for j in finished)

    # The core clears each job; CLI 1.2.32 then runs its local clean-up for the
    # operation_completed event too (no item id) and exits 1, as against a real core.
    t.run("job", "clear", "-y", shows=cleared, expect=1)
    t.run(
        "operation", "status", operation,
        shows=lambda out: printed_json(out)["kind"] == "cancel_all_jobs"
        and _status("completed")(out),
    )  # fmt: skip
    t.run("operation", "watch", operation, shows=f"Operation ID: {operation}")


def _definitions(t: Table, work: Path) -> None:
    config, inputs = work / "config.json", work / "inputs.json"
    settings = {"llm": {"temperature": 0}}
    config.write_text(json.dumps(settings))
    inputs.write_text(json.dumps({"topic": "quarterly report"}))
    t.run(
        "job", "create", work / "daemon", "--job-id", "demo-stable", "--config", config,
        shows="Job ID: demo-stable",
    )  # fmt: skip
    t.run("job", "definitions", "--include-archived", shows=_listed("job_id", "demo-stable"))
    t.run(
        "job", "inspect", "demo-stable",
        shows=lambda out: printed_json(out)["resolved_configuration"] == settings,
    )  # fmt: skip
    t.run(
        "job", "start", "demo-stable", "--run-id", "demo-run-1", "--inputs", inputs,
        shows="Run ID: demo-run-1",
    )  # fmt: skip
    t.run("job", "runs", "demo-stable", shows=_listed("run_id", "demo-run-1"))

    run = ("run", "status", "demo-run-1")
    wait_for(lambda: _document(t, *run).get("status"), lambda s: s == "running")
    t.run(*run, shows=_status("running"))
    t.run("run", "pause", "demo-run-1", shows=_status("paused"))
    t.run("run", "resume", "demo-run-1", shows=_status("resumed"))
    t.run("run", "cancel", "demo-run-1", shows=_status("cancelled", "cancellation_pending"))
    wait_for(lambda: _document(t, *run).get("status"), lambda s: s == "cancelled")
    t.run("run", "delete", "demo-run-1", "-y", shows=_status("deleted"))
    t.run("job", "archive", "demo-stable", shows=_status("archived"))
    t.run(
        "job", "reset-data", "demo-stable", "-y",
        shows=lambda out: printed_json(out)["data_generation"] == 2,
    )  # fmt: skip
    t.run("job", "delete", "demo-stable", "-y", shows=_status("deleted"))
    t.run(
        "blueprint", "run", "--folder", work / "hello", "--follow-seconds", "5",
        shows=lambda out: "Job submitted" in out and "Status: Completed" in out,
    )  # fmt: skip


def _deployments(t: Table, work: Path) -> None:
    # A service at version 1, then a change of its worker rolled out as a canary.
    first = bundle(work / "service-v1", graph_id="search", job_name="demo-service", daemon=True)
    changed = bundle(
        work / "service-v2",
        graph_id="search",
        job_name="demo-service",
        daemon=True,
        nodes=[
            {"node_id": "router", "agent_type": "router"},
            {"node_id": "worker", "agent_type": "executor", "config": {"model": "larger"}},
        ],
    )
    t.mn("deployment", "deploy", first, "--key", "demo-service")
    t.run(
        "deployment", "deploy", changed, "--key", "demo-service", "--strategy", "canary",
        "--canary", "1", "--max-parallel", "1",
        shows="Status: awaiting_promotion",
    )  # fmt: skip
    t.run(
        "deployment", "list",
        shows=lambda out: {(d["deployment_key"], d["status"]) for d in printed_json(out)["data"]}
        >= {("demo-service", "awaiting_promotion")},
    )  # fmt: skip
    t.run(
        "deployment", "status", "demo-service",
        shows=lambda out: printed_json(out)["status"] == "awaiting_promotion",
    )  # fmt: skip
    t.run("deployment", "promote", "demo-service", shows="Status: successful")
    t.run(
        "deployment", "pause", "demo-service", "--reason", "change freeze", shows="Status: paused"
    )
    t.run(
        "deployment", "resume", "demo-service", "--reason", "freeze over", shows="Status: running"
    )
    t.run(
        "deployment", "rollback", "demo-service", "--version", "1", "--reason", "bad canary",
        shows="Deployment rollback successful.",
    )  # fmt: skip
    t.run(
        "deployment", "fail", "demo-service", "--reason", "smoke test failed",
        shows="Status: failed",
    )  # fmt: skip


def _schedules(t: Table, work: Path) -> None:
    hello = work / "hello"
    nightly = found(
        t.run(
            "schedule", "create", hello, "--cron", "0 2 * * *", "--name", "nightly-report",
            "--timezone", "UTC", "--missed-policy", "catchup_one", "--window", "30m",
            shows="Kind: periodic",
        ),
        r"Schedule ID: (\S+)",
    )  # fmt: skip
    t.run("schedule", "delay", hello, "--in", "10m", "--name", "one-off", shows="Kind: delayed")
    t.run("schedule", "list", "--kind", "periodic", shows=_listed("schedule_id", nightly))
    t.run(
        "schedule", "status", nightly,
        shows=lambda out: printed_json(out)["crons"] == ["0 2 * * *"],
    )  # fmt: skip
    t.run("schedule", "pause", nightly, "--reason", "holiday", shows="Status: paused")
    t.run("schedule", "resume", nightly, "--reason", "back", shows="Status: active")
    t.run(
        "schedule", "run-now", nightly, "--payload-json", '{"source": "research"}',
        shows="Schedule run now successful.",
    )  # fmt: skip
    t.run("schedule", "delete", nightly, "--reason", "retired", shows="Status: deleted")
    trigger = found(
        t.run(
            "trigger", "create", hello, "--event", "invoice.received", "--name", "on-invoice",
            "--filter-json", '{"customer": "acme"}',
            shows="Event: invoice.received",
        ),
        r"Schedule ID: (\S+)",
    )  # fmt: skip
    t.run("trigger", "list", shows=_listed("schedule_id", trigger))
    t.run(
        "event", "emit", "invoice.received", "--payload-json",
        '{"customer": "acme", "amount": 42}', "--source", "research",
        shows="Event emit successful.",
    )  # fmt: skip
    t.run(
        "event", "list", "--limit", "20",
        shows=lambda out: printed_json(out)["data"][0]["event_type"] == "invoice.received",
    )  # fmt: skip
    t.run("trigger", "delete", trigger, "--reason", "retired", shows="Status: deleted")


def _cluster(t: Table, work: Path, second_port: int) -> None:
    t.run("resource", "list", shows=lambda out: len(printed_json(out)["nodes"]) == 2)
    t.run("resource", "set", "--cpu", "75", "--memory", "50", shows="Resource set successful.")
    t.run("resource", "ports", shows=t.mn.env["MN_GRPC_TARGET"])

    # A running job registers search-index (tags v1), which the checked bundle requires.
    index = {"name": "search-index", "tags": ["v1"], "port": 9200}
    service = bundle(
        work / "search",
        graph_id="search-index",
        daemon=True,
        nodes=[{"node_id": "worker", "agent_type": "executor", "services": [index]}],
        edges=[],
        entrypoints=["worker"],
    )
    t.mn("job", "submit", service / "manifest.json")
    resolve = ("service", "resolve", "search-index", "--tag", "v1")
    wait_for(lambda: _document(t, *resolve).get("services"), bool)
    t.run(*resolve, shows=lambda out: printed_json(out)["services"][0]["port"] == 9200)
    t.run(
        "service", "list", "--all",
        shows=lambda out: "search-index" in [s["name"] for s in printed_json(out)["services"]],
    )  # fmt: skip
    required = bundle(
        work / "requires", required_services=[{"name": "search-index", "tags": ["v1"]}]
    )
    t.run("service", "check", required, shows="Service check confirmed.")

    t.run(
        "node", "list",
        shows=lambda out: [n["name"] for n in printed_json(out)["nodes"]] == [MN1, MN2],
    )  # fmt: skip
    t.run("runtime", "metrics", shows=lambda out: printed_json(out)["nodes"]["total"] == 2)
    port = str(second_port)

    def drained(out: str) -> bool:
        # Jobs that restart locally (no cluster recovery) cannot move: the drain waits.
        return "Operation ID: op-" in out and (
            "Node drain successful." in out or "Node drain is waiting for deferred work" in out
        )

    # The second node, mn2, is handshaken with on its own port and added (again).
    for command, options in (("add", ()), ("join", ("--local-host", "127.0.0.1"))):
        t.run(
            "node", command, "127.0.0.1", "--token", JOIN_TOKEN, "--grpc-port", port, *options,
            shows=f"Node {command} successful.\nStatus: connected\nNode: {MN2}",
        )  # fmt: skip
    t.run(
        "node", "maintenance", MN2, "--enable", "--reason", "kernel upgrade",
        shows="Status: maintenance",
    )  # fmt: skip
    t.run(
        "node", "drain", MN2, "--reason", "maintenance", "--deadline", "30s",
        shows=drained,
    )  # fmt: skip
    t.run(
        "node", "undrain", MN2, "--reason", "done", "--mark-eligible",
        shows="Scheduling eligible: True",
    )  # fmt: skip
    t.run(
        "node", "reconcile", MN2, "--reason", "node lost", "--dry-run",
        shows="Node reconcile successful.",
    )  # fmt: skip
    healthy = {"core_grpc": "passing", "api": "passing"}
    for command in ("status", "health"):
        t.run(
            "runtime", command, "--json", "--timeout", "2",
            shows=lambda out: _components(out).items() >= healthy.items(),
        )  # fmt: skip
    # Needs a LiteLLM gateway besides the core and the API: that alone is critical here.
    t.run(
        "runtime", "doctor", "--json", "--timeout", "2",
        shows=lambda out: [n for n, s in _components(out).items() if s == "critical"]
        == ["litellm_gateway"]
        and _components(out).items() >= healthy.items(),
        expect=1,
    )  # fmt: skip
    t.run("node", "leave", MN2, shows="Status: removed")


def run_1_2_32(t: Table, work: Path, second_port: int) -> None:
    """The 69 commands in order, each a row of `t`."""
    bundle(work / "hello")
    bundle(work / "daemon", graph_id="daemon-hello", job_name="daemon hello", daemon=True)
    _jobs(t, work)
    _definitions(t, work)
    _deployments(t, work)
    _schedules(t, work)
    _cluster(t, work, second_port)
