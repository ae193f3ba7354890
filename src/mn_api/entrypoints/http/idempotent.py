"""Idempotency-Key on the HTTP side: freezing an answer, and giving it again on a replay."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.responses import Response

from mn_api.application.idempotency import Idempotency
from mn_api.application.ports import StoredAnswer
from mn_api.domain.errors import InvalidArgumentError, ManifestInvalidError
from mn_api.entrypoints.http.auth import Caller
from mn_api.entrypoints.http.problems import domain_problem

# Refusals decided by the runtime are answers too: a retry would get the same verdict.
RUNTIME_VERDICTS = (ManifestInvalidError, InvalidArgumentError)
_KEPT_HEADERS = ("content-type", "location")
REPLAYED_HEADER = "Idempotent-Replayed"


def _freeze(response: Response) -> StoredAnswer:
    headers = tuple(
        (name, response.headers[name]) for name in _KEPT_HEADERS if name in response.headers
    )
    return StoredAnswer(response.status_code, bytes(response.body), headers)


def _thaw(answer: StoredAnswer, replayed: bool) -> Response:
    headers = dict(answer.headers)
    media_type = headers.pop("content-type", None)
    if replayed:
        headers[REPLAYED_HEADER] = "true"
    return Response(answer.body, status_code=answer.status, headers=headers, media_type=media_type)


async def answer_once(
    *,
    idempotency: Idempotency,
    caller: Caller,
    route: str,
    key: str | None,
    fingerprint: Callable[[], Awaitable[str]],
    work: Callable[[], Awaitable[Response]],
) -> Response:
    """`work()`'s answer; with a key, the first answer for that key and request."""
    if key is None:
        return await work()

    async def frozen() -> StoredAnswer:
        try:
            response = await work()
        except RUNTIME_VERDICTS as error:
            response = domain_problem(error)
        return _freeze(response)

    answer, replayed = await idempotency.run(
        caller=caller.id, route=route, key=key, fingerprint=await fingerprint(), work=frozen
    )
    return _thaw(answer, replayed)
