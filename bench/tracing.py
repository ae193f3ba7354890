"""What tracing costs per request: this gateway without and with OTLP export, side by side.

    python -m bench.tracing [--duration 10] [--rounds 2]

Starts mn-fake-core, an OTLP/gRPC receiver that counts the spans it is sent (in this
process, built on the `opentelemetry-proto` service definitions), and four gateways on
the same core: one without the OTEL_* variables, one instrumented that samples nothing,
one exporting every span to the receiver, and one exporting every span and the HTTP
metrics; and the bare forwarder of `bench/compare.py` as the floor. Drives each with wrk
in turn, A B C D E A B C D E, and reports each server's CPU time per request (from /proc,
the exporting thread included), throughput and latency. Writes bench/TRACING.md.
This is a benchmark, not a test: it asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.metrics.v1 import (
    metrics_service_pb2,
    metrics_service_pb2_grpc,
)
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from bench._procs import BIN, free_port, start, stop, wait_http
from bench.compare import (
    POST_MANIFEST,
    Run,
    bare_app,
    ensure_wrk,
    gateway_env,
    machine,
    settle,
    wrk_run,
)

HERE = Path(__file__).resolve().parent


class SpanCounter(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans = 0
        self._lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        count = sum(len(s.spans) for r in request.resource_spans for s in r.scope_spans)
        with self._lock:
            self.spans += count
        return trace_service_pb2.ExportTraceServiceResponse()


class MetricsSink(metrics_service_pb2_grpc.MetricsServiceServicer):
    def Export(self, request: Any, context: Any) -> Any:
        return metrics_service_pb2.ExportMetricsServiceResponse()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=2, help="A B rounds per route")
    parser.add_argument("--output", default=str(HERE / "TRACING.md"))
    args = parser.parse_args()

    wrk = ensure_wrk()
    work = Path(tempfile.mkdtemp(prefix="mn-api-bench-tracing-"))
    counter = SpanCounter()
    sink = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(counter, sink)
    metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(MetricsSink(), sink)
    sink_port = sink.add_insecure_port("127.0.0.1:0")
    sink.start()
    processes = []
    try:
        core_port = free_port()
        core = start(
            [str(BIN / "mn-fake-core"), "--port", str(core_port), "--step-ms", "50",
             "--seed-jobs", "20", "--seed-events", "20"],
            ready_line="listening",
        )  # fmt: skip
        processes.append(core)
        tracing = {
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{sink_port}",
            "OTEL_EXPORTER_OTLP_INSECURE": "true",
        }
        servers = {}
        traces_only = {**tracing, "OTEL_METRICS_EXPORTER": "none"}
        contestants = (
            ("untraced", {}),
            # Instrumented, but no trace sampled: what the instrumentation alone costs.
            ("unsampled", {**traces_only, "OTEL_TRACES_SAMPLER": "always_off"}),
            ("traced", {**traces_only, "OTEL_TRACES_SAMPLER": "always_on"}),
            # Every trace, and the HTTP metrics too (exported every 60 s by default).
            ("traced+metrics", {**tracing, "OTEL_TRACES_SAMPLER": "always_on"}),
        )
        for who, extra in contestants:
            port = free_port()
            env = {**gateway_env(f"127.0.0.1:{core_port}", port, work / who), **extra}
            process = start([str(BIN / "mn-api")], env=env)
            processes.append(process)
            servers[who] = (f"http://127.0.0.1:{port}", process)
        # The bare forwarder: the reference bench/RESULTS.md measures the untraced one against.
        floor_port = free_port()
        floor = bare_app("bench.forwarder:app", floor_port, MN_GRPC_TARGET=f"127.0.0.1:{core_port}")
        processes.append(floor)
        servers["floor"] = (f"http://127.0.0.1:{floor_port}", floor)
        for base, _ in servers.values():
            wait_http(f"{base}/api/v1/health")
        import httpx

        base = servers["untraced"][0]
        job = httpx.get(f"{base}/api/v1/jobs", params={"limit": 1}).json()["data"][0]["job_id"]
        body = json.dumps({"manifest_json": json.dumps(POST_MANIFEST)})
        routes = [
            ("GET /jobs/{id}", f"/api/v1/jobs/{job}", None),
            ("GET /jobs?limit=20", "/api/v1/jobs?limit=20", None),
            ("POST /jobs", "/api/v1/jobs", {"WRK_METHOD": "POST", "WRK_BODY": body}),
        ]
        rows: list[tuple[str, dict[str, Run], int]] = []
        for name, path, env in routes:
            best: dict[str, Run] = {}
            spans_before = counter.spans
            for _ in range(args.rounds):
                for who, (url, process) in servers.items():
                    settle(url)
                    run = wrk_run(wrk, url + path, args.duration, process.pid, env)
                    if who not in best or run.cpu_us < best[who].cpu_us:
                        best[who] = run
            rows.append((name, best, counter.spans - spans_before))
            print(f"{name}: " + ", ".join(f"{w} {r}" for w, r in best.items()), flush=True)
        report = _report(rows, args)
        print(report)
        Path(args.output).write_text(report)
    finally:
        for process in reversed(processes):
            stop(process)
        sink.stop(None)
        shutil.rmtree(work, ignore_errors=True)


def _report(rows: list[tuple[str, dict[str, Run], int]], args: argparse.Namespace) -> str:
    lines = [
        "# Tracing cost per request",
        "",
        f"`python -m bench.tracing --duration {args.duration} --rounds {args.rounds}`, "
        f"on {machine()}. The best of {args.rounds} rounds (lowest CPU per request) of each.",
        "",
        "| route | floor CPU µs | untraced CPU µs (/floor) | unsampled CPU µs (added) "
        "| traced CPU µs (added) | traced+metrics CPU µs (added) | traced/untraced "
        "| untraced req/s | traced req/s | traced p50 / p99 (ms) | spans received |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, best, spans in rows:
        plain, traced = best["untraced"], best["traced"]
        added = [
            f"{best[who].cpu_us:,.0f} (+{best[who].cpu_us - plain.cpu_us:,.0f})"
            for who in ("unsampled", "traced", "traced+metrics")
        ]
        floor = best["floor"].cpu_us
        lines.append(
            f"| {name} | {floor:,.0f} | {plain.cpu_us:,.0f} ({plain.cpu_us / floor:.2f}x) "
            f"| {' | '.join(added)} "
            f"| {traced.cpu_us / plain.cpu_us:.2f}x "
            f"| {plain.requests_per_second:,.0f} | {traced.requests_per_second:,.0f} "
            f"| {traced.p50_ms:.1f} / {traced.p99_ms:.1f} | {spans:,} |"
        )
    lines += [
        "",
        "The floor is `bench/forwarder.py`, the bare forwarder `bench/RESULTS.md` compares",
        "the gateway with; the untraced gateway's ratio to it is the one reported there.",
        "The unsampled gateway has every instrumentation in place and samples no trace",
        "(`OTEL_TRACES_SAMPLER=always_off`): what tracing costs before any span is kept.",
        "The traced gateways sample every request (`always_on`); the last also exports",
        "the HTTP metrics (`OTEL_METRICS_EXPORTER` left at `otlp`), the others set it to",
        "`none`. The spans column counts the spans received over both traced gateways.",
        "Every request of the traced gateway is sampled and exported: a server span, one",
        "span per core call, and one per SQLite statement of the idempotency and topology",
        "stores (POST). Spans are sent in batches by the SDK's exporting thread, whose CPU",
        "time is counted here. Without the OTEL_* variables nothing of this is loaded.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
