"""Middleware that runs in Ray Serve's HTTP proxy, in front of every application.

The proxy reads the request id from the client's ``X-Request-ID`` as sent, before any
application sees the request, and puts it on the response and in Serve's logs; so the
gateway's own check of that header never ran behind Serve. Serve installs what
``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` names (``proxy_middlewares`` below) outside its
request-id middleware, so this runs first:

- a client's ``X-Request-ID`` that is not 1-64 letters, digits and dashes is replaced by a
  fresh one (a valid one is kept, for correlation);
- a request target (path and query) over 8 KiB is a 414 and headers over 32 KiB in all a 431,
  with that body: uvicorn with httptools takes request lines up to about 64 KiB and headers
  of a megabyte;
- an error the proxy answers itself (503 while no replica can take the request, a timeout, a
  500 of its own) is given the one error body, ``{"error": {"code", "message",
  "request_id"}}``, in place of its plain text. The gateway's errors already have it.

Requests that uvicorn inside the proxy cannot parse (a request line or headers beyond its
limits) never reach any middleware: see the README.

Kept free of heavy imports: it is imported in the proxy's process.
"""

from __future__ import annotations

import json
import re
import uuid

from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9-]{1,64}$")
MAX_TARGET_BYTES = 8 * 1024
MAX_HEADER_BYTES = 32 * 1024
_CODES = {
    404: "not_found",
    408: "timeout",
    413: "body_too_large",
    500: "internal",
    502: "upstream_failed",
    503: "unavailable",
    504: "timeout",
}


class ProxyRequestIds:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        rid = None
        headers = []
        for key, value in scope.get("headers", []):
            if key.lower() == b"x-request-id":
                if rid is None and _REQUEST_ID.fullmatch(value):
                    rid = value
                continue  # dropped: an unsafe id, or a second one
            headers.append((key, value))
        rid = rid or uuid.uuid4().hex.encode()
        headers.append((b"x-request-id", rid))
        scope = {**scope, "headers": headers}
        refusal = _over_limits(scope)
        if scope["type"] == "websocket":
            if refusal is not None:  # before the handshake: the client gets a 403
                await send({"type": "websocket.close", "code": 1008, "reason": refusal[2]})
                return
            await self.app(scope, receive, send)
            return
        errors = _ErrorBodies(send, rid.decode())
        if refusal is not None:
            await errors.send_error(*refusal)
            return
        await self.app(scope, receive, errors)


def _over_limits(scope: Scope) -> tuple[int, str, str] | None:
    target = len(scope.get("raw_path") or scope.get("path", "").encode())
    target += len(scope.get("query_string", b""))
    if target > MAX_TARGET_BYTES:
        return 414, "uri_too_long", f"the path and query are limited to {MAX_TARGET_BYTES} bytes"
    if sum(len(k) + len(v) for k, v in scope["headers"]) > MAX_HEADER_BYTES:
        return 431, "headers_too_large", f"headers are limited to {MAX_HEADER_BYTES} bytes"
    return None


class _ErrorBodies:
    """Sends the app's response as it is, except an error that is not JSON (the proxy's own),
    which it holds back and replaces with the error body."""

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self._request_id = request_id
        self._held: Message | None = None
        self._text = b""

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            status = message["status"]
            content_type = next(
                (v for k, v in message.get("headers", []) if k.lower() == b"content-type"), b""
            )
            if status >= 400 and not content_type.startswith(b"application/json"):
                self._held = message
                return
        elif message["type"] == "http.response.body" and self._held is not None:
            self._text += message.get("body", b"")
            if message.get("more_body", False):
                return
            await self._send_error_body()
            return
        await self._send(message)

    async def _send_error_body(self) -> None:
        assert self._held is not None
        status = self._held["status"]
        text = self._text.decode(errors="replace").strip()[:200] or f"HTTP {status}"
        await self.send_error(status, _CODES.get(status, "http_error"), text, self._held)

    async def send_error(
        self, status: int, code: str, message: str, start: Message | None = None
    ) -> None:
        body = json.dumps(
            {"error": {"code": code, "message": message, "request_id": self._request_id}}
        ).encode()
        if start is None:  # answered here, before Serve's middleware could add the header
            start = {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"x-request-id", self._request_id.encode())],
            }
        kept = [
            (k, v)
            for k, v in start.get("headers", [])
            if k.lower() not in (b"content-type", b"content-length")
        ]
        await self._send(
            {
                **start,
                "headers": [
                    *kept,
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await self._send({"type": "http.response.body", "body": body, "more_body": False})


def proxy_middlewares() -> list[Middleware]:
    """What ``RAY_SERVE_HTTP_PROXY_CALLBACK_IMPORT_PATH`` names for Serve's proxy."""
    return [Middleware(ProxyRequestIds)]


PROXY_CALLBACK = "serve_apps.gateway.proxy_middleware:proxy_middlewares"
