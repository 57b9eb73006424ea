"""Uploads, downloads and web builds under `hutch serve`: ingest workers and the query
process are separate processes, so this checks what only shows there: reads forwarded to the
query process (the query routes of hutch/routes.py), signed URLs made by one process and served by another (one secret key,
generated once into the data directory), and download counts taken by several workers."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.admin import developer_with_app, hutch
from tests.support.builds import bearer, direct_upload, follow, json_of, presigned_upload
from tests.support.servers import Served, free_port
from tests.support.settings import make_settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    process = Served(make_settings(tmp_path / "data"), free_port())
    try:
        yield process
    finally:
        process.process.send_signal(signal.SIGINT)
        process.process.wait(timeout=60)


@pytest.mark.slow
def test_builds_across_processes(served: Served) -> None:
    _, token = developer_with_app(served.settings, "uma", "uma-app")
    with httpx.Client(base_url=served.url, timeout=30) as c:
        json_of(direct_upload(c, token, "uma-app", "1.0.0", "uma.apk", b"direct"), 201)
        json_of(presigned_upload(c, token, "uma-app", "1.0.1", "uma.apk", b"presigned"), 201)
        info = json_of(c.get("/api/app/uma-app"), 200)  # answered by the query process
        assert info["version"] == "1.0.1"
        assert httpx.get(info["downloadUrl"]).content == b"presigned"  # served by ingest
        # Clients are addresses (taken from X-Forwarded-For, which a proxy on 127.0.0.1 may set).
        for address in ("192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.1"):
            download = c.get("/api/apps/uma-app/latest", headers={"X-Forwarded-For": address})
            assert follow(download).content == b"presigned"

        def counted() -> bool:
            listing = json_of(c.get("/api/apps/uma-app/builds", headers=bearer(token)), 200)
            return [b["downloads"] for b in listing["builds"]] == [3, 0]

        eventually(counted, timeout_s=30)
        made = json_of(
            c.post(
                "/api/v1/builds",
                headers=bearer(token),
                json={
                    "url": "https://example.com/",
                    "name": "Uma",
                    "bundleId": "com.uma.app",
                    "version": "1.0.0",
                },
            ),
            201,
        )
        code, worker = hutch(served.settings, "worker", "create", "serve-test")
        assert code == 0
        claim = json_of(
            c.post(
                "/api/v1/worker/claim",
                headers=bearer(worker["token"]),
                json={"platform": "android"},
            ),
            200,
        )
        assert claim["build"]["id"] == made["id"]
        upload = claim["upload"]
        put = httpx.put(upload["url"], content=b"PK project")
        assert put.status_code == 200
        report = c.post(
            f"/api/v1/worker/builds/{made['id']}/status",
            headers=bearer(worker["token"]),
            json={"claimId": claim["claimId"], "status": "success"},
        )
        assert json_of(report, 200)["status"] == "success"
        shown = json_of(c.get(f"/api/v1/builds/{made['id']}", headers=bearer(token)), 200)
        assert httpx.get(shown["downloadUrl"]).content == b"PK project"
        assert json_of(c.get("/api/v1/builds", headers=bearer(token)), 200)["total"] == 1
