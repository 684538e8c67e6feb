"""One error body for every failure: ``{"error": {"code", "message", "request_id"}}``."""

from __future__ import annotations

import logging
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from serve_apps.settings import get_settings

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


def _serve_request_id() -> str | None:
    try:
        from ray.serve.context import _get_serve_request_context
    except ImportError:
        return None
    return _get_serve_request_context().request_id or None


def request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or "-"


def error_response(request: Request, status: int, code: str, message: str) -> JSONResponse:
    rid = request_id(request)
    return JSONResponse(
        {"error": {"code": code, "message": message, "request_id": rid}}, status_code=status
    )


def install_error_handling(app: FastAPI) -> None:
    # Registered first, so the request id (registered next, the outer one) is already set.
    @app.middleware("http")
    async def limit_request_bodies(request: Request, call_next):
        """Bodies are bounded before anything reads them: a declared length over the limit is
        a 413, and a body without a declared length a 411 (uploads have their own, larger
        limit, checked again while they are read)."""
        if request.method in {"POST", "PUT", "PATCH"}:
            settings = get_settings()
            multipart = request.headers.get("content-type", "").startswith("multipart/")
            limit = settings.max_upload_bytes + 64 * 1024 if multipart else settings.max_body_bytes
            declared = request.headers.get("content-length")
            if declared is None:
                if request.headers.get("transfer-encoding"):
                    return error_response(request, 411, "length_required", "send Content-Length")
            elif not declared.isdigit() or int(declared) > limit:
                return error_response(
                    request, 413, "body_too_large", f"request bodies are limited to {limit} bytes"
                )
        return await call_next(request)

    @app.middleware("http")
    async def assign_request_id(request: Request, call_next):
        serve_id = _serve_request_id()
        if serve_id:
            # Behind the Serve proxy: it takes the client's X-Request-ID (or makes one), puts it
            # on the response and in Serve's logs; one id end to end.
            request.state.request_id = serve_id
            return await call_next(request)
        incoming = request.headers.get("x-request-id", "")
        valid = 0 < len(incoming) <= 64 and incoming.replace("-", "").isalnum()
        request.state.request_id = incoming if valid else uuid.uuid4().hex
        response = await call_next(request)
        response.headers["X-Request-ID"] = request.state.request_id
        return response

    @app.exception_handler(APIError)
    async def on_api_error(request: Request, exc: APIError):
        log.info(
            "%s %s -> %s %s (%s)",
            request.method,
            request.url.path,
            exc.status,
            exc.code,
            exc.detail,
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

    @app.exception_handler(Exception)
    async def on_unexpected(request: Request, exc: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, 500, "internal", "internal error; quote the request id")
