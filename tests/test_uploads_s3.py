"""Upload -> latest -> download through Hutch on S3 object storage, over real HTTP: moto in
server mode, and versitygw, which also verifies presigned signatures (see
tests/test_objects_s3.py for how each is started, skipped, or required under CI=true)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.builds_support import (
    bearer,
    direct_upload,
    follow,
    json_of,
    payload,
    presigned_upload,
)
from tests.conftest import Server, serve_in_thread
from tests.helpers import developer_with_app, error_of
from tests.test_objects_s3 import CREDENTIALS, moto_endpoint, verifying_s3  # noqa: F401

LIMIT = 6 << 20  # over one 5 MiB part, so direct uploads go up as multipart uploads


@pytest.fixture(scope="module", params=["moto", "versitygw"])
def s3_url(request: pytest.FixtureRequest) -> str:
    if request.param == "moto":
        endpoint = request.getfixturevalue("moto_endpoint")
        base = f"s3://hutch-{uuid.uuid4().hex[:8]}?endpoint={endpoint}&region=us-east-1"
    else:
        base, _ = request.getfixturevalue("verifying_s3")
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}prefix=t{uuid.uuid4().hex[:8]}&create_bucket=1"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, s3_url: str) -> Iterator[Server]:
    with pytest.MonkeyPatch.context() as env:
        env.setenv("AWS_ACCESS_KEY_ID", CREDENTIALS[0])
        env.setenv("AWS_SECRET_ACCESS_KEY", CREDENTIALS[1])
        data = tmp_path_factory.mktemp("s3-uploads") / "data"
        yield from serve_in_thread(data, HUTCH_OBJECTS=s3_url, HUTCH_MAX_UPLOAD=str(LIMIT))


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    return developer_with_app(server.settings, "sam", "sam-app")[1]


def _head(server: Server, key: str) -> Any:
    import asyncio

    return asyncio.run(server.runtime.objects.head(key))  # type: ignore[attr-defined]


def test_presigned_round_trip(server: Server, token: str) -> None:
    body = payload(300_000, seed=1)
    with server.client() as c:
        presign = json_of(
            c.post(
                "/api/upload/presign",
                headers=bearer(token),
                json={"fileName": "sam.apk", "name": "sam-app", "version": "1.0.0"},
            ),
            200,
        )
        assert not presign["uploadUrl"].startswith(server.url)  # straight to S3
        done = json_of(presigned_upload(c, token, "sam-app", "1.0.1", "sam.apk", body), 201)
        assert done["size"] == len(body)
        assert follow(c.get("/api/apps/sam-app/latest")).content == body
        info = json_of(c.get("/api/app/sam-app"), 200)
        assert httpx.get(info["downloadUrl"]).content == body


def test_direct_multipart_round_trip(server: Server, token: str) -> None:
    body = payload(LIMIT - 1000, seed=2)
    with server.client() as c:
        done = json_of(direct_upload(c, token, "sam-app", "2.0.0", "sam_arm64.deb", body), 201)
        assert done["architecture"] == "arm64"
        download = follow(c.get("/api/apps/sam-app/latest/linux/arm64/deb"))
        assert download.content == body
        assert "sam_arm64.deb" in download.headers["content-disposition"]


def test_oversized_uploads_leave_nothing(server: Server, token: str) -> None:
    with server.client() as c:
        direct = direct_upload(c, token, "sam-app", "3.0.0", "big.apk", payload(LIMIT + 1))
        assert direct.status_code == 413
        assert _head(server, "apps/sam-app/3.0.0/big.apk") is None
        # S3 cannot cap a presigned PUT: finalize measures it, refuses it and deletes it.
        grant = json_of(
            c.post(
                "/api/upload/presign",
                headers=bearer(token),
                json={"fileName": "big.apk", "name": "sam-app", "version": "3.0.1"},
            ),
            200,
        )
        assert httpx.put(grant["uploadUrl"], content=payload(LIMIT + 1)).status_code == 200
        finalize = c.post(
            "/api/upload",
            headers=bearer(token),
            json={
                "name": "sam-app",
                "version": "3.0.1",
                "fileName": "big.apk",
                "s3Key": grant["s3Key"],
            },
        )
        assert finalize.status_code == 413
        assert error_of(finalize)["code"] == "too_large"
        assert _head(server, grant["s3Key"]) is None
        listing = json_of(c.get("/api/apps/sam-app/builds", headers=bearer(token)), 200)
        assert {"3.0.0", "3.0.1"}.isdisjoint(b["version"] for b in listing["builds"])


def test_tampered_presigned_url_is_refused(
    server: Server, token: str, request: pytest.FixtureRequest
) -> None:
    if request.node.callspec.params["s3_url"] == "moto":
        pytest.skip("moto does not verify presigned signatures; versitygw does")
    with server.client() as c:
        json_of(direct_upload(c, token, "sam-app", "4.0.0", "sam.apk", b"sam"), 201)
        url = json_of(c.get("/api/app/sam-app"), 200)["downloadUrl"]
    assert httpx.get(url).content == b"sam"
    assert httpx.get(url.replace("4.0.0", "2.0.0")).status_code == 403
