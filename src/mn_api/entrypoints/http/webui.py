"""A built Web UI served by the gateway itself, same origin as the API: its files at `/`,
and its `index.html` for any other path outside `/api/` (the UI's own client-side routes,
such as `/jobs/<id>`). The UI's files are public; its API calls are the API's, checked
like any other."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from starlette.responses import FileResponse, Response
from starlette.types import Receive, Scope, Send

from mn_api.entrypoints.http.routers import API_PREFIX

log = logging.getLogger("mn_api")
# What the UI's pages are told: no caching of the page itself (a new build is picked up
# at once), long caching of its fingerprinted assets.
_PAGE_HEADERS = {"Cache-Control": "no-cache"}
_ASSET_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable"}
# Paths the UI never owns: the API and the gateway's documents.
RESERVED = (f"{API_PREFIX}/", "/api/", "/docs", "/redoc", "/openapi.json", "/docs-assets/")


def is_ui_path(method: str, path: str) -> bool:
    """Whether a request is the UI's (public): a read outside the API and the docs."""
    return method in ("GET", "HEAD") and not path.startswith(RESERVED)


def install_webui(app: FastAPI, folder: Path, *, auth_enabled: bool) -> None:
    """Serve the built UI in `folder` for every GET the API's routes leave."""
    root = folder.resolve()
    index = root / "index.html"
    if auth_enabled:
        log.warning(
            "the Web UI served at / calls the API with the token it was built with "
            "(MN_WEB_API_TOKEN at its build); built without one, its pages show nothing "
            "while auth is on"
        )

    def answer(path: str) -> Response:
        wanted = (root / path.lstrip("/")).resolve()
        if wanted != root and wanted.is_relative_to(root) and wanted.is_file():
            headers = _ASSET_HEADERS if wanted.parent.name == "assets" else _PAGE_HEADERS
            return FileResponse(wanted, headers=headers)
        return FileResponse(index, headers=_PAGE_HEADERS)

    # What no route of the API takes falls to the UI when it is the UI's, else to the
    # router's own not-found answer (a 404 problem; a known path's other methods stay 405).
    not_found = app.router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_ui_path(scope["method"], scope["path"]):
            await answer(scope["path"])(scope, receive, send)
            return
        await not_found(scope, receive, send)

    app.router.default = default
