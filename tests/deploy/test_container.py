"""deploy/container: the Containerfile's settings, and the helpers the build and the image
run (the image itself is built and probed by `make test-image`)."""

from __future__ import annotations

import importlib.util
import io
import re
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from mn_api.config import known_variables
from tests.deploy.conftest import DEPLOY

CONTAINER = DEPLOY / "container"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, CONTAINER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


target_requirements = _load("target_requirements")
healthcheck = _load("healthcheck")

LOCK = """\
# a comment
--index-url https://example.invalid/simple
async-timeout==5.0.1 ; python_full_version < '3.11.3'
    # via redis
deprecated==1.3.1 ; python_full_version < '3.12'
deprecated==3.0.1 ; python_full_version >= '3.12'
orjson==3.11.0
"""


def _base(path: Path, status: str) -> Path:
    """A base tarball holding only a package database."""
    with tarfile.open(path, mode="w") as archive:
        data = status.encode()
        member = tarfile.TarInfo("./var/lib/dpkg/status")
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))
    return path


def test_the_image_needs_what_its_older_python_marks_and_nothing_else() -> None:
    image = target_requirements.target_environment("3.11.2")
    here = target_requirements.target_environment("3.11.7")
    assert target_requirements.extra_requirements(LOCK, image, here) == ["async-timeout==5.0.1"]
    assert target_requirements.extra_requirements(LOCK, here, here) == []
    assert target_requirements.extra_requirements(LOCK, here, image) == []


def test_the_base_pythons_version_is_read_from_its_package_database(tmp_path: Path) -> None:
    status = (
        "Package: python3.11-minimal\nStatus: install ok installed\n"
        "Version: 3.11.2-6+deb12u6\n\n"
        "Package: python3-minimal\nStatus: install ok installed\nVersion: 3.11.2-1+b1\n"
    )
    base = _base(tmp_path / "base.tar", status)
    assert target_requirements.debian_python_version(base) == "3.11.2"
    without = _base(tmp_path / "other.tar", "Package: tini\nStatus: install ok installed\n")
    with pytest.raises(SystemExit, match="no Python interpreter"):
        target_requirements.debian_python_version(without)


@pytest.mark.parametrize(
    ("host", "port", "url"),
    [
        ("0.0.0.0", "4001", "http://127.0.0.1:4001/api/v1/health"),
        ("::", "8080", "http://127.0.0.1:8080/api/v1/health"),
        ("::1", "4001", "http://[::1]:4001/api/v1/health"),
        ("gateway.internal", "4001", "http://gateway.internal:4001/api/v1/health"),
    ],
)
def test_the_health_check_asks_the_gateway_where_it_listens(host: str, port: str, url: str) -> None:
    assert healthcheck.health_url({"MN_API_HOST": host, "MN_API_PORT": port}) == url


def test_the_health_check_fails_when_nothing_answers(monkeypatch: pytest.MonkeyPatch) -> None:
    from bench._procs import free_port

    monkeypatch.setenv("MN_API_HOST", "127.0.0.1")
    monkeypatch.setenv("MN_API_PORT", str(free_port()))
    assert healthcheck.main() == 1


def test_the_containerfile_serves_on_every_address_as_an_unprivileged_user() -> None:
    text = (CONTAINER / "Containerfile").read_text()
    final = text.rsplit("\nFROM ", 1)[1]
    users = re.findall(r"^USER (\S+)$", final, re.MULTILINE)
    assert users and all(not user.startswith(("0", "root")) for user in users)
    assert re.search(r"^EXPOSE 4001$", final, re.MULTILINE)
    assert re.search(r"^STOPSIGNAL SIGTERM$", final, re.MULTILINE)
    assert re.search(r"^VOLUME /var/lib/mn-api$", final, re.MULTILINE)
    settings = dict(re.findall(r"\b(MN_[A-Z_]+)=(\S+)", final))
    assert settings["MN_API_HOST"] == "0.0.0.0" and settings["MN_API_PORT"] == "4001"
    assert set(settings) <= known_variables()
    # Everything the gateway writes is under the volume.
    for name in ("MN_API_BUNDLE_DIR", "MN_API_LOG_PATH"):
        assert settings[name].startswith("/var/lib/mn-api/")
    # Nothing in the build reaches a package index.
    installs = re.findall(r"pip install[^\n]*(?:\\\n[^\n]*)*", text)
    assert installs and all("--no-index" in line for line in installs)
