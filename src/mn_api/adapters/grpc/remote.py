"""Another cluster's core, reached for one NetworkHandshake: a channel of its own for the
call (closed after it), small message limits, no retries, and no credentials but the join
token in the request."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

import grpc

from mn_api.adapters.core_refusals import refusal_error
from mn_api.adapters.grpc.errors import core_text
from mn_api.adapters.grpc.later import fields_of
from mn_api.adapters.grpc.protos import cluster_pb2
from mn_api.application.ports import RemoteCorePort
from mn_api.domain.errors import (
    JoinRefusedError,
    NotSupportedError,
    RemoteCoreUnavailableError,
)

HANDSHAKE = "/mirrorneuron.cluster.v1.ClusterService/NetworkHandshake"
# A handshake's answer is a few kilobytes; anything far larger is refused by gRPC itself.
MAX_ANSWER_BYTES = 1 << 20
_UNREACHABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
)
_REFUSED = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})


def address(host: str, port: int) -> str:
    """host:port, an IPv6 address in brackets."""
    try:
        if ipaddress.ip_address(host).version == 6:
            return f"[{host}]:{port}"
    except ValueError:
        pass
    return f"{host}:{port}"


class GrpcRemoteCores(RemoteCorePort):
    def __init__(self, credentials: grpc.ChannelCredentials | None = None) -> None:
        self._credentials = credentials

    async def handshake(
        self, host: str, port: int, request: Mapping[str, Any], *, deadline_seconds: float
    ) -> dict[str, Any]:
        target = address(host, port)
        options = [
            ("grpc.max_receive_message_length", MAX_ANSWER_BYTES),
            ("grpc.enable_retries", 0),
        ]
        if self._credentials is not None:
            channel = grpc.aio.secure_channel(target, self._credentials, options=options)
        else:
            channel = grpc.aio.insecure_channel(target, options=options)
        try:
            call = channel.unary_unary(
                HANDSHAKE,
                request_serializer=cluster_pb2.NetworkHandshakeRequest.SerializeToString,
                response_deserializer=cluster_pb2.NetworkHandshakeResponse.FromString,
            )
            answer = await call(
                cluster_pb2.NetworkHandshakeRequest(**request), timeout=deadline_seconds
            )
        except grpc.aio.AioRpcError as err:
            raise _refusal(err, target) from None
        finally:
            await channel.close()
        return fields_of(answer)


def _refusal(err: grpc.aio.AioRpcError, target: str) -> Exception:
    code = err.code()
    if code in _UNREACHABLE:
        return RemoteCoreUnavailableError(f"the core at {target} could not be reached in time")
    if code in _REFUSED:
        return JoinRefusedError(f"the core at {target} refused the join token")
    if code is grpc.StatusCode.UNIMPLEMENTED:
        return NotSupportedError(f"the core at {target} does not take nodes in (no handshake)")
    return refusal_error(code.name, core_text(err.details() or ""), kind="node")
