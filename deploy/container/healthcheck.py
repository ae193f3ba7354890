#!/usr/bin/python3
"""The image's health check: exit 0 when the gateway in this container answers
GET /api/v1/health with 200 within two seconds, else 1 (standard library only)."""

import json
import os
import sys
import urllib.request

ANY_ADDRESS = {"", "0.0.0.0", "::", "[::]"}


def health_url(environ: dict[str, str]) -> str:
    host = environ.get("MN_API_HOST", "localhost")
    if host in ANY_ADDRESS:
        host = "127.0.0.1"
    elif ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = environ.get("MN_API_PORT", "4001")
    return f"http://{host}:{port}/api/v1/health"


def main() -> int:
    try:
        with urllib.request.urlopen(health_url(dict(os.environ)), timeout=2) as answer:
            healthy = answer.status == 200 and json.load(answer).get("status") == "ok"
    except (OSError, ValueError) as error:
        print(f"unhealthy: {type(error).__name__}", file=sys.stderr)
        return 1
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
