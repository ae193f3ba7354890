"""mn-fake-core's command line."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import NoReturn

from mn_api.adapters.memory.model import SWEEP_GUARD_SECONDS, SimulatedNode
from mn_api.adapters.memory.releases import LATEST, RELEASES
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.config import unknown_variables
from mn_api.entrypoints.cli import check_address, load_settings
from mn_api.entrypoints.fake_core.servicers import FakeCore

# The variable that sets how many nodes the simulated cluster has (the gateway's in-memory
# runtime reads it too).
NODES_VARIABLE = "MN_FAKE_CORE_NODES"


DEFAULT_PORT = 50051

DESCRIPTION = """mn-fake-core: the in-memory runtime served over the core's gRPC protocol.

Any client of the core (the gateway, the CLI, the SDK) can use it. `--release` picks the
core release it behaves like (1.1, 1.2.5 or 1.2.31, the newest by default): which RPCs and
request fields it honours, its documents and event shapes, its answers to pause, resume and
cancel, the status codes and texts of its refusals, and the credentials it checks.
`--legacy` is the 1.1 profile without ReplayDeadLetter. ReplayDeadLetter is our extension
(no released core has it) and is served in every profile unless `--without-replay`.

`--nodes N` simulates a cluster of N nodes (`mn1@127.0.0.1`, ...; releases 1.2.5, 1.2.31
and d26bef71), each served on a port of its own (`--ports`, else `--port` for the first and
free ports for the others) and answering for the whole cluster. Every port also serves the
fault service `/mirrorneuron.fake.v1.FaultService/Apply` (JSON in, JSON out: kill_node,
restart_node, state_store_down, state_store_up, status; and for tests on any profile:
reset, calls, fail_next, delay_next).
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mn-fake-core",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--port",
        type=int,
        default=None,
        help=f"the (first) node's port, {DEFAULT_PORT} by default; 0 picks a free port",
    )
    parser.add_argument(
        "--nodes",
        type=int,
        default=None,
        help=f"nodes of the simulated cluster (default: {NODES_VARIABLE}, else 1)",
    )
    parser.add_argument(
        "--ports",
        type=_ports,
        default=None,
        metavar="P1,P2,...",
        help="one gRPC port per node (0: a free one)",
    )
    parser.add_argument(
        "--release",
        choices=list(RELEASES),
        default=None,
        help=f"the core release to behave like (default: MN_FAKE_CORE_RELEASE, else {LATEST})",
    )
    parser.add_argument(
        "--legacy", action="store_true", help="the 1.1 profile without ReplayDeadLetter"
    )
    parser.add_argument(
        "--without-replay",
        action="store_true",
        help="answer ReplayDeadLetter UNIMPLEMENTED, as every released core does",
    )
    parser.add_argument(
        "--token", help="the node's authorization token (checked on protected RPCs from 1.2.5)"
    )
    parser.add_argument("--admin-token", help="the separate ClearJobs secret of 1.2.5 cores")
    parser.add_argument(
        "--join-token",
        help="the secret NetworkHandshake asks a joining node for (default: "
        "MN_NETWORK_JOIN_TOKEN; without one every handshake is refused, as on a core)",
    )
    node = SimulatedNode()
    parser.add_argument(
        "--node-cpus",
        type=int,
        default=node.logical_processors,
        help="logical processors of the simulated node (manifests' requirements.cpu)",
    )
    parser.add_argument(
        "--node-memory-mb",
        type=int,
        default=node.memory_mb,
        help="memory of the simulated node (requirements.memory)",
    )
    parser.add_argument(
        "--node-gpus", type=int, default=node.gpus, help="GPUs of the simulated node"
    )
    parser.add_argument(
        "--duplicate-boundary",
        action="store_true",
        help="following streams send the last history event twice, as a core may",
    )
    parser.add_argument("--seed-jobs", type=int, default=0, help="preload N finished jobs")
    parser.add_argument("--seed-events", type=int, default=0, help="with M events each")
    parser.add_argument(
        "--seed-history",
        type=int,
        default=0,
        metavar="EVENTS",
        help="preload one more finished job with this many events",
    )
    parser.add_argument(
        "--step-ms",
        type=int,
        default=None,
        help="pace of the simulation (default: MN_FAKE_STEP_MS, else 50)",
    )
    parser.add_argument(
        "--sweep-guard-seconds",
        type=float,
        default=SWEEP_GUARD_SECONDS,
        help="a new leader leaves orphaned jobs whose record changed this recently (as a "
        f"real core: {SWEEP_GUARD_SECONDS:g}; 0 sweeps every one)",
    )
    return parser


def _ports(text: str) -> list[int]:
    try:
        ports = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of ports: {text!r}") from None
    if any(not 0 <= port <= 65535 for port in ports):
        raise argparse.ArgumentTypeError(f"not a list of ports: {text!r}")
    return ports


def _refuse(message: str) -> NoReturn:
    print(f"mn-fake-core: {message}", file=sys.stderr)
    raise SystemExit(2)


def _node_count(args: argparse.Namespace) -> int:
    """How many nodes: `--nodes`, else the variable, else one per `--ports`, else 1."""
    if args.nodes is not None:
        count = args.nodes
    elif os.environ.get(NODES_VARIABLE, "").strip():
        try:
            count = int(os.environ[NODES_VARIABLE])
        except ValueError:
            _refuse(f"{NODES_VARIABLE} must be a whole number")
    else:
        count = len(args.ports) if args.ports else 1
    if count < 1:
        _refuse("a cluster has at least one node")
    return count


def _node_ports(args: argparse.Namespace, count: int) -> list[int]:
    """Each node's port (0: a free one picked when it is served)."""
    if args.ports is None:
        first = args.port if args.port is not None else DEFAULT_PORT
        return [first] + [0] * (count - 1)
    if len(args.ports) != count:
        _refuse(f"--ports names {len(args.ports)} ports for {count} nodes")
    if args.port is not None and args.port != args.ports[0]:
        _refuse("--port, when given with --ports, is the first of them")
    return list(args.ports)


def _warn_unknown_variables() -> None:
    for line in unknown_variables(os.environ):
        print(f"mn-fake-core: warning: {line}", file=sys.stderr)


async def _serve(args: argparse.Namespace) -> None:
    _warn_unknown_variables()
    settings = load_settings("mn-fake-core")
    count = _node_count(args)
    ports = _node_ports(args, count)
    for port in ports:
        if port:  # 0 asks for any free port
            check_address(args.host, port, "mn-fake-core")
    step_ms = args.step_ms if args.step_ms is not None else settings.fake_step_ms
    release = "1.1" if args.legacy else (args.release or settings.fake_core_release)
    node = SimulatedNode(
        logical_processors=args.node_cpus, memory_mb=args.node_memory_mb, gpus=args.node_gpus
    )
    try:
        runtime = InMemoryRuntime(
            release=release,
            node=node,
            step_seconds=max(step_ms, 0) / 1000,
            duplicate_boundary=args.duplicate_boundary,
            nodes=count,
            sweep_guard_seconds=max(args.sweep_guard_seconds, 0.0),
        )
    except ValueError as refused:
        _refuse(f"{refused}: --nodes {count} needs release 1.2.5, 1.2.31 or d26bef71")
    if args.seed_jobs:
        runtime.seed(args.seed_jobs, args.seed_events)
    if args.seed_history:
        runtime.seed(1, args.seed_history)
    core = FakeCore(
        runtime,
        replay=not (args.legacy or args.without_replay),
        token=args.token,
        admin_token=args.admin_token,
        join_token=args.join_token or settings.network_join_token,
    )
    try:
        await core.start(args.host, ports=ports)
    except RuntimeError:
        await core.stop(grace=None)
        wanted = ", ".join(f"{args.host}:{port}" for port in ports)
        _refuse(f"cannot listen on {wanted} (in use, or not an address of this host)")
    # Ready to be stopped cleanly before saying it is ready.
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    replay = "with" if core.replay else "without"
    if count == 1:
        where = f"{args.host}:{core.port}"
        nodes = ""
    else:
        where = ", ".join(f"{args.host}:{port} ({name})" for name, port in core.ports.items())
        nodes = f", {count} nodes"
    print(
        f"mn-fake-core (release {release}, {replay} ReplayDeadLetter{nodes}) listening on {where}",
        flush=True,
    )
    await stopping.wait()
    await core.stop(grace=1.0)


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    if args.step_ms is not None and args.step_ms < 0:
        print("mn-fake-core: --step-ms must not be negative", file=sys.stderr)
        raise SystemExit(2)
    if args.legacy and args.release not in (None, "1.1"):
        print("mn-fake-core: --legacy is the 1.1 profile; drop --release", file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(_serve(args))
