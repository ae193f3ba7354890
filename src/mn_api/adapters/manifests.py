"""FileManifestSource: reads a manifest file that the runtime names in a job's details."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from mn_api.application.ports import ManifestSource


class FileManifestSource(ManifestSource):
    """Reads small JSON files only; anything unreadable simply counts as absent."""

    def __init__(self, max_bytes: int = 5 * 1024 * 1024) -> None:
        self._max_bytes = max_bytes

    async def read(self, path: str) -> Mapping[str, Any] | None:
        return await asyncio.to_thread(self._read, path)

    def _read(self, path: str) -> Mapping[str, Any] | None:
        file = Path(path)
        try:
            if file.suffix != ".json" or not file.is_file():
                return None
            if file.stat().st_size > self._max_bytes:
                return None
            value = orjson.loads(file.read_bytes())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, Mapping) else None
