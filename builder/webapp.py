"""Fetch a web app (page, manifest, icon) through the SSRF guard and turn it into a TWA zip.

This is the whole job of the reference builder for one Android build; the worker loop that
takes builds off the queue and records their status calls `build_android_project`.
"""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass

from base.net_guard import AllowedNetworks, BlockedURL, FetchError, fetch
from builder.manifest import WebApp, best_icon, parse_html, parse_manifest
from builder.twa import project_zip, spec_for

PAGE_MAX_BYTES = 2 << 20
MANIFEST_MAX_BYTES = 512 << 10
ICON_MAX_BYTES = 1 << 20
_PNG = b"\x89PNG\r\n\x1a\n"


class BuildFailed(Exception):
    """The build cannot succeed; the message is for the build's `error` field."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    allowed: AllowedNetworks = ()
    verify: ssl.SSLContext | bool = True
    timeout_s: float = 10.0


async def load_web_app(url: str, policy: FetchPolicy) -> tuple[WebApp, bytes | None]:
    """The web app at `url` and its launcher icon as PNG bytes (None when it has none)."""

    async def get(target: str, limit: int, what: str) -> bytes | None:
        try:
            result = await fetch(
                target,
                allowed=policy.allowed,
                verify=policy.verify,
                max_bytes=limit,
                timeout_s=policy.timeout_s,
            )
        except BlockedURL as exc:
            raise BuildFailed(f"refused to fetch the {what}: {exc}") from None
        except FetchError as exc:
            if what == "page":
                raise BuildFailed(f"could not fetch the web app: {exc}") from None
            return None  # the manifest and the icon are optional
        if result.status != 200:
            if what == "page":
                raise BuildFailed(f"the web app answered HTTP {result.status}")
            return None
        return result.body

    html = await get(url, PAGE_MAX_BYTES, "page")
    page = parse_html((html or b"").decode("utf-8", "replace"), url)
    raw = None
    if page.manifest_url:
        raw = await get(page.manifest_url, MANIFEST_MAX_BYTES, "manifest")
    app = parse_manifest(raw, page)
    icon = best_icon(app.icons)
    png = await get(icon.src, ICON_MAX_BYTES, "icon") if icon else None
    return app, png if png and png.startswith(_PNG) else None


async def build_android_project(
    url: str,
    *,
    name: str,
    bundle_id: str,
    version: str,
    permissions: Sequence[str],
    policy: FetchPolicy,
    cert_fingerprints: Sequence[str] = (),
) -> bytes:
    """The zipped TWA project for the web app at `url`. Raises BuildFailed."""
    app, icon = await load_web_app(url, policy)
    try:
        spec = spec_for(
            app,
            name=name,
            bundle_id=bundle_id,
            version=version,
            permissions=permissions,
            icon_png=icon,
            cert_fingerprints=cert_fingerprints,
        )
        return project_zip(spec)
    except ValueError as exc:
        raise BuildFailed(str(exc)) from None
