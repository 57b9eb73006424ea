"""The S3 object store over real HTTP: the shared suite against two local S3 servers.

boto3 talks to them on 127.0.0.1 and presigned URLs are fetched with httpx; nothing is
patched. moto (server mode) runs everything except the signature checks: it accepts
presigned URLs whatever their signature or expiry. So the whole suite also runs against a
server that verifies them: Versity's S3 gateway, or any S3 server given as HUTCH_TEST_S3_URL
(tests/support/s3.py says how each is found and started).
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from storage.errors import AlreadyExists, StorageError, TooLarge
from storage.objects.s3 import S3Location, S3ObjectStore
from tests.conformance.objects import ObjectStoreConformance, Response, payload, read_all, run
from tests.support.s3 import CREDENTIALS
from tests.support.services import unavailable

pytestmark = pytest.mark.integration

PART = 5 << 20  # the smallest part S3 accepts


def _http(
    method: str, url: str, body: bytes | None, headers: dict[str, str], later_s: float
) -> Response:
    if later_s:
        time.sleep(later_s)  # a real server's clock decides expiry; nothing to inject
    answer = httpx.request(method, url, content=body, headers=headers, timeout=30)
    return Response(answer.status_code, answer.content, dict(answer.headers))


class _HttpHooks(ObjectStoreConformance):
    def http_get(self, store: Any, url: str, *, later_s: float = 0) -> Response:
        return _http("GET", url, None, {}, later_s)

    def http_put(
        self,
        store: Any,
        url: str,
        body: bytes,
        *,
        content_type: str | None = None,
        later_s: float = 0,
    ) -> Response:
        headers = {"content-type": content_type} if content_type else {}
        return _http("PUT", url, body, headers, later_s)

    def tamper(self, store: Any, key: str, data: bytes) -> None:
        # Unconditionally, with the bucket's credentials: what no URL Hutch signs can do.
        location = store.location
        store._client.put_object(Bucket=location.bucket, Key=location.prefix + key, Body=data)


class TestS3OnMoto(_HttpHooks):
    big_size = 2 * PART + (1 << 20)
    verifies_presigned_urls = False  # checked: moto 5 ignores X-Amz-Signature and expiry

    @pytest.fixture
    def store(self, moto_endpoint: str) -> Iterator[S3ObjectStore]:
        bucket = f"hutch-{uuid.uuid4().hex[:12]}"
        location = S3Location.from_url(
            f"s3://{bucket}?endpoint={moto_endpoint}&region=eu-west-1&create_bucket=1"
        )
        s = S3ObjectStore(location, part_size=PART, credentials=CREDENTIALS)
        run(s.start())
        yield s
        run(s.close())


class TestS3Verifying(_HttpHooks):
    big_size = 2 * PART + (1 << 20)

    @pytest.fixture
    def store(self, verifying_s3: tuple[str, Any]) -> Iterator[S3ObjectStore]:
        url, credentials = verifying_s3
        prefix = f"test-{uuid.uuid4().hex[:12]}"
        joiner = "&" if "?" in url else "?"
        location = S3Location.from_url(f"{url}{joiner}prefix={prefix}&create_bucket=1")
        s = S3ObjectStore(location, part_size=PART, credentials=credentials)
        try:
            run(s.start())
        except StorageError as exc:
            unavailable(f"S3 server at {url} unusable: {exc}")
        yield s
        run(s.close())


def test_aborted_multipart_upload_leaves_no_parts(moto_endpoint: str) -> None:
    location = S3Location.from_url(
        f"s3://hutch-abort?endpoint={moto_endpoint}&region=us-east-1&create_bucket=1"
    )
    store = S3ObjectStore(location, part_size=PART, credentials=CREDENTIALS)
    run(store.start())
    data = payload(3 * PART)
    with pytest.raises(TooLarge):
        run(store.put_stream("apps/x/1.0.0/x.bin", [data], max_bytes=2 * PART + 1))
    client = store._client
    assert client.list_multipart_uploads(Bucket="hutch-abort").get("Uploads", []) == []
    assert client.list_objects_v2(Bucket="hutch-abort").get("KeyCount") == 0


def test_presigned_urls_are_sigv4_with_the_requested_expiry(moto_endpoint: str) -> None:
    location = S3Location.from_url(f"s3://b?endpoint={moto_endpoint}&region=us-east-1")
    store = S3ObjectStore(location, credentials=CREDENTIALS)
    url = store.presign_put("uploads/apps/a/1.0.0/a.apk", 300, max_bytes=10)
    query = httpx.URL(url).params
    assert query["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    assert query["X-Amz-Expires"] == "300"
    assert url.startswith(f"{moto_endpoint}/b/uploads/apps/a/1.0.0/a.apk?")
    assert query["X-Amz-SignedHeaders"] == "host"  # a plain PUT: no header to send


def test_public_endpoint_signs_for_the_client_facing_host(moto_endpoint: str) -> None:
    location = S3Location.from_url(
        f"s3://b?endpoint={moto_endpoint}&public_endpoint=https://files.example.test"
        "&region=us-east-1&prefix=hutch"
    )
    store = S3ObjectStore(location, credentials=CREDENTIALS)
    url = store.presign_get("apps/a/1.0.0/a.apk", 60, filename="a.apk")
    assert url.startswith("https://files.example.test/b/hutch/apps/a/1.0.0/a.apk?")
    assert "response-content-disposition=attachment" in url


def test_missing_bucket_without_create_is_an_error(moto_endpoint: str) -> None:
    store = S3ObjectStore(
        S3Location.from_url(f"s3://absent-bucket?endpoint={moto_endpoint}"),
        credentials=CREDENTIALS,
    )
    with pytest.raises(StorageError, match="does not exist"):
        run(store.start())


def test_unreachable_endpoint_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound but not listening: connections are refused
        store = S3ObjectStore(
            S3Location.from_url(f"s3://b?endpoint=http://127.0.0.1:{port}&region=us-east-1"),
            credentials=CREDENTIALS,
        )
        from storage.errors import Unavailable

        with pytest.raises(Unavailable):
            run(store.head("a/x"))


def test_location_from_url() -> None:
    loc = S3Location.from_url("s3://bucket?endpoint=http://h:9000&region=auto&prefix=/p/q/")
    assert (loc.bucket, loc.endpoint, loc.region, loc.prefix, loc.create_bucket) == (
        "bucket",
        "http://h:9000",
        "auto",
        "p/q/",
        False,
    )
    with pytest.raises(ValueError, match="s3://"):
        S3Location.from_url("http://bucket")


@pytest.mark.integration
@pytest.mark.parametrize("server", ["moto", "versitygw"])
def test_multipart_write_onto_an_object_is_refused_and_aborted(
    server: str, request: pytest.FixtureRequest
) -> None:
    """The write-once condition also holds for a multipart upload, checked when it completes:
    the parts already sent are aborted and the object stays as it was."""
    if server == "moto":
        url = f"s3://hutch-once?endpoint={request.getfixturevalue('moto_endpoint')}"
        credentials: Any = CREDENTIALS
    else:
        url, credentials = request.getfixturevalue("verifying_s3")
    joiner = "&" if "?" in url else "?"
    location = S3Location.from_url(f"{url}{joiner}prefix=t{uuid.uuid4().hex[:8]}&create_bucket=1")
    store = S3ObjectStore(location, part_size=PART, credentials=credentials)
    run(store.start())
    key = "apps/x/1.0.0/x.bin"
    try:
        run(store.put_stream(key, [b"first"], max_bytes=10))
        with pytest.raises(AlreadyExists):
            run(store.put_stream(key, [payload(2 * PART + 1)], max_bytes=3 * PART))
        uploads = store._client.list_multipart_uploads(
            Bucket=location.bucket, Prefix=location.prefix
        )
        assert uploads.get("Uploads", []) == []
        assert run(read_all(store, key)) == b"first"
    finally:
        run(store.close())
