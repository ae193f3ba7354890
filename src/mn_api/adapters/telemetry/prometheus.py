"""PrometheusTelemetry: the gateway's own metrics, in Prometheus' exposition format."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector

from mn_api.application.journal import HistoryJournal
from mn_api.application.ports import Telemetry

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# The methods that label requests as themselves. Any other (WebDAV's, or whatever a client
# makes up) is counted as OTHER: a label value per method a client sends would let it add
# series, and the memory they take, without end.
LABELLED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"


MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class PrometheusTelemetry(Telemetry):
    """Metrics on a registry of its own, so that several apps in one process never clash.

    With several worker processes (`PROMETHEUS_MULTIPROC_DIR` set, as `mn-api --workers N`
    does), every worker writes its values to that folder and a scrape of any worker
    reports the sum over all of them.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self._request_children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._core_children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self.requests = Counter(
            "mn_api_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "mn_api_http_request_duration_seconds",
            "Time to answer HTTP requests",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "mn_api_http_requests_in_flight", "HTTP requests being answered", registry=r
        )
        self.core_calls = Counter(
            "mn_api_core_calls",
            "Calls to the runtime, by rpc and gRPC status",
            ["rpc", "code"],
            registry=r,
        )
        self.core_seconds = Histogram(
            "mn_api_core_call_duration_seconds",
            "Time the runtime took to answer",
            ["rpc"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.open_streams = Gauge(
            "mn_api_event_streams_open", "Live event streams being served", registry=r
        )
        self.uploads = Counter(
            "mn_api_bundle_uploads", "Bundle uploads, by outcome", ["outcome"], registry=r
        )
        self.upload_bytes = Counter(
            "mn_api_bundle_upload_bytes", "Bytes unpacked from stored bundles", registry=r
        )
        self.webhook_attempts = Counter(
            "mn_api_webhook_deliveries",
            "Webhook delivery attempts, by outcome (delivered, retry, gone, exhausted, refused)",
            ["outcome"],
            registry=r,
        )
        self.webhook_seconds = Histogram(
            "mn_api_webhook_attempt_duration_seconds",
            "Time receivers took to answer webhook attempts",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def request(self, method: str, route: str, status: int, seconds: float) -> None:
        if method not in LABELLED_METHODS:
            method = OTHER_METHOD
        # The labelled children are looked up once per label set, not once per request.
        key = (method, route, status)
        children = self._request_children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.request_seconds.labels(method, route),
            )
            self._request_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def core_call(self, rpc: str, code: str, seconds: float) -> None:
        key = (rpc, code)
        children = self._core_children.get(key)
        if children is None:
            children = (self.core_calls.labels(rpc, code), self.core_seconds.labels(rpc))
            self._core_children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def stream_opened(self) -> None:
        self.open_streams.inc()

    def stream_closed(self) -> None:
        self.open_streams.dec()

    def bundle_uploaded(self, outcome: str, size: int) -> None:
        self.uploads.labels(outcome).inc()
        if size:
            self.upload_bytes.inc(size)

    def webhook_attempt(self, outcome: str, seconds: float) -> None:
        self.webhook_attempts.labels(outcome).inc()
        self.webhook_seconds.observe(seconds)

    def observe_journal(self, journal: HistoryJournal) -> None:
        """Report the history journal's state when scraped: hits, misses, evictions and
        histories too big to keep, bytes and jobs held, open core streams, watchers."""
        self.registry.register(_JournalCollector(journal))

    def exposition(self) -> bytes:
        folder = os.environ.get(MULTIPROCESS_DIR)
        if not folder:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)
        return generate_latest(registry)

    @staticmethod
    def process_ended() -> None:
        """Drop this process's live gauges from the shared folder when it stops."""
        if os.environ.get(MULTIPROCESS_DIR):
            multiprocess.mark_process_dead(os.getpid())


class _JournalCollector(Collector):
    """The journal's counters and gauges, read from it at each scrape."""

    def __init__(self, journal: HistoryJournal) -> None:
        self._journal = journal

    def collect(self) -> Iterator[Metric]:
        journal = self._journal
        stats = journal.stats
        for name, value, text in (
            ("hits", stats.hits, "history reads served from the journal"),
            ("misses", stats.misses, "history reads that had to ask the runtime"),
            ("evictions", stats.evictions, "histories dropped to stay within the budget"),
            ("oversized", stats.oversized, "histories too big to keep, read from the runtime"),
        ):
            yield CounterMetricFamily(f"mn_api_history_journal_{name}", text, value=value)
        for name, value, text in (
            ("bytes", journal.bytes_held, "bytes the kept histories take"),
            ("jobs", journal.jobs_held, "jobs whose history is kept"),
            ("core_streams", journal.core_streams, "open reads of a history from the runtime"),
            ("watchers", journal.watchers, "live streams fed from the journal"),
        ):
            yield GaugeMetricFamily(f"mn_api_history_journal_{name}", text, value=value)
