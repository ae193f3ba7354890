"""Headless Chromium for the browser tests."""

from __future__ import annotations

import shutil
import subprocess

# The benchmark's process helpers serve the tests as they are.

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
    "--disable-features=AutofillServerCommunication,OptimizationHints,Translate",
    # Nothing but loopback resolves, so the browser cannot reach any other host at all.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
)


def chromium() -> str | None:

    return shutil.which("chromium") or shutil.which("chromium-browser")


def render(url: str, workdir, *, budget_ms: int = 15000) -> tuple[str, list[str]]:
    """The page's DOM after its scripts ran, and every URL the page itself requested."""
    import json

    netlog = workdir / "netlog.json"
    result = subprocess.run(
        [
            chromium(),
            *CHROMIUM_FLAGS,
            f"--user-data-dir={workdir / 'profile'}",
            f"--virtual-time-budget={budget_ms}",
            f"--log-net-log={netlog}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    log = json.loads(netlog.read_text())
    names = {v: k for k, v in log["constants"]["logEventTypes"].items()}
    page_requests = [
        event["params"]["url"]
        for event in log["events"]
        if names.get(event["type"]) == "URL_REQUEST_START_JOB"
        and event.get("params", {}).get("network_isolation_key", "").startswith("http://127.0.0.1")
    ]
    return result.stdout, page_requests
