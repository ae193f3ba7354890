"""OpenTelemetry: the standard OTEL_* variables; traces and metrics are exported over
OTLP/gRPC once an endpoint is set for them."""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import (
    AliasChoices,
    BaseModel,
    Field,
    field_validator,
    model_validator,
)


class TelemetrySettings(BaseModel):
    """The OTEL_* variables the gateway reads (the SDK reads the others itself)."""

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

    @model_validator(mode="after")
    def _otlp_over_grpc(self) -> Self:
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
