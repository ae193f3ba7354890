"""The pinned requirements the image's Python needs beyond what this Python resolves.

`pip wheel` resolves for the Python that runs it: markers such as
`python_full_version < '3.11.3'` are read against it, never against the image's. The lock
(constraints.txt) is universal, so it lists every package of every environment with its
marker; this prints those whose marker holds for the image's Python but not for this one,
for `pip wheel` to build as well. The image's Python is read from the base file system's
package database (Debian's `python3.X-minimal`).

Usage: python target_requirements.py BASE.tar constraints.txt
"""

from __future__ import annotations

import platform
import re
import sys
import tarfile
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import InvalidRequirement, Requirement

_MINIMAL = re.compile(r"^python3\.\d+-minimal$")
_UPSTREAM = re.compile(r"^(?:\d+:)?(\d+\.\d+\.\d+)")


def debian_python_version(base: Path) -> str:
    """The upstream version (3.11.2) of the interpreter installed in the base tarball."""
    with tarfile.open(base) as archive:
        for name in ("./var/lib/dpkg/status", "var/lib/dpkg/status"):
            try:
                member = archive.extractfile(name)
            except KeyError:
                continue
            if member is not None:
                status = member.read().decode("utf-8", "replace")
                break
        else:
            raise SystemExit(f"{base.name}: no package database in the base")
    for stanza in status.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in stanza.splitlines() if ": " in line and line[0] != " "
        )
        if _MINIMAL.match(fields.get("Package", "")) and "installed" in fields.get("Status", ""):
            found = _UPSTREAM.match(fields.get("Version", ""))
            if found:
                return found.group(1)
    raise SystemExit(f"{base.name}: no Python interpreter in the base")


def target_environment(version: str) -> dict[str, str]:
    """This machine's marker environment with the image's CPython version in it."""
    environment = dict(default_environment())
    major_minor = ".".join(version.split(".")[:2])
    environment.update(
        {
            "python_version": major_minor,
            "python_full_version": version,
            "implementation_name": "cpython",
            "implementation_version": version,
            "platform_python_implementation": "CPython",
        }
    )
    return environment


def extra_requirements(
    lock: str, target: dict[str, str], here: dict[str, str] | None = None
) -> list[str]:
    """Pinned lines of the lock that apply to `target` and not to `here` (the running
    Python's environment unless given)."""
    if here is None:
        here = dict(default_environment())
    extra = []
    for raw in lock.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        marker = requirement.marker
        if marker is None or not marker.evaluate(target) or marker.evaluate(here):
            continue
        requirement.marker = None
        extra.append(str(requirement))
    return extra


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    version = debian_python_version(Path(argv[0]))
    ours = platform.python_version_tuple()[:2]
    if version.split(".")[:2] != list(ours):
        print(
            f"the base has Python {version}, this is {platform.python_version()}: "
            "the wheels would not fit",
            file=sys.stderr,
        )
        return 1
    for requirement in extra_requirements(Path(argv[1]).read_text(), target_environment(version)):
        print(requirement)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
