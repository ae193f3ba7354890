"""The published MirrorNeuron CLIs (`mn` of mirrorneuron-cli 1.2.32 and 1.1.0), as they are,
run against a core from a folder of their own.

Each CLI is installed from PyPI into a cached virtual environment outside the repository. It
runs in an empty working folder (it loads `.env` files from there) with a home of its own
(its `~/.mn` settings, run store and log), none of the caller's `MN_*` variables, the core's
target and token, no update check, Syncthing off (`node add`/`join` would start it in
Docker), plain line-oriented output, and a `docker` that finds no containers first on its
PATH: `job cancel`, `job clear` and `job delete` clean up a job's containers locally and
fail before any call to the core on a machine without a Docker daemon. The REST API it
reads for `runtime status`/`health` and the LiteLLM gateway `runtime doctor` asks for are
addresses where nothing listens unless the caller names the gateway.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tests.support.processes import CORE_TOKEN, cached_venv, free_port

# A router feeding an executor: the smallest job the CLIs submit and run.
HELLO: dict[str, Any] = {
    "manifest_version": "1",
    "graph_id": "hello",
    "job_name": "hello-research",
    "nodes": [
        {"node_id": "router", "agent_type": "router"},
        {"node_id": "worker", "agent_type": "executor"},
    ],
    "edges": [{"from_node": "router", "to_node": "worker", "message_type": "task"}],
    "entrypoints": ["router"],
}

# What the CLIs print when a command failed (1.1.0 prints it and still exits 0).
ERROR_BANNERS = ("Error:", "Communication Error", "Error fetching")


def bundle(folder: Path, **manifest: Any) -> Path:
    """A job bundle: HELLO with `manifest`'s keys over it, and one payload file."""
    (folder / "payloads").mkdir(parents=True)
    (folder / "manifest.json").write_text(json.dumps({**HELLO, **manifest}))
    (folder / "payloads" / "input.txt").write_text("hello payload\n")
    return folder


def field(output: str, name: str) -> str:
    """The value of a `Name: value` line the CLI printed."""
    found = re.search(rf"^{name}: (\S+)$", output, re.MULTILINE)
    assert found is not None, output
    return found.group(1)


def printed_json(output: str) -> Any:
    """The JSON document a command printed (after any line before it)."""
    return json.loads(output[output.index("{") :])


class PublishedCli:
    """`mn` of a published mirrorneuron-cli against the core at `target`, in `work`."""

    def __init__(
        self,
        work: Path,
        target: str,
        *,
        version: str = "1.2.32",
        api_base_url: str | None = None,
        token: str = CORE_TOKEN,
        timeout: float = 120,
    ) -> None:
        venv = cached_venv(f"mirrorneuron-cli-{version}", f"mirrorneuron-cli=={version}")
        self.mn = str(venv / "bin" / "mn")
        self.version = version
        self.timeout = timeout
        self.cwd, home, stub = work / "cwd", work / "home", work / "bin"
        for folder in (self.cwd, home, stub):
            folder.mkdir(parents=True)
        (stub / "docker").write_text("#!/bin/sh\nexit 0\n")
        (stub / "docker").chmod(0o755)
        self.log = work / "cli.log"
        nowhere = f"http://127.0.0.1:{free_port()}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MN_")}
        self.env.update(
            PATH=os.pathsep.join([str(stub), str(venv / "bin"), os.environ.get("PATH", "/bin")]),
            HOME=str(home),
            NO_COLOR="1",
            TERM="dumb",
            COLUMNS="200",
            MN_GRPC_TARGET=target,
            MN_GRPC_AUTH_TOKEN=token,
            MN_GRPC_TIMEOUT_SECONDS="10",
            MN_CLI_LOG_PATH=str(self.log),
            MN_CLI_OUTPUT="plain",
            MN_DISABLE_UPDATE_CHECK="1",
            MN_SYNCTHING_ENABLED="0",
            MN_RUN_BACKGROUND_EVENT_RELAY="0",
            MN_JOB_MONITOR_DISABLE_API_STREAM="1",
            MN_API_BASE_URL=api_base_url or f"{nowhere}/api/v1",
            MN_LITELLM_GATEWAY_HOST_API_BASE=f"{nowhere}/v1",
        )
        self.printed: list[str] = []
        self._tmp_before = set(Path("/tmp").glob("mn_*"))

    def __call__(self, *argv: Any) -> tuple[int, str]:
        """Runs `mn argv...` (with `--debug` on 1.2.32: errors show the core's details);
        its exit code and output."""
        debug = ["--debug"] if self.version != "1.1.0" else []
        done = subprocess.run(
            [self.mn, *debug, *map(str, argv)],
            env=self.env,
            cwd=self.cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=self.timeout,
        )
        output = done.stdout + done.stderr
        self.printed.append(output)
        return done.returncode, output

    def ok(self, *argv: Any) -> str:
        """The output of a command that must succeed."""
        code, output = self(*argv)
        assert code == 0 and not any(b in output for b in ERROR_BANNERS), (argv, code, output)
        return output

    def json(self, *argv: Any) -> Any:
        """The JSON document printed by a command that must succeed."""
        return printed_json(self.ok(*argv))

    def close(self) -> None:
        """Removes the `/tmp/mn_<job id>` folders the CLI wrote for the jobs it printed."""
        seen = "\n".join(self.printed)
        for folder in set(Path("/tmp").glob("mn_*")) - self._tmp_before:
            if folder.is_dir() and folder.name.removeprefix("mn_") in seen:
                shutil.rmtree(folder, ignore_errors=True)
