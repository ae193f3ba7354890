"""The real Web UI (built, in ../shared/webui) served for browser tests: its files from one
origin, and its `/api` requests passed on to a gateway, as the UI's own dev server does.

`WebUi` runs in a thread of the test process on a free loopback port; responses (event
streams included) are passed on as they come.
"""

from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.support import free_port, wait_http

REPOSITORY = Path(__file__).resolve().parents[2]
WEBUI_DIR = Path(os.environ.get("MN_WEBUI_DIR", REPOSITORY.parent / "shared" / "webui")).resolve()
# Hop-by-hop headers, and those the proxy sets itself.
_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def webui_folder(release: str) -> Path | None:
    folder = WEBUI_DIR / f"mn-web-ui-{release}"
    return folder if (folder / "index.html").is_file() else None


class WebUi:
    """One release of the UI in front of the gateway at `api` (http://host:port)."""

    def __init__(self, folder: Path, api: str) -> None:
        self.folder = folder
        self.api = api
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> WebUi:
        app = Starlette(
            routes=[
                Route("/api/{rest:path}", self._proxy, methods=["GET", "POST", "DELETE", "PUT"]),
                Route("/{rest:path}", self._file),
            ]
        )
        config = uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=asyncio.run, args=(self._server.serve(),))
        self._thread.start()
        wait_http(f"{self.base}/index.html")
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=15)

    async def _file(self, request: Request) -> Response:
        """A file of the build, else index.html (the UI's own routes: /jobs/<id>, ...)."""
        rest = request.path_params["rest"]
        path = (self.folder / rest).resolve()
        if rest and path.is_file() and path.is_relative_to(self.folder):
            return FileResponse(path)
        return FileResponse(self.folder / "index.html")

    async def _proxy(self, request: Request) -> Response:
        client = httpx.AsyncClient(base_url=self.api, timeout=httpx.Timeout(60, read=None))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _DROPPED}
        upstream = client.build_request(
            request.method,
            request.url.path,
            params=request.url.query,
            headers=headers,
            content=await request.body(),
        )
        answer = await client.send(upstream, stream=True)

        async def close() -> None:
            await answer.aclose()
            await client.aclose()

        return StreamingResponse(
            answer.aiter_raw(),
            status_code=answer.status_code,
            headers={k: v for k, v in answer.headers.items() if k.lower() not in _DROPPED},
            background=BackgroundTask(close),
        )
