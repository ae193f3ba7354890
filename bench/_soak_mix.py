"""The soak's request mix: every route, good and bad, with the spellings a hostile client uses.

Each request is chosen at random with a weight; what it sends comes from the answers so far
(the jobs it submitted, the idempotency keys it used), so most reads reach a real job.
"""

from __future__ import annotations

import asyncio
import io
import json
import random
import secrets
import zipfile
from collections import Counter, deque
from collections.abc import Awaitable, Callable

import httpx

API = "/api/v1"
TOKEN = "soak-admin-token"
READ_TOKEN = "soak-read-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}
READER = {"Authorization": f"Bearer {READ_TOKEN}"}
MANIFEST = {
    "manifest_version": "1",
    "graph_id": "soak",
    "job_name": "three steps",
    "nodes": [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor", "type": "map"},
        {"node_id": "collect", "agent_type": "aggregator"},
    ],
    "edges": [
        {"from_node": "router", "to_node": "worker", "message_type": "task"},
        {"from_node": "worker", "to_node": "collect", "message_type": "result"},
    ],
    "entrypoints": ["router"],
}
# A streamed answer is read this long at most before the client goes away.
STREAM_READ_SECONDS = 0.3
ODD_METHODS = ("PUT", "PATCH", "PROPFIND", "MKCOL", "PURGE", "LOCK", "REPORT")


def bundle_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps(MANIFEST))
        archive.writestr("payloads/input.txt", secrets.token_hex(64))
    return buffer.getvalue()


def junk() -> str:
    return secrets.token_urlsafe(random.randint(4, 24))


class Mix:
    """Sends one request of the mix at a time; counts answers by status."""

    def __init__(self, client: httpx.AsyncClient, seed: int = 7) -> None:
        self.client = client
        self.random = random.Random(seed)
        self.jobs: deque[str] = deque(maxlen=256)
        self.keys: deque[str] = deque(maxlen=64)
        self.statuses: Counter[int] = Counter()
        self.failures = 0
        self.bundle = bundle_zip()
        choices: list[tuple[int, Callable[[], Awaitable[httpx.Response | None]]]] = [
            (8, self.submit),
            (3, self.submit_idempotent),
            (2, self.replay_idempotent),
            (2, self.submit_bad_json),
            (3, self.submit_bad_manifest),
            (1, self.submit_wrong_type),
            (7, self.list_jobs),
            (10, self.get_job),
            (4, self.get_missing_job),
            (7, self.events_page),
            (2, self.events_tail),
            (2, self.events_sse),
            (1, self.events_ndjson),
            (4, self.progress),
            (1, self.progress_stream),
            (5, self.control),
            (3, self.bad_query),
            (2, self.no_token),
            (2, self.bad_token),
            (1, self.read_token_write),
            (2, self.prometheus),
            (1, self.runtime_metrics),
            (3, self.health),
            (2, self.bundle_upload),
            (2, self.summary),
            (2, self.runtime_status),
            (2, self.graph),
            (1, self.dead_letters),
            (1, self.unfinished),
            (4, self.unknown_route),
            (1, self.odd_method),
            (1, self.job_subroute_junk),
            (1, self.webhooks),
        ]
        self._calls = [call for _, call in choices]
        self._weights = [weight for weight, _ in choices]

    async def one(self) -> None:
        call = self.random.choices(self._calls, self._weights)[0]
        try:
            response = await call()
        except httpx.HTTPError:
            self.failures += 1
            return
        if response is not None:
            self.statuses[response.status_code] += 1

    # -- helpers -------------------------------------------------------------------------

    def _job(self) -> str:
        return self.random.choice(self.jobs) if self.jobs else "soak-missing-job"

    def _query(self, **known: object) -> dict[str, object]:
        """Known parameters, and now and then one nobody asked for."""
        if self.random.random() < 0.3:
            known[junk()] = junk()
        return known

    def _headers(self, base: dict[str, str]) -> dict[str, str]:
        headers = dict(base)
        roll = self.random.random()
        if roll < 0.2:
            headers["X-Request-ID"] = secrets.token_hex(8)
        elif roll < 0.3:
            # Claims of a client address (believed from the trusted loopback proxy).
            headers["X-Forwarded-For"] = f"10.{self.random.randint(0, 255)}.0.{roll * 1000:.0f}"
        return headers

    async def _get(self, path: str, **params: object) -> httpx.Response:
        return await self.client.get(
            f"{API}{path}", params=self._query(**params), headers=self._headers(ADMIN)
        )

    def _remember(self, response: httpx.Response) -> httpx.Response:
        if response.status_code in (200, 201):
            job_id = response.json().get("job_id")
            if isinstance(job_id, str):
                self.jobs.append(job_id)
        return response

    async def _short_read(self, path: str, accept: str) -> httpx.Response:
        headers = {**self._headers(ADMIN), "Accept": accept}
        async with self.client.stream("GET", f"{API}{path}", headers=headers) as response:
            try:
                async with asyncio.timeout(STREAM_READ_SECONDS):
                    async for _ in response.aiter_raw():
                        pass
            except TimeoutError:
                pass
        return response

    # -- the mix -------------------------------------------------------------------------

    async def submit(self) -> httpx.Response:
        body = {"manifest": MANIFEST, "payloads": {"input.txt": junk()}}
        return self._remember(
            await self.client.post(f"{API}/jobs", json=body, headers=self._headers(ADMIN))
        )

    async def submit_idempotent(self) -> httpx.Response:
        key = secrets.token_hex(12)
        self.keys.append(key)
        headers = {**self._headers(ADMIN), "Idempotency-Key": key}
        return self._remember(
            await self.client.post(f"{API}/jobs", json={"manifest": MANIFEST}, headers=headers)
        )

    async def replay_idempotent(self) -> httpx.Response:
        key = self.random.choice(self.keys) if self.keys else secrets.token_hex(12)
        headers = {**self._headers(ADMIN), "Idempotency-Key": key}
        return await self.client.post(f"{API}/jobs", json={"manifest": MANIFEST}, headers=headers)

    async def submit_bad_json(self) -> httpx.Response:
        headers = {**self._headers(ADMIN), "Content-Type": "application/json"}
        body = b'{"manifest": {"graph_id": ' + secrets.token_hex(4).encode()
        return await self.client.post(f"{API}/jobs", content=body, headers=headers)

    async def submit_bad_manifest(self) -> httpx.Response:
        manifests = (
            {**MANIFEST, "nodes": []},
            {**MANIFEST, "entrypoints": [junk()]},
            {**MANIFEST, "graph_id": 7},
            {"manifest_version": junk()},
        )
        body = {"manifest": self.random.choice(manifests)}
        return await self.client.post(f"{API}/jobs", json=body, headers=self._headers(ADMIN))

    async def submit_wrong_type(self) -> httpx.Response:
        headers = {**self._headers(ADMIN), "Content-Type": "text/plain"}
        return await self.client.post(f"{API}/jobs", content=json.dumps(MANIFEST), headers=headers)

    async def list_jobs(self) -> httpx.Response:
        params: dict[str, object] = {"limit": self.random.choice((1, 5, 20, 100))}
        if self.random.random() < 0.3:
            params["status"] = self.random.choice(("running", "completed", junk()))
        if self.random.random() < 0.2:
            params["graph_id"] = self.random.choice(("soak", junk()))
        return await self._get("/jobs", **params)

    async def get_job(self) -> httpx.Response:
        include = self.random.choice(("full", "summary", "compact", None))
        params = {"include": include} if include else {}
        return await self._get(f"/jobs/{self._job()}", **params)

    async def get_missing_job(self) -> httpx.Response:
        return await self._get(f"/jobs/{junk()}")

    async def events_page(self) -> httpx.Response:
        offset, limit = self.random.randint(0, 20), self.random.choice((1, 10, 100))
        return await self._get(f"/jobs/{self._job()}/events", offset=offset, limit=limit)

    async def events_tail(self) -> httpx.Response:
        return await self._get(f"/jobs/{self._job()}/events", tail=self.random.randint(1, 50))

    async def events_sse(self) -> httpx.Response:
        return await self._short_read(f"/jobs/{self._job()}/events/stream", "text/event-stream")

    async def events_ndjson(self) -> httpx.Response:
        return await self._short_read(f"/jobs/{self._job()}/events/stream", "application/x-ndjson")

    async def progress(self) -> httpx.Response:
        return await self._get(f"/jobs/{self._job()}/workflow-progress")

    async def progress_stream(self) -> httpx.Response:
        return await self._short_read(
            f"/jobs/{self._job()}/workflow-progress/stream", "text/event-stream"
        )

    async def control(self) -> httpx.Response:
        action = self.random.choice(("cancel", "pause", "resume"))
        job_id = self._job() if self.random.random() < 0.8 else junk()
        return await self.client.post(f"{API}/jobs/{job_id}/{action}", headers=self._headers(ADMIN))

    async def bad_query(self) -> httpx.Response:
        spoilt = self.random.choice(
            (
                ("/jobs", {"limit": junk()}),
                ("/jobs", {"limit": 100_000}),
                ("/jobs", {"include_terminal": junk()}),
                (f"/jobs/{self._job()}/events", {"offset": -1}),
                (f"/jobs/{self._job()}/events", {"tail": 5, "offset": 1}),
                (f"/jobs/{self._job()}", {"include": junk()}),
            )
        )
        return await self._get(spoilt[0], **spoilt[1])

    async def no_token(self) -> httpx.Response:
        return await self.client.get(f"{API}/jobs/{self._job()}")

    async def bad_token(self) -> httpx.Response:
        headers = self._headers({"Authorization": f"Bearer {junk()}"})
        return await self.client.get(f"{API}/jobs", headers=headers)

    async def read_token_write(self) -> httpx.Response:
        return await self.client.post(
            f"{API}/jobs/{self._job()}/cancel", headers=self._headers(READER)
        )

    async def prometheus(self) -> httpx.Response:
        return await self.client.get("/metrics", headers=self._headers(ADMIN))

    async def runtime_metrics(self) -> httpx.Response:
        return await self._get("/metrics")

    async def health(self) -> httpx.Response:
        path = self.random.choice(("/health", "/ready"))
        return await self.client.get(f"{API}{path}", params=self._query())

    async def bundle_upload(self) -> httpx.Response:
        params = {"submit": "true"} if self.random.random() < 0.5 else {}
        files = {"bundle": ("bundle.zip", self.bundle, "application/zip")}
        response = await self.client.post(
            f"{API}/bundles/upload", params=params, files=files, headers=self._headers(ADMIN)
        )
        return self._remember(response)

    async def summary(self) -> httpx.Response:
        return await self._get("/system/summary")

    async def runtime_status(self) -> httpx.Response:
        return await self._get("/runtime/status")

    async def graph(self) -> httpx.Response:
        return await self._get(f"/jobs/{self._job()}/graph")

    async def dead_letters(self) -> httpx.Response:
        return await self._get(f"/jobs/{self._job()}/dead-letters")

    async def unfinished(self) -> httpx.Response:
        return await self._get("/jobs/unfinished", limit=self.random.randint(1, 100))

    async def unknown_route(self) -> httpx.Response:
        path = self.random.choice(
            (f"/{junk()}", f"{API}/{junk()}", f"{API}/{junk()}/{junk()}", f"/{junk()}.php")
        )
        return await self.client.get(path, params=self._query(), headers=self._headers(ADMIN))

    async def odd_method(self) -> httpx.Response:
        method = self.random.choice(ODD_METHODS)
        path = self.random.choice((f"{API}/jobs", f"{API}/jobs/{self._job()}", f"/{junk()}"))
        return await self.client.request(method, path, headers=self._headers(ADMIN))

    async def job_subroute_junk(self) -> httpx.Response:
        return await self._get(f"/jobs/{self._job()}/{junk()}")

    async def webhooks(self) -> httpx.Response:
        return await self._get(f"/jobs/{self._job()}/webhooks")
