"""An archive's entries are counted from its end record and directory headers before
zipfile reads the directory (it builds an object per entry first, whatever their number)."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from mn_api.adapters.bundles import archive
from mn_api.adapters.bundles.archive import check_entry_count, unpack
from mn_api.domain.bundle_rules import Limits
from mn_api.domain.errors import BundleRejectedError
from tests.support import zip_of_many_entries as many_entries

LIMITS = Limits(max_files=10_000, max_bytes=1 << 30)


@pytest.fixture
def no_zipfile(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("zipfile parsed the directory of an archive it should not see")

    monkeypatch.setattr(archive.zipfile, "ZipFile", refuse)


def test_the_archives_written_here_are_zips_zipfile_reads() -> None:
    for count in (3, 70_000):  # the classic end record, then Zip64
        with zipfile.ZipFile(io.BytesIO(many_entries(count))) as zf:
            assert len(zf.infolist()) == count
    assert len(zipfile.ZipFile(io.BytesIO(many_entries(5, comment=b"hi"))).infolist()) == 5


class CountedReads(io.BytesIO):
    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.read_bytes = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.read_bytes += len(data)
        return data


def test_300000_entries_are_refused_before_zipfile_reads_them(
    tmp_path: Path, no_zipfile: None
) -> None:
    with pytest.raises(BundleRejectedError) as refused:
        unpack(io.BytesIO(many_entries(300_000)), tmp_path / "out", LIMITS)
    assert refused.value.code == "bundle_too_many_files"
    assert not (tmp_path / "out").exists()


def test_the_zip64_end_record_refuses_without_reading_the_directory(no_zipfile: None) -> None:
    # The classic record says 65,535 (within this limit); the Zip64 record says 300,000.
    limits = Limits(max_files=100_000, max_bytes=1 << 30)
    data = CountedReads(many_entries(300_000))
    with pytest.raises(BundleRejectedError) as refused:
        check_entry_count(data, limits)
    assert refused.value.code == "bundle_too_many_files"
    assert data.read_bytes < 70_000  # the tail and the Zip64 records, not 15 MB of headers


def test_an_end_record_that_understates_is_caught_in_the_directory(no_zipfile: None) -> None:
    for stated in (0, 1):
        with pytest.raises(BundleRejectedError) as refused:
            check_entry_count(io.BytesIO(many_entries(20_000, stated=stated)), LIMITS)
        assert refused.value.code == "bundle_too_many_files"


def test_an_archive_within_the_limit_is_left_to_zipfile() -> None:
    for data in (many_entries(10_000), many_entries(10_000, comment=b"c" * 300)):
        check_entry_count(io.BytesIO(data), LIMITS)
    with pytest.raises(BundleRejectedError):
        check_entry_count(io.BytesIO(many_entries(10_001, comment=b"c" * 300)), LIMITS)
    for junk in (b"", b"not a zip at all", b"PK\x05\x06"):
        check_entry_count(io.BytesIO(junk), LIMITS)  # zipfile says what is wrong with it
