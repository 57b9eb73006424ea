from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.admin import developer_with_app
from tests.support.servers import Server, serve_in_thread

pytestmark = pytest.mark.integration

M = "image: debian/bookworm\ntasks:\n  - build: echo hi\n"
CASES = {
    "note": {"manifest": M, "note": "a\u0000b"},
    "read": {"manifest": M, "access:read": ["a\u0000b"]},
    "write": {"manifest": M, "access:write": ["a\u0000b"]},
    "env": {"manifest": M + "environment:\n  A: \"x\\0y\"\n"},
    "image": {"manifest": "image: \"debian/x\\0y\"\ntasks:\n  - build: echo hi\n"},
    "webhook": {"manifest": M + "triggers:\n  - action: webhook\n    condition: always\n    url: \"https://x.example/\\0\"\n"},
    "email": {"manifest": M + "triggers:\n  - action: email\n    condition: always\n    to: \"a\\0@x.example\"\n"},
    "task": {"manifest": "image: debian/bookworm\ntasks:\n  - build: \"echo \\0 hi\"\n"},
}


@pytest.fixture
def fresh(tmp_path: Path) -> Iterator[Server]:
    yield from serve_in_thread(tmp_path / "data")


@pytest.mark.parametrize("case", list(CASES))
def test_probe(fresh: Server, case: str) -> None:
    _, token = developer_with_app(fresh.settings, "probe", "probe-app")
    with fresh.client(Authorization=f"Bearer {token}") as c:
        r = c.post("/api/jobs", json=CASES[case])
        print(case, r.status_code, r.text[:300])
        assert r.status_code < 500
        again = c.post("/api/jobs", json={"manifest": M})
        assert again.status_code == 201, again.text
