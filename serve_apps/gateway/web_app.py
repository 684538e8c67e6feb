"""The web app (``web/``, built into ``web/dist`` by ``make install``), served under ``/app``.

Same origin as the API, so the pages need no CORS and the WebSocket's Origin check passes.
Hashed assets are cached for a year; every other path under ``/app`` answers ``index.html``,
so that a reload or a shared link opens the same page (the app routes in the browser).
Responses are gzipped here when the browser accepts it: the Serve proxy does not compress.
"""

from __future__ import annotations

import gzip
import mimetypes
import os
from functools import lru_cache
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

from serve_apps.gateway.errors import error_response

PREFIX = "/app"
WEB_DIST = Path(
    os.environ.get("SALESBOOST_WEB_DIST", Path(__file__).resolve().parents[2] / "web" / "dist")
)
# What the pages may load and talk to: this origin only (no CDN, no third party).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
COMPRESSIBLE = (".html", ".js", ".css", ".svg", ".json", ".txt", ".map")


@lru_cache(maxsize=256)
def _read(path: Path, mtime_ns: int) -> tuple[bytes, bytes | None]:
    """A file's bytes and, for text, their gzip (cached per modification time)."""
    data = path.read_bytes()
    packed = gzip.compress(data, 9, mtime=0) if path.suffix in COMPRESSIBLE else None
    return data, packed if packed is not None and len(packed) < len(data) else None


def _file_response(request: Request, path: Path, *, immutable: bool) -> Response:
    data, packed = _read(path, path.stat().st_mtime_ns)
    media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    headers = dict(SECURITY_HEADERS)
    headers["Cache-Control"] = "public, max-age=31536000, immutable" if immutable else "no-cache"
    headers["Vary"] = "Accept-Encoding"
    if packed is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(packed, media_type=media_type, headers=headers)
    return Response(data, media_type=media_type, headers=headers)


def _resolve(dist: Path, relative: str) -> Path | None:
    """The built file for ``relative``, never outside ``dist``."""
    candidate = (dist / relative).resolve()
    if not candidate.is_relative_to(dist.resolve()) or not candidate.is_file():
        return None
    return candidate


def install_web_app(app: FastAPI, dist: Path = WEB_DIST) -> None:
    @app.get(PREFIX, include_in_schema=False)
    async def web_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=308)

    @app.get(PREFIX + "/{path:path}", include_in_schema=False)
    async def web_page(path: str, request: Request) -> Response:
        index = dist / "index.html"
        if not index.is_file():
            return error_response(
                request,
                503,
                "web_app_not_built",
                "the web app is not built: run `make install` (npm ci and the build in web/)",
            )
        if path.startswith("assets/"):
            found = _resolve(dist, path)
            if found is None:
                return error_response(request, 404, "not_found", "no such file")
            return _file_response(request, found, immutable=True)
        if "." in path.rsplit("/", 1)[-1]:  # a file name, not a page of the app
            found = _resolve(dist, path)
            if found is None:
                return error_response(request, 404, "not_found", "no such file")
            return _file_response(request, found, immutable=False)
        return _file_response(request, index, immutable=False)
