import pytest

from mn_api.domain.errors import UnsafePayloadPathError
from mn_api.domain.payload_paths import check_payload_path, payload_path_problem


@pytest.mark.parametrize(
    "path",
    ["input.txt", "data/a/b.json", "x" * 255, "/".join(["d" * 200] * 5), "naïve/é.txt", ".hidden"],
)
def test_safe_paths_pass(path: str) -> None:
    assert payload_path_problem(path) is None
    check_payload_path(path)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("", "empty"),
        ("/etc/passwd", "absolute"),
        ("../escape", "'..'"),
        ("a/../../b", "'..'"),
        ("./a", "'.'"),
        ("a/./b", "'.'"),
        ("a//b", "empty segment"),
        ("a/", "empty segment"),
        ("a\\b", "backslash"),
        ("a\x00b", "control"),
        ("a\nb", "control"),
        ("C:/windows", "drive"),
        ("c:x", "drive"),
        ("y" * 256, "segment longer"),
        ("/".join(["z" * 200] * 6), "longer than 1024"),
        ("é" * 128, "segment longer"),
    ],
)
def test_unsafe_paths_are_refused_with_a_reason(path: str, reason: str) -> None:
    problem = payload_path_problem(path)
    assert problem is not None and reason in problem
    with pytest.raises(UnsafePayloadPathError) as raised:
        check_payload_path(path)
    assert raised.value.path == path
