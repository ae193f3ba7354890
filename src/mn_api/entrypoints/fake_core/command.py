"""mn-fake-core's command line."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from mn_api.adapters.memory.model import SimulatedNode
from mn_api.adapters.memory.releases import LATEST, RELEASES
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.entrypoints.cli import check_address, load_settings, warn_unknown_variables
from mn_api.entrypoints.fake_core.servicers import FakeCore

DESCRIPTION = """mn-fake-core: the in-memory runtime served over the core's gRPC protocol.

Any client of the core (the gateway, the CLI, the SDK) can use it. `--release` picks the
core release it behaves like (1.1, 1.2.5 or 1.2.31, the newest by default): which RPCs and
request fields it honours, its documents and event shapes, its answers to pause, resume and
cancel, the status codes and texts of its refusals, and the credentials it checks.
`--legacy` is the 1.1 profile without ReplayDeadLetter. ReplayDeadLetter is our extension
(no released core has it) and is served in every profile unless `--without-replay`.
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mn-fake-core",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="0 picks a free port")
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
    return parser


async def _serve(args: argparse.Namespace) -> None:
    warn_unknown_variables("mn-fake-core")
    settings = load_settings("mn-fake-core")
    if args.port:  # 0 asks for any free port
        check_address(args.host, args.port, "mn-fake-core")
    step_ms = args.step_ms if args.step_ms is not None else settings.fake_step_ms
    release = "1.1" if args.legacy else (args.release or settings.fake_core_release)
    node = SimulatedNode(
        logical_processors=args.node_cpus, memory_mb=args.node_memory_mb, gpus=args.node_gpus
    )
    runtime = InMemoryRuntime(
        release=release,
        node=node,
        step_seconds=max(step_ms, 0) / 1000,
        duplicate_boundary=args.duplicate_boundary,
    )
    if args.seed_jobs:
        runtime.seed(args.seed_jobs, args.seed_events)
    if args.seed_history:
        runtime.seed(1, args.seed_history)
    core = FakeCore(
        runtime,
        replay=not (args.legacy or args.without_replay),
        token=args.token,
        admin_token=args.admin_token,
    )
    try:
        port = await core.start(args.host, args.port)
    except RuntimeError:
        print(
            f"mn-fake-core: cannot listen on {args.host}:{args.port} "
            "(in use, or not an address of this host)",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    replay = "with" if core.replay else "without"
    print(
        f"mn-fake-core (release {release}, {replay} ReplayDeadLetter) "
        f"listening on {args.host}:{port}",
        flush=True,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
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
