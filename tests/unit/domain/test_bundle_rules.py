import stat

import pytest

from mn_api.domain.bundle_rules import (
    ByteBudget,
    Limits,
    check_members,
    manifest_prefix,
    member_problem,
    payload_key,
)
from mn_api.domain.errors import BundleRejectedError

SYMLINK = (stat.S_IFLNK | 0o777) << 16
REGULAR = (stat.S_IFREG | 0o644) << 16


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("/etc/passwd", "bundle_absolute_path"),
        ("C:/x.txt", "bundle_absolute_path"),
        ("../evil", "bundle_path_traversal"),
        ("a/../../evil", "bundle_path_traversal"),
        ("a\\b.txt", "bundle_backslash_path"),
        ("a\x00b", "bundle_invalid_path"),
    ],
)
def test_unsafe_member_names_are_named(name: str, code: str) -> None:
    problem = member_problem(name, REGULAR)
    assert problem is not None and problem.code == code


def test_symlink_members_are_refused() -> None:
    problem = member_problem("payloads/link", SYMLINK)
    assert problem is not None and problem.code == "bundle_symlink"


def test_ordinary_members_pass() -> None:
    assert member_problem("payloads/a/b.txt", REGULAR) is None
    assert member_problem("bundle/", 0) is None


def test_too_many_members_are_refused() -> None:
    members = [(f"f{i}", REGULAR) for i in range(4)]
    check_members(members[:3], Limits(max_files=3, max_bytes=10))
    with pytest.raises(BundleRejectedError) as raised:
        check_members(members, Limits(max_files=3, max_bytes=10))
    assert raised.value.code == "bundle_too_many_files"


def test_manifest_at_root_or_in_single_top_folder() -> None:
    assert manifest_prefix(["manifest.json", "payloads/a"]) == ""
    assert manifest_prefix(["job/", "job/manifest.json", "job/payloads/a"]) == "job/"


@pytest.mark.parametrize(
    "names",
    [
        ["payloads/a"],
        ["a/manifest.json", "b/other"],
        ["a/b/manifest.json"],
        [],
    ],
)
def test_manifest_elsewhere_is_missing(names: list[str]) -> None:
    with pytest.raises(BundleRejectedError) as raised:
        manifest_prefix(names)
    assert raised.value.code == "bundle_manifest_missing"


def test_payload_keys_are_relative_to_the_payloads_folder() -> None:
    assert payload_key("job/payloads/in/a.txt", "job/") == "in/a.txt"
    assert payload_key("job/manifest.json", "job/") is None
    assert payload_key("job/payloads/dir/", "job/") is None


def test_byte_budget_counts_what_was_written() -> None:
    budget = ByteBudget(Limits(max_files=10, max_bytes=10))
    budget.spend(6)
    budget.spend(4)
    with pytest.raises(BundleRejectedError) as raised:
        budget.spend(1)
    assert raised.value.code == "bundle_too_large"
