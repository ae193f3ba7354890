"""RedisBundleStore: uploaded bundles kept in Redis, so any replica can submit them."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import BinaryIO

from redis.exceptions import RedisError

from mn_api.adapters.bundles.archive import Unpacked, read_contents, unpack
from mn_api.adapters.bundles.filesystem import (
    BUNDLE_ID,
    new_bundle_id,
    remove_abandoned_staging,
    storage_error,
)
from mn_api.adapters.redis_client import RedisClient, acknowledged
from mn_api.application.ports import BundleContents, BundleStore, StoredBundle
from mn_api.domain.bundle_rules import Limits
from mn_api.domain.errors import (
    BundleNotFoundError,
    InsufficientStorageError,
    SharedStateUnavailableError,
)

_PREFIX = "mn-api:bundle:"
_MANIFEST = b"manifest"
_PAYLOAD = b"p:"
# Every kept bundle's size, scored by when it expires: what the quota counts.
_SIZES = "mn-api:bundle-sizes"
# Forget expired sizes, then take room for the new bundle only if the quota allows it.
_RESERVE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local used = 0
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  used = used + tonumber(string.match(member, ':(%d+)$'))
end
if used + tonumber(ARGV[4]) > tonumber(ARGV[5]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[3] .. ':' .. ARGV[4])
return 1
"""


# The bundle's hash and its expiry in one step: never a bundle that outlives its time.
_KEEP = """
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
redis.call('PEXPIRE', KEYS[1], ARGV[1])
return 1
"""


def _flat(fields: dict[bytes, bytes]) -> list[bytes]:
    return [part for pair in fields.items() for part in pair]


class RedisBundleStore(BundleStore):
    """Each bundle is one Redis hash (manifest text plus a field per payload) with the
    bundle time to live. Archives are checked and unpacked in a private scratch folder
    that is removed at once, whatever the outcome."""

    def __init__(
        self,
        client: RedisClient,
        scratch: Path,
        limits: Limits,
        ttl_seconds: float,
        quota_bytes: int | None = None,
        replicas: int = 0,
    ) -> None:
        self._redis = client
        self._keep = client.register_script(_KEEP)
        self._replicas = replicas
        self._scratch = Path(scratch)
        self._limits = limits
        self._ttl = ttl_seconds
        self._quota = quota_bytes
        remove_abandoned_staging(self._scratch)

    async def save(self, archive: BinaryIO) -> StoredBundle:
        bundle_id = new_bundle_id()
        unpacked, contents = await asyncio.to_thread(self._unpack, archive, bundle_id)
        fields = {_MANIFEST: contents.manifest_json.encode()}
        fields.update({_PAYLOAD + k.encode(): v for k, v in contents.payloads.items()})
        key = _PREFIX + bundle_id
        try:
            if self._quota is not None:
                now = time.time()
                reserved = await self._redis.eval(
                    _RESERVE,
                    1,
                    _SIZES,
                    now,
                    now + self._ttl,
                    bundle_id,
                    unpacked.bytes,
                    self._quota,
                )
                if not reserved:
                    raise InsufficientStorageError(
                        f"the bundle store's quota of {self._quota} bytes is used up; "
                        "bundles are removed when they expire"
                    )
            args = [max(int(self._ttl * 1000), 1), *_flat(fields)]
            await acknowledged(
                self._redis,
                self._replicas,
                lambda c: self._keep(keys=[key], args=args, client=c),
            )
        except RedisError as err:
            raise SharedStateUnavailableError("the bundle store cannot be used") from err
        return StoredBundle(bundle_id, unpacked.manifest, unpacked.files, unpacked.bytes)

    def _unpack(self, archive: BinaryIO, bundle_id: str) -> tuple[Unpacked, BundleContents]:
        try:
            self._scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
            folder = Path(
                tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-{bundle_id}-", dir=self._scratch)
            )
        except OSError as err:
            raise storage_error(err, "bundle scratch folder") from err
        try:
            unpacked = unpack(archive, folder / "content", self._limits)
            return unpacked, read_contents(folder / "content" / unpacked.prefix)
        except OSError as err:
            raise storage_error(err, "bundle scratch folder") from err
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

    async def purge(self) -> int:
        """Bundles expire with their keys; abandoned scratch folders are removed here."""
        await asyncio.to_thread(remove_abandoned_staging, self._scratch)
        return 0
