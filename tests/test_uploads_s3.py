"""Upload -> latest -> download through Hutch on S3 object storage, over real HTTP: moto in
server mode, and versitygw, which also verifies presigned signatures (see
tests/test_objects_s3.py for how each is started, skipped, or required under CI=true)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.builds import bearer, direct_upload, follow, json_of, payload, presigned_upload
from tests.support.responses import error_of
from tests.support.s3 import CREDENTIALS
from tests.support.servers import Server, serve_in_thread

pytestmark = pytest.mark.integration

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
        put = httpx.put(grant["uploadUrl"], content=payload(LIMIT + 1))
        assert put.status_code == 200
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


def _is_moto(request: pytest.FixtureRequest) -> bool:
    return bool(request.node.callspec.params["s3_url"] == "moto")


def _finalize(c: httpx.Client, token: str, version: str, key: str) -> httpx.Response:
    body = {"name": "sam-app", "version": version, "fileName": "sam.apk", "s3Key": key}
    return c.post("/api/upload", headers=bearer(token), json=body)


@pytest.mark.integration
def test_a_presigned_url_cannot_change_a_finalized_build(
    server: Server, token: str, request: pytest.FixtureRequest
) -> None:
    """The documented flow with a plain PUT (no extra headers, as any S3 presigned-URL client
    sends it). The URL stays valid after finalize, and S3 lets it PUT again: that only
    stages other bytes, which nothing serves."""
    with server.client() as c:
        grant = json_of(
            c.post(
                "/api/upload/presign",
                headers=bearer(token),
                json={"fileName": "sam.apk", "name": "sam-app", "version": "5.0.0"},
            ),
            200,
        )
        assert "headers" not in grant
        for body in (b"a first try", b"the real build"):  # the last PUT before finalize counts
            # Whatever type the PUT claims, the build is served as what its file name says.
            put = httpx.put(grant["uploadUrl"], content=body, headers={"Content-Type": "text/html"})
            assert put.status_code == 200, put.text
        done = json_of(_finalize(c, token, "5.0.0", grant["s3Key"]), 201)
        assert done["sha256"] == hashlib.sha256(b"the real build").hexdigest()
        assert _head(server, grant["s3Key"]) is None  # the staged copy is gone
        again = httpx.put(grant["uploadUrl"], content=b"a replacement!")
        assert again.status_code == 200, again.text
        handed_out = json_of(c.get("/api/app/sam-app"), 200)["downloadUrl"]
        for served in (follow(c.get("/api/apps/sam-app/latest")), httpx.get(handed_out)):
            assert served.content == b"the real build"
            assert hashlib.sha256(served.content).hexdigest() == done["sha256"]
            assert served.headers["content-type"] == "application/vnd.android.package-archive"
        retry = json_of(_finalize(c, token, "5.0.0", grant["s3Key"]), 200)
        assert (retry["id"], retry["sha256"]) == (done["id"], done["sha256"])
        assert _head(server, grant["s3Key"]) is None  # what was PUT since: dropped
        if not _is_moto(request):  # moto checks no signature
            key = grant["s3Key"]
            for target in (done["s3Key"], key.replace("sam-app", "other-app")):
                moved = grant["uploadUrl"].replace(key, target)
                assert moved != grant["uploadUrl"]
                assert httpx.put(moved, content=b"mallory").status_code == 403
        assert follow(c.get("/api/apps/sam-app/latest")).content == b"the real build"


@pytest.mark.integration
def test_bytes_changed_in_the_bucket_are_never_served(server: Server, token: str) -> None:
    with server.client() as c:
        done = json_of(direct_upload(c, token, "sam-app", "6.0.0", "sam.apk", b"original"), 201)
        assert follow(c.get("/api/apps/sam-app/latest")).content == b"original"
        # Someone with the bucket's credentials replaces the object behind Hutch's back.
        store = server.runtime.objects  # type: ignore[attr-defined]
        store._client.put_object(
            Bucket=store.location.bucket,
            Key=store.location.prefix + done["s3Key"],
            Body=b"EVIL!!!!",
        )
        for answer in (c.get("/api/apps/sam-app/latest"), c.get("/api/app/sam-app")):
            assert answer.status_code == 409, answer.text
            assert error_of(answer)["code"] == "build_corrupted"
            assert b"EVIL" not in answer.content
