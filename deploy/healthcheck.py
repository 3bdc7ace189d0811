"""The container's HEALTHCHECK: exit 0 when ``GET /health`` on the HTTP port answers 200.

It reads the same ``CARILLON_HOST`` and ``CARILLON_HTTP_PORT`` variables as ``carillon serve``
and uses only the standard library, so it runs on the image's python3 with nothing else
installed. A wildcard bind address (``0.0.0.0``, ``::``) is reached on loopback.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

_WILDCARDS = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


def health_url() -> str:
    host = os.environ.get("CARILLON_HOST", "0.0.0.0").strip()
    host = _WILDCARDS.get(host, host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    port = os.environ.get("CARILLON_HTTP_PORT", "8080").strip() or "8080"
    return f"http://{host}:{port}/health"


def main() -> int:
    url = health_url()
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            status = int(response.status)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
        return 1
    if status != 200:
        print(f"unhealthy: {url} answered {status}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
