"""The filesystem object store: the shared suite, plus its signed URLs and on-disk layout."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import falcon
import falcon.asgi
import httpx
import orjson
import pytest

from ingest.objects import SignedObjects
from storage.errors import Conflict, InvalidKey, NotFound, TooLarge
from storage.objects import (
    ObjectStore,
    SignatureError,
    content_disposition,
    open_object_store,
    verify_signature,
)
from storage.objects.filesystem import FilesystemObjectStore
from tests.conformance.objects import (
    ObjectStoreConformance,
    Response,
    run,
    split_signed_url,
)
from tests.support.servers import free_port, uvicorn_thread
from web.error_handler import handle_error

pytestmark = pytest.mark.integration

SECRET = b"test-secret-0123456789"
PUBLIC = "https://hutch.example.test"


@pytest.fixture
def store(tmp_path: Path) -> FilesystemObjectStore:
    s = FilesystemObjectStore(tmp_path / "objects", public_url=PUBLIC, secret=SECRET)
    run(s.start())
    return s


class _Served:
    """The stores the test server serves, each under its own prefix, and how far its clock
    is ahead (so expiry is tested without waiting)."""

    def __init__(self) -> None:
        self.routes: dict[str, SignedObjects] = {}
        self.ahead_s = 0.0

    def clock(self) -> float:
        return time.time() + self.ahead_s


class _Routed:
    """`/t/{n}/objects/{key}`: Hutch's own signed-URL resource for store `n`."""

    def __init__(self, served: _Served) -> None:
        self._served = served

    def _resource(self, n: str) -> SignedObjects:
        if n not in self._served.routes:
            raise falcon.HTTPNotFound()
        return self._served.routes[n]

    async def on_get(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, n: str, key: str
    ) -> None:
        await self._resource(n).on_get(req, resp, key)

    async def on_put(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, n: str, key: str
    ) -> None:
        await self._resource(n).on_put(req, resp, key)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[str, _Served]]:
    """A real HTTP server for the stores' signed URLs (uvicorn in a thread)."""
    state = _Served()
    app = falcon.asgi.App()
    app.add_error_handler(Exception, handle_error)
    app.add_route("/t/{n}/objects/{key:path}", _Routed(state))
    port = free_port()
    with uvicorn_thread(app, port):
        yield f"http://127.0.0.1:{port}", state


def _http(
    served: _Served,
    method: str,
    url: str,
    body: bytes | None,
    headers: dict[str, str],
    later_s: float,
) -> Response:
    served.ahead_s = later_s
    try:
        answer = httpx.request(method, url, content=body, headers=headers, timeout=30)
    finally:
        served.ahead_s = 0.0
    return Response(answer.status_code, answer.content, dict(answer.headers))


@pytest.mark.integration
class TestFilesystemStore(ObjectStoreConformance):
    """Presigned URLs are fetched over HTTP from Hutch's `/objects/{key}` resource."""

    @pytest.fixture
    def store(self, tmp_path: Path, served: tuple[str, _Served]) -> FilesystemObjectStore:
        base, state = served
        n = str(len(state.routes))
        s = FilesystemObjectStore(tmp_path / "objects", public_url=f"{base}/t/{n}", secret=SECRET)
        run(s.start())
        state.routes[n] = SignedObjects(s, SECRET, clock=state.clock)
        self.served = state
        return s

    def http_get(self, store: Any, url: str, *, later_s: float = 0) -> Response:
        return _http(self.served, "GET", url, None, {}, later_s)

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
        return _http(self.served, "PUT", url, body, headers, later_s)

    def tamper(self, store: Any, key: str, data: bytes) -> None:
        with (store.root / key).open("r+b") as file:
            file.write(data)

    def test_signed_get_serves_only_the_signed_bytes(self, store: FilesystemObjectStore) -> None:
        stored = run(store.put_stream("apps/a/1.0.0/a.apk", [b"original"], max_bytes=10))
        url = store.presign_get("apps/a/1.0.0/a.apk", 60, filename="a.apk", sha256=stored.sha256)
        assert self.http_get(store, url).body == b"original"
        self.tamper(store, "apps/a/1.0.0/a.apk", b"EVIL")
        refused = self.http_get(store, url)
        assert refused.status == 409
        assert b"EVIL" not in refused.body
        assert orjson.loads(refused.body)["error"]["code"] == "object_corrupted"
        wrong = store.presign_get("apps/a/1.0.0/a.apk", 60, sha256=stored.sha256)
        assert self.http_get(store, wrong.replace(stored.sha256, "0" * 64)).status == 403

    def test_a_file_put_back_whole_is_served_again(self, store: FilesystemObjectStore) -> None:
        stored = run(store.put_stream("a/restored", [b"original"], max_bytes=10))
        path = store.root / "a" / "restored"
        path.unlink()
        path.write_bytes(b"original")  # a restore: another file, the same bytes
        run(store.verify("a/restored", stored.sha256, etag=stored.etag))
        url = store.presign_get("a/restored", 60, sha256=stored.sha256)
        assert self.http_get(store, url).body == b"original"


def test_url_format(store: FilesystemObjectStore) -> None:
    url = store.presign_get("apps/demo/1.0.0/demo.apk", 300, filename="demo.apk")
    assert url.startswith(f"{PUBLIC}/objects/apps/demo/1.0.0/demo.apk?expires=")
    key, params = split_signed_url(url)
    assert key == "apps/demo/1.0.0/demo.apk"
    assert set(params) == {"expires", "filename", "sig"}
    assert abs(int(params["expires"]) - (time.time() + 300)) < 5
    put = store.presign_put(
        "uploads/apps/demo/1.0.0/demo.apk", 300, max_bytes=1000, content_type="image/png"
    )
    assert set(split_signed_url(put)[1]) == {"expires", "max", "type", "sig"}


def test_verify_signature_checks_every_signed_field(store: FilesystemObjectStore) -> None:
    url = store.presign_put("uploads/a/x", 300, max_bytes=1000, content_type="image/png")
    key, params = split_signed_url(url)
    now = time.time()
    grant = verify_signature(SECRET, "PUT", key, params, now)
    assert (grant.key, grant.max_bytes, grant.content_type) == ("uploads/a/x", 1000, "image/png")

    def reason(method: str = "PUT", k: str = key, secret: bytes = SECRET, **changes: str) -> str:
        with pytest.raises(SignatureError) as info:
            verify_signature(secret, method, k, {**params, **changes}, now)
        return info.value.reason

    assert reason(max="1000000") == "bad_signature"
    assert reason(type="text/html") == "bad_signature"
    assert reason(expires=str(int(params["expires"]) + 3600)) == "bad_signature"
    assert reason(k="uploads/a/y") == "bad_signature"
    assert reason(k="a/x") == "bad_signature"
    assert reason(method="GET") == "bad_signature"
    assert reason(secret=b"another-secret") == "bad_signature"
    assert reason(sig="") == "bad_signature"
    assert reason(sig="\u00e9" * 43) == "bad_signature"
    assert reason(expires="soon") == "malformed"
    assert reason(method="DELETE") == "malformed"
    without_sig = {k: v for k, v in params.items() if k != "sig"}
    with pytest.raises(SignatureError):
        verify_signature(SECRET, "PUT", key, without_sig, now)
    with pytest.raises(InvalidKey):
        verify_signature(SECRET, "PUT", "../uploads/a/x", params, now)


def test_expiry_boundary(tmp_path: Path) -> None:
    clock = [1_000_000.0]
    s = FilesystemObjectStore(tmp_path, public_url=PUBLIC, secret=SECRET, clock=lambda: clock[0])
    key, params = split_signed_url(s.presign_get("a/x", 60))
    assert verify_signature(SECRET, "GET", key, params, 1_000_059.9).key == "a/x"
    with pytest.raises(SignatureError) as info:
        verify_signature(SECRET, "GET", key, params, 1_000_060.0)
    assert info.value.reason == "expired"


def test_writes_are_atomic_and_leave_no_temporary_files(store: FilesystemObjectStore) -> None:
    run(store.put_stream("a/x", [b"1" * 10], max_bytes=10))
    with pytest.raises(TooLarge):
        run(store.put_stream("a/y", [b"1" * 11], max_bytes=10))

    async def failing() -> Any:
        yield b"partial"
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError):
        run(store.put_stream("a/z", failing(), max_bytes=100))
    assert os.listdir(store.root / ".tmp") == []
    assert sorted(os.listdir(store.root / "a")) == ["x"]


def test_stale_sidecar_is_ignored(store: FilesystemObjectStore) -> None:
    run(store.put_stream("img/a.png", [b"png"], max_bytes=10, content_type="image/x-custom"))
    # Something replaced the file behind the store's back (a restore, say).
    target = store.root / "img" / "a.png"
    replacement = store.root / "img" / "b"
    replacement.write_bytes(b"other")
    os.replace(replacement, target)
    info = run(store.head("img/a.png"))
    assert info is not None
    assert info.content_type == "image/png"


def test_key_under_an_object_is_a_conflict(store: FilesystemObjectStore) -> None:
    run(store.put_stream("a/b", [b"x"], max_bytes=1))
    with pytest.raises(Conflict):
        run(store.put_stream("a/b/c", [b"x"], max_bytes=1))
    with pytest.raises(Conflict):
        run(store.put_stream("a", [b"x"], max_bytes=1))
    assert run(store.head("a")) is None
    assert os.listdir(store.root / ".tmp") == []


def test_symlinked_directory_cannot_escape(store: FilesystemObjectStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"private")
    (store.root / "link").symlink_to(outside)
    with pytest.raises(NotFound):
        run(store.open("link/secret"))


def test_open_object_store_from_url(tmp_path: Path) -> None:
    store: ObjectStore = open_object_store(
        f"file:///{tmp_path}/objects", public_url=PUBLIC, secret=SECRET
    )
    run(store.start())
    run(store.put_stream("a/x", [b"hi"], max_bytes=2))
    assert (tmp_path / "objects" / "a" / "x").read_bytes() == b"hi"
    with pytest.raises(ValueError, match="scheme"):
        open_object_store("ftp://x", public_url=PUBLIC, secret=SECRET)


def test_content_disposition() -> None:
    assert content_disposition("app.apk") == (
        "attachment; filename=\"app.apk\"; filename*=UTF-8''app.apk"
    )
    value = content_disposition('Über "quoted".apk')
    assert 'filename="_ber _quoted_.apk"' in value
    assert "filename*=UTF-8''%C3%9Cber%20%22quoted%22.apk" in value
    with pytest.raises(ValueError, match="line breaks"):
        content_disposition("a\r\nSet-Cookie: x")
