"""Helpers shared by the test suites, by what they help with (each module says)."""

# The benchmark's process helpers serve the tests as they are.
from bench._procs import free_port, wait_http

from tests.support.browser import CHROMIUM_FLAGS, chromium, render
from tests.support.fixtures import (
    EPOCH,
    FakeClock,
    check_problem,
    daemon_manifest,
    eventually,
    make_zip,
    pipeline_manifest,
    read_sse,
    settled,
    waiting_manifest,
    zip_of_many_entries,
)
from tests.support.processes import (
    CORE_ADMIN_TOKEN,
    CORE_CREDENTIALS,
    CORE_TOKEN,
    GATEWAY_CORE_ENV,
    TEST_CACHE,
    FakeCoreProcess,
    GatewayProcess,
    OfficialGatewayProcess,
    cached_venv,
    terminate,
)
from tests.support.redis_servers import (
    RedisClusterServers,
    RedisSentinelGroup,
    RedisServer,
)
from tests.support.web import (
    WEBHOOK_SECRET,
    WebhookReceiver,
    asgi_client,
    local_http_server,
    map_resolver,
    scripted_core,
    webhook_secret,
)

__all__ = [
    "CHROMIUM_FLAGS",
    "CORE_ADMIN_TOKEN",
    "CORE_CREDENTIALS",
    "CORE_TOKEN",
    "EPOCH",
    "GATEWAY_CORE_ENV",
    "TEST_CACHE",
    "WEBHOOK_SECRET",
    "FakeClock",
    "FakeCoreProcess",
    "GatewayProcess",
    "OfficialGatewayProcess",
    "RedisClusterServers",
    "RedisSentinelGroup",
    "RedisServer",
    "WebhookReceiver",
    "asgi_client",
    "cached_venv",
    "check_problem",
    "chromium",
    "daemon_manifest",
    "eventually",
    "free_port",
    "local_http_server",
    "make_zip",
    "map_resolver",
    "pipeline_manifest",
    "read_sse",
    "render",
    "scripted_core",
    "settled",
    "terminate",
    "wait_http",
    "waiting_manifest",
    "webhook_secret",
    "zip_of_many_entries",
]
