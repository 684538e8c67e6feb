"""One error body for every failure: ``{"error": {"code", "message", "request_id"}}``."""

from __future__ import annotations

import logging
import re
import uuid
from typing import TypeGuard

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import OperationalError
from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serve_apps.gateway.config import GatewaySettings

log = logging.getLogger("salesboost.gateway")


class APIError(Exception):
    """An error the user caused or can act on; ``detail`` stays in the logs."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail
        self.headers = headers or {}


REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
# A backing service that did not answer: the client tries again after this.
DEPENDENCY_RETRY_AFTER_S = 5


def valid_request_id(value: str | None) -> TypeGuard[str]:
    """A client's X-Request-ID is kept for correlation when it is this safe to echo and log:
    1-64 letters, digits and dashes; anything else is replaced by a fresh one."""
    return value is not None and REQUEST_ID.fullmatch(value) is not None


def new_request_id() -> str:
    return uuid.uuid4().hex


def _serve_request_id() -> str | None:
    try:
        from ray.serve.context import _get_serve_request_context
    except ImportError:
        return None
    return _get_serve_request_context().request_id or None


def request_id(request: Request | HTTPConnection) -> str:
    return request.scope.get("state", {}).get("request_id") or "-"


def error_body(code: str, message: str, rid: str) -> dict:
    return {"error": {"code": code, "message": message, "request_id": rid}}


def error_response(
    request: Request | HTTPConnection, status: int, code: str, message: str
) -> JSONResponse:
    rid = request_id(request)
    response = JSONResponse(error_body(code, message, rid), status_code=status)
    if not request.scope.get("state", {}).get("request_id_from_serve"):
        # Behind Serve its proxy adds the header; here (and for the 500s that Starlette's
        # outermost layer sends past every middleware) the app does.
        response.headers["X-Request-ID"] = rid
    return response


class RequestIds:
    """Outermost middleware: every request gets an id before anything can answer it.

    Behind Serve the proxy has already chosen the id (the client's X-Request-ID, checked by
    ``serve_apps.gateway.proxy_middleware`` before the proxy reads it, or a fresh one) and puts
    it on the response; the app uses that one. Elsewhere (the app served alone, tests) it
    checks the client's header itself and adds the response header.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        serve_id = _serve_request_id()
        if serve_id:
            # Without the proxy's check (its callback not installed) an unsafe id still never
            # reaches a body or a log line; the proxy's header then differs from the body's.
            state["request_id"] = serve_id if valid_request_id(serve_id) else new_request_id()
            state["request_id_from_serve"] = True
            await self.app(scope, receive, send)
            return
        incoming = Headers(scope=scope).get("x-request-id")
        rid = incoming if valid_request_id(incoming) else new_request_id()
        state["request_id"] = rid

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                if "x-request-id" not in headers:
                    headers["X-Request-ID"] = rid
            await send(message)

        await self.app(scope, receive, send_with_id)


class CORS(CORSMiddleware):
    """Starlette's CORS, whose refusal of a preflight has the one error body too (it answers a
    plain-text 400 of its own)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                response = self.preflight_response(request_headers=headers)
                if response.status_code >= 400:
                    refusal = bytes(response.body).decode(errors="replace")
                    cors_headers = {
                        k: v
                        for k, v in response.headers.items()
                        if k.lower() not in {"content-length", "content-type"}
                    }
                    response = error_response(
                        HTTPConnection(scope), response.status_code, "cors_refused", refusal
                    )
                    response.headers.update(cors_headers)
                await response(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def install_request_ids(app: FastAPI) -> None:
    """Call after every other middleware is added: this one must be the outermost."""
    app.add_middleware(RequestIds)


def install_error_handling(app: FastAPI, settings: GatewaySettings) -> None:
    body_limit = settings.max_body_bytes
    multipart_limit = settings.max_upload_bytes + 64 * 1024

    @app.middleware("http")
    async def limit_request_bodies(request: Request, call_next):
        """Bodies are bounded before anything reads them: a declared length over the limit is
        a 413, and a body without a declared length a 411 (uploads have their own, larger
        limit, checked again while they are read)."""
        if request.method in {"POST", "PUT", "PATCH"}:
            multipart = request.headers.get("content-type", "").startswith("multipart/")
            limit = multipart_limit if multipart else body_limit
            declared = request.headers.get("content-length")
            if declared is None:
                if request.headers.get("transfer-encoding"):
                    return error_response(request, 411, "length_required", "send Content-Length")
            elif not (declared.isascii() and declared.isdigit()) or int(declared) > limit:
                return error_response(
                    request, 413, "body_too_large", f"request bodies are limited to {limit} bytes"
                )
        return await call_next(request)

    @app.exception_handler(APIError)
    async def on_api_error(request: Request, exc: APIError):
        log.log(
            logging.WARNING if exc.status >= 500 else logging.INFO,
            "%s %s -> %s %s (%s) [%s]",
            request.method,
            request.url.path,
            exc.status,
            exc.code,
            exc.detail,
            request_id(request),
        )
        response = error_response(request, exc.status, exc.code, exc.message)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return error_response(request, 422, "invalid_request", f"{where}: {first['msg']}")

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(request, exc.status_code, code, str(exc.detail))

    async def on_dependency_away(request: Request, exc: Exception):
        """Redis or the database did not answer in time (down, or starved of CPU): the
        request may succeed again in a moment, so 503 with a Retry-After, not a 500."""
        log.warning(
            "%s %s -> 503: %s did not answer: %r [%s]",
            request.method,
            request.url.path,
            "Redis" if isinstance(exc, RedisError) else "the database",
            exc,
            request_id(request),
        )
        response = error_response(
            request, 503, "unavailable", "a backing service did not answer; try again shortly"
        )
        response.headers["Retry-After"] = str(DEPENDENCY_RETRY_AFTER_S)
        return response

    for away in (RedisConnectionError, RedisTimeoutError, OperationalError):
        app.add_exception_handler(away, on_dependency_away)

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception):
        log.exception(
            "unhandled error on %s %s [%s]", request.method, request.url.path, request_id(request)
        )
        return error_response(request, 500, "internal", "internal error; quote the request id")
