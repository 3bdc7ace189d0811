"""A lean HTTP/1.1 keep-alive load generator on asyncio streams, with SigV4 signing.

The load generator must cost far less than the server it measures, so it speaks HTTP/1.1
directly (one request in flight per connection) instead of going through boto3.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mediaserver.control.sigv4 import sign_request

__all__ = ["HttpConnection", "RequestSpec", "Signer"]


@dataclass(frozen=True, slots=True)
class RequestSpec:
    method: str
    path: str
    body: bytes = b""
    query: str = ""


@dataclass(frozen=True, slots=True)
class Signer:
    access_key_id: str
    secret: str
    region: str = "us-east-1"


class HttpConnection:
    """One keep-alive connection; :meth:`request` returns (status, body)."""

    def __init__(self, host: str, port: int, signer: Signer | None) -> None:
        self.host = host
        self.port = port
        self.signer = signer
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    def _encode(self, spec: RequestSpec) -> bytes:
        target = spec.path + (f"?{spec.query}" if spec.query else "")
        host = f"{self.host}:{self.port}"
        if self.signer is not None:
            headers = sign_request(
                method=spec.method,
                host=host,
                raw_path=spec.path,
                raw_query=spec.query,
                body=spec.body,
                now=time.time(),
                access_key_id=self.signer.access_key_id,
                secret=self.signer.secret,
                region=self.signer.region,
            )
        else:
            headers = [("host", host)]
        lines = [f"{spec.method} {target} HTTP/1.1"]
        lines.extend(f"{name}: {value}" for name, value in headers)
        lines.append(f"content-length: {len(spec.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + spec.body

    async def request(self, spec: RequestSpec) -> tuple[int, bytes]:
        assert self._reader is not None and self._writer is not None
        self._writer.write(self._encode(spec))
        head = await self._reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        body = await self._reader.readexactly(length) if length else b""
        return status, body


def json_body(value: dict[str, Any]) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


Factory = Callable[[int], RequestSpec]
