"""The gateway's static mount of the web app: pages, assets, compression, no escape."""

from __future__ import annotations

import gzip

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from serve_apps.gateway.errors import install_error_handling
from serve_apps.gateway.web_app import install_web_app
from serve_apps.settings import get_settings


@pytest.fixture
def client(tmp_path):
    dist = tmp_path / "dist"
    (dist / "assets").mkdir(parents=True)
    (dist / "index.html").write_text("<!doctype html><title>SalesBoost</title>" + " " * 400)
    (dist / "assets" / "index-abc.js").write_text("console.log('app');" * 50)
    (tmp_path / "secret.txt").write_text("outside")
    app = FastAPI()
    install_error_handling(app, get_settings())
    install_web_app(app, dist)
    return TestClient(app)


def test_every_page_of_the_app_answers_the_index(client):
    for path in ("/app/", "/app/practice/123", "/app/manager/trainees/x"):
        response = client.get(path)
        assert response.status_code == 200
        assert "SalesBoost" in response.text
        assert response.headers["cache-control"] == "no-cache"
        assert "default-src 'self'" in response.headers["content-security-policy"]
    assert client.get("/app", follow_redirects=False).status_code == 308


def test_assets_are_cached_and_gzipped(client):
    response = client.get("/app/assets/index-abc.js", headers={"Accept-Encoding": "gzip"})
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "immutable" in response.headers["cache-control"]
    assert response.headers["content-type"].startswith("text/javascript")
    raw = client.get("/app/assets/index-abc.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in raw.headers
    assert gzip.decompress(gzip.compress(raw.content)) == raw.content


def test_missing_files_and_paths_outside_the_build_are_404(client):
    assert client.get("/app/assets/nope.js").json()["error"]["code"] == "not_found"
    assert client.get("/app/favicon.ico").status_code == 404
    assert client.get("/app/assets/../../secret.txt").status_code == 404
    assert client.get("/app/%2e%2e/secret.txt").status_code == 404


def test_an_unbuilt_app_says_how_to_build_it(tmp_path):
    app = FastAPI()
    install_error_handling(app, get_settings())
    install_web_app(app, tmp_path / "missing")
    response = TestClient(app).get("/app/")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "web_app_not_built"
