"""One behaviour suite for every ObjectStore adapter.

A test module subclasses `ObjectStoreConformance`, provides a `store` fixture (a started,
empty store) and implements the two HTTP hooks: how a client GETs or PUTs a presigned URL.
For S3 they are real HTTP requests to the server; for the filesystem store they go through
`verify_signature` exactly as Hutch's `/objects/{key}` resource does.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import AsyncIterator, Awaitable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit

import pytest

from storage.errors import InvalidKey, NotFound, TooLarge
from storage.objects import ObjectStore, finalize_upload

T = TypeVar("T")

BAD_KEYS = [
    "",
    "../etc/passwd",
    "apps/../../etc/passwd",
    "apps/x/..",
    "/etc/passwd",
    "apps//x",
    "apps/x/",
    "apps\\x",
    "apps/x\x00.apk",
    ".meta/apps/x.json",
    "apps/.tmp",
    "apps/./x",
    "apps/x y.apk",
    "apps/%2e%2e/x",
    "apps/-rf",
    "apps/\u00e9.apk",
    "apps/x\n.apk",
    "a/" * 10 + "x",
    "x" * 600,
]


def run(coro: Awaitable[T]) -> T:
    async def main() -> T:
        return await coro

    return asyncio.run(main())


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


async def agen(parts: list[bytes]) -> AsyncIterator[bytes]:
    for part in parts:
        await asyncio.sleep(0)
        yield part


def sync_chunks(data: bytes, size: int) -> Iterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def read_all(store: ObjectStore, key: str) -> bytes:
    stream = await store.open(key)
    return b"".join([chunk async for chunk in stream.chunks])


def payload(size: int, seed: int = 1) -> bytes:
    block = hashlib.sha256(str(seed).encode()).digest()
    return (block * (size // len(block) + 1))[:size]


def tamper_signature(url: str) -> str:
    """Flip one character of the signature parameter (`sig` or `X-Amz-Signature`)."""

    def flip(match: re.Match[str]) -> str:
        value = match.group(2)
        last = "A" if value[-1] != "A" else "B"
        return match.group(1) + value[:-1] + last

    tampered, count = re.subn(r"([?&](?:sig|X-Amz-Signature)=)([^&]+)", flip, url)
    assert count == 1, url
    return tampered


class ObjectStoreConformance:
    #: Bytes that make an upload span several parts/blocks of the adapter.
    big_size = 3 << 20
    #: False for a server known not to check presigned signatures or expiry (moto).
    verifies_presigned_urls = True

    # --- hooks -----------------------------------------------------------------------------
    def http_get(self, store: Any, url: str, *, later_s: float = 0) -> Response:
        raise NotImplementedError

    def http_put(
        self,
        store: Any,
        url: str,
        body: bytes,
        *,
        content_type: str | None = None,
        later_s: float = 0,
    ) -> Response:
        raise NotImplementedError

    def needs_verifying_server(self) -> None:
        if not self.verifies_presigned_urls:
            pytest.skip("this server does not verify presigned URL signatures or expiry")

    # --- writes and reads ------------------------------------------------------------------
    def test_put_reports_size_and_sha256(self, store: ObjectStore) -> None:
        data = payload(100_000)
        apk = "application/vnd.android.package-archive"
        stored = run(
            store.put_stream(
                "apps/demo/1.0.0/app.apk",
                agen([data[:7], data[7:]]),
                max_bytes=1 << 20,
                content_type=apk,
            )
        )
        assert stored.size == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        info = run(store.head("apps/demo/1.0.0/app.apk"))
        assert info is not None
        assert (info.size, info.content_type) == (len(data), apk)
        assert run(read_all(store, "apps/demo/1.0.0/app.apk")) == data

    def test_sync_and_async_chunk_sources(self, store: ObjectStore) -> None:
        data = payload(50_000, seed=2)
        run(store.put_stream("a/sync.bin", sync_chunks(data, 999), max_bytes=len(data)))
        run(
            store.put_stream(
                "a/async.bin", agen(list(sync_chunks(data, 4096))), max_bytes=len(data)
            )
        )
        assert run(read_all(store, "a/sync.bin")) == data
        assert run(read_all(store, "a/async.bin")) == data

    def test_empty_object(self, store: ObjectStore) -> None:
        stored = run(store.put_stream("a/empty", [], max_bytes=0))
        assert (stored.size, stored.sha256) == (0, hashlib.sha256(b"").hexdigest())
        info = run(store.head("a/empty"))
        assert info is not None
        assert info.size == 0
        assert run(read_all(store, "a/empty")) == b""

    def test_large_upload_spanning_parts(self, store: ObjectStore) -> None:
        data = payload(self.big_size + 12345, seed=3)
        stored = run(
            store.put_stream(
                "apps/big/2.0.0/big.bin", sync_chunks(data, 64 << 10), max_bytes=len(data)
            )
        )
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        opened = run(store.open("apps/big/2.0.0/big.bin"))
        assert opened.info.size == len(data)
        run(opened.aclose())
        assert hashlib.sha256(run(read_all(store, "apps/big/2.0.0/big.bin"))).hexdigest() == (
            stored.sha256
        )

    def test_too_large_leaves_nothing(self, store: ObjectStore) -> None:
        data = payload(self.big_size + 1, seed=4)
        with pytest.raises(TooLarge):
            run(
                store.put_stream("a/huge.bin", sync_chunks(data, 64 << 10), max_bytes=self.big_size)
            )
        assert run(store.head("a/huge.bin")) is None
        with pytest.raises(NotFound):
            run(store.open("a/huge.bin"))

    def test_too_large_keeps_previous_object(self, store: ObjectStore) -> None:
        run(store.put_stream("a/keep.bin", [b"old"], max_bytes=10))
        with pytest.raises(TooLarge):
            run(store.put_stream("a/keep.bin", [b"new", b"-but-too-long"], max_bytes=10))
        assert run(read_all(store, "a/keep.bin")) == b"old"

    def test_overwrite_replaces_bytes_and_type(self, store: ObjectStore) -> None:
        run(store.put_stream("img/icon", [b"GIF89a..."], max_bytes=100, content_type="image/gif"))
        run(store.put_stream("img/icon", [b"\x89PNG"], max_bytes=100, content_type="image/png"))
        info = run(store.head("img/icon"))
        assert info is not None
        assert (info.size, info.content_type) == (4, "image/png")
        assert run(read_all(store, "img/icon")) == b"\x89PNG"

    def test_concurrent_writers_leave_one_whole_object(self, store: ObjectStore) -> None:
        a, b = payload(200_000, seed=5), payload(200_000, seed=6)

        async def both() -> None:
            await asyncio.gather(
                store.put_stream("a/race", agen(list(sync_chunks(a, 1000))), max_bytes=1 << 20),
                store.put_stream("a/race", agen(list(sync_chunks(b, 1000))), max_bytes=1 << 20),
            )

        run(both())
        assert run(read_all(store, "a/race")) in (a, b)

    def test_missing_key(self, store: ObjectStore) -> None:
        assert run(store.head("apps/nothing/here")) is None
        with pytest.raises(NotFound):
            run(store.open("apps/nothing/here"))
        run(store.delete("apps/nothing/here"))  # idempotent

    def test_delete(self, store: ObjectStore) -> None:
        run(store.put_stream("a/gone", [b"x"], max_bytes=1))
        run(store.delete("a/gone"))
        assert run(store.head("a/gone")) is None
        run(store.delete("a/gone"))

    def test_early_close_of_a_read(self, store: ObjectStore) -> None:
        run(store.put_stream("a/partial", [payload(1 << 20)], max_bytes=1 << 20))

        async def first_chunk() -> bytes:
            stream = await store.open("a/partial")
            chunk = await anext(stream.chunks)
            await stream.aclose()
            return chunk

        assert len(run(first_chunk())) > 0

    @pytest.mark.parametrize("key", BAD_KEYS)
    def test_unsafe_keys_refused_everywhere(self, store: ObjectStore, key: str) -> None:
        with pytest.raises(InvalidKey):
            run(store.put_stream(key, [b"x"], max_bytes=1))
        with pytest.raises(InvalidKey):
            run(store.head(key))
        with pytest.raises(InvalidKey):
            run(store.open(key))
        with pytest.raises(InvalidKey):
            run(store.delete(key))
        with pytest.raises(InvalidKey):
            store.presign_get(key, 60)
        with pytest.raises(InvalidKey):
            store.presign_put(key, 60, max_bytes=1)

    @pytest.mark.parametrize("expires_s", [0, -5, 7 * 24 * 3600 + 1])
    def test_presign_expiry_bounds(self, store: ObjectStore, expires_s: int) -> None:
        with pytest.raises(ValueError, match="expiry"):
            store.presign_get("a/x", expires_s)
        with pytest.raises(ValueError, match="expiry"):
            store.presign_put("a/x", expires_s, max_bytes=1)

    # --- presigned URLs --------------------------------------------------------------------
    def test_presigned_put_then_get(self, store: ObjectStore) -> None:
        data = payload(70_000, seed=7)
        put_url = store.presign_put("apps/demo/1.2.0/demo.apk", 300, max_bytes=1 << 20)
        assert self.http_put(store, put_url, data).status == 200
        get_url = store.presign_get("apps/demo/1.2.0/demo.apk", 300)
        got = self.http_get(store, get_url)
        assert (got.status, got.body) == (200, data)
        accepted = run(finalize_upload(store, "apps/demo/1.2.0/demo.apk", max_bytes=1 << 20))
        assert (accepted.size, accepted.sha256) == (len(data), hashlib.sha256(data).hexdigest())

    def test_presigned_put_with_content_type(self, store: ObjectStore) -> None:
        url = store.presign_put("img/logo.png", 300, max_bytes=100, content_type="image/png")
        assert self.http_put(store, url, b"\x89PNG..", content_type="image/png").status == 200
        info = run(store.head("img/logo.png"))
        assert info is not None
        assert info.content_type == "image/png"

    def test_presigned_get_names_the_download(self, store: ObjectStore) -> None:
        run(store.put_stream("apps/demo/1.0.0/f", [b"abc"], max_bytes=3))
        url = store.presign_get("apps/demo/1.0.0/f", 300, filename="Demo App 1.0.apk")
        got = self.http_get(store, url)
        assert got.status == 200
        assert got.body == b"abc"
        disposition = got.headers.get("content-disposition", "")
        assert disposition.startswith("attachment")
        assert "Demo%20App%201.0.apk" in disposition

    def test_oversized_presigned_upload_is_not_kept(self, store: ObjectStore) -> None:
        url = store.presign_put("apps/demo/9.9.9/fat.bin", 300, max_bytes=1000)
        status = self.http_put(store, url, payload(5000)).status
        if status == 200:  # the server could not enforce the limit: finalize must
            with pytest.raises(TooLarge):
                run(finalize_upload(store, "apps/demo/9.9.9/fat.bin", max_bytes=1000))
        else:
            assert status == 413
            with pytest.raises(NotFound):
                run(finalize_upload(store, "apps/demo/9.9.9/fat.bin", max_bytes=1000))
        assert run(store.head("apps/demo/9.9.9/fat.bin")) is None

    def test_presigned_get_of_missing_object(self, store: ObjectStore) -> None:
        got = self.http_get(store, store.presign_get("a/never", 60))
        assert got.status == 404

    def test_expired_url_refused(self, store: ObjectStore) -> None:
        self.needs_verifying_server()
        run(store.put_stream("a/exp", [b"secret"], max_bytes=10))
        url = store.presign_get("a/exp", 1)
        got = self.http_get(store, url, later_s=2.5)
        assert got.status == 403
        assert got.body != b"secret"
        put_url = store.presign_put("a/exp", 1, max_bytes=10)
        assert self.http_put(store, put_url, b"overwrite", later_s=2.5).status == 403
        assert run(read_all(store, "a/exp")) == b"secret"

    def test_tampered_url_refused(self, store: ObjectStore) -> None:
        self.needs_verifying_server()
        run(store.put_stream("a/one", [b"one"], max_bytes=10))
        run(store.put_stream("a/two", [b"two"], max_bytes=10))
        url = store.presign_get("a/one", 300)
        assert self.http_get(store, tamper_signature(url)).status == 403
        other = url.replace("/a/one", "/a/two")
        assert other != url
        assert self.http_get(store, other).status == 403

    def test_get_url_cannot_upload(self, store: ObjectStore) -> None:
        self.needs_verifying_server()
        run(store.put_stream("a/ro", [b"read-only"], max_bytes=20))
        url = store.presign_get("a/ro", 300)
        assert self.http_put(store, url, b"evil").status == 403
        assert run(read_all(store, "a/ro")) == b"read-only"


def split_signed_url(url: str, marker: str = "/objects/") -> tuple[str, dict[str, str]]:
    """The key and query parameters of a filesystem-store URL, decoded as a server would."""
    parts = urlsplit(url)
    path = parts.path
    key = unquote(path[path.index(marker) + len(marker) :])
    params: dict[str, str] = {}
    for pair in parts.query.split("&") if parts.query else []:
        name, _, value = pair.partition("=")
        params[unquote(name)] = unquote(value)
    return key, params
