"""The README's example of using the use cases without HTTP really runs."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "README.md"


def test_the_embedded_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    example = next(b for b in blocks if "open_gateway" in b)
    result = subprocess.run(
        [sys.executable, "-c", example], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "in->out:reading" in result.stdout


def _d26bef71_sample() -> dict:
    import orjson

    blocks = re.findall(r"```json\n(.*?)```", README.read_text(), re.S)
    return orjson.loads(next(b for b in blocks if "complete_job" in b))


async def _ends(manifest: dict) -> dict:
    import asyncio

    import orjson

    from mn_api import SubmitJobCommand, open_gateway

    async with open_gateway(fake_core_release="d26bef71", fake_step_ms=1) as services:
        ack = await services.submit_job(
            SubmitJobCommand(manifest_json=orjson.dumps(manifest).decode())
        )
        async with asyncio.timeout(10):
            unfinished = ("pending", "running")
            while (job := await services.get_job(ack.job_id))["job"]["status"] in unfinished:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    return job


async def test_the_generation_a_sample_completes_on_its_profile_and_fails_where_told() -> None:
    manifest = _d26bef71_sample()
    completed = await _ends(manifest)
    assert completed["job"]["status"] == "completed"
    assert completed["job"]["result"]["agent_id"] == "worker"

    manifest["nodes"][1]["config"]["simulate"] = {"fail": True}
    failed = await _ends(manifest)
    assert failed["job"]["status"] == "failed"
    assert failed["summary"]["status"] == "failed"
