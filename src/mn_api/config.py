"""Settings from the environment, validated once at startup (pydantic-settings)."""

from __future__ import annotations

import difflib
import ipaddress
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from mn_api.domain.errors import WebhookUrlNotAllowedError
from mn_api.domain.webhooks import SUBSCRIBABLE_EVENTS, UrlPolicy, parse_secrets

_RATE = re.compile(
    r"^\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?$", re.IGNORECASE
)


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (value or "").split(",") if part.strip())


CLUSTER_SCHEME = "redis+cluster://"


@dataclass(frozen=True)
class RedisTarget:
    """Where the shared state lives: one server (`url`), a cluster (seed `nodes`), or the
    primary that the sentinels in `nodes` name `master`."""

    mode: Literal["server", "cluster", "sentinel"]
    url: str | None = None
    nodes: tuple[tuple[str, int], ...] = ()
    master: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    def where(self) -> str:
        """Where it is, for people: no user name, no password."""
        hosts = ",".join(f"{host}:{port}" for host, port in self.nodes)
        if self.mode == "server":
            return _without_credentials(self.url or "")
        if self.mode == "cluster":
            return f"cluster {hosts}"
        return f"sentinel {hosts} (master {self.master})"


def _nodes(value: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (IPv6 hosts in brackets) as pairs; ValueError names the bad one."""
    nodes = []
    for part in _split(value):
        host, sep, port = part.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"{part!r} is not host:port")
        nodes.append((host, int(port)))
    if not nodes:
        raise ValueError("names no host:port")
    return tuple(nodes)


class Settings(BaseSettings):
    """Every setting of the gateway; each field reads the environment variable it names."""

    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True, frozen=True)

    env: Literal["dev", "test", "prod"] = Field("dev", validation_alias="MN_ENV")
    api_host: str = Field("localhost", validation_alias="MN_API_HOST", min_length=1)
    api_port: int = Field(4001, validation_alias="MN_API_PORT", ge=1, le=65535)
    api_token: str | None = Field(None, validation_alias="MN_API_TOKEN")
    # `off` says that serving without authentication is meant (an empty token is otherwise
    # a mistake, not a way to turn it off).
    api_auth: Literal["on", "off"] | None = Field(None, validation_alias="MN_API_AUTH")
    read_tokens_raw: str | None = Field(None, validation_alias="MN_API_READ_TOKENS")
    api_workers: int = Field(1, validation_alias="MN_API_WORKERS", ge=1, le=256)

    runtime: Literal["grpc", "memory"] = Field("grpc", validation_alias="MN_RUNTIME")
    core_host: str = Field("localhost", validation_alias="MN_CORE_HOST", min_length=1)
    grpc_target_raw: str | None = Field(None, validation_alias="MN_GRPC_TARGET")
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

    request_size_limit_bytes: int = Field(
        5 * 1024 * 1024, validation_alias="MN_API_REQUEST_SIZE_LIMIT_BYTES", gt=0
    )
    cors_allow_origins_raw: str | None = Field(None, validation_alias="MN_API_CORS_ALLOW_ORIGINS")
    # The proxies (addresses or networks, or * for any peer) whose X-Forwarded-For and
    # X-Forwarded-Proto are believed: the client behind them is then the caller that rate
    # limits and failed-token counts apply to. None by default.
    trusted_proxies_raw: str | None = Field(None, validation_alias="MN_API_TRUSTED_PROXIES")
    # Blueprints on this host: the catalogue (a folder of blueprint folders), and the
    # folders a launch by path may read from (the catalogue is one of them). None by default.
    blueprint_dir: Path | None = Field(None, validation_alias="MN_API_BLUEPRINT_DIR")
    launch_roots_raw: str | None = Field(None, validation_alias="MN_API_LAUNCH_ROOTS")
    # What one connection may cost before the app sees a request (entrypoints/server.py).
    max_header_bytes: int = Field(
        32 * 1024, validation_alias="MN_API_MAX_HEADER_BYTES", ge=1024, le=1024 * 1024
    )
    max_headers: int = Field(100, validation_alias="MN_API_MAX_HEADERS", ge=8, le=10_000)
    header_timeout_seconds: float = Field(
        10.0, validation_alias="MN_API_HEADER_TIMEOUT_SECONDS", gt=0, le=600
    )
    body_idle_timeout_seconds: float = Field(
        30.0, validation_alias="MN_API_BODY_IDLE_TIMEOUT_SECONDS", gt=0, le=3600
    )
    keep_alive_seconds: float = Field(
        5.0, validation_alias="MN_API_KEEP_ALIVE_SECONDS", gt=0, le=3600
    )
    # 0: as many as the descriptor limit safely allows.
    max_connections: int = Field(0, validation_alias="MN_API_MAX_CONNECTIONS", ge=0)

    log_path: str = Field("~/.mn/logs/api.log", validation_alias="MN_API_LOG_PATH")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", validation_alias="MN_LOG_LEVEL"
    )
    log_max_bytes: int = Field(1024 * 1024, validation_alias="MN_LOG_MAX_BYTES", ge=0)
    log_backup_count: int = Field(5, validation_alias="MN_LOG_BACKUP_COUNT", ge=0)
    log_format: Literal["text", "json"] = Field("text", validation_alias="MN_LOG_FORMAT")

    bundle_dir: Path = Field(
        Path(tempfile.gettempdir()) / "mn-api-bundles", validation_alias="MN_API_BUNDLE_DIR"
    )
    bundle_max_files: int = Field(10_000, validation_alias="MN_API_BUNDLE_MAX_FILES", gt=0)
    bundle_max_bytes: int = Field(
        100 * 1024 * 1024, validation_alias="MN_API_BUNDLE_MAX_BYTES", gt=0
    )
    bundle_ttl_seconds: float = Field(3600, validation_alias="MN_API_BUNDLE_TTL_SECONDS", gt=0)
    # The most bytes all kept bundles may hold together (0: no quota).
    bundle_quota_bytes: int = Field(
        1024 * 1024 * 1024, validation_alias="MN_API_BUNDLE_QUOTA_BYTES", ge=0
    )
    bundle_submissions_at_once: int = Field(
        4, validation_alias="MN_API_BUNDLE_SUBMISSIONS_AT_ONCE", ge=1, le=256
    )
    purge_interval_seconds: float = Field(
        60, validation_alias="MN_API_PURGE_INTERVAL_SECONDS", gt=0, le=86400
    )
    sse_heartbeat_seconds: float = Field(15, validation_alias="MN_API_SSE_HEARTBEAT_SECONDS", gt=0)
    # The memory every job history kept in process may take together (0: keep none, and
    # read each history from the runtime for each reader), and one history at the most
    # (0: a quarter of the whole).
    history_cache_mb: float = Field(64, validation_alias="MN_HISTORY_CACHE_MB", ge=0)
    history_job_cache_mb: float = Field(0, validation_alias="MN_HISTORY_JOB_CACHE_MB", ge=0)
    idempotency_ttl_seconds: float = Field(
        86400, validation_alias="MN_API_IDEMPOTENCY_TTL_SECONDS", gt=0
    )
    # How long the gateway keeps the declared topology of each job it submitted.
    topology_ttl_seconds: float = Field(
        7 * 86400, validation_alias="MN_API_TOPOLOGY_TTL_SECONDS", gt=0
    )
    rate_limit: str | None = Field(None, validation_alias="MN_API_RATE_LIMIT")
    # One server (redis://, rediss://, unix://) or a cluster (redis+cluster://h1:p1,h2:p2).
    redis_url: str | None = Field(None, validation_alias="MN_REDIS_URL")
    # A primary found through Sentinel: the sentinels (h1:p1,h2:p2,...) and the master's name.
    redis_sentinels_raw: str | None = Field(None, validation_alias="MN_REDIS_SENTINELS")
    redis_sentinel_master: str | None = Field(None, validation_alias="MN_REDIS_SENTINEL_MASTER")
    # The primary's password when it is found through Sentinel (URLs carry their own).
    redis_password: SecretStr | None = Field(None, validation_alias="MN_REDIS_PASSWORD")
    # OpenTelemetry: the standard variables; traces and metrics are exported over OTLP/gRPC
    # once an endpoint is set for them.
    otel_traces_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    otel_metrics_endpoint: str | None = Field(
        None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"
        ),
    )
    otel_sdk_disabled: bool = Field(False, validation_alias="OTEL_SDK_DISABLED")
    otel_traces_exporter: Literal["otlp", "none"] = Field(
        "otlp", validation_alias="OTEL_TRACES_EXPORTER"
    )
    otel_metrics_exporter: Literal["otlp", "none"] = Field(
        "otlp", validation_alias="OTEL_METRICS_EXPORTER"
    )
    otel_traces_protocol: str = Field(
        "grpc",
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"
        ),
    )
    otel_metrics_protocol: str = Field(
        "grpc",
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL"
        ),
    )
    fake_step_ms: int = Field(50, validation_alias="MN_FAKE_STEP_MS", ge=0)
    # The core release the in-memory runtime behaves like (mn-fake-core's --release).
    fake_core_release: Literal["1.1", "1.2.5", "1.2.31", "d26bef71"] = Field(
        "1.2.31", validation_alias="MN_FAKE_CORE_RELEASE"
    )

    webhook_allowed_hosts_raw: str | None = Field(
        None, validation_alias="MN_API_WEBHOOK_ALLOWED_HOSTS"
    )
    webhook_insecure_hosts_raw: str | None = Field(
        None, validation_alias="MN_API_WEBHOOK_INSECURE_HOSTS"
    )
    webhook_urls_raw: str | None = Field(None, validation_alias="MN_API_WEBHOOK_URLS")
    webhook_events_raw: str | None = Field(None, validation_alias="MN_API_WEBHOOK_EVENTS")
    webhook_secret: SecretStr | None = Field(None, validation_alias="MN_API_WEBHOOK_SECRET")
    webhook_max_attempts: int = Field(
        8, validation_alias="MN_API_WEBHOOK_MAX_ATTEMPTS", ge=1, le=50
    )
    webhook_retry_base_seconds: float = Field(
        15.0, validation_alias="MN_API_WEBHOOK_RETRY_BASE_SECONDS", gt=0
    )
    webhook_timeout_seconds: float = Field(
        10.0, validation_alias="MN_API_WEBHOOK_TIMEOUT_SECONDS", gt=0, le=300
    )
    webhook_lease_seconds: float = Field(
        60.0, validation_alias="MN_API_WEBHOOK_LEASE_SECONDS", gt=0
    )
    webhook_poll_seconds: float = Field(
        1.0, validation_alias="MN_API_WEBHOOK_POLL_SECONDS", gt=0, le=60
    )
    webhook_retention_seconds: float = Field(
        7 * 86400, validation_alias="MN_API_WEBHOOK_RETENTION_SECONDS", gt=0
    )
    webhook_concurrency: int = Field(
        128, validation_alias="MN_API_WEBHOOK_CONCURRENCY", ge=1, le=4096
    )
    webhook_receiver_concurrency: int = Field(
        4, validation_alias="MN_API_WEBHOOK_RECEIVER_CONCURRENCY", ge=1, le=4096
    )

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

    @field_validator(
        "otel_traces_exporter",
        "otel_metrics_exporter",
        "otel_traces_protocol",
        "otel_metrics_protocol",
        mode="before",
    )
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("rate_limit")
    @classmethod
    def _rate_parses(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not _RATE.match(value.strip()):
            raise ValueError("must look like 50/second, 100/minute or 1000 per hour")
        return value.strip()

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value.startswith(CLUSTER_SCHEME):
            _nodes(value[len(CLUSTER_SCHEME) :].rpartition("@")[2].rstrip("/"))
        elif not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+cluster://")
        return value

    @field_validator("redis_sentinels_raw")
    @classmethod
    def _sentinels_parse(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        _nodes(value)
        return value.strip()

    @model_validator(mode="after")
    def _otlp_over_grpc(self) -> Settings:
        for signal, protocol in (
            ("TRACES", self.otel_traces_protocol),
            ("METRICS", self.otel_metrics_protocol),
        ):
            if protocol != "grpc":
                raise ValueError(
                    f"OTEL_EXPORTER_OTLP_PROTOCOL (or OTEL_EXPORTER_OTLP_{signal}_PROTOCOL) "
                    f"is {protocol!r}: only grpc is supported"
                )
        return self

    @model_validator(mode="after")
    def _one_redis(self) -> Settings:
        if self.redis_sentinels_raw and self.redis_url:
            raise ValueError("set MN_REDIS_URL or MN_REDIS_SENTINELS, not both")
        if bool(self.redis_sentinels_raw) != bool(self.redis_sentinel_master):
            raise ValueError("MN_REDIS_SENTINELS and MN_REDIS_SENTINEL_MASTER go together")
        return self

    @model_validator(mode="after")
    def _prod_needs_token(self) -> Settings:
        if self.env == "prod" and not self.api_tokens:
            raise ValueError("MN_API_TOKEN is required when MN_ENV=prod")
        return self

    @model_validator(mode="after")
    def _tokens_as_meant(self) -> Settings:
        given = (("MN_API_TOKEN", self.api_token), ("MN_API_READ_TOKENS", self.read_tokens_raw))
        for name, value in given:
            if value is not None and not _split(value) and self.api_auth != "off":
                raise ValueError(
                    f"{name} is set but empty: give a token, or set MN_API_AUTH=off to serve "
                    "without authentication"
                )
        if self.api_auth == "on" and not self.auth_enabled:
            raise ValueError("MN_API_AUTH=on needs MN_API_TOKEN or MN_API_READ_TOKENS")
        if self.api_auth == "off" and self.auth_enabled:
            raise ValueError("MN_API_AUTH=off contradicts the tokens that are set")
        return self

    @model_validator(mode="after")
    def _webhooks_complete(self) -> Settings:
        try:
            self.webhook_keys  # noqa: B018 - read once to check every secret
        except ValueError as problem:
            raise ValueError(f"MN_API_WEBHOOK_SECRET: {problem}") from None
        if not self.webhook_allowed_hosts:
            if self.webhook_urls:
                raise ValueError("MN_API_WEBHOOK_URLS needs MN_API_WEBHOOK_ALLOWED_HOSTS")
            return self
        if not self.webhook_keys:
            raise ValueError(
                "MN_API_WEBHOOK_SECRET (one or more whsec_<base64> secrets) is required once "
                "MN_API_WEBHOOK_ALLOWED_HOSTS allows any host"
            )
        if self.webhook_lease_seconds <= self.webhook_timeout_seconds:
            raise ValueError("MN_API_WEBHOOK_LEASE_SECONDS must exceed the webhook timeout")
        unknown = sorted(set(self.webhook_events) - SUBSCRIBABLE_EVENTS)
        if unknown:
            raise ValueError(f"MN_API_WEBHOOK_EVENTS names an unknown event: {unknown[0]}")
        policy = self.webhook_policy
        for url in self.webhook_urls:
            try:
                policy.check_url(url)
            except WebhookUrlNotAllowedError as refusal:
                raise ValueError(f"MN_API_WEBHOOK_URLS: {refusal.detail}") from None
        return self

    @model_validator(mode="after")
    def _launch_folders_exist(self) -> Settings:
        named = [("MN_API_BLUEPRINT_DIR", self.blueprint_dir)] if self.blueprint_dir else []
        named += [("MN_API_LAUNCH_ROOTS", root) for root in self.launch_roots]
        for variable, folder in named:
            if not folder.is_absolute() or not folder.is_dir():
                raise ValueError(f"{variable} names no folder: give absolute paths of folders")
        return self

    @model_validator(mode="after")
    def _proxies_are_addresses(self) -> Settings:
        for entry in self.trusted_proxies:
            if entry == "*":
                continue
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(
                    f"MN_API_TRUSTED_PROXIES: {entry[:80]!r} is neither an IP address nor a "
                    "network (like 10.0.0.0/8)"
                ) from None
        return self

    @model_validator(mode="after")
    def _tls_files_exist(self) -> Settings:
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

    @property
    def api_tokens(self) -> tuple[str, ...]:
        """Admin tokens; several may be valid at once while one is being rotated."""
        return _split(self.api_token)

    @property
    def read_tokens(self) -> tuple[str, ...]:
        return _split(self.read_tokens_raw)

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_tokens or self.read_tokens)

    @property
    def cors_allow_origins(self) -> tuple[str, ...]:
        return _split(self.cors_allow_origins_raw)

    @property
    def launch_roots(self) -> tuple[Path, ...]:
        return tuple(Path(root) for root in _split(self.launch_roots_raw))

    @property
    def trusted_proxies(self) -> tuple[str, ...]:
        return _split(self.trusted_proxies_raw)

    @property
    def webhook_allowed_hosts(self) -> tuple[str, ...]:
        return _split(self.webhook_allowed_hosts_raw)

    @property
    def webhook_insecure_hosts(self) -> tuple[str, ...]:
        return _split(self.webhook_insecure_hosts_raw)

    @property
    def webhook_keys(self) -> tuple[bytes, ...]:
        """The signing keys, the newest first (checked when the settings are read)."""
        if self.webhook_secret is None:
            return ()
        return parse_secrets(self.webhook_secret.get_secret_value())

    @property
    def webhook_policy(self) -> UrlPolicy:
        return UrlPolicy.of(self.webhook_allowed_hosts, self.webhook_insecure_hosts)

    @property
    def webhook_urls(self) -> tuple[str, ...]:
        return _split(self.webhook_urls_raw)

    @property
    def webhook_events(self) -> tuple[str, ...]:
        return _split(self.webhook_events_raw)

    @property
    def grpc_target(self) -> str:
        return self.grpc_target_raw or self.core_grpc_target or f"{self.core_host}:50051"

    @property
    def redis(self) -> RedisTarget | None:
        """Where the shared state lives, or None when each process keeps its own."""
        if self.redis_sentinels_raw and self.redis_sentinel_master:
            password = self.redis_password
            return RedisTarget(
                "sentinel",
                nodes=_nodes(self.redis_sentinels_raw),
                master=self.redis_sentinel_master,
                password=password.get_secret_value() if password else None,
            )
        if self.redis_url and self.redis_url.startswith(CLUSTER_SCHEME):
            credentials, _, hosts = self.redis_url[len(CLUSTER_SCHEME) :].rpartition("@")
            username, _, password = credentials.partition(":")
            return RedisTarget(
                "cluster",
                nodes=_nodes(hosts.rstrip("/")),
                url=self.redis_url,
                username=unquote(username) or None,
                password=unquote(password) or None,
            )
        if self.redis_url:
            return RedisTarget("server", url=self.redis_url)
        return None

    @property
    def traces(self) -> bool:
        """Whether the OTEL_* variables ask for traces over OTLP."""
        exporting = self.otel_traces_exporter != "none"
        return bool(self.otel_traces_endpoint and exporting and not self.otel_sdk_disabled)

    @property
    def otlp_metrics(self) -> bool:
        """Whether the OTEL_* variables ask for metrics over OTLP."""
        exporting = self.otel_metrics_exporter != "none"
        return bool(self.otel_metrics_endpoint and exporting and not self.otel_sdk_disabled)

    @property
    def log_file(self) -> Path:
        return Path(self.log_path).expanduser()


def describe_error(err: ValidationError) -> str:
    """One line naming the variable that stopped startup and why."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "configuration"
    message = first.get("msg", "invalid value").removeprefix("Value error, ")
    if where == "configuration" or not where.startswith(("MN_", "OTEL_")):
        return f"invalid configuration: {message}"
    return f"invalid configuration: {where}: {message}"


# Variables read by the tools around the gateway (tests, benchmarks), not by its settings.
_OTHER_VARIABLES = frozenset({"MN_REALCORE_DIR", "MN_TEST_CACHE"})


def known_variables() -> frozenset[str]:
    """Every MN_ environment variable a setting reads."""
    names: set[str] = set()
    for spec in Settings.model_fields.values():
        alias = spec.validation_alias
        if isinstance(alias, str):
            names.add(alias)
        elif isinstance(alias, AliasChoices):
            names.update(choice for choice in alias.choices if isinstance(choice, str))
    return frozenset(name for name in names if name.startswith("MN_")) | _OTHER_VARIABLES


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """One line for each MN_ variable no setting reads, naming the closest one that does:
    a misspelt variable would otherwise be ignored without a word."""
    known = known_variables()
    lines = []
    for name in sorted(environ):
        if not name.startswith("MN_") or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        hint = f" (did you mean {close[0]}?)" if close else ""
        lines.append(f"{name} is not a setting and is ignored{hint}")
    return lines


def startup_summary(settings: Settings) -> str:
    """One line saying what the gateway serves and talks to, without any secret."""
    if settings.runtime == "memory":
        runtime = f"in-memory runtime (core release {settings.fake_core_release} simulated)"
    else:
        tls = ", TLS" if settings.grpc_tls_ca_file is not None else ""
        runtime = f"core at {settings.grpc_target} over gRPC{tls}"
    target = settings.redis
    if target is None:
        state = "shared state on this host (SQLite and local files)"
    elif target.mode == "server":
        state = f"shared state in Redis at {target.where()}"
    else:
        state = f"shared state in Redis {target.where()}"
    auth = "authentication on" if settings.auth_enabled else "authentication OFF"
    if settings.trusted_proxies:
        auth += f"; forwarded addresses believed from {','.join(settings.trusted_proxies)}"
    where = f"http://{settings.api_host}:{settings.api_port}"
    return f"mn-api {where}: {runtime}; {state}; {auth}"


def _without_credentials(url: str) -> str:
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    _credentials, at, host = rest.rpartition("@")
    return f"{scheme}://{host}" if at else url
