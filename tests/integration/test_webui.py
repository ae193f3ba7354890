"""The real Web UI, built (../shared/webui), driven in headless Chromium against the
gateway: on the in-memory runtime, and on the gRPC runtime in front of mn-fake-core.

Web UI 1.2.5 (the newest): every page renders without a failed API call or a client
error; a job is launched from the catalogue, from a path and from a ZIP; its page goes
live and follows pause, resume, cancel and completion; cancel-all works; errors read as
sentences. Web UI 1.1.1 (the seed's): its pages render and follow a job the same way.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support import GatewayProcess, chromium, make_zip, pipeline_manifest
from tests.support.webui import WebUi, webui_folder

pytestmark = pytest.mark.slow
playwright_api = pytest.importorskip("playwright.sync_api")

# A worker that takes ten minutes: the job stays running until the test ends it.
SLOW = {"simulate": {"delay_ms": 600_000}}


def _manifest(graph_id: str, worker: dict[str, Any] | None = None) -> bytes:
    manifest = pipeline_manifest(worker=worker or {})
    manifest["graph_id"] = graph_id
    manifest["job_name"] = graph_id
    return orjson.dumps(manifest)


def _blueprint(folder: Path, graph_id: str, worker: dict[str, Any] | None = None) -> Path:
    (folder / "payloads").mkdir(parents=True, exist_ok=True)
    (folder / "manifest.json").write_bytes(_manifest(graph_id, worker))
    (folder / "payloads" / "note.txt").write_text("hello")
    return folder


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = chromium()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; `make test` installs it")
        pytest.skip("chromium is not installed (make test installs it)")
    with playwright_api.sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=path, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("blueprints")
    catalog = root / "catalog"
    _blueprint(catalog / "slow-pipeline", "slow-pipeline", SLOW)
    _blueprint(catalog / "quick-pipeline", "quick-pipeline")
    launch_root = root / "launch-root"
    _blueprint(launch_root / "from-path", "from-path", SLOW)
    zipped = root / "zipped.zip"
    zipped.write_bytes(
        make_zip({"manifest.json": _manifest("from-zip", SLOW), "payloads/a.txt": "a"})
    )
    return {"catalog": catalog, "launch_root": launch_root, "zip": zipped, "root": root}


@pytest.fixture(scope="module", params=["memory", "grpc"])
def gateway(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    folders: dict[str, Path],
) -> Iterator[GatewayProcess]:
    newest = webui_folder("1.2.5")
    # The newest UI is served by the gateway itself (MN_API_WEBUI_DIR), the seed's through
    # a proxy of its own.
    served = {"MN_API_WEBUI_DIR": str(newest)} if newest is not None else {}
    process = GatewayProcess(
        tmp_path_factory.mktemp(f"webui-{request.param}"),
        request.param,
        MN_FAKE_STEP_MS="20",
        MN_API_BLUEPRINT_DIR=str(folders["catalog"]),
        MN_API_LAUNCH_ROOTS=str(folders["launch_root"]),
        **served,
    )
    yield process.start()
    process.stop()


def _ui(release: str, gateway: GatewayProcess) -> Iterator[WebUi]:
    folder = webui_folder(release)
    if folder is None:
        if os.environ.get("CI"):
            pytest.fail(f"Web UI {release} is not in ../shared/webui")
        pytest.skip(f"Web UI {release} is not in ../shared/webui")
    ui = WebUi(folder, gateway.base).start()
    yield ui
    ui.stop()


@dataclass
class ServedUi:
    """The UI the gateway serves itself, at its own origin."""

    base: str


@pytest.fixture(scope="module")
def ui(gateway: GatewayProcess) -> ServedUi:
    if webui_folder("1.2.5") is None:
        if os.environ.get("CI"):
            pytest.fail("Web UI 1.2.5 is not in ../shared/webui")
        pytest.skip("Web UI 1.2.5 is not in ../shared/webui")
    return ServedUi(gateway.base)


@pytest.fixture(scope="module")
def old_ui(gateway: GatewayProcess) -> Iterator[WebUi]:
    yield from _ui("1.1.1", gateway)


class Session:
    """One browser page, with what the UI asked the API and what it logged."""

    def __init__(self, browser: Any, base: str) -> None:
        self.base = base
        self.context = browser.new_context()
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.api: list[tuple[int, str, str]] = []
        self.requested: list[tuple[str, str]] = []
        self.launches_answered: set[str] = set()
        # Progress polls answered 404 while their launch had not been answered yet.
        self.early_polls: set[str] = set()
        self.errors: list[str] = []
        self.page.on("request", self._asked)
        self.page.on("response", self._answered)
        self.page.on("console", self._logged)
        self.page.on("pageerror", lambda error: self.errors.append(f"page error: {error}"))

    def _asked(self, request: Any) -> None:
        if "/api/" in request.url:
            self.requested.append((request.method, request.url.split("/api/v1", 1)[-1]))

    def _answered(self, response: Any) -> None:
        if "/api/" in response.url:
            path = response.url.split("/api/v1", 1)[-1]
            self.api.append((response.status, response.request.method, path))
            progress = path.removeprefix("/blueprints/launch/progress/")
            early = progress != path and progress not in self.launches_answered
            if response.status == 404 and early:
                self.early_polls.add(path)
            if path == "/blueprints/launch/runs":
                body = response.request.post_data_json or {}
                self.launches_answered.add(str(body.get("progress_id")))

    def _logged(self, message: Any) -> None:
        # The browser logs each failed request too: those are judged by failed_calls().
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text[:500])

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_load_state("networkidle")

    def failed_calls(self) -> list[Any]:
        """API calls answered with an error, but for the UI's polls of a launch's progress
        answered before the launch itself (the UI starts polling as it sends the launch):
        such a launch is not known yet."""
        return [
            (status, method, path)
            for status, method, path in self.api
            if status >= 400 and not (status == 404 and path in self.early_polls)
        ]

    def text(self) -> str:
        return self.page.inner_text("body")

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def session(browser: Any, ui: ServedUi) -> Iterator[Session]:
    opened = Session(browser, ui.base)
    yield opened
    opened.close()


def _job_id(session: Session) -> str:
    session.page.wait_for_url(re.compile(r".*/jobs/[^/]+$"))
    return session.page.url.rsplit("/", 1)[-1]


def _confirm(session: Session, button: str, *, closes: bool = True) -> None:
    """Click `button`, then the button of the confirmation dialog that does it (`Launch`,
    `Pause job`, ...)."""
    session.page.get_by_role("button", name=button, exact=True).first.click()
    dialog = session.page.get_by_role("dialog")
    dialog.get_by_role("button", name=re.compile(f"^{button}( |$)")).last.click()
    if closes:
        dialog.wait_for(state="detached")


def _launch(session: Session, tab: str, fill: Any = None) -> str:
    session.open("/run")
    session.page.get_by_role("tab", name=tab).click()
    if fill is not None:
        fill(session.page)
    _confirm(session, "Launch")
    return _job_id(session)


def _heading(session: Session) -> list[str]:
    """The first lines of the page's main part: a job page's id, status and live badge."""
    return [line.strip() for line in session.page.inner_text("main").split("\n")[:8]]


def _status_shown(session: Session, status: str, *, live: bool | None = None) -> None:
    """Wait until the job page's heading shows `status` (and the live badge, or not)."""
    for _ in range(200):
        heading = _heading(session)
        if status in heading and (live is None or ("Live" in heading) == live):
            return
        session.page.wait_for_timeout(100)
    raise AssertionError(f"the page shows {_heading(session)}, not {status}")


def test_every_page_renders_without_a_failed_call(session: Session) -> None:
    for path in ("/", "/jobs", "/models", "/run"):
        session.open(path)
        assert "MirrorNeuron" in session.text()
    assert session.failed_calls() == []
    assert session.errors == []
    paths = {path.split("?")[0] for _, _, path in session.api}
    assert {"/system/summary", "/jobs", "/models", "/blueprints"} <= paths
    session.open("/run")
    assert "slow-pipeline" in session.text() and "quick-pipeline" in session.text()


def test_a_job_launched_from_the_catalogue_follows_pause_resume_and_cancel(
    session: Session,
) -> None:
    def pick(page: Any) -> None:
        page.locator("#blueprint-select").select_option("slow-pipeline")

    job_id = _launch(session, "Blueprint", pick)
    _status_shown(session, "Running", live=True)
    _confirm(session, "Pause")
    _status_shown(session, "Paused")
    _confirm(session, "Resume")
    _status_shown(session, "Running")
    # Cancelled by another client: the open page follows without a reload.
    answer = httpx.post(f"{session.base}/api/v1/jobs/{job_id}/cancel", timeout=30)
    assert answer.status_code == 200, answer.text
    _status_shown(session, "Cancelled", live=False)
    assert session.page.get_by_role("button", name="Pause", exact=True).count() == 0
    calls = {(method, path.split("?")[0]) for _, method, path in session.api}
    assert ("GET", f"/jobs/{job_id}/workflow-progress/stream") in calls
    assert {("POST", f"/jobs/{job_id}/{action}") for action in ("pause", "resume")} <= calls
    assert session.failed_calls() == [] and session.errors == []


def test_the_cancel_button_cancels(session: Session) -> None:
    def pick(page: Any) -> None:
        page.locator("#blueprint-select").select_option("slow-pipeline")

    job_id = _launch(session, "Blueprint", pick)
    _status_shown(session, "Running", live=True)
    _confirm(session, "Cancel")
    session.open(f"/jobs/{job_id}")
    _status_shown(session, "Cancelled", live=False)
    # The page moves on to the job list as the cancel is sent: its answer is not awaited.
    assert ("POST", f"/jobs/{job_id}/cancel") in session.requested
    assert session.failed_calls() == [] and session.errors == []


def test_a_quick_job_is_shown_completed(session: Session) -> None:
    def pick(page: Any) -> None:
        page.locator("#blueprint-select").select_option("quick-pipeline")

    _launch(session, "Blueprint", pick)
    _status_shown(session, "Completed")
    assert session.failed_calls() == [] and session.errors == []


def test_a_job_is_launched_from_a_path_and_from_a_zip(
    session: Session, folders: dict[str, Path]
) -> None:
    def path(page: Any) -> None:
        page.locator("main input:not([type=file])").first.fill(
            str(folders["launch_root"] / "from-path")
        )

    _launch(session, "File system path", path)
    _status_shown(session, "Running")
    assert "from-path" in session.text()

    def zipped(page: Any) -> None:
        page.locator("main input[type=file]").set_input_files(str(folders["zip"]))
        dialog = page.get_by_role("dialog")
        with page.expect_response(lambda r: "/bundles/upload" in r.url) as uploaded:
            dialog.get_by_role("button", name="Upload ZIP").click()
        assert uploaded.value.status in (200, 201)
        dialog.wait_for(state="detached")

    _launch(session, "ZIP bundle", zipped)
    _status_shown(session, "Running")
    assert "from-zip" in session.text()
    assert session.failed_calls() == [] and session.errors == []


def test_a_refused_launch_reads_as_a_sentence(session: Session, folders: dict[str, Path]) -> None:
    def outside(page: Any) -> None:
        page.locator("main input:not([type=file])").first.fill(str(folders["root"]))

    session.open("/run")
    session.page.get_by_role("tab", name="File system path").click()
    outside(session.page)
    _confirm(session, "Launch", closes=False)
    session.page.get_by_text("outside the folders this gateway launches from").first.wait_for()
    assert "path_not_allowed" not in session.text()
    assert (403, "POST", "/blueprints/launch/runs") in session.api


def test_cancel_all_cancels_every_live_job(session: Session) -> None:
    def pick(page: Any) -> None:
        page.locator("#blueprint-select").select_option("slow-pipeline")

    launched = [_launch(session, "Blueprint", pick) for _ in range(2)]
    session.open("/jobs")
    _confirm(session, "Cancel all")
    session.page.wait_for_timeout(500)
    for job_id in launched:
        session.open(f"/jobs/{job_id}")
        _status_shown(session, "Cancelled")
    assert any(path == "/jobs:cancel-all" and status == 200 for status, _, path in session.api)
    assert session.failed_calls() == [] and session.errors == []


def test_the_seed_ui_renders_and_follows_a_job(browser: Any, old_ui: WebUi) -> None:
    session = Session(browser, old_ui.base)
    try:
        for path in ("/", "/jobs"):
            session.open(path)
        manifest = orjson.loads(_manifest("seed-ui", SLOW))
        answer = httpx.post(f"{old_ui.base}/api/v1/jobs", json={"manifest": manifest}, timeout=30)
        job_id = answer.json()["job_id"]
        session.open(f"/jobs/{job_id}")
        assert job_id in session.text()
        httpx.post(f"{old_ui.base}/api/v1/jobs/{job_id}/cancel", timeout=30)
        session.open(f"/jobs/{job_id}")
        assert re.search("cancelled", session.text(), re.IGNORECASE)
        assert session.failed_calls() == [] and session.errors == []
    finally:
        session.close()


def test_the_gateway_serves_the_ui_beside_the_api_and_keeps_the_api_its_own(
    gateway: GatewayProcess, ui: ServedUi
) -> None:
    page = httpx.get(f"{ui.base}/")
    assert page.status_code == 200 and '<div id="root">' in page.text
    assert page.headers["cache-control"] == "no-cache"
    script = re.search(r'src="(/assets/[^"]+\.js)"', page.text).group(1)
    asset = httpx.get(f"{ui.base}{script}")
    assert asset.status_code == 200 and "immutable" in asset.headers["cache-control"]
    # The UI's own routes and anything unknown outside the API get its page.
    for path in ("/jobs/some-job", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/hostname"):
        answer = httpx.get(f"{ui.base}{path}")
        assert answer.status_code == 200 and answer.text == page.text, path
    unknown = httpx.get(f"{ui.base}/api/v1/no-such-route")
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"
    assert httpx.post(f"{ui.base}/jobs/x").status_code == 404
    assert httpx.get(f"{ui.base}/openapi.json").json()["info"]["title"] == "MirrorNeuron API"
