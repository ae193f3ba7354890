"""The installed distribution's version, in a module of its own so that every layer can
read it without importing the package's public facade."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mn-api")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
