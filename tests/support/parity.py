"""Comparing two gateways route by route: the same request through each, their statuses
and the shapes of their answers (keys and JSON types, not values), with the differences
meant to be there named in a table the comparison reads."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import httpx
import orjson

from tests.support.fixtures import check_problem, pipeline_manifest
from tests.support.processes import FakeCoreProcess, GatewayProcess, OfficialGatewayProcess

Ids = Mapping[str, str]
NO_IDS: Ids = MappingProxyType({})
# The paths of the later routes (over the core's later services).
LATER = re.compile(
    r"^/api/(v2/|v1/(resource$|services|schedules|triggers|events$|events/|deployments"
    r"|operations|nodes/|system/cluster/nodes:(add|join)$|jobs/restore$|jobs/\{[^}]+\}/backup$))"
)
V1, V2 = "/api/v1", "/api/v2"

# The later routes mn-api 1.2.31 and this gateway both serve, by scenario
# (tests/contract/test_later_parity.py holds this table to both OpenAPI documents).
ROUTES: dict[str, list[tuple[str, str]]] = {
    "resources": [
        ("GET", f"{V1}/resource"),
        ("POST", f"{V1}/resource"),
        ("PUT", f"{V1}/resource"),
    ],
    "services": [
        ("GET", f"{V1}/services"),
        ("GET", f"{V1}/services/{{name}}/resolve"),
        ("POST", f"{V1}/services:check"),
        ("POST", f"{V1}/services/check"),
    ],
    "schedules": [
        ("POST", f"{V1}/schedules"),
        ("POST", f"{V1}/schedules/periodic"),
        ("POST", f"{V1}/schedules/delayed"),
        ("GET", f"{V1}/schedules"),
        ("GET", f"{V1}/schedules/{{schedule_id}}"),
        ("PATCH", f"{V1}/schedules/{{schedule_id}}"),
        ("POST", f"{V1}/schedules/{{schedule_id}}/pause"),
        ("POST", f"{V1}/schedules/{{schedule_id}}/resume"),
        ("POST", f"{V1}/schedules/{{schedule_id}}/dispatch"),
        ("DELETE", f"{V1}/schedules/{{schedule_id}}"),
        ("POST", f"{V1}/triggers"),
        ("GET", f"{V1}/triggers"),
        ("DELETE", f"{V1}/triggers/{{schedule_id}}"),
        ("POST", f"{V1}/events"),
        ("GET", f"{V1}/events"),
    ],
    "deployments": [
        ("POST", f"{V1}/deployments"),
        ("GET", f"{V1}/deployments"),
        ("GET", f"{V1}/deployments/{{id_or_key}}"),
        ("POST", f"{V1}/deployments/{{id_or_key}}/promote"),
        ("POST", f"{V1}/deployments/{{id_or_key}}/rollback"),
        ("POST", f"{V1}/deployments/{{id_or_key}}/pause"),
        ("POST", f"{V1}/deployments/{{id_or_key}}/resume"),
        ("POST", f"{V1}/deployments/{{id_or_key}}/fail"),
    ],
    "backups": [
        ("POST", f"{V1}/jobs/{{job_id}}/backup"),
        ("POST", f"{V1}/jobs/restore"),
    ],
    "operations": [
        ("POST", f"{V1}/operations/{{kind}}"),
        ("GET", f"{V1}/operations/{{operation_id}}"),
        ("GET", f"{V1}/operations/{{operation_id}}/events"),
    ],
    "nodes": [
        ("POST", f"{V1}/nodes/{{node_name}}/reconcile"),
        ("POST", f"{V1}/nodes/{{node_name}}/drain"),
        ("POST", f"{V1}/nodes/{{node_name}}/undrain"),
        ("POST", f"{V1}/nodes/{{node_name}}/maintenance"),
        ("POST", f"{V1}/system/cluster/nodes:add"),
        ("POST", f"{V1}/system/cluster/nodes:join"),
    ],
    "definitions": [
        ("POST", f"{V2}/jobs"),
        ("GET", f"{V2}/jobs"),
        ("GET", f"{V2}/jobs/{{job_id}}"),
        ("PATCH", f"{V2}/jobs/{{job_id}}"),
        ("DELETE", f"{V2}/jobs/{{job_id}}"),
        ("POST", f"{V2}/jobs/{{job_id}}/archive"),
        ("POST", f"{V2}/jobs/{{job_id}}/data:reset"),
        ("POST", f"{V2}/jobs/{{job_id}}/runs"),
        ("GET", f"{V2}/jobs/{{job_id}}/runs"),
        ("POST", f"{V2}/jobs/{{job_id}}/schedules"),
        ("GET", f"{V2}/runs/{{run_id}}"),
        ("POST", f"{V2}/runs/{{run_id}}/pause"),
        ("POST", f"{V2}/runs/{{run_id}}/resume"),
        ("POST", f"{V2}/runs/{{run_id}}/cancel"),
        ("DELETE", f"{V2}/runs/{{run_id}}"),
    ],
}


@dataclass(frozen=True)
class Each:
    """A request body that differs by gateway (naming a record each made)."""

    ours: Any
    theirs: Any


@dataclass(frozen=True)
class Difference:
    """One way the gateway answers otherwise than the published one, and why: `ours` and
    `theirs` are the status each answers where it applies, with a refusal's `error` code
    (None: no code; "detail": FastAPI's bare `{"detail": ...}`), None where it is 200;
    `only_theirs` are keys only the published gateway's answer has (`a.b` within a
    record, `a[].b` in each item of a list); `location`: ours says where the created
    record is."""

    group: str
    ours: tuple[int, str | None] | None
    theirs: tuple[int, str | None] | None
    where: str
    reason: str
    only_theirs: tuple[str, ...] = ()
    location: bool = False


def shape(value: Any) -> Any:
    """The value with every leaf replaced by its JSON type; a list by the distinct shapes
    of its items (JSON has one number type: 16 and 16.0 are both numbers)."""
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        shapes = {orjson.dumps(shape(item), option=orjson.OPT_SORT_KEYS) for item in value}
        return [orjson.loads(text) for text in sorted(shapes)]
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if value is None:
        return "null"
    return "string"


def shape_differences(ours: Any, theirs: Any, path: str = "$") -> list[str]:
    """Where two shapes differ, one line each (empty: the same shape). An empty list has
    the shape of any list."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        found = []
        for key in sorted(ours.keys() | theirs.keys()):
            if key not in theirs:
                found.append(f"{path}.{key}: only ours")
            elif key not in ours:
                found.append(f"{path}.{key}: only theirs")
            else:
                found += shape_differences(ours[key], theirs[key], f"{path}.{key}")
        return found
    if isinstance(ours, list) and isinstance(theirs, list):
        # An empty list is a list of anything.
        if ours == theirs or not ours or not theirs:
            return []
        if len(ours) == len(theirs) == 1:
            return shape_differences(ours[0], theirs[0], f"{path}[]")
        return [f"{path}: items {ours} against {theirs}"]
    return [] if ours == theirs else [f"{path}: {ours} against {theirs}"]


def _without(document: Any, path: str) -> tuple[Any, bool]:
    """The document without the key at `path` (in every item of a list on the way), and
    whether it was there at all."""
    head, _, rest = path.partition(".")
    items = head.endswith("[]")
    key = head.removesuffix("[]")
    if not isinstance(document, dict) or key not in document:
        return document, False
    value = document[key]
    if not rest:
        return {k: v for k, v in document.items() if k != key}, True
    found = False
    if items and isinstance(value, list):
        changed = []
        for item in value:
            item, seen = _without(item, rest)
            changed.append(item)
            found = found or seen
        return {**document, key: changed}, found
    value, found = _without(value, rest)
    return {**document, key: value}, found


def read_json(response: httpx.Response) -> Any:
    return orjson.loads(response.content) if response.content else None


def sse_frames(text: str) -> list[dict[str, str]]:
    """A Server-Sent Events body as its frames (each a dict of its fields), comments and
    retry-only frames left out."""
    frames = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        if fields.keys() - {"retry"}:
            frames.append(fields)
    return frames


class Parity:
    """Sends each request to ours and to theirs and holds them to one another: both serve
    it (2xx, the same shape), or both refuse it (ours with a problem and its code). The
    routes driven and the differences met are kept for the caller to check."""

    def __init__(
        self,
        ours: httpx.Client,
        theirs: httpx.Client,
        differences: Mapping[str, Difference],
    ) -> None:
        self.ours = ours
        self.theirs = theirs
        self.differences = differences
        self.routes: set[tuple[str, str]] = set()
        self.used: set[str] = set()

    def _send(
        self,
        method: str,
        route: str,
        at: Ids | tuple[Ids, Ids],
        **request: Any,
    ) -> tuple[httpx.Response, httpx.Response]:
        ours_ids, theirs_ids = at if isinstance(at, tuple) else (at, at)
        body = request.pop("json", None)
        ours_body, theirs_body = (
            (body.ours, body.theirs) if isinstance(body, Each) else (body, body)
        )
        self.routes.add((method, route))
        return (
            self.ours.request(method, route.format(**ours_ids), json=ours_body, **request),
            self.theirs.request(method, route.format(**theirs_ids), json=theirs_body, **request),
        )

    def _expected(self, names: Iterable[str]) -> tuple[int, int, tuple[str, ...], bool]:
        ours, theirs, only_theirs, location = 200, 200, (), False
        for name in names:
            difference = self.differences[name]
            self.used.add(name)
            ours = difference.ours[0] if difference.ours else ours
            theirs = difference.theirs[0] if difference.theirs else theirs
            only_theirs += difference.only_theirs
            location = location or difference.location
        return ours, theirs, only_theirs, location

    def same(
        self,
        method: str,
        route: str,
        at: Ids | tuple[Ids, Ids] = NO_IDS,
        *,
        differs: Iterable[str] = (),
        **request: Any,
    ) -> tuple[Any, Any]:
        """Both serve it: the statuses expected (200 unless a difference says otherwise)
        and answers of the same shape. Their documents."""
        ours, theirs = self._send(method, route, at, **request)
        ours_status, theirs_status, only_theirs, location = self._expected(differs)
        where = f"{method} {route}"
        assert ours.status_code == ours_status, f"{where}: ours {ours.status_code} {ours.text}"
        assert theirs.status_code == theirs_status, (
            f"{where}: theirs {theirs.status_code} {theirs.text}"
        )
        if location:
            assert ours.headers["location"].startswith("/api/"), where
        ours_doc, theirs_doc = read_json(ours), read_json(theirs)
        compared = theirs_doc
        for path in only_theirs:
            compared, found = _without(compared, path)
            assert found, f"{where}: theirs has no {path}"
            assert not _without(ours_doc, path)[1], f"{where}: ours has {path}"
        differences = shape_differences(shape(ours_doc), shape(compared))
        assert not differences, f"{where}: shapes differ:\n" + "\n".join(differences)
        return ours_doc, theirs_doc

    def refused(
        self,
        method: str,
        route: str,
        difference: str,
        at: Ids | tuple[Ids, Ids] = NO_IDS,
        **request: Any,
    ) -> tuple[Any, Any]:
        """Both refuse it, as the difference named says: ours with a problem and its code,
        theirs with its own status and code (`detail`: FastAPI's own `{"detail": ...}`)."""
        ours, theirs = self._send(method, route, at, **request)
        self.used.add(difference)
        expected = self.differences[difference]
        assert expected.ours is not None and expected.theirs is not None, difference
        where = f"{method} {route} ({difference})"
        assert ours.status_code == expected.ours[0], f"{where}: ours {ours.text}"
        assert ours.headers["content-type"].startswith("application/problem+json"), where
        problem = check_problem(read_json(ours))
        assert problem["error"] == expected.ours[1], f"{where}: ours {problem}"
        assert theirs.status_code == expected.theirs[0], f"{where}: theirs {theirs.text}"
        answer = read_json(theirs)
        code = "detail" if set(answer) == {"detail"} else answer.get("error")
        assert code == expected.theirs[1], f"{where}: theirs {answer}"
        return problem, answer

    def both(
        self, method: str, route: str, at: Ids | tuple[Ids, Ids] = NO_IDS, **request: Any
    ) -> tuple[httpx.Response, httpx.Response]:
        """The two answers as they are, for what the caller compares itself."""
        return self._send(method, route, at, **request)

    def check_group(self, group: str, routes: Iterable[tuple[str, str]]) -> None:
        """Every route of the group was driven, and every difference listed for it met."""
        missing = set(routes) - self.routes
        assert not missing, f"{group}: routes not driven: {sorted(missing)}"
        listed = {name for name, d in self.differences.items() if d.group == group}
        assert listed <= self.used, f"{group}: differences not met: {sorted(listed - self.used)}"


def daemon(graph_id: str = "parity", config: Any = None, **extra: Any) -> dict[str, Any]:
    """A job that runs until it is stopped (`config`: its worker's)."""
    agents = {"worker": config} if config else {}
    return {**pipeline_manifest(**agents), "graph_id": graph_id, "daemon": True, **extra}


def text(manifest: Any) -> str:
    return orjson.dumps(manifest).decode()


@contextmanager
def side_by_side(
    core: FakeCoreProcess, tmp_path_factory: Any, admin: str, read: str
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """This gateway (admin and read tokens) and the published one (the admin token as its
    only one), both in front of `core`; a client of each, sending the admin token."""
    ours = GatewayProcess(
        tmp_path_factory.mktemp("ours"),
        "grpc",
        core=core,
        MN_API_TOKEN=admin,
        MN_API_READ_TOKENS=read,
    )
    theirs = OfficialGatewayProcess(tmp_path_factory.mktemp("theirs"), core, admin)
    ours.start()
    try:
        theirs.start()
        headers = {"Authorization": f"Bearer {admin}"}
        with (
            httpx.Client(base_url=ours.base, headers=headers, timeout=30) as ours_client,
            httpx.Client(base_url=theirs.base, headers=headers, timeout=30) as theirs_client,
        ):
            yield ours_client, theirs_client
    finally:
        theirs.stop()
        ours.stop()


def later_routes(document: Mapping[str, Any]) -> set[tuple[str, str]]:
    """The later routes of an OpenAPI document, as (method, path with its parameters
    unnamed: `/api/v2/jobs/{}`)."""
    return {
        (method.upper(), unnamed(path))
        for path, operations in document["paths"].items()
        if LATER.match(path)
        for method in operations
        if method in {"get", "post", "put", "patch", "delete"}
    }


def unnamed(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "{}", path)


def status_of(client: httpx.Client, path: str) -> str:
    """The status of a job (`/api/v1/jobs/{id}`) or a run (`/api/v2/runs/{id}`)."""
    document = client.get(path).json()
    return str(document.get("job", document).get("status"))


def until_status(client: httpx.Client, path: str, wanted: str) -> None:
    until(lambda: status_of(client, path) == wanted)


def until(check: Callable[[], bool], within: float = 15.0) -> None:
    """Wait (polling) until `check()` holds."""
    import time

    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)
