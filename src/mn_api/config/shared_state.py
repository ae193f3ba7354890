"""Shared state: Redis (one server, a cluster or Sentinel) and the rate limit it carries."""

from __future__ import annotations

from typing import Self
from urllib.parse import unquote

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)

from mn_api.config._common import (
    _RATE,
    CLUSTER_SCHEME,
    RedisTarget,
    _nodes,
)


class SharedStateSettings(BaseModel):
    """Shared state: Redis (one server, a cluster or Sentinel) and the rate limit it carries."""

    rate_limit: str | None = Field(None, validation_alias="MN_API_RATE_LIMIT")

    # One server (redis://, rediss://, unix://) or a cluster (redis+cluster://h1:p1,h2:p2).
    redis_url: str | None = Field(None, validation_alias="MN_REDIS_URL")

    # A primary found through Sentinel: the sentinels (h1:p1,h2:p2,...) and the master's name.
    redis_sentinels_raw: str | None = Field(None, validation_alias="MN_REDIS_SENTINELS")

    redis_sentinel_master: str | None = Field(None, validation_alias="MN_REDIS_SENTINEL_MASTER")

    # The primary's password when it is found through Sentinel (URLs carry their own).
    redis_password: SecretStr | None = Field(None, validation_alias="MN_REDIS_PASSWORD")

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
    def _one_redis(self) -> Self:
        if self.redis_sentinels_raw and self.redis_url:
            raise ValueError("set MN_REDIS_URL or MN_REDIS_SENTINELS, not both")
        if bool(self.redis_sentinels_raw) != bool(self.redis_sentinel_master):
            raise ValueError("MN_REDIS_SENTINELS and MN_REDIS_SENTINEL_MASTER go together")
        return self

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
