"""Reading Hutch's HTTP answers: the error object of a refusal, every page of a listing."""

from __future__ import annotations

from typing import Any

import httpx


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of a JSON error answer (and check it is one: the error object, and
    its message again at the top level, where Builtiful's clients read it)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error", "message"}, body
    assert {"code", "message"} <= set(body["error"]), body
    assert body["message"] == body["error"]["message"], body
    return dict(body["error"])


def list_all(client: httpx.Client, path: str, key: str, **params: str) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated listing."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        page = client.get(path, params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body[key])
        cursor = body["next"]
        if cursor is None:
            return items
