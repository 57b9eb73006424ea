"""POST /api/publish/generate: preview the package files of one of the caller's builds.

    POST /api/publish/generate   (a bearer token without scopes, or the session cookies)
        {"app", "version"?, "os"?, "arch"?, "format"?, "maintainer"?, "description"?,
         "license"?, "url"?, "categories"?}
    -> 200 {"app", "version", "build": {...the build, "downloadUrl"}, "files": {"PKGBUILD",
            ".SRCINFO", "metadata.yml"}, "warnings": [...]}

A field of the wrong JSON type, or one this route does not know, is a 400 naming it; a value
that cannot be used a 422 (ingest/publish/generate_options.py); no such app, version or file
a 404; another developer's app a 403. A build no PKGBUILD can be made of (an APK...) answers
200 with metadata.yml alone and a warning saying why, so a client always learns what can be
published. Nothing is recorded: the same request gives the same files.
"""

from __future__ import annotations

from typing import Any

import falcon.asgi

from base.client_errors import BadRequest
from ingest.publish.generate import GenerateOptions, generated_files
from state.command_context import CommandContext
from web.auth import Authenticator
from web.body import read_json_object, send_json

TEXT_FIELDS = ("version", "os", "arch", "format", "maintainer", "description", "license", "url")
MAX_BODY_BYTES = 32 * 1024


class PublishGenerate:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_post(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        body = await read_json_object(req, MAX_BODY_BYTES)
        unknown = sorted(set(body) - {"app", "categories", *TEXT_FIELDS})
        if unknown:
            raise BadRequest(f"unknown field {unknown[0]!r}", field=unknown[0], code="bad_field")
        app = body.get("app")
        if not isinstance(app, str) or not app:
            raise BadRequest("app is required: the name of one of your apps", field="app")
        version, options = generate_fields(body)
        generated = await generated_files(self._ctx, developer.name, app, version, options)
        send_json(resp, 200, generated.answer())


def generate_fields(body: dict[str, Any]) -> tuple[str | None, GenerateOptions]:
    """The version and the options a generate (or a publish run) request names; 400 for a
    field of the wrong JSON type (generated_files checks the values)."""
    texts = {name: _text(body, name) for name in TEXT_FIELDS}
    version = texts.pop("version")
    categories = body.get("categories")
    if categories is not None and (
        not isinstance(categories, list) or not all(isinstance(c, str) for c in categories)
    ):
        raise BadRequest("categories must be a list of strings", field="categories")
    return version, GenerateOptions(
        **texts, categories=None if categories is None else tuple(categories)
    )


def _text(body: dict[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string", field=name)
    return value
