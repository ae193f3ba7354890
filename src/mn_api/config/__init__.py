"""The gateway's settings, read from the environment: one `Settings`, assembled from its
groups (core, shared state, telemetry, webhooks) and the HTTP server's own."""

from __future__ import annotations

import difflib
import ipaddress
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from mn_api.config._common import RedisTarget, _split
from mn_api.config.core import CoreSettings
from mn_api.config.shared_state import SharedStateSettings
from mn_api.config.telemetry import TelemetrySettings
from mn_api.config.webhooks import WebhookSettings
from mn_api.domain.urls import scrub_urls, without_credentials

__all__ = [
    "RedisTarget",
    "Settings",
    "describe_error",
    "known_variables",
    "startup_summary",
    "unknown_variables",
]


class Settings(WebhookSettings, TelemetrySettings, SharedStateSettings, CoreSettings, BaseSettings):
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

    # A built Web UI (a folder with its index.html) served by the gateway itself, same
    # origin as /api. None by default.
    webui_dir: Path | None = Field(None, validation_alias="MN_API_WEBUI_DIR")

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

    # The memory every job history kept in process may take together, watched or not, with
    # its indexes and folds (0: keep none, and read each history from the runtime for each
    # reader), and one history at the most (0: a quarter of the whole; never more than it).
    history_cache_mb: float = Field(64, validation_alias="MN_HISTORY_CACHE_MB", ge=0)

    history_job_cache_mb: float = Field(0, validation_alias="MN_HISTORY_JOB_CACHE_MB", ge=0)

    idempotency_ttl_seconds: float = Field(
        86400, validation_alias="MN_API_IDEMPOTENCY_TTL_SECONDS", gt=0
    )

    # How long the gateway keeps the declared topology of each job it submitted.
    topology_ttl_seconds: float = Field(
        7 * 86400, validation_alias="MN_API_TOPOLOGY_TTL_SECONDS", gt=0
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

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
    def _launch_folders_exist(self) -> Settings:
        named = [("MN_API_BLUEPRINT_DIR", self.blueprint_dir)] if self.blueprint_dir else []
        named += [("MN_API_LAUNCH_ROOTS", root) for root in self.launch_roots]
        for variable, folder in named:
            if not folder.is_absolute() or not folder.is_dir():
                raise ValueError(f"{variable} names no folder: give absolute paths of folders")
        return self

    @model_validator(mode="after")
    def _webui_is_built(self) -> Settings:
        folder = self.webui_dir
        if folder is not None and not (folder.is_absolute() and (folder / "index.html").is_file()):
            raise ValueError(
                "MN_API_WEBUI_DIR names no built Web UI: give the absolute path "
                "of a folder holding its index.html"
            )
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
    def log_file(self) -> Path:
        return Path(self.log_path).expanduser()


def describe_error(err: ValidationError) -> str:
    """One line naming the variable that stopped startup and why."""
    first = err.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "configuration"
    message = scrub_urls(first.get("msg", "invalid value").removeprefix("Value error, "))
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
        addresses = [without_credentials(address) for address in settings.grpc_addresses]
        nodes = (
            f"core at {addresses[0]}"
            if len(addresses) == 1
            else f"core cluster at {', '.join(addresses)} (failing over in that order)"
        )
        authority = (
            f", authority {settings.grpc_authority}" if settings.grpc_authority is not None else ""
        )
        runtime = f"{nodes} over gRPC{tls}{authority}"
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
