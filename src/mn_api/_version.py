"""The installed distribution's version, in a module of its own so that every layer can
read it without importing the package's public facade."""

from importlib.metadata import PackageNotFoundError, version

# The distribution the package is installed as (the commands stay mn-api and mn-fake-core).
DISTRIBUTION = "mirrorneuron-gateway"

try:
    __version__ = version(DISTRIBUTION)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
