"""The HTTP API (FastAPI)."""

from mn_api.entrypoints.http.app import create_app

__all__ = ["create_app"]
