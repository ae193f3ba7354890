"""A real browser (headless Chromium): the docs render offline; EventSource follows a job."""

from __future__ import annotations

import functools
import http.server
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from tests.support import GatewayProcess, chromium, free_port, pipeline_manifest, render

pytestmark = [pytest.mark.slow]
PAGE_ORIGIN_PORT = free_port()
PAGE_ORIGIN = f"http://127.0.0.1:{PAGE_ORIGIN_PORT}"

FOLLOWER = """<!doctype html><html><body><pre id="out">waiting</pre><script>
const q = new URLSearchParams(location.search);
const ids = [];
let resumed = false;
function follow(after) {
  const query = after === null ? "" : `?last_event_id=${after}`;
  const stream = `${q.get("api")}/api/v1/jobs/${q.get("job")}/events/stream`;
  const source = new EventSource(stream + query);
  source.onmessage = (e) => {
    ids.push(Number(e.lastEventId));
    // Drop the connection part-way and resume, as a browser does after a network error.
    if (!resumed && ids.length === 5) { resumed = true; source.close(); follow(ids[4]); }
  };
  source.addEventListener("end", (e) => {
    source.close();
    document.getElementById("out").textContent = JSON.stringify({end: e.data, ids});
  });
}
follow(null);
</script></body></html>"""


@pytest.fixture(scope="module")
def browser() -> str:
    path = chromium()
    if path is None:
        import os

        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs it")
        pytest.skip("chromium is not installed (make test installs it)")
    return path


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    process = GatewayProcess(
        tmp_path_factory.mktemp("browser"),
        "memory",
        MN_FAKE_STEP_MS="20",
        MN_API_CORS_ALLOW_ORIGINS=PAGE_ORIGIN,
    )
    yield process.start()
    process.stop()


@pytest.fixture
def page_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "follow.html").write_text(FOLLOWER)
    handler = functools.partial(_QuietHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", PAGE_ORIGIN_PORT), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield PAGE_ORIGIN
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def test_docs_render_offline_listing_every_operation(
    browser: str, gateway: GatewayProcess, tmp_path: Path
) -> None:
    dom, requests = render(f"{gateway.base}/docs", tmp_path)
    paths = set(re.findall(r'class="opblock-summary-path[^"]*" data-path="([^"]+)"', dom))
    spec = httpx.get(f"{gateway.base}/openapi.json").json()
    assert paths == set(spec["paths"])
    assert "/api/v1/jobs/{job_id}/events/stream" in paths
    assert requests, "the page made no request at all"
    assert {urlsplit(url).hostname for url in requests} == {"127.0.0.1"}


def test_redoc_renders_offline(browser: str, gateway: GatewayProcess, tmp_path: Path) -> None:
    dom, requests = render(f"{gateway.base}/redoc", tmp_path)
    for summary in ("Submit a job", "Follow a job's events live", "Upload a bundle zip"):
        assert summary in dom.replace("&#39;", "'")
    assert {urlsplit(url).hostname for url in requests} == {"127.0.0.1"}


def test_an_eventsource_follows_a_job_live_and_resumes(
    browser: str, gateway: GatewayProcess, page_server: str, tmp_path: Path
) -> None:
    manifest = pipeline_manifest(worker={"simulate": {"delay_ms": 60}})
    manifest["initial_inputs"] = {"router": [{"n": i} for i in range(8)]}
    job_id = httpx.post(f"{gateway.base}/api/v1/jobs", json={"manifest": manifest}).json()["id"]
    dom, _ = render(f"{page_server}/follow.html?api={gateway.base}&job={job_id}", tmp_path)
    result = orjson.loads(re.search(r'<pre id="out">([^<]*)</pre>', dom).group(1))
    history = httpx.get(f"{gateway.base}/api/v1/jobs/{job_id}/events").json()["data"]
    assert result["end"] == "completed"
    assert result["ids"] == list(range(len(history)))
