"""`GET /portal` and `GET /portal/{path}`: the portal's files, served by Hutch itself.

A file under `portal/static/` is answered as an asset (cacheable for an hour, with an ETag);
any other page path gets the one HTML shell, whose script routes on the client (History API),
under a strict Content-Security-Policy: scripts, styles and requests from this origin only,
nothing inline. Only the files found under `static/` when the resource is made can be
answered, so no path (`..`, an absolute path, a symlink out) reaches anything else.
"""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

import falcon
import falcon.asgi

from base.client_errors import NotFound

STATIC = Path(__file__).parent / "static"
SHELL = "index.html"

CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data: blob:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)

TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".md": "text/markdown; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


def load(root: Path) -> dict[str, Asset]:
    """Every regular file under `root` (symlinks not followed), by its path from `root`."""
    found: dict[str, Asset] = {}
    for path in sorted(root.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        body = path.read_bytes()
        kind = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
        found[path.relative_to(root).as_posix()] = Asset(
            body, kind or "application/octet-stream", hashlib.sha256(body).hexdigest()[:32]
        )
    return found


def _security_headers(resp: falcon.asgi.Response) -> None:
    resp.set_header("X-Content-Type-Options", "nosniff")
    resp.set_header("Referrer-Policy", "same-origin")


class Portal:
    def __init__(self, root: Path = STATIC) -> None:
        self._files = load(root)
        self._shell = self._files[SHELL]

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, path: str = ""
    ) -> None:
        parts = path.split("/") if path else []
        if any(p in ("", ".", "..") or "\\" in p for p in parts):
            raise NotFound("no such page in the portal", code="not_found")
        asset = self._files.get(path) if path != SHELL else None
        if asset is not None:
            self._answer(req, resp, asset, "public, max-age=3600")
            return
        if parts and "." in parts[-1]:
            # A file's name that is not one of the portal's files: not a page either.
            raise NotFound(f"no such file in the portal: {path}", code="not_found")
        # Re-checked on every load, so a new version's pages are picked up at once.
        self._answer(req, resp, self._shell, "no-cache")
        resp.set_header("Content-Security-Policy", CSP)
        resp.set_header("X-Frame-Options", "DENY")

    @staticmethod
    def _answer(
        req: falcon.asgi.Request, resp: falcon.asgi.Response, asset: Asset, cache: str
    ) -> None:
        _security_headers(resp)
        resp.cache_control = [cache]
        resp.etag = asset.etag
        resp.content_type = asset.content_type
        if req.if_none_match and any(tag == asset.etag for tag in req.if_none_match):
            resp.status = falcon.HTTP_304
            return
        resp.data = asset.body
