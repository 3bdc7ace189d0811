"""The HTTP shell of the control plane: an ASGI application served by uvicorn.

It reads the request, authenticates it (SigV4, ``control-plane-api.md`` §8), applies the
API rate limit, routes it, runs the operation and writes the response. Errors become the
wire format of §4 in exactly one place, :func:`error_response`: the status of the error
shape, ``x-amzn-ErrorType: <Shape>``, ``x-amzn-RequestId`` and a JSON body
``{"Code", "Message", "RequestId"}``. No request produces a traceback on the wire.

WebSocket scopes (the signaling endpoint ``/control/{MeetingId}``) are handed to the
signaling gateway given at construction.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote

from mediaserver.clock import Clock
from mediaserver.control.operations import ApiRequest, Operations
from mediaserver.control.router import UnknownOperation, match
from mediaserver.control.sigv4 import verify_request
from mediaserver.errors import (
    InvalidArgument,
    MediaServerError,
    MissingAuthenticationToken,
    ResourceNotFound,
    ServiceFailure,
    Throttled,
    TooManyTags,
)
from mediaserver.ratelimit import TokenBucket

__all__ = ["MAX_BODY", "ControlApi", "error_response", "parse_query"]

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024
"""Largest request body accepted (1 MiB); larger ones get BadRequestException."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
WebSocketHandler = Callable[[Scope, Receive, Send], Awaitable[None]]
HttpHandler = Callable[[Scope, bytes], Awaitable[tuple[int, list[tuple[bytes, bytes]], bytes]]]


def error_response(
    error: MediaServerError, request_id: str
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """The wire form of an error (control-plane-api.md §4, "Recommended emission")."""
    body: dict[str, Any] = {"Code": error.code, "Message": str(error), "RequestId": request_id}
    if isinstance(error, (ResourceNotFound, TooManyTags)):
        body["ResourceName"] = error.resource_name
    headers = [
        (b"content-type", b"application/json"),
        (b"x-amzn-errortype", error.error_type.encode()),
        (b"x-amzn-requestid", request_id.encode()),
    ]
    if isinstance(error, Throttled):
        headers.append((b"retry-after", b"1"))
    return error.http_status, headers, json.dumps(body).encode()


class _UnknownOperation(MediaServerError):
    http_status = 404
    error_type = "UnknownOperationException"
    code = "UnknownOperation"


class _PayloadTooLarge(InvalidArgument):
    pass


def parse_query(raw_query: str) -> list[tuple[str, str]]:
    """Split a query string; ``+`` stays a plus sign (SDKs encode spaces as ``%20``)."""
    pairs: list[tuple[str, str]] = []
    for part in raw_query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key), unquote(value)))
    return pairs


def _reject_constant(name: str) -> object:
    raise ValueError(f"invalid JSON constant {name}")


class ControlApi:
    """The ASGI application of ``carillon serve``."""

    def __init__(
        self,
        operations: Operations,
        *,
        clock: Clock,
        secrets: dict[str, str],
        rate: float,
        burst: int,
        websocket_handler: WebSocketHandler | None = None,
        extra_routes: dict[tuple[str, str], HttpHandler] | None = None,
    ) -> None:
        self.operations = operations
        self.clock = clock
        self.secrets = secrets
        self.bucket = TokenBucket(rate, burst)
        self.websocket_handler = websocket_handler
        self.extra_routes = extra_routes or {}
        self.ready = False
        self.stats: dict[str, int] = {"requests": 0, "errors": 0, "throttled": 0}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "websocket":
            if self.websocket_handler is None:
                await send({"type": "websocket.close", "code": 1008})
            else:
                await self.websocket_handler(scope, receive, send)
        elif kind == "lifespan":  # pragma: no cover - uvicorn runs with lifespan off
            message = await receive()
            await send({"type": message["type"] + ".complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = str(uuid.uuid4())
        try:
            body = await self._read_body(scope, receive)
            status, headers, payload = await self._handle(scope, body, request_id)
        except MediaServerError as error:
            status, headers, payload = error_response(error, request_id)
        except Exception:
            logger.exception("request %s failed", request_id)
            status, headers, payload = error_response(
                ServiceFailure("The service encountered an internal error"), request_id
            )
        if status >= 400:
            self.stats["errors"] += 1
        headers.append((b"content-length", str(len(payload)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": payload})

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise InvalidArgument("Content-Length is not a number") from None
                if declared > MAX_BODY:
                    raise _PayloadTooLarge(f"The request body exceeds {MAX_BODY} bytes")
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                raise _PayloadTooLarge(f"The request body exceeds {MAX_BODY} bytes")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _handle(
        self, scope: Scope, body: bytes, request_id: str
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        method: str = scope["method"]
        raw_path = scope.get("raw_path") or scope["path"].encode()
        path_text = raw_path.decode("latin-1")
        extra = self.extra_routes.get((method, scope["path"]))
        if extra is not None:
            return await extra(scope, body)
        if scope["path"] == "/health" and method in ("GET", "HEAD"):
            status = 200 if self.ready else 503
            return status, [(b"content-type", b"application/json")], b'{"status":"ok"}'

        self.stats["requests"] += 1
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        if not any(k.lower() == "authorization" for k, _ in headers):
            raise MissingAuthenticationToken("Missing Authentication Token")
        raw_query = scope.get("query_string", b"").decode("latin-1")
        now = self.clock.wall()
        caller = verify_request(
            method=method,
            raw_path=path_text,
            raw_query=raw_query,
            headers=headers,
            body=body,
            now=now,
            secrets=self.secrets,
        )
        if not self.bucket.try_acquire(self.clock.monotonic()):
            self.stats["throttled"] += 1
            raise Throttled("Rate exceeded")
        query = parse_query(raw_query)
        operation = next((v for k, v in query if k == "operation"), None)
        try:
            route = match(method, unquote(path_text), operation)
        except UnknownOperation:
            raise _UnknownOperation(f"No operation matches {method} {unquote(path_text)}") from None
        raw_body: object = {}
        if body.strip():
            try:
                raw_body = json.loads(body, parse_constant=_reject_constant)
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument("The request body is not valid JSON") from None
        request = ApiRequest(route, query, {}, caller.access_key_id, now)
        result = self.operations.dispatch(request, raw_body)
        response_headers = [(b"x-amzn-requestid", request_id.encode())]
        if result.body is None:
            return result.status, response_headers, b""
        response_headers.append((b"content-type", b"application/json"))
        payload = json.dumps(result.body, separators=(",", ":")).encode()
        return result.status, response_headers, payload
