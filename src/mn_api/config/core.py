"""The runtime: the in-memory one or a core over gRPC, with its credentials and TLS."""

from __future__ import annotations

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

    fake_step_ms: int = Field(50, validation_alias="MN_FAKE_STEP_MS", ge=0)

    # The core release the in-memory runtime behaves like (mn-fake-core's --release).
    fake_core_release: Literal["1.1", "1.2.5", "1.2.31", "d26bef71"] = Field(
        "1.2.31", validation_alias="MN_FAKE_CORE_RELEASE"
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

    @property
    def grpc_target(self) -> str:
        return self.grpc_target_raw or self.core_grpc_target or f"{self.core_host}:50051"
