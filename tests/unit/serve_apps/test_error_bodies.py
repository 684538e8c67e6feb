"""Every error answer has the one body and an X-Request-ID: the gateway's middleware (CORS
refusals included) on the app alone, and the middleware that runs in Serve's proxy."""

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import PlainTextResponse

from serve_apps.gateway.errors import CORS, install_error_handling, install_request_ids
from serve_apps.gateway.proxy_middleware import ProxyRequestIds, proxy_middlewares
from serve_apps.settings import get_settings

ORIGIN = "http://127.0.0.1:8000"


def gateway_like_app() -> FastAPI:
    """The gateway's middleware stack, in the order ``serve_apps/gateway/api.py`` adds it."""
    app = FastAPI()
    install_error_handling(app, get_settings())
    app.add_middleware(CORS, allow_origins=[ORIGIN], allow_methods=["GET", "POST"])
    install_request_ids(app)

    @app.get("/ok")
    async def ok() -> dict:
        return {"ok": True}

    @app.get("/boom")
    async def boom() -> dict:
        raise RuntimeError("invalid literal for int() with base 10: '1_v1'")

    return app


async def call(app, method: str, path: str, **kwargs) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)


def assert_error_body(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code and error["message"]
    assert error["request_id"] == response.headers["x-request-id"]
    assert response.headers.get_list("x-request-id") == [error["request_id"]]
    return error


async def test_a_cors_refusal_has_the_error_body_and_a_request_id():
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    response = await call(gateway_like_app(), "OPTIONS", "/ok", headers=preflight)
    error = assert_error_body(response, 400, "cors_refused")
    assert "origin" in error["message"]
    allowed = {"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    response = await call(gateway_like_app(), "OPTIONS", "/ok", headers=allowed)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["x-request-id"]


@pytest.mark.parametrize(
    "sent",
    ["x" * 65, "<script>alert(1)</script>", "a b", "é-1".encode(), "a\\tb", "", "a_b"],
    ids=["long", "script", "space", "utf8", "tab", "empty", "underscore"],
)
async def test_an_unsafe_client_request_id_is_replaced(sent):
    response = await call(gateway_like_app(), "GET", "/nowhere", headers={"X-Request-ID": sent})
    error = assert_error_body(response, 404, "not_found")
    assert error["request_id"] != sent and len(error["request_id"]) == 32


async def test_a_valid_client_request_id_is_kept_for_correlation():
    sent = "Trace-42-" + "a" * 55  # 64 characters
    response = await call(gateway_like_app(), "GET", "/nowhere", headers={"X-Request-ID": sent})
    assert assert_error_body(response, 404, "not_found")["request_id"] == sent
    ok = await call(gateway_like_app(), "GET", "/ok", headers={"X-Request-ID": sent})
    assert ok.status_code == 200 and ok.headers["x-request-id"] == sent


async def test_an_unexpected_failure_is_a_500_whose_body_leaks_nothing():
    response = await call(gateway_like_app(), "GET", "/boom")
    error = assert_error_body(response, 500, "internal")
    assert "int()" not in error["message"]


def plain_text_app(status: int, text: str):
    """Stands in for what Serve's proxy answers itself (a plain-text error)."""

    async def app(scope, receive, send):
        seen = dict(scope["headers"])
        response = PlainTextResponse(text, status_code=status)
        response.headers["x-seen-request-id"] = seen[b"x-request-id"].decode()
        await response(scope, receive, send)

    return app


async def test_the_proxy_middleware_gives_the_proxys_own_errors_the_error_body():
    app = ProxyRequestIds(plain_text_app(503, "Service unavailable."))
    response = await call(app, "GET", "/v1/me", headers={"X-Request-ID": "<script>"})
    assert response.status_code == 503
    error = response.json()["error"]
    assert error == {
        "code": "unavailable",
        "message": "Service unavailable.",
        "request_id": response.headers["x-seen-request-id"],
    }
    assert error["request_id"] != "<script>" and len(error["request_id"]) == 32


async def test_the_proxy_middleware_keeps_a_valid_id_and_passes_answers_through():
    app = ProxyRequestIds(plain_text_app(200, "fine"))
    response = await call(app, "GET", "/", headers={"X-Request-ID": "abc-123"})
    assert response.status_code == 200 and response.text == "fine"
    assert response.headers["x-seen-request-id"] == "abc-123"
    json_error = ProxyRequestIds(gateway_like_app())
    response = await call(json_error, "GET", "/nowhere", headers={"X-Request-ID": "abc-123"})
    assert assert_error_body(response, 404, "not_found")["request_id"] == "abc-123"


def test_the_proxy_callback_returns_what_serve_accepts():
    from ray.serve._private.http_util import validate_http_proxy_callback_return

    assert validate_http_proxy_callback_return(proxy_middlewares())


async def test_the_proxy_middleware_bounds_the_request_target_and_the_headers():
    app = ProxyRequestIds(plain_text_app(200, "fine"))
    long_path = await call(app, "GET", "/v1/" + "a" * 9000)
    error = long_path.json()["error"]
    assert long_path.status_code == 414 and error["code"] == "uri_too_long"
    assert long_path.headers["x-request-id"] == error["request_id"]
    big_headers = await call(app, "GET", "/", headers={"X-Pad": "a" * 33_000})
    assert big_headers.status_code == 431
    assert big_headers.json()["error"]["code"] == "headers_too_large"
    fits = await call(app, "GET", "/v1/" + "a" * 8000, headers={"X-Pad": "a" * 30_000})
    assert fits.status_code == 200
