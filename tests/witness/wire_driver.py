"""Reads the wire of a package's generated protobuf modules, or calls every method of a
published SDK's services on a core (run by the SDK's own venv, or by ours).

python wire_driver.py files PACKAGE               # the FileDescriptorProto of each of
                                                  # PACKAGE's five modules, as JSON
python wire_driver.py probe PACKAGE TARGET TOKEN  # every method of those modules called
                                                  # once with an empty request: its status

Only the generated modules are used; nothing of them is copied.
"""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any

MODULES = ("job_pb2", "job_v2_pb2", "operations_pb2", "cluster_pb2", "observability_pb2")


def files(package: str) -> dict[str, Any]:
    from google.protobuf import descriptor_pb2, json_format

    found: dict[str, Any] = {}
    for name in MODULES:
        module = importlib.import_module(f"{package}.{name}")
        proto = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(proto)
        found[name] = json_format.MessageToDict(proto)
    return found


def probe(package: str, target: str, token: str) -> dict[str, str]:
    """`/package.Service/Method` → the status its empty request got (`OK` when answered)."""
    import grpc

    answers: dict[str, str] = {}
    metadata = (("authorization", f"Bearer {token}"),)
    with grpc.insecure_channel(target) as channel:
        for name in MODULES:
            module = importlib.import_module(f"{package}.{name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                for method in service.methods:
                    path = f"/{service.full_name}/{method.name}"
                    request = getattr(module, method.input_type.name)
                    answer = getattr(module, method.output_type.name)
                    kind = channel.unary_stream if method.server_streaming else channel.unary_unary
                    call = kind(
                        path,
                        request_serializer=request.SerializeToString,
                        response_deserializer=answer.FromString,
                    )
                    try:
                        result = call(request(), timeout=5, metadata=metadata)
                        if method.server_streaming:
                            next(iter(result), None)
                        answers[path] = "OK"
                    except grpc.RpcError as err:
                        answers[path] = err.code().name
    return answers


if __name__ == "__main__":
    mode = sys.argv[1]
    result = files(sys.argv[2]) if mode == "files" else probe(*sys.argv[2:5])
    print(json.dumps(result))
