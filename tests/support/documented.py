"""Check an answer's body against a schema of schemas/openapi.yaml, as documented."""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from query.openapi import load_document


def assert_documented(body: Any, schema: str) -> None:
    """`body` is valid against `#/components/schemas/<schema>` (OpenAPI 3.1 schemas are JSON
    Schema 2020-12; the document is the root its `$ref`s resolve in)."""
    root = {**load_document(), "$ref": f"#/components/schemas/{schema}"}
    errors = sorted(Draft202012Validator(root).iter_errors(body), key=str)
    assert not errors, [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
