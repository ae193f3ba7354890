"""The runtime: the in-memory one or a core over gRPC, with its credentials and TLS."""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    Field,
    field_validator,
    model_validator,
)


class CoreSettings(BaseModel):
    """The runtime: the in-memory one or a core over gRPC, with its credentials and TLS."""

    runtime: Literal["grpc", "memory"] = Field("grpc", validation_alias="MN_RUNTIME")

    core_host: str = Field("localhost", validation_alias="MN_CORE_HOST", min_length=1)

    # One core node, or several of the same cluster: `host:port,host:port`, or gRPC's own
    # forms (`ipv4:a:p,b:p`, `ipv6:[a]:p,[b]:p`, `dns:name:port`, `unix:path`).
    grpc_target_raw: str | None = Field(None, validation_alias="MN_GRPC_TARGET")

    # The HTTP/2 `:authority` sent to every node (`grpc.default_authority`); by default each
    # node's own `host:port`, which every core accepts.
    grpc_authority: str | None = Field(None, validation_alias="MN_GRPC_AUTHORITY", min_length=1)

    core_grpc_target: str | None = Field(None, validation_alias="MN_CORE_GRPC_TARGET")

    grpc_timeout_seconds: float | None = Field(10.0, validation_alias="MN_GRPC_TIMEOUT_SECONDS")

    grpc_auth_token: str | None = Field(None, validation_alias="MN_GRPC_AUTH_TOKEN")

    # ClearJobs' separate admin secret on 1.2.5 to 1.2.22 cores (else the auth token).
    grpc_admin_token: str | None = Field(None, validation_alias="MN_GRPC_ADMIN_TOKEN")

    grpc_tls_ca_file: Path | None = Field(None, validation_alias="MN_GRPC_TLS_CA_FILE")

    grpc_tls_cert_file: Path | None = Field(None, validation_alias="MN_GRPC_TLS_CERT_FILE")

    grpc_tls_key_file: Path | None = Field(None, validation_alias="MN_GRPC_TLS_KEY_FILE")

    ready_timeout_seconds: float = Field(
        2.0, validation_alias="MN_API_READY_TIMEOUT_SECONDS", gt=0, le=60
    )

    # Whether /ready (and /readyz) also needs the shared state (Redis) to answer: off, a
    # Redis blip leaves replicas in rotation, serving what needs no Redis.
    ready_requires_redis: bool = Field(True, validation_alias="MN_API_READY_REQUIRES_REDIS")

    fake_step_ms: int = Field(50, validation_alias="MN_FAKE_STEP_MS", ge=0)

    # The core release the in-memory runtime behaves like (mn-fake-core's --release).
    fake_core_release: Literal["1.1", "1.2.5", "1.2.31", "d26bef71"] = Field(
        "1.2.31", validation_alias="MN_FAKE_CORE_RELEASE"
    )

    # The hosts `nodes:add` may contact for the joining node's handshake (names or IP
    # addresses, comma-separated); unset: the hosts of the core the gateway calls.
    cluster_join_hosts_raw: str | None = Field(None, validation_alias="MN_API_CLUSTER_JOIN_HOSTS")

    # The join token mn-fake-core's NetworkHandshake asks for (a core's own variable).
    network_join_token: str | None = Field(None, validation_alias="MN_NETWORK_JOIN_TOKEN")

    # How many nodes the in-memory runtime simulates (`mn1@127.0.0.1`, ...; not on 1.1).
    fake_core_nodes: int = Field(1, validation_alias="MN_FAKE_CORE_NODES", ge=1, le=64)

    @model_validator(mode="after")
    def _nodes_need_a_cluster_release(self) -> Self:
        if self.fake_core_nodes > 1 and self.fake_core_release == "1.1":
            raise ValueError("MN_FAKE_CORE_NODES above 1 needs release 1.2.5, 1.2.31 or d26bef71")
        return self

    @field_validator("grpc_timeout_seconds", mode="before")
    @classmethod
    def _timeout_off(cls, value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return value

    @field_validator("grpc_timeout_seconds")
    @classmethod
    def _timeout_positive(cls, value: float | None) -> float | None:
        if value is not None and value < 0:
            raise ValueError("must be 0, none, or a positive number of seconds")
        return value or None

    @model_validator(mode="after")
    def _tls_files_exist(self) -> Self:
        files = {
            "MN_GRPC_TLS_CA_FILE": self.grpc_tls_ca_file,
            "MN_GRPC_TLS_CERT_FILE": self.grpc_tls_cert_file,
            "MN_GRPC_TLS_KEY_FILE": self.grpc_tls_key_file,
        }
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name} names a file that does not exist")
        if (self.grpc_tls_cert_file is None) != (self.grpc_tls_key_file is None):
            raise ValueError("MN_GRPC_TLS_CERT_FILE and MN_GRPC_TLS_KEY_FILE go together")
        if self.grpc_tls_cert_file is not None and self.grpc_tls_ca_file is None:
            raise ValueError("MN_GRPC_TLS_CERT_FILE needs MN_GRPC_TLS_CA_FILE")
        return self

    @field_validator("grpc_target_raw", "core_grpc_target")
    @classmethod
    def _targets_readable(cls, value: str | None) -> str | None:
        if value is not None:
            core_addresses(value)
        return value

    @field_validator("grpc_authority")
    @classmethod
    def _authority_plain(cls, value: str | None) -> str | None:
        if value is not None and not _AUTHORITY.fullmatch(value):
            raise ValueError("must be one host or host:port (no scheme, path or list)")
        return value

    @property
    def grpc_target(self) -> str:
        return self.grpc_target_raw or self.core_grpc_target or f"{self.core_host}:50051"

    @property
    def grpc_addresses(self) -> list[str]:
        """Each core node the gateway may call, one gRPC target each."""
        return core_addresses(self.grpc_target)

    @property
    def cluster_join_hosts(self) -> tuple[str, ...]:
        """The hosts a join may contact: those named, else the core's own (over gRPC)."""
        if self.cluster_join_hosts_raw is not None:
            return tuple(h.strip() for h in self.cluster_join_hosts_raw.split(",") if h.strip())
        if self.runtime != "grpc":
            return ()
        matches = (_HOST_PORT.fullmatch(address) for address in self.grpc_addresses)
        return tuple(dict.fromkeys(m["host"].strip("[]") for m in matches if m is not None))


_AUTHORITY = re.compile(r"[A-Za-z0-9._~%-]+(:\d{1,5})?|\[[0-9A-Fa-f:.%]+\](:\d{1,5})?")
_HOST_PORT = re.compile(r"(?P<host>[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.%]+\]):(?P<port>\d{1,5})")
# Forms that name one target gRPC resolves itself, whatever it resolves to.
_SINGLE_SCHEMES = ("dns:", "unix:", "unix-abstract:", "vsock:")


def core_addresses(target: str) -> list[str]:
    """The gRPC targets of the nodes a setting names, one each, so that every node gets a
    channel of its own (and its own `:authority`): `a:1,b:2` and `ipv4:a:1,b:2` give
    `["a:1", "b:2"]`; `dns:` and `unix:` targets stay whole. Raises ValueError, naming the
    entry, for anything else."""
    text = target.strip()
    if not text:
        raise ValueError("names no core address")
    lowered = text.lower()
    if lowered.startswith(_SINGLE_SCHEMES):
        if "," in text:
            raise ValueError(f"{text.split(':', 1)[0]}: names one target: list host:port instead")
        return [text]
    scheme = ""
    for prefix in ("ipv4:", "ipv6:"):
        if lowered.startswith(prefix):
            scheme, text = prefix, text[len(prefix) :]
    addresses = []
    for entry in text.split(","):
        entry = entry.strip()
        match = _HOST_PORT.fullmatch(entry)
        if match is None or not 0 < int(match["port"]) < 65536:
            raise ValueError(f"{entry!r} is not host:port")
        if scheme == "ipv4:" and not _is_ip(match["host"], 4):
            raise ValueError(f"{entry!r} is not an IPv4 address and port")
        if scheme == "ipv6:" and not _is_ip(match["host"].strip("[]"), 6):
            raise ValueError(f"{entry!r} is not a bracketed IPv6 address and port")
        if entry not in addresses:
            addresses.append(entry)
    return addresses


def _is_ip(host: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(host).version == version
    except ValueError:
        return False
