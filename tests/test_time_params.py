"""`since` and `until` outside the times Hutch can hold are a 400 naming the parameter, on
every route the OpenAPI document gives them to (schemathesis found a far-off `until` to be a
500 on /api/flags/{name}/stats), and the earliest and latest it can hold still work."""

from __future__ import annotations

from typing import Any

import pytest

from query.openapi import load_document
from tests.support.admin import developer_with_app
from tests.support.responses import error_of
from tests.support.servers import Server

pytestmark = pytest.mark.integration

OUT_OF_RANGE = (
    "0001-01-01T00:00:00+14:00",  # before year 1 in UTC
    "9999-12-31T23:59:59-14:00",  # after year 9999 in UTC
    "1000-01-01T00:00:00Z",
    "3000-01-01T00:00:00Z",
)


def time_routes(document: dict[str, Any]) -> list[tuple[str, dict[str, str], set[str]]]:
    """(path with its parameters filled from their examples, the other parameters an answer
    needs, which of since/until it takes) for every GET that takes a time."""
    components = document["components"]["parameters"]
    found = []
    for path, item in document["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        parameters = [
            components[p["$ref"].rsplit("/", 1)[1]] if "$ref" in p else p
            for p in [*item.get("parameters", []), *operation.get("parameters", [])]
        ]
        # A time, not any `since` (a job log's is a line number).
        times = {
            p["name"]
            for p in parameters
            if p["name"] in ("since", "until") and p["schema"].get("format") == "date-time"
        }
        if not times:
            continue
        for p in parameters:
            if p["in"] == "path":
                path = path.replace(f"{{{p['name']}}}", str(p["example"]))
        found.append((path, {}, times))
    return found


@pytest.mark.integration
def test_times_out_of_range_are_refused_wherever_a_time_is_taken(server: Server) -> None:
    _, token = developer_with_app(server.settings, "tara", "tara-app")
    routes = time_routes(load_document())
    assert {path for path, _, _ in routes} >= {"/api/telemetry", "/api/flags/dark_mode/stats"}
    # Where the earliest time would make too many buckets or steps otherwise:
    wide = {"/api/flags/dark_mode/stats": {"bucket": "31d"}}
    routes = [(path, wide.get(path, extra), names) for path, extra, names in routes]
    # An app in a path is the caller's own (the document's example names no app of theirs).
    routes = [(path.replace("/apps/my-app/", "/apps/tara-app/"), e, n) for path, e, n in routes]
    series = {"name": "http.server.duration", "step": "1000h"}
    routes.append(("/api/metrics", series, {"since", "until"}))
    with server.client(Authorization=f"Bearer {token}") as client:
        for path, extra, names in routes:
            for name in sorted(names):
                for raw in OUT_OF_RANGE:
                    answer = client.get(path, params={**extra, name: raw})
                    assert answer.status_code == 400, (path, name, raw, answer.text)
                    error = error_of(answer)
                    assert (error["code"], error["field"]) == ("bad_date", name), error
                    assert "1678" in error["message"], error
                    assert "2262" in error["message"], error
            edges = {"since": "1678-01-01T00:00:00Z", "until": "2261-12-31T23:59:59Z"}
            # Routes whose window is capped (90 days: release health, flag impact) get the
            # other bound a day from the edge, so the edge itself is what is tried.
            near = {
                "since": ("until", "1678-01-02T00:00:00Z"),
                "until": ("since", "2261-12-30T23:59:59Z"),
            }
            capped = path.endswith(("/release-health", "/impact"))
            for name in sorted(names):
                params = {**extra, name: edges[name]}
                if capped:
                    other, value = near[name]
                    params[other] = value
                answer = client.get(path, params=params)
                assert answer.status_code in (200, 404), (path, name, answer.text)
