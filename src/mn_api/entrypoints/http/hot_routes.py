"""The routes most requests take, answered without the framework's per-request machinery.

GET /jobs/{id}, GET /jobs/{id}/events, GET /jobs and POST /jobs are served here when the
request is plain: a job
id the route's pattern accepts, query values in their simple spelling, a JSON body that
validates. Each calls the same use case and builds the same answer as its FastAPI route;
the FastAPI route stays in the route table and the OpenAPI document, and every request
that is not plain (a value to refuse, an unusual spelling, a repeated parameter) goes on to
it, so validation errors are the framework's own. What the gateway does around every
request (request ids, admission, limits, metrics, logs) happens before this, in
GatewayMiddleware.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from pydantic import ValidationError
from starlette.responses import Response

from mn_api.application.journal import JournalPage
from mn_api.domain.errors import DomainError
from mn_api.domain.views import INCLUDES
from mn_api.embedded import Services
from mn_api.entrypoints.http import models as m
from mn_api.entrypoints.http.auth import CALLER_KEY, Caller
from mn_api.entrypoints.http.json_body import LARGE_BODY_BYTES, strict_loads
from mn_api.entrypoints.http.problems import HttpProblem, domain_problem, http_problem
from mn_api.entrypoints.http.responses import dumps
from mn_api.entrypoints.http.routers import API_PREFIX, JOB_ID_PATTERN
from mn_api.entrypoints.http.routers.events import (
    EVENT_NUMBERS as _EVENT_NUMBERS,
)
from mn_api.entrypoints.http.routers.events import (
    MAX_TYPE_CHARS,
    event_page_stream,
)
from mn_api.entrypoints.http.routers.jobs import (
    LIST_LIMIT,
    MAX_GRAPH_ID_CHARS,
    MAX_STATUS_CHARS,
    submit,
)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("mn_api.http")
JOBS = f"{API_PREFIX}/jobs"
_JOB_ID = re.compile(JOB_ID_PATTERN.removeprefix("^").removesuffix("$"))
_JSON_TYPE = re.compile(r"^application/json\s*(;\s*charset=\"?utf-8\"?\s*)?$", re.IGNORECASE)
_BOOLS = {"true": True, "false": False}
EVENTS = "/events"
# A route of its own, though the job id pattern would take it.
UNFINISHED = "/unfinished"
# Longer numbers go to the framework's route, which refuses them in its words.
MAX_DIGITS = 18


async def send_chunks(send: Send, chunks: AsyncIterator[bytes]) -> None:
    """A JSON answer written as it is made (its length unknown until the end)."""
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    async for chunk in chunks:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
    await send({"type": "http.response.body", "body": b"", "more_body": False})


async def send_json(send: Send, status: int, body: bytes, extra: list[Any] | None = None) -> None:
    headers = [(b"content-length", b"%d" % len(body)), (b"content-type", b"application/json")]
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class HotRoutes:
    def __init__(self, app: ASGIApp, services: Services, routes: dict[str, Any]) -> None:
        self.app = app
        self._get_job = services.get_job
        self._list_jobs = services.list_jobs
        self._submit_job = services.submit_job
        self._list_events = services.list_events
        self._idempotency = services.idempotency
        # The framework's route objects, so that metrics and logs name the same template.
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if scope["type"] == "http" and path.startswith(JOBS):
            method = scope["method"]
            rest = path[len(JOBS) :]
            if rest == "":
                if method == "GET" and await self._list(scope, receive, send):
                    return
                if method == "POST":
                    await self._submit(scope, receive, send)
                    return
            elif (
                method == "GET"
                and rest[0] == "/"
                and rest != UNFINISHED
                and _JOB_ID.fullmatch(rest, 1)
                and await self._job(scope, receive, send, rest[1:])
            ) or (
                method == "GET"
                and rest.endswith(EVENTS)
                and _JOB_ID.fullmatch(rest, 1, len(rest) - len(EVENTS))
                and await self._events(scope, receive, send, rest[1 : -len(EVENTS)])
            ):
                return
        await self.app(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send, work: Any) -> None:
        try:
            await work
        except DomainError as error:
            await domain_problem(error)(scope, receive, send)
        except HttpProblem as problem:
            await http_problem(problem)(scope, receive, send)

    async def _job(self, scope: Scope, receive: Receive, send: Send, job_id: str) -> bool:
        query = _plain_query(scope["query_string"])
        if query is None or set(query) - {"include"}:
            return False
        include = query.get("include", "full")
        if include not in INCLUDES:
            return False  # refused by the framework's route, in its words
        scope["route"] = self._routes["get_job"]

        async def work() -> None:
            await send_json(send, 200, dumps(await self._get_job(job_id, include)))

        await self._answer(scope, receive, send, work())
        return True

    async def _events(self, scope: Scope, receive: Receive, send: Send, job_id: str) -> bool:
        query = _plain_query(scope["query_string"])
        if query is None:
            return False
        asked: dict[str, Any] = {}
        for name, value in query.items():
            if name in _EVENT_NUMBERS:
                low, high = _EVENT_NUMBERS[name]
                plain = value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS
                if not (plain and low <= int(value) <= high):
                    return False
                asked[name] = int(value)
            elif name == "type":
                if len(value) > MAX_TYPE_CHARS:
                    return False
                asked["type"] = value
        if "tail" in asked and ("offset" in asked or "limit" in asked):
            return False  # refused by the framework's route, in its words
        scope["route"] = self._routes["list_events"]

        async def work() -> None:
            page = await self._list_events(job_id, **asked)
            if isinstance(page, JournalPage):
                # Held in memory already: one answer, its length known.
                body = b'{"data":[%s],"offset":%d,"next_offset":%s}' % (
                    b",".join(page.raws),
                    page.offset,
                    dumps(page.next_offset),
                )
                await send_json(send, 200, body)
                return
            await send_chunks(send, event_page_stream(page))

        await self._answer(scope, receive, send, work())
        return True

    async def _list(self, scope: Scope, receive: Receive, send: Send) -> bool:
        query = _plain_query(scope["query_string"])
        if query is None:
            return False
        limit, include_terminal = LIST_LIMIT["default"], True
        status = graph_id = None
        for name, value in query.items():
            if name == "limit":
                plain = value.isascii() and value.isdigit() and len(value) <= MAX_DIGITS
                if not (plain and LIST_LIMIT["low"] <= int(value) <= LIST_LIMIT["high"]):
                    return False
                limit = int(value)
            elif name == "include_terminal":
                if value not in _BOOLS:
                    return False
                include_terminal = _BOOLS[value]
            elif name == "status":
                if len(value) > MAX_STATUS_CHARS:
                    return False
                status = value
            elif name == "graph_id":
                if len(value) > MAX_GRAPH_ID_CHARS:
                    return False
                graph_id = value
        scope["route"] = self._routes["list_jobs"]

        async def work() -> None:
            listing = await self._list_jobs(
                limit=limit, include_terminal=include_terminal, status=status, graph_id=graph_id
            )
            await send_json(send, 200, dumps(listing))

        await self._answer(scope, receive, send, work())
        return True

    async def _submit(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = scope.get(CALLER_KEY)
        content_type = key = None
        plain = isinstance(caller, Caller)
        for name, value in scope["headers"]:
            if name == b"content-type":
                plain = plain and content_type is None
                content_type = value
            elif name == b"idempotency-key":
                plain = plain and key is None
                key = value
        try:
            raw = await _read_body(receive)
        except HttpProblem as problem:
            scope["route"] = self._routes["submit_job"]
            await http_problem(problem)(scope, receive, send)
            return
        except _BodyIncomplete:
            scope["route"] = self._routes["submit_job"]
            log.info("a submission ended before its whole body arrived: nothing was submitted")
            return
        body = (
            await _validated(raw)
            if plain
            and raw
            and content_type is not None
            and _JSON_TYPE.match(content_type.decode("latin-1"))
            else None
        )
        if body is None:
            # The framework reads the same bytes again and gives its own answer.
            await self.app(scope, _replay(raw, receive), send)
            return
        scope["route"] = self._routes["submit_job"]
        assert isinstance(caller, Caller)

        async def work() -> None:
            response: Response = await submit(
                body,
                raw,
                caller=caller,
                use_case=self._submit_job,
                idempotency=self._idempotency,
                idempotency_key=key.decode("latin-1") if key is not None else None,
            )
            await response(scope, receive, send)

        await self._answer(scope, receive, send, work())


def _plain_query(query_string: bytes) -> dict[str, str] | None:
    """The query's values by name, or None when a name repeats or it cannot be read."""
    if not query_string:
        return {}
    try:
        pairs = parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
    except ValueError:
        return None
    query = dict(pairs)
    return query if len(query) == len(pairs) else None


class _BodyIncomplete(Exception):
    """The connection ended (or was ended by a timeout) before the whole body arrived."""


async def _read_body(receive: Receive) -> bytes:
    """The whole body; _BodyIncomplete when the request ends before its last byte came: a
    part of a body is never taken for all of it."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise _BodyIncomplete
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _validated(raw: bytes) -> m.SubmitJobRequest | None:
    """The body as the route's model, or None when the framework must judge it."""
    try:
        if len(raw) > LARGE_BODY_BYTES:
            data = await asyncio.to_thread(strict_loads, raw)
        else:
            data = strict_loads(raw)
        return m.SubmitJobRequest.model_validate(data)
    except (json.JSONDecodeError, ValidationError, UnicodeDecodeError):
        return None


def _replay(raw: bytes, receive: Receive) -> Receive:
    sent = False

    async def again() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": raw, "more_body": False}
        return await receive()

    return again
