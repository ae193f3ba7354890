"""MirrorNeuron API: the HTTP gateway in front of the MirrorNeuron runtime."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mn-api")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
