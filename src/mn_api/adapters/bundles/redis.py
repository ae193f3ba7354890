"""RedisBundleStore: uploaded bundles kept in Redis, so any replica can submit them."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO

from redis.asyncio import Redis
from redis.exceptions import RedisError

from mn_api.adapters.bundles.archive import Unpacked, read_contents, unpack
from mn_api.adapters.bundles.filesystem import BUNDLE_ID, new_bundle_id
from mn_api.application.ports import BundleContents, BundleStore, StoredBundle
from mn_api.domain.bundle_rules import Limits
from mn_api.domain.errors import BundleNotFoundError, SharedStateUnavailableError

_PREFIX = "mn-api:bundle:"
_MANIFEST = b"manifest"
_PAYLOAD = b"p:"


class RedisBundleStore(BundleStore):
    """Each bundle is one Redis hash (manifest text plus a field per payload) with the
    bundle time to live. Archives are checked and unpacked in a private scratch folder
    that is removed at once, whatever the outcome."""

    def __init__(self, client: Redis, scratch: Path, limits: Limits, ttl_seconds: float) -> None:
        self._redis = client
        self._scratch = Path(scratch)
        self._limits = limits
        self._ttl = ttl_seconds

    async def save(self, archive: BinaryIO) -> StoredBundle:
        bundle_id = new_bundle_id()
        unpacked, contents = await asyncio.to_thread(self._unpack, archive, bundle_id)
        fields = {_MANIFEST: contents.manifest_json.encode()}
        fields.update({_PAYLOAD + k.encode(): v for k, v in contents.payloads.items()})
        key = _PREFIX + bundle_id
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=fields)
                pipe.expire(key, max(int(self._ttl), 1))
                await pipe.execute()
        except RedisError as err:
            raise SharedStateUnavailableError("the bundle store cannot be used") from err
        return StoredBundle(bundle_id, unpacked.manifest, unpacked.files, unpacked.bytes)

    def _unpack(self, archive: BinaryIO, bundle_id: str) -> tuple[Unpacked, BundleContents]:
        self._scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
        folder = Path(tempfile.mkdtemp(prefix=f".staging-{bundle_id}-", dir=self._scratch))
        try:
            unpacked = unpack(archive, folder / "content", self._limits)
            return unpacked, read_contents(folder / "content" / unpacked.prefix)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    async def load(self, bundle_id: str) -> BundleContents:
        if not BUNDLE_ID.match(bundle_id or ""):
            raise BundleNotFoundError(bundle_id)
        try:
            fields = await self._redis.hgetall(_PREFIX + bundle_id)
        except RedisError as err:
            raise SharedStateUnavailableError("the bundle store cannot be used") from err
        if _MANIFEST not in fields:
            raise BundleNotFoundError(bundle_id)
        payloads = {
            name[len(_PAYLOAD) :].decode(): value
            for name, value in fields.items()
            if name.startswith(_PAYLOAD)
        }
        return BundleContents(fields[_MANIFEST].decode(), dict(sorted(payloads.items())))
