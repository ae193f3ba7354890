"""HttpxNotifier: webhook requests over one shared httpx client that can only reach
addresses the URL policy allows.

The policy is applied where the connection is made, not only when a URL is accepted:
a custom network backend resolves the host itself, refuses the connection when any
address is forbidden, and connects to the address it checked. A host that resolved to a
public address at submission and to 127.0.0.1 later (DNS rebinding) is still refused,
and TLS is verified against the host name as usual.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping

import httpcore
import httpx

from mn_api.application.ports import HostResolver, NotifierPort, SendResult
from mn_api.domain.errors import WebhookUrlNotAllowedError
from mn_api.domain.webhooks.url_policy import UrlPolicy


class AddressNotAllowedError(httpcore.ConnectError):
    """The connection was refused by the URL policy before any packet was sent."""


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows for the host being called."""

    def __init__(self, policy: UrlPolicy, resolver: HostResolver) -> None:
        self._policy = policy
        self._resolver = resolver
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._resolver.resolve(host, port)
        try:
            if not self._policy.allows_host(host):
                raise WebhookUrlNotAllowedError(f"host {host!r} is not allowed")
            self._policy.check_addresses(host, addresses)
        except WebhookUrlNotAllowedError as refusal:
            raise AddressNotAllowedError(refusal.detail) from None
        return await self._inner.connect_tcp(
            addresses[0], port, timeout, local_address, socket_options
        )

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's signature
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise AddressNotAllowedError("webhooks never use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, with its connection pool built on the guarded backend."""

    def __init__(self, policy: UrlPolicy, resolver: HostResolver, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(policy, resolver),
        )


class HttpxNotifier(NotifierPort):
    def __init__(
        self,
        policy: UrlPolicy,
        resolver: HostResolver,
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        max_connections: int = 128,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        # httpx's timeouts bound each network operation; a receiver trickling its answer a
        # byte at a time is stopped by this bound on the whole exchange.
        self._deadline = connect_timeout + read_timeout
        # As many connections as deliveries may be in flight: none waits on the pool.
        limits = httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=min(16, max_connections)
        )
        self._client = httpx.AsyncClient(
            transport=transport or GuardedTransport(policy, resolver, limits),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=False,
            trust_env=False,
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, body: bytes, headers: Mapping[str, str]) -> SendResult:
        started = time.perf_counter()
        try:
            async with (
                asyncio.timeout(self._deadline),
                self._client.stream("POST", url, content=body, headers=headers) as reply,
            ):
                # Only the status matters; the body is left unread.
                status = reply.status_code
        except TimeoutError:
            return SendResult(time.perf_counter() - started, error="deadline exceeded")
        except httpx.HTTPError as err:
            seconds = time.perf_counter() - started
            # httpx wraps what the network backend raised; the cause says it was the policy.
            refusal = err.__cause__
            if isinstance(refusal, AddressNotAllowedError):
                return SendResult(seconds, error=str(refusal), refused=True)
            return SendResult(seconds, error=_name(err))
        except (httpx.InvalidURL, OSError, ValueError) as err:
            return SendResult(time.perf_counter() - started, error=_name(err))
        return SendResult(time.perf_counter() - started, status_code=status)


def _name(err: Exception) -> str:
    """A short, path-free description of a transport failure."""
    kind = type(err).__name__
    return {
        "ConnectTimeout": "connect timeout",
        "ReadTimeout": "read timeout",
        "WriteTimeout": "write timeout",
        "PoolTimeout": "pool timeout",
        "ConnectError": "connection failed",
        "ReadError": "connection broken while reading",
        "WriteError": "connection broken while writing",
        "RemoteProtocolError": "invalid HTTP answer",
    }.get(kind, kind)
