"""Send hand-made, correctly signed requests, for the cases no SDK would send."""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass
from typing import Any

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.helpers.server import ACCESS_KEY_ID, SECRET_ACCESS_KEY

__all__ = ["RawResponse", "raw_request"]


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error_type(self) -> str | None:
        return self.headers.get("x-amzn-errortype")


def raw_request(
    port: int,
    method: str,
    path: str,
    body: bytes = b"",
    *,
    sign: bool = True,
    headers: dict[str, str] | None = None,
) -> RawResponse:
    """Sign (with botocore's SigV4 signer) and send one request to 127.0.0.1:port."""
    url = f"http://127.0.0.1:{port}{path}"
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    if body:
        request.headers["Content-Type"] = "application/json"
    if sign:
        SigV4Auth(Credentials(ACCESS_KEY_ID, SECRET_ACCESS_KEY), "chime", "us-east-1").add_auth(
            request
        )
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request(method, path, body=body, headers=dict(request.headers.items()))
        response = conn.getresponse()
        return RawResponse(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read(),
        )
    finally:
        conn.close()
