from pathlib import Path

import pytest
from pydantic import ValidationError

from mn_api.config import Settings, describe_error
from tests.support import WEBHOOK_SECRET


def test_defaults_match_the_seed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MN_ENV", "MN_API_PORT", "MN_RUNTIME", "MN_GRPC_TARGET", "MN_CORE_GRPC_TARGET"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings()
    assert (settings.api_host, settings.api_port, settings.runtime) == ("localhost", 4001, "grpc")
    assert settings.grpc_target == "localhost:50051"
    assert settings.grpc_timeout_seconds == 10
    assert settings.request_size_limit_bytes == 5_242_880
    assert settings.bundle_max_files == 10_000 and settings.bundle_ttl_seconds == 3600
    assert settings.log_file == Path("~/.mn/logs/api.log").expanduser()
    assert not settings.auth_enabled


def test_targets_take_precedence_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MN_CORE_HOST", "core.internal")
    assert Settings().grpc_target == "core.internal:50051"
    monkeypatch.setenv("MN_CORE_GRPC_TARGET", "fallback:1")
    assert Settings().grpc_target == "fallback:1"
    monkeypatch.setenv("MN_GRPC_TARGET", "primary:2")
    assert Settings().grpc_target == "primary:2"


@pytest.mark.parametrize(
    ("target", "addresses"),
    [
        ("core:50051", ["core:50051"]),
        ("core-1:50051, core-2:50051,core-1:50051", ["core-1:50051", "core-2:50051"]),
        ("ipv4:127.0.0.1:1,127.0.0.1:2", ["127.0.0.1:1", "127.0.0.1:2"]),
        ("ipv6:[::1]:1,[::1]:2", ["[::1]:1", "[::1]:2"]),
        ("[::1]:50051", ["[::1]:50051"]),
        ("dns:///core.internal:50051", ["dns:///core.internal:50051"]),
        ("unix:/run/core.sock", ["unix:/run/core.sock"]),
    ],
)
def test_several_core_nodes_are_named_one_channel_each(
    monkeypatch: pytest.MonkeyPatch, target: str, addresses: list[str]
) -> None:
    monkeypatch.setenv("MN_GRPC_TARGET", target)
    assert Settings().grpc_addresses == addresses


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [
        ("MN_GRPC_TARGET", "core", "'core' is not host:port"),
        ("MN_GRPC_TARGET", "a:1,,b:2", "'' is not host:port"),
        ("MN_GRPC_TARGET", "ipv4:core:1", "not an IPv4 address"),
        ("MN_GRPC_TARGET", "dns:a:1,b:2", "names one target"),
        ("MN_GRPC_TARGET", "a:70000", "'a:70000' is not host:port"),
        ("MN_GRPC_AUTHORITY", "a:1,b:2", "one host or host:port"),
        ("MN_GRPC_AUTHORITY", "https://core", "one host or host:port"),
    ],
)
def test_core_addresses_that_cannot_be_read_are_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, named: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert named in describe_error(caught.value)


def test_start_up_names_every_core_node_and_the_authority() -> None:
    from mn_api.config import startup_summary

    settings = Settings(
        runtime="grpc", grpc_target_raw="ipv4:10.0.0.1:5,10.0.0.2:5", grpc_authority="core"
    )
    assert (
        "core cluster at 10.0.0.1:5, 10.0.0.2:5 (failing over in that order) over gRPC, "
        "authority core;" in startup_summary(settings)
    )


def test_a_simulated_cluster_needs_a_release_that_has_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MN_FAKE_CORE_NODES", "3")
    assert Settings().fake_core_nodes == 3
    monkeypatch.setenv("MN_FAKE_CORE_RELEASE", "1.1")
    with pytest.raises(ValidationError):
        Settings()


@pytest.mark.parametrize("value", ["0", "none", "None", ""])
def test_timeout_can_be_switched_off(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("MN_GRPC_TIMEOUT_SECONDS", value)
    assert Settings().grpc_timeout_seconds is None


def test_tokens_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MN_API_TOKEN", " one, two ,")
    monkeypatch.setenv("MN_API_READ_TOKENS", "r1")
    settings = Settings()
    assert settings.api_tokens == ("one", "two") and settings.read_tokens == ("r1",)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MN_API_PORT", "http"),
        ("MN_API_PORT", "70000"),
        ("MN_RUNTIME", "docker"),
        ("MN_LOG_FORMAT", "xml"),
        ("MN_API_REQUEST_SIZE_LIMIT_BYTES", "-1"),
        ("MN_GRPC_TIMEOUT_SECONDS", "-3"),
        ("MN_ENV", "staging"),
    ],
)
def test_a_bad_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    line = describe_error(raised.value)
    assert name in line and "\n" not in line


def test_prod_refuses_to_start_without_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MN_ENV", "prod")
    monkeypatch.delenv("MN_API_TOKEN", raising=False)
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert describe_error(raised.value) == (
        "invalid configuration: MN_API_TOKEN is required when MN_ENV=prod"
    )
    monkeypatch.setenv("MN_API_TOKEN", "t")
    assert Settings().env == "prod"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MN_API_WEBHOOK_URLS": "https://hooks.example.com/"}, "needs MN_API_WEBHOOK_ALLOWED"),
        ({"MN_API_WEBHOOK_ALLOWED_HOSTS": "hooks.example.com"}, "MN_API_WEBHOOK_SECRET"),
        (
            {"MN_API_WEBHOOK_ALLOWED_HOSTS": "hooks.example.com", "MN_API_WEBHOOK_SECRET": "short"},
            "MN_API_WEBHOOK_SECRET: secret 1 does not start with whsec_",
        ),
        (
            {
                "MN_API_WEBHOOK_ALLOWED_HOSTS": "hooks.example.com",
                "MN_API_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "MN_API_WEBHOOK_URLS": "http://hooks.example.com/plain",
            },
            "MN_API_WEBHOOK_URLS: only https",
        ),
        (
            {
                "MN_API_WEBHOOK_ALLOWED_HOSTS": "hooks.example.com",
                "MN_API_WEBHOOK_SECRET": WEBHOOK_SECRET,
                "MN_API_WEBHOOK_EVENTS": "job_completed,job_exploded",
            },
            "unknown event: job_exploded",
        ),
        ({"MN_REDIS_URL": "http://cache"}, "MN_REDIS_URL: must start with"),
        ({"MN_REDIS_URL": "redis+cluster://h1:7000,h2"}, "'h2' is not host:port"),
        ({"MN_REDIS_URL": "redis+cluster://"}, "names no host:port"),
        ({"MN_REDIS_SENTINELS": "s1:99999", "MN_REDIS_SENTINEL_MASTER": "m"}, "not host:port"),
        ({"MN_REDIS_SENTINELS": "s1:26379"}, "go together"),
        (
            {
                "MN_REDIS_URL": "redis://cache",
                "MN_REDIS_SENTINELS": "s1:26379",
                "MN_REDIS_SENTINEL_MASTER": "m",
            },
            "not both",
        ),
    ],
)
def test_settings_that_cannot_work_stop_startup(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert message in describe_error(caught.value)


def test_webhook_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MN_API_WEBHOOK_ALLOWED_HOSTS", "hooks.example.com, *.corp.example")
    monkeypatch.setenv("MN_API_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("MN_API_WEBHOOK_URLS", "https://hooks.example.com/a,https://b.corp.example/")
    settings = Settings()
    assert settings.webhook_urls == ("https://hooks.example.com/a", "https://b.corp.example/")
    assert settings.webhook_policy.allows_host("deep.b.corp.example")
    assert settings.webhook_max_attempts == 8


def test_the_memory_runtime_follows_the_chosen_core_release(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mn_api.container import Container

    monkeypatch.delenv("MN_FAKE_CORE_RELEASE", raising=False)
    assert Settings().fake_core_release == "1.2.31"
    monkeypatch.setenv("MN_FAKE_CORE_RELEASE", "1.1")
    monkeypatch.setenv("MN_RUNTIME", "memory")
    container = Container()
    assert container.core().release.name == "1.1"
    monkeypatch.setenv("MN_FAKE_CORE_RELEASE", "2.0")
    with pytest.raises(ValidationError) as raised:
        Settings()
    assert "MN_FAKE_CORE_RELEASE" in describe_error(raised.value)


def test_shared_state_is_one_server_a_cluster_or_a_primary_behind_sentinels(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert Settings().redis is None
    monkeypatch.setenv("MN_REDIS_URL", "redis://cache:6380/2")
    server = Settings().redis
    assert server is not None and (server.mode, server.url) == ("server", "redis://cache:6380/2")

    monkeypatch.setenv("MN_REDIS_URL", "redis+cluster://app:s%40cret@h1:7000,[::1]:7001/")
    cluster = Settings().redis
    assert cluster is not None and cluster.mode == "cluster"
    assert cluster.nodes == (("h1", 7000), ("::1", 7001))
    assert (cluster.username, cluster.password) == ("app", "s@cret")
    assert "s@cret" not in repr(cluster)

    monkeypatch.delenv("MN_REDIS_URL")
    monkeypatch.setenv("MN_REDIS_SENTINELS", "s1:26379, s2:26380")
    monkeypatch.setenv("MN_REDIS_SENTINEL_MASTER", "primary")
    monkeypatch.setenv("MN_REDIS_PASSWORD", "pw")
    sentinel = Settings().redis
    assert sentinel is not None and sentinel.mode == "sentinel"
    assert sentinel.nodes == (("s1", 26379), ("s2", 26380))
    assert (sentinel.master, sentinel.password) == ("primary", "pw")


def test_traces_and_metrics_follow_the_standard_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def exported() -> tuple[bool, bool]:
        settings = Settings()
        return settings.traces, settings.otlp_metrics

    assert exported() == (False, False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317")
    assert exported() == (True, True)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert exported() == (False, True)
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "NONE")
    assert exported() == (False, False)
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")
    monkeypatch.delenv("OTEL_METRICS_EXPORTER")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert exported() == (False, False)
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://collector:4317")
    assert exported() == (False, True)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    with pytest.raises(ValidationError) as err:
        Settings()
    assert describe_error(err.value) == (
        "invalid configuration: OTEL_EXPORTER_OTLP_PROTOCOL (or "
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL) is 'http/protobuf': only grpc is supported"
    )


def test_without_the_variables_no_tracing_code_is_loaded(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    # redis-py itself imports parts of the OpenTelemetry SDK when it is installed; what
    # the gateway would load (instrumentations, exporter, a tracer provider) stays out.
    probe = (
        "import sys\n"
        "from opentelemetry import metrics, trace\n"
        "from mn_api.entrypoints.http import create_app\n"
        "create_app()\n"
        "ours = ('opentelemetry.instrumentation', 'opentelemetry.exporter',"
        " 'opentelemetry.sdk.trace', 'mn_api.entrypoints.otlp')\n"
        "print([m for m in sys.modules if m.startswith(ours)])\n"
        "print(type(trace.get_tracer_provider()).__name__)\n"
        "print(type(metrics.get_meter_provider()).__name__)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MN_", "OTEL_"))}
    env.update(MN_RUNTIME="memory", MN_API_LOG_PATH=str(tmp_path / "api.log"))
    answer = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    )
    assert answer.stdout.split() == ["[]", "ProxyTracerProvider", "_ProxyMeterProvider"]


def test_the_startup_line_says_what_the_gateway_serves_and_talks_to() -> None:
    from mn_api.config import startup_summary

    memory = Settings(runtime="memory", fake_core_release="d26bef71", api_port=4002)
    assert startup_summary(memory) == (
        "mn-api http://localhost:4002: in-memory runtime (core release d26bef71 simulated); "
        "shared state on this host (SQLite and local files); authentication OFF"
    )
    grpc = Settings(
        runtime="grpc",
        grpc_target_raw="core.internal:50051",
        redis_url="redis://user:s3cret@cache.internal:6379/0",
        api_token="t0ken",
    )
    line = startup_summary(grpc)
    assert line.endswith(
        "core at core.internal:50051 over gRPC; shared state in Redis at "
        "redis://cache.internal:6379/0; authentication on"
    )
    assert "s3cret" not in line and "t0ken" not in line
    cluster = Settings(redis_url="redis+cluster://:pw@a:7000,b:7001")
    assert "shared state in Redis cluster a:7000,b:7001" in startup_summary(cluster)
    assert "pw" not in startup_summary(cluster).split("cluster", 1)[1]


@pytest.mark.parametrize("variable", ["MN_API_TOKEN", "MN_API_READ_TOKENS"])
def test_an_empty_token_is_a_mistake_unless_auth_is_said_to_be_off(
    variable: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, " , ")
    with pytest.raises(ValidationError, match=f"{variable} is set but empty"):
        Settings()
    monkeypatch.setenv("MN_API_AUTH", "off")
    assert Settings().auth_enabled is False
    monkeypatch.setenv(variable, "t0ken")
    with pytest.raises(ValidationError, match="MN_API_AUTH=off contradicts"):
        Settings()
    monkeypatch.setenv("MN_API_AUTH", "on")
    assert Settings().auth_enabled is True
    monkeypatch.delenv(variable)
    with pytest.raises(ValidationError, match="MN_API_AUTH=on needs"):
        Settings()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:s3cret@cache:6379/0", "redis://cache:6379/0"),
        ("redis://cache:6379/0?password=s3cret", "redis://cache:6379/0"),
        ("redis://cache:6379/0?db=2&Password=s3cret&ssl=no", "redis://cache:6379/0?db=2&ssl=no"),
        ("rediss://:s3cret@cache:6380?token=s3cret", "rediss://cache:6380"),
        ("unix:///run/redis.sock?password=s3cret&db=1", "unix:///run/redis.sock?db=1"),
    ],
)
def test_a_redis_url_is_shown_without_its_secrets_in_any_form(url: str, shown: str) -> None:
    from mn_api.config import startup_summary

    settings = Settings(runtime="memory", redis_url=url)
    assert settings.redis is not None and settings.redis.where() == shown
    assert "s3cret" not in startup_summary(settings)
