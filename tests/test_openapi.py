"""The OpenAPI document (schemas/openapi.yaml) is valid OpenAPI 3.1 and names exactly the
routes Hutch serves: every (path, method) of the combined app, and of `hutch serve`'s ingest
side (its own routes plus those it forwards), is documented, and nothing else is. A route
added without its documentation (or a documented one that is gone) fails here."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon.asgi
import pytest
from falcon import inspect
from openapi_spec_validator import validate

from hutch.runtime import Runtime
from query.openapi import load_document
from tests.support.servers import Server
from tests.support.settings import make_settings

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
Operation = tuple[str, str]


def served(app: falcon.asgi.App[Any, Any]) -> set[Operation]:
    """(path template, method) of every responder a resource defines (not Falcon's own
    OPTIONS and 405 answers), templates written as OpenAPI writes them."""
    found: set[Operation] = set()
    for route in inspect.inspect_app(app).routes:
        if route.path == "/portal" or route.path.startswith("/portal/"):
            continue  # the web portal's pages and files (portal/serve.py), not API operations
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)  # {key:path} -> {key}
        found |= {(path, m.method.lower()) for m in route.methods if not m.internal}
    return found


def documented(document: dict[str, Any]) -> set[Operation]:
    return {
        (path, method)
        for path, item in document["paths"].items()
        for method in item
        if method in METHODS
    }


def operations(document: dict[str, Any]) -> Iterator[tuple[Operation, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield (path, method), operation


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return load_document()


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[dict[str, set[Operation]]]:
    from hutch.apps import combined_app as combined
    from hutch.apps import ingest_app as ingest
    from hutch.apps import query_app as query

    # Released at the test's end: a process opens one chDB directory at a time.
    runtime = Runtime(make_settings(tmp_path / "data"), want_analytics=True)
    try:
        yield {
            "combined": served(combined(runtime)),
            "query": served(query(runtime)),
            # `hutch serve`'s ingest workers: their routes and what they forward.
            "serve": served(ingest(runtime, forward_to="unix:///nonexistent/query.sock")),
        }
    finally:
        runtime.release()


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1.")
    validate(document)


def test_every_route_served_is_documented_and_nothing_else(
    document: dict[str, Any], apps: dict[str, set[Operation]]
) -> None:
    written = documented(document)
    for name in ("combined", "serve"):
        undocumented = sorted(apps[name] - written)
        assert not undocumented, f"served by the {name} app, not in schemas/openapi.yaml"
        not_served = sorted(written - apps[name])
        assert not not_served, f"in schemas/openapi.yaml, not served by the {name} app"
    assert apps["query"] <= written


def test_every_operation_documents_its_refusals(document: dict[str, Any]) -> None:
    """A 400 is possible everywhere (a NUL in the path or a parameter is refused before any
    route runs); an operation that takes a credential can answer 401."""
    missing: list[str] = []
    ids: list[str] = []
    for (path, method), operation in operations(document):
        responses = operation["responses"]
        ids.append(operation["operationId"])
        if "400" not in responses:
            missing.append(f"{method.upper()} {path}: 400")
        security = operation.get("security")
        if security is None:
            missing.append(f"{method.upper()} {path}: security (write [] for a public route)")
        elif security and {} not in security and "401" not in responses:
            missing.append(f"{method.upper()} {path}: 401")
    assert not missing
    assert len(ids) == len(set(ids)), "operationIds must be unique"


@pytest.mark.integration
def test_the_document_is_served_as_json_without_credentials(
    server: Server, document: dict[str, Any]
) -> None:
    with server.client() as client:
        answer = client.get("/api/openapi.json")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.json() == document
