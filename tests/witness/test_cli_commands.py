"""The runtime commands of the published CLIs, as they are, each on something to act on:
the 69 of CLI 1.2.32 against a two-node mn-fake-core of release 1.2.31 with the gateway in
front of it (`runtime status`/`health` read its /health), and the 15 of CLI 1.1.0 against
mn-fake-core of release 1.1 (docs/CLI_COMPATIBILITY.md lists them, with the calls each makes).

Each command is run once, in an order that gives it its object: a daemon job to pause, back
up and resume; a job definition whose runs are daemons to pause and resume; a canary that
awaits promotion; a running job that registers the service a bundle requires; the second
node added and joined with the cluster's join token. Each makes a row (command, exit code,
whether it did what it is for); the table is printed (`pytest -s` shows it).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import CORE_TOKEN, FakeCoreProcess, GatewayProcess, free_port
from tests.support.published_cli import PublishedCli, bundle, printed_json
from tests.witness.cli_table import COMMANDS_1_2_32, JOIN_TOKEN, Row, Table, found, run_1_2_32

pytestmark = pytest.mark.slow

COMMANDS_1_1_0 = (
    "submit", "status", "list", "pause", "resume", "dead-letters", "monitor", "result",
    "cancel", "nodes", "metrics", "run", "blueprint run", "leave", "clear",
)  # fmt: skip


@pytest.fixture(scope="module")
def table_1_2_32(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Table]:
    work = tmp_path_factory.mktemp("cli-1.2.32")
    first, second = free_port(), free_port()
    core = FakeCoreProcess(
        first,
        *("--release", "1.2.31", "--nodes", "2", "--ports", f"{first},{second}"),
        *("--step-ms", "5", "--token", CORE_TOKEN, "--join-token", JOIN_TOKEN),
    )
    gateway = GatewayProcess(work, "grpc", core=core)
    mn = PublishedCli(work / "cli", f"127.0.0.1:{first}", api_base_url=f"{gateway.base}/api/v1")
    table = Table(mn)
    try:
        core.start()
        gateway.start()
        run_1_2_32(table, work, second)
        yield table
    finally:
        mn.close()
        gateway.stop()
        core.stop()


@pytest.fixture(scope="module")
def table_1_1_0(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Table]:
    work = tmp_path_factory.mktemp("cli-1.1.0")
    core = FakeCoreProcess(free_port(), "--release", "1.1", "--step-ms", "5", "--token", CORE_TOKEN)
    mn = PublishedCli(work / "cli", f"127.0.0.1:{core.port}", version="1.1.0")
    table = Table(mn)
    try:
        core.start()
        run_1_1_0(table, work)
        yield table
    finally:
        mn.close()
        core.stop()


def run_1_1_0(t: Table, work: Path) -> None:
    hello = bundle(work / "hello")
    daemon = bundle(work / "daemon", graph_id="daemon-hello", daemon=True)
    job = found(t.run("submit", hello / "manifest.json", shows="submitted"), r"Job ID: (\S+)")
    running = found(t.mn("submit", daemon / "manifest.json")[1], r"Job ID: (\S+)")
    t.run("status", running, shows=lambda out: printed_json(out)["job"]["status"] == "running")
    t.run("list", shows=lambda out: job in out and running in out)
    t.run("pause", running, shows="Job paused. Status: paused")
    t.run("resume", running, shows="Job resumed. Status: resumed")
    t.run("dead-letters", job, shows=lambda out: printed_json(out) == {"job_id": job, "data": []})
    t.run("monitor", job, shows="Job Status: Success")
    t.run("result", job, shows="Final result saved to")
    t.run("cancel", running, shows="Job cancelled. Status: cancelled")
    node = found(t.run("nodes", shows='"nodes"'), r'"name": "([^"]+)"')
    t.run("metrics", shows=lambda out: printed_json(out)["jobs"]["by_status"]["cancelled"] == 1)
    t.run("run", hello, "--follow-seconds", "2", shows="Final job state reached.")
    t.run("blueprint", "run", hello, "--follow-seconds", "2", shows="Final job state reached.")
    t.run("leave", node, shows=f"Successfully requested {node} to leave. Status: removed")
    t.run("clear", shows="Successfully cleared 4 non-running jobs.")


def _fails(row: Row) -> str:
    return f"mn {' '.join(row.argv)} -> exit {row.code}:\n{row.output[:4000]}"


@pytest.mark.parametrize("command", COMMANDS_1_2_32)
def test_each_command_of_cli_1_2_32(table_1_2_32: Table, command: str) -> None:
    row = table_1_2_32.rows[command]
    assert row.code == row.expected and row.held, _fails(row)


def test_the_table_of_cli_1_2_32(table_1_2_32: Table) -> None:
    print("\n" + table_1_2_32.markdown("CLI 1.2.32 against mn-fake-core 1.2.31", COMMANDS_1_2_32))
    assert len(COMMANDS_1_2_32) == len(set(COMMANDS_1_2_32)) == 69
    assert set(table_1_2_32.rows) == set(COMMANDS_1_2_32)
    assert sum(table_1_2_32.rows[c].ok for c in COMMANDS_1_2_32) >= 64


@pytest.mark.parametrize("command", COMMANDS_1_1_0)
def test_each_command_of_cli_1_1_0(table_1_1_0: Table, command: str) -> None:
    row = table_1_1_0.rows[command]
    assert row.ok and row.held, _fails(row)


def test_the_table_of_cli_1_1_0(table_1_1_0: Table) -> None:
    print("\n" + table_1_1_0.markdown("CLI 1.1.0 against mn-fake-core 1.1", COMMANDS_1_1_0))
    assert set(table_1_1_0.rows) == set(COMMANDS_1_1_0) and len(COMMANDS_1_1_0) == 15
    assert all(table_1_1_0.rows[c].ok for c in COMMANDS_1_1_0)
