"""MirrorNeuron API: the HTTP gateway in front of the MirrorNeuron runtime.

Embedding the use cases in another program takes one import:

    from mn_api import SubmitJobCommand, open_gateway

(see `mn_api.embedded`); what the use cases raise is in `mn_api.errors`, the most
caught of it here too. Those names load on first use, so that `mn-api` and
`mn-fake-core` start without them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mn_api._version import __version__

if TYPE_CHECKING:
    from mn_api.application.use_cases import LaunchRequest, SubmitJobCommand
    from mn_api.config import Settings
    from mn_api.embedded import Services, create_app, open_gateway
    from mn_api.errors import (
        DomainError,
        InvalidTransitionError,
        JobNotFoundError,
        ManifestInvalidError,
        NotSupportedError,
        RuntimeTimeoutError,
        RuntimeUnavailableError,
    )

__all__ = [
    "DomainError",
    "InvalidTransitionError",
    "JobNotFoundError",
    "LaunchRequest",
    "ManifestInvalidError",
    "NotSupportedError",
    "RuntimeTimeoutError",
    "RuntimeUnavailableError",
    "Services",
    "Settings",
    "SubmitJobCommand",
    "__version__",
    "create_app",
    "open_gateway",
]

_LAZY = {
    "open_gateway": "mn_api.embedded",
    "create_app": "mn_api.embedded",
    "Services": "mn_api.embedded",
    "Settings": "mn_api.config",
    "SubmitJobCommand": "mn_api.application.use_cases",
    "LaunchRequest": "mn_api.application.use_cases",
}
# The errors most caught, beside the use cases (every one is in mn_api.errors).
_LAZY.update(dict.fromkeys((name for name in __all__ if name.endswith("Error")), "mn_api.errors"))


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mn_api' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
