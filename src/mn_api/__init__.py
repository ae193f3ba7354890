"""MirrorNeuron API: the HTTP gateway in front of the MirrorNeuron runtime.

Embedding the use cases in another program takes one import:

    from mn_api import SubmitJobCommand, open_gateway

(see `mn_api.embedded`). Those names load on first use, so that `mn-api` and
`mn-fake-core` start without them.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

try:
    __version__ = version("mn-api")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

if TYPE_CHECKING:
    from mn_api.application.use_cases import LaunchRequest, SubmitJobCommand
    from mn_api.config import Settings
    from mn_api.embedded import Services, open_gateway

__all__ = [
    "LaunchRequest",
    "Services",
    "Settings",
    "SubmitJobCommand",
    "__version__",
    "open_gateway",
]

_LAZY = {
    "open_gateway": "mn_api.embedded",
    "Services": "mn_api.embedded",
    "Settings": "mn_api.config",
    "SubmitJobCommand": "mn_api.application.use_cases",
    "LaunchRequest": "mn_api.application.use_cases",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mn_api' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(module), name)
