"""Regenerate the core's gRPC modules from the .proto files (`make proto`).

python tools/proto.py            # writes next to the .proto files
python tools/proto.py OUT_DIR    # writes under OUT_DIR (the check in the tests)
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src"
PROTOS = SOURCE / "mn_api" / "adapters" / "grpc" / "protos"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generate(out_dir: Path = SOURCE) -> list[Path]:
    """Run protoc on every .proto file; answers the paths of what it wrote."""
    protos = sorted(PROTOS.glob("*.proto"))
    args = [
        "protoc",
        f"-I{SOURCE}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *(str(p) for p in protos),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    target = out_dir / PROTOS.relative_to(SOURCE)
    return sorted(p for p in target.iterdir() if p.name.endswith(GENERATED_SUFFIXES))


if __name__ == "__main__":
    written = generate(Path(sys.argv[1]) if len(sys.argv) > 1 else SOURCE)
    print(
        "\n".join(str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p) for p in written)
    )
