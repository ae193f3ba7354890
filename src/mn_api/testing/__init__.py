"""A test kit for programs that talk to the gateway or to the core: the simulated core
and the gateway as processes on free loopback ports, the simulated core's control surface,
and (with pytest) fixtures for both.

    from mn_api.testing import FakeCoreProcess, GatewayProcess

    with FakeCoreProcess(release="1.2.31") as core, GatewayProcess(core) as gateway:
        core.control.fail_next("SubmitJob", code="UNAVAILABLE")
        httpx.post(f"{gateway.url}/api/v1/jobs", json=...)   # 503 runtime_unavailable

With pytest the fixtures load by themselves once this package is installed (the
`mn_api` plugin): `mn_fake_core`, `mn_gateway`, `mn_client`, `mn_app_client`; see
`mn_api.testing.plugin`.
"""

from mn_api.testing.control import CoreControl
from mn_api.testing.processes import (
    FakeCoreProcess,
    GatewayProcess,
    InProcessGateway,
    ProcessFailedError,
)

__all__ = [
    "CoreControl",
    "FakeCoreProcess",
    "GatewayProcess",
    "InProcessGateway",
    "ProcessFailedError",
]
