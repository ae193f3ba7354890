"""BundleStore: one contract, for the disk store and for Redis (a server, a cluster,
Sentinel)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mn_api.adapters.bundles.filesystem import FilesystemBundleStore
from mn_api.adapters.bundles.redis import RedisBundleStore
from mn_api.application.ports import BundleStore
from mn_api.domain.bundle_rules import Limits
from mn_api.domain.errors import BundleNotFoundError, BundleRejectedError
from tests.contract.conftest import REDIS_KINDS, redis_client, replicas_of
from tests.support import make_zip

LIMITS = Limits(max_files=50, max_bytes=1 << 20)
MANIFEST = b'{"graph_id": "g", "nodes": []}'


@pytest.fixture(params=["disk", *REDIS_KINDS])
def bundles(request: pytest.FixtureRequest, tmp_path: Path) -> BundleStore:
    if request.param == "disk":
        return FilesystemBundleStore(tmp_path / "bundles", LIMITS, ttl_seconds=60)
    client = redis_client(request, request.param)
    return RedisBundleStore(
        client, tmp_path / "bundles", LIMITS, ttl_seconds=60, replicas=replicas_of(request.param)
    )


async def test_a_saved_bundle_loads_back_whole(bundles: BundleStore, tmp_path: Path) -> None:
    archive = make_zip(
        {
            "job/manifest.json": MANIFEST,
            "job/payloads/a/b.txt": "hello",
            "job/payloads/c.bin": b"\x00\xff",
        }
    )
    stored = await bundles.save(io.BytesIO(archive))
    assert stored.manifest == {"graph_id": "g", "nodes": []}
    assert (stored.files, stored.bytes) == (3, len(MANIFEST) + 7)
    contents = await bundles.load(stored.bundle_id)
    assert contents.manifest_json.encode() == MANIFEST
    assert contents.payloads == {"a/b.txt": b"hello", "c.bin": b"\x00\xff"}
    assert [p.name for p in (tmp_path / "bundles").iterdir() if p.name.startswith(".staging")] == []


async def test_refused_bundles_leave_nothing(bundles: BundleStore, tmp_path: Path) -> None:
    with pytest.raises(BundleRejectedError):
        await bundles.save(io.BytesIO(make_zip({"manifest.json": MANIFEST, "../x": "y"})))
    root = tmp_path / "bundles"
    assert not root.exists() or list(root.iterdir()) == []


async def test_unknown_bundles_are_not_found(bundles: BundleStore) -> None:
    for bundle_id in ("bnd_" + "a" * 32, "../../etc/passwd", ""):
        with pytest.raises(BundleNotFoundError):
            await bundles.load(bundle_id)
