"""A service's health checks as later cores run them: TCP connects and HTTP requests for
real (bounded by each check's `timeout_ms`), script checks refused as the core refuses
them, gRPC health checks not simulated.

Source: lib/mirror_neuron/service_check.ex (MirrorNeuronLab/MirrorNeuron): the result of
each check and of the service (its worst required check), the error texts, redaction.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
import orjson

from mn_api.adapters.memory.services.service_spec import (
    parse_port,
    redact,
    redact_url,
)

SCRIPT_REFUSAL = (
    "script service checks are owned by mn-python-sdk/API/CLI; advertise a concrete "
    "service health result before Core checks it"
)
# The simulation's own: it holds no gRPC health client.
GRPC_NOT_SIMULATED = "grpc health checks are not simulated"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH")
DEFAULT_TIMEOUT_MS = 2_000


class _Failed(Exception):
    pass


def _either(first: Any, second: Any) -> Any:
    """Elixir's `first || second`: only nil and false give way."""
    return second if first is None or first is False else first


def inspect(value: Any) -> str:
    """A value as Elixir's `inspect/1` writes the simple ones."""
    return "nil" if value is None else orjson.dumps(value).decode()


def _positive_int(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit() and int(value) > 0:
        return int(value)
    return default


def timeout_ms(check: Mapping[str, Any]) -> int:
    return _positive_int(check.get("timeout_ms"), DEFAULT_TIMEOUT_MS)


def check_name(check: Mapping[str, Any]) -> str:
    return str(_either(check.get("name"), _either(check.get("type"), "check")))


def _address_port(check: Mapping[str, Any], service: Mapping[str, Any]) -> tuple[str, int]:
    address = _either(check.get("address"), service.get("address"))
    port = parse_port(_either(check.get("port"), service.get("port")))
    if not isinstance(address, str) or not address:
        raise _Failed("service check requires address")
    if port is None:
        raise _Failed("service check requires port")
    return address, port


def _reason(error: BaseException) -> str:
    """An OS error as the core's inspect of its reason atom (`:econnrefused`)."""
    if isinstance(error, TimeoutError | httpx.TimeoutException):
        return ":timeout"
    if isinstance(error, socket.gaierror):
        return ":nxdomain"
    cause = error.__cause__ or error.__context__
    if isinstance(error, httpx.TransportError) and cause is not None:
        return _reason(cause)
    code = getattr(error, "errno", None)
    if isinstance(code, int) and code in errno.errorcode:
        return ":" + errno.errorcode[code].lower()
    return ":" + type(error).__name__.lower()


async def _tcp(check: Mapping[str, Any], service: Mapping[str, Any]) -> dict[str, Any]:
    address, port = _address_port(check, service)
    try:
        _, writer = await asyncio.wait_for(
            asyncio.open_connection(address, port), timeout_ms(check) / 1000
        )
    except (OSError, TimeoutError) as err:
        raise _Failed(f"tcp connect failed for {address}:{port}: {_reason(err)}") from None
    writer.close()
    return {"address": address, "port": port}


def _expected(check: Mapping[str, Any]) -> list[int]:
    if "expected_status" not in check:
        return list(range(200, 400))
    given = check["expected_status"]
    statuses: list[int] = []
    for status in given if isinstance(given, list) else [given]:
        if isinstance(status, int) and not isinstance(status, bool):
            statuses.append(status)
        elif isinstance(status, str):
            bounds = status.replace("..", "-", 1).split("-", 1)
            try:
                low, high = int(bounds[0].strip()), int(bounds[-1].strip())
            except ValueError:
                continue
            statuses.extend(range(low, high + 1))
    return statuses


def _expected_text(statuses: list[int]) -> str:
    if len(statuses) > 8:
        return f"{statuses[0]}..{statuses[-1]}"
    return ",".join(str(s) for s in statuses)


def _url(check: Mapping[str, Any], service: Mapping[str, Any]) -> str:
    url = check.get("url")
    if isinstance(url, str) and url:
        return url
    address, port = _address_port(check, service)
    scheme = _either(check.get("scheme"), _either(service.get("scheme"), "http"))
    path = str(_either(check.get("path"), "/"))
    return f"{scheme}://{address}:{port}{path if path.startswith('/') else '/' + path}"


async def _http(check: Mapping[str, Any], service: Mapping[str, Any]) -> dict[str, Any]:
    url = _url(check, service)
    method = str(check.get("method", "GET")).upper()
    if method not in HTTP_METHODS:
        raise _Failed(f"unsupported http check method {method}")
    headers = check.get("headers")
    sent = {str(k): str(v) for k, v in headers.items()} if isinstance(headers, Mapping) else {}
    content: str | None = None
    if method not in ("GET", "HEAD"):
        content = str(check.get("body") or "")
        sent.setdefault("content-type", str(check.get("content_type") or "application/json"))
    try:
        async with httpx.AsyncClient(
            timeout=timeout_ms(check) / 1000, follow_redirects=True, trust_env=False
        ) as client:
            answer = await client.request(method, url, headers=sent, content=content)
    except (httpx.HTTPError, OSError, ValueError) as err:
        raise _Failed(f"http request failed: {_reason(err)}") from None
    expected = _expected(check)
    shown = redact_url(url)
    if answer.status_code not in expected:
        raise _Failed(
            f"http {shown} returned {answer.status_code}, expected {_expected_text(expected)}"
        )
    contains = check.get("contains")
    if contains is not None and contains is not False and str(contains) not in answer.text:
        raise _Failed(f"http {shown} did not contain expected text")
    return {"url": shown, "status": answer.status_code}


async def run_check(check: Any, service: Mapping[str, Any]) -> dict[str, Any]:
    """One check's result: `passing` with its details, or `critical` with its error."""
    if not isinstance(check, Mapping):
        return _critical("check", "service check must be an object")
    started = time.monotonic()
    kind = check.get("type")
    try:
        if kind == "http":
            details = await _http(check, service)
        elif kind == "tcp":
            details = await _tcp(check, service)
        elif kind == "script":
            raise _Failed(SCRIPT_REFUSAL)
        elif kind == "grpc":
            raise _Failed(GRPC_NOT_SIMULATED)
        else:
            raise _Failed(f"unsupported service check type {inspect(kind)}")
        outcome: dict[str, Any] = {"status": "passing", "details": redact(details)}
    except _Failed as failed:
        outcome = {"status": "critical", "error": str(redact(str(failed)))}
    return {
        "name": check_name(check),
        "type": kind,
        "required": check.get("required") is not False,
        "duration_ms": int((time.monotonic() - started) * 1000),
        **outcome,
    }


def _critical(name: str, reason: str) -> dict[str, Any]:
    return {
        "name": name,
        "type": "unknown",
        "required": True,
        "status": "critical",
        "duration_ms": 0,
        "error": reason,
    }


def aggregate_status(results: list[dict[str, Any]]) -> str:
    """`critical` if a required check failed, `warning` if only optional ones did."""
    failed = [r for r in results if r.get("status") == "critical"]
    if any(r.get("required", True) for r in failed):
        return "critical"
    return "warning" if failed else "passing"


async def check_service(service: Mapping[str, Any], now: Callable[[], str]) -> dict[str, Any]:
    """The service's health: each of its checks run (at once), and the verdict."""
    checks = service.get("checks", [])
    if isinstance(checks, list):
        results = list(await asyncio.gather(*(run_check(c, service) for c in checks)))
    else:
        results = [_critical("checks", "service checks must be a list")]
    return {
        "service_id": service.get("id"),
        "name": service.get("name"),
        "status": aggregate_status(results),
        "checked_at": now(),
        "checks": results,
    }
