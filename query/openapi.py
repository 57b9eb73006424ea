"""GET /api/openapi.json: the OpenAPI 3.1 document of every route Hutch serves, public.

The document is written as YAML (`schemas/openapi.yaml`: people edit it, and YAML lets it
carry comments and share response sets through anchors); it is parsed once, on the first
request, and served as JSON from then on. tests/test_openapi.py keeps it and the routes in
step.
"""

from __future__ import annotations

import functools
from importlib import resources

import falcon
import falcon.asgi
import orjson
import yaml

DOCUMENT = "openapi.yaml"


def load_document() -> dict[str, object]:
    """The document as data (the package data of `schemas`, so an installed wheel has it)."""
    text = (resources.files("schemas") / DOCUMENT).read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C parser, when PyYAML has it
    document = yaml.load(text, Loader=loader)  # noqa: S506 (a safe loader, C or Python)
    if not isinstance(document, dict):
        raise TypeError(f"schemas/{DOCUMENT} is not a YAML mapping")
    return document


@functools.cache
def document_json() -> bytes:
    return orjson.dumps(load_document())


class OpenApiDocument:
    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        resp.content_type = falcon.MEDIA_JSON
        resp.data = document_json()
