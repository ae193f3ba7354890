"""The real MirrorNeuron core (a prebuilt release in ../shared/realcore) as a test peer.

The release is unpacked once into a cache outside the repository (checked against its
SHA256SUMS), then each `RealCore` runs its own redis-server and core on free loopback ports,
with a private temporary folder (the core writes every submission there and never removes
it). `restart()` stops and starts the core alone, keeping its Redis: what a core restart
leaves behind stays to be seen.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from tests.support import RedisServer, free_port

REPOSITORY = Path(__file__).resolve().parents[2]
RELEASE_DIR = Path(
    os.environ.get("MN_REALCORE_DIR", REPOSITORY.parent / "shared" / "realcore")
).resolve()
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mn-api" / "realcore"
# The source commit of the release the tests know, and so its wire generation (A).
COMMIT = "d26bef71"


def release_archive() -> Path | None:
    found = sorted(RELEASE_DIR.glob(f"mirror-neuron-core-{COMMIT}-*.tgz"))
    return found[0] if found else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        for block in iter(lambda: source.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def unpacked_release() -> Path:
    """The release's folder in the cache, unpacked on first use; its start script inside."""
    archive = release_archive()
    if archive is None:
        raise FileNotFoundError(f"no release of core {COMMIT} in the shared folder")
    sums = (RELEASE_DIR / "SHA256SUMS").read_text().split()
    expected = sums[sums.index(archive.name) - 1] if archive.name in sums else None
    target = CACHE / (expected or archive.name)[:16]
    if (target / "mirror_neuron" / "bin" / "mirror_neuron").exists():
        return target / "mirror_neuron"
    actual = _sha256(archive)
    if expected is not None and actual != expected:
        raise RuntimeError(f"{archive.name} does not match its SHA256SUMS")
    CACHE.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix="unpacking-", dir=CACHE))
    with tarfile.open(archive) as bundle:
        bundle.extractall(staging, filter="tar")
    try:
        staging.rename(target)  # another session that got there first keeps its copy
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
    return target / "mirror_neuron"


class RealCore:
    """One real core and its own Redis, on free loopback ports."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.home = unpacked_release()
        self.redis = RedisServer()
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.log = workdir / "core.log"

    def start(self) -> RealCore:
        if self.redis.process is None:
            self.redis.start()
        tmp = self.workdir / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "MIRROR_NEURON_REDIS_URL": self.redis.url,
            "MIRROR_NEURON_GRPC_PORT": str(self.port),
            "MIRROR_NEURON_TEMP_DIR": str(tmp),
            "TMPDIR": str(tmp),
            "RELEASE_TMP": str(tmp),
            "RELEASE_DISTRIBUTION": "none",
        }
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.home / "bin" / "mirror_neuron"), "start"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("the real core did not start: " + self.log.read_text()[-2000:])

    def stop_core(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                break
            try:
                process.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        # The release's VM may leave its port mapper or helpers behind in the group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def restart(self, down_seconds: float = 0.0) -> None:
        self.stop_core()
        time.sleep(down_seconds)
        self.start()

    def stop(self) -> None:
        self.stop_core()
        self.redis.stop()
