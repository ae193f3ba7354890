"""The public embedding entry: one import, one context manager, typed use cases."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import mn_api
from mn_api import Services, Settings, SubmitJobCommand, open_gateway
from mn_api.adapters.memory.runtime import InMemoryRuntime
from mn_api.entrypoints.fake_core import FakeCore
from tests.support import pipeline_manifest

REPOSITORY = Path(__file__).resolve().parents[3]


def test_the_public_names_are_listed_and_typed() -> None:
    assert set(mn_api.__all__) == {
        "LaunchRequest", "Services", "Settings", "SubmitJobCommand", "__version__",
        "create_app", "open_gateway", "DomainError", "InvalidTransitionError",
        "JobNotFoundError", "ManifestInvalidError", "NotSupportedError", "RuntimeTimeoutError",
        "RuntimeUnavailableError",
    }  # fmt: skip
    assert issubclass(mn_api.JobNotFoundError, mn_api.DomainError)
    from mn_api import errors

    exported = {name for name in mn_api.__all__ if name.endswith("Error")}
    assert len(exported) == 7 and exported <= set(errors.__all__)
    for name in mn_api.__all__:
        assert getattr(mn_api, name) is not None
    assert (REPOSITORY / "src" / "mn_api" / "py.typed").is_file()
    with pytest.raises(AttributeError):
        mn_api.Container  # noqa: B018 - not public


def test_a_type_checker_passes_over_the_public_entry_and_the_readme_example(
    tmp_path: Path,
) -> None:
    readme = (REPOSITORY / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    example = tmp_path / "example.py"
    example.write_text(next(b for b in blocks if "open_gateway" in b))
    wrong = tmp_path / "wrong.py"
    wrong.write_text(example.read_text().replace("get_job(ack.job_id)", "get_job(42)"))
    public = [str(REPOSITORY / "src" / "mn_api" / n) for n in ("__init__.py", "embedded.py")]
    mypy = [sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent"]
    checked = subprocess.run([*mypy, *public, str(example)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout
    # And it would see a mistake.
    refused = subprocess.run([*mypy, str(wrong)], capture_output=True, text=True)
    assert refused.returncode == 1 and 'incompatible type "int"' in refused.stdout


async def test_jobs_run_and_everything_is_closed_after_an_error(tmp_path: Path) -> None:
    before = set(asyncio.all_tasks())
    with pytest.raises(RuntimeError, match="the caller's own"):
        async with open_gateway(fake_step_ms=1, bundle_dir=tmp_path / "b") as services:
            assert isinstance(services, Services)
            manifest = orjson.dumps(pipeline_manifest()).decode()
            ack = await services.submit_job(SubmitJobCommand(manifest_json=manifest))
            async with asyncio.timeout(10):
                while (await services.get_job(ack.job_id))["job"]["status"] != "completed":  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            # Lists come back as lists, ready to use.
            assert await services.list_dead_letters(ack.job_id) == []
            dropping = pipeline_manifest(worker={"simulate": {"drop_first": 1}})
            lossy = await services.submit_job(
                SubmitJobCommand(manifest_json=orjson.dumps(dropping).decode())
            )
            async with asyncio.timeout(10):
                while not (letters := await services.list_dead_letters(lossy.job_id)):  # noqa: ASYNC110
                    await asyncio.sleep(0.01)
            assert isinstance(letters, list) and letters[0]["index"] == 0
            raise RuntimeError("the caller's own")
    await asyncio.sleep(0)
    left = {t for t in asyncio.all_tasks() - before if not t.done()}
    assert left == set(), [t.get_name() for t in left]


async def test_settings_are_given_once_and_by_names_that_exist(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="not both"):
        async with open_gateway(Settings(runtime="memory"), fake_step_ms=1):
            pass
    with pytest.raises(TypeError, match=r"no setting is called 'fake_stepms'.*'fake_step_ms'"):
        async with open_gateway(fake_stepms=1):
            pass


async def test_a_core_over_grpc(tmp_path: Path) -> None:
    core = FakeCore(InMemoryRuntime(step_seconds=0.001))
    port = await core.start("127.0.0.1", 0)
    try:
        async with open_gateway(
            runtime="grpc", grpc_target=f"127.0.0.1:{port}", bundle_dir=tmp_path / "b"
        ) as services:
            manifest = orjson.dumps(pipeline_manifest()).decode()
            ack = await services.submit_job(SubmitJobCommand(manifest_json=manifest))
            listing = await services.list_jobs(limit=10)
            assert ack.job_id in orjson.dumps(getattr(listing, "value", listing)).decode()
    finally:
        await core.stop(grace=None)


def test_settings_cannot_change_once_something_was_built_from_them() -> None:
    """The trap of building the runtime before overriding the settings: refused, not a
    gRPC runtime aimed at the default address beside use cases on other settings."""
    from dependency_injector import providers

    from mn_api.container import Container

    container = Container()
    container.settings.override(providers.Object(Settings(runtime="memory")))
    container.settings.override(providers.Object(Settings(runtime="memory")))  # not yet used
    container.core()
    with pytest.raises(RuntimeError, match="already in use"):
        container.settings.override(providers.Object(Settings(runtime="grpc")))
    fresh = Container()
    fresh.get_system_summary()  # built from the environment's settings
    with pytest.raises(RuntimeError, match="already in use"):
        fresh.settings.override(providers.Object(Settings(runtime="memory")))


def _names(folder: Path) -> set[str]:
    return {entry.name for entry in folder.iterdir()}


async def test_state_stays_private_unless_a_folder_is_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    monkeypatch.delenv("MN_API_BUNDLE_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    manifest = orjson.dumps(pipeline_manifest()).decode()
    seen = []
    for _ in range(2):
        async with open_gateway(fake_step_ms=1) as services:
            await services.submit_job(SubmitJobCommand(manifest_json=manifest))
            (folder,) = [name for name in _names(tmp_path) if name.startswith("mn-api-")]
            seen.append(folder)
        assert _names(tmp_path) == set(), "removed on the way out, nothing shared left"
    assert seen[0] != seen[1]
    async with open_gateway(fake_step_ms=1, bundle_dir=tmp_path / "named") as services:
        await services.submit_job(SubmitJobCommand(manifest_json=manifest))
    assert _names(tmp_path) == {"named"}
