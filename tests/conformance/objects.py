"""One behaviour suite for every ObjectStore adapter.

A test module subclasses `ObjectStoreConformance`, provides a `store` fixture (a started,
empty store) and implements the hooks: how a client GETs or PUTs a presigned URL (real HTTP
requests, plain ones as any client sends them, to the S3 server or to Hutch's own
`/objects/{key}` resource), and how someone with direct access to the storage changes an
object's bytes behind the store's back.
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

from storage.errors import AlreadyExists, Corrupted, InvalidKey, NotFound, TooLarge
from storage.objects import ObjectStore, finalize_upload, staging_key

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
        """PUT `body` with no other header than `content_type`, as a plain client does."""
        raise NotImplementedError

    def tamper(self, store: Any, key: str, data: bytes) -> None:
        """Replace the object's bytes as someone with access to the storage could."""
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

    def test_too_large_leaves_the_key_free(self, store: ObjectStore) -> None:
        with pytest.raises(TooLarge):
            run(store.put_stream("a/retry.bin", [b"new", b"-but-too-long"], max_bytes=10))
        run(store.put_stream("a/retry.bin", [b"new"], max_bytes=10))
        assert run(read_all(store, "a/retry.bin")) == b"new"

    def test_objects_are_write_once(self, store: ObjectStore) -> None:
        first = run(
            store.put_stream("img/icon", [b"GIF89a..."], max_bytes=100, content_type="image/gif")
        )
        for chunks, limit in (([b"\x89PNG"], 100), ([b"\x89PNG", b"-and-too-long"], 5)):
            with pytest.raises((AlreadyExists, TooLarge)) as refused:
                run(store.put_stream("img/icon", chunks, max_bytes=limit, content_type="image/png"))
            assert refused.type is AlreadyExists or limit == 5
        info = run(store.head("img/icon"))
        assert info is not None
        assert (info.size, info.content_type, info.etag) == (9, "image/gif", first.etag)
        assert run(read_all(store, "img/icon")) == b"GIF89a..."

    def test_concurrent_writers_one_wins_whole(self, store: ObjectStore) -> None:
        a, b = payload(200_000, seed=5), payload(200_000, seed=6)

        async def both() -> tuple[object, ...]:
            return await asyncio.gather(
                store.put_stream("a/race", agen(list(sync_chunks(a, 1000))), max_bytes=1 << 20),
                store.put_stream("a/race", agen(list(sync_chunks(b, 1000))), max_bytes=1 << 20),
                return_exceptions=True,
            )

        outcomes = run(both())
        assert sorted(type(o).__name__ for o in outcomes) == ["AlreadyExists", "StoredObject"]
        winner = a if not isinstance(outcomes[0], Exception) else b
        assert run(read_all(store, "a/race")) == winner

    def test_deleted_key_can_be_written_again(self, store: ObjectStore) -> None:
        run(store.put_stream("a/again", [b"one"], max_bytes=10))
        run(store.delete("a/again"))
        run(store.put_stream("a/again", [b"two"], max_bytes=10))
        assert run(read_all(store, "a/again")) == b"two"

    # --- the recorded bytes --------------------------------------------------------------
    def test_etag_names_the_stored_version(self, store: ObjectStore) -> None:
        stored = run(store.put_stream("a/tagged", [b"bytes"], max_bytes=10))
        info = run(store.head("a/tagged"))
        assert info is not None
        assert info.etag == stored.etag != ""
        opened = run(store.open("a/tagged"))
        run(opened.aclose())
        assert opened.info.etag == stored.etag

    def test_verify_passes_the_recorded_bytes(self, store: ObjectStore) -> None:
        data = payload(300_000, seed=8)
        stored = run(store.put_stream("a/kept", sync_chunks(data, 4096), max_bytes=len(data)))
        run(store.verify("a/kept", stored.sha256, etag=stored.etag))
        run(store.verify("a/kept", stored.sha256))  # recorded without an ETag: hashed
        with pytest.raises(Corrupted):
            run(store.verify("a/kept", hashlib.sha256(b"other").hexdigest()))
        with pytest.raises(NotFound):
            run(store.verify("a/never", stored.sha256, etag=stored.etag))

    def test_verify_refuses_bytes_changed_behind_its_back(self, store: ObjectStore) -> None:
        stored = run(store.put_stream("a/tampered", [b"original bytes"], max_bytes=100))
        self.tamper(store, "a/tampered", b"EVIL!!!!!!!!!!")  # the same size
        for etag in (stored.etag, None):
            with pytest.raises(Corrupted, match="SHA-256"):
                run(store.verify("a/tampered", stored.sha256, etag=etag))

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
        with pytest.raises(InvalidKey):
            run(store.promote(key, max_bytes=1, content_type="application/zip"))

    @pytest.mark.parametrize("expires_s", [0, -5, 7 * 24 * 3600 + 1])
    def test_presign_expiry_bounds(self, store: ObjectStore, expires_s: int) -> None:
        with pytest.raises(ValueError, match="expiry"):
            store.presign_get("a/x", expires_s)
        with pytest.raises(ValueError, match="expiry"):
            store.presign_put("uploads/a/x", expires_s, max_bytes=1)

    # --- staged uploads: presigned PUTs, then promoted to the object served ---------------
    def test_presigned_put_then_finalize(self, store: ObjectStore) -> None:
        data = payload(70_000, seed=7)
        key = "apps/demo/1.2.0/demo.apk"
        put_url = store.presign_put(staging_key(key), 300, max_bytes=1 << 20)
        assert self.http_put(store, put_url, data).status == 200
        apk = "application/vnd.android.package-archive"
        accepted = run(finalize_upload(store, key, max_bytes=1 << 20, content_type=apk))
        assert (accepted.size, accepted.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        got = self.http_get(store, store.presign_get(key, 300))
        assert (got.status, got.body) == (200, data)
        info = run(store.head(key))
        assert info is not None
        assert (info.content_type, info.etag) == (apk, accepted.etag)
        run(store.verify(key, accepted.sha256, etag=accepted.etag))
        assert run(store.head(staging_key(key))) is None

    def test_presign_put_signs_staging_keys_only(self, store: ObjectStore) -> None:
        for key in ("apps/demo/1.3.0/demo.apk", "img/icon", "a/uploads/x"):
            with pytest.raises(InvalidKey, match="uploads/"):
                store.presign_put(key, 300, max_bytes=100)
        with pytest.raises(InvalidKey):
            staging_key("uploads/apps/x")  # already one

    def test_a_put_may_be_repeated_until_finalized(self, store: ObjectStore) -> None:
        key = "apps/demo/1.4.0/demo.apk"
        url = store.presign_put(staging_key(key), 300, max_bytes=100)
        assert self.http_put(store, url, b"a first try").status == 200
        assert self.http_put(store, url, b"the build").status == 200  # replaces what is staged
        done = run(finalize_upload(store, key, max_bytes=100, content_type="application/zip"))
        assert done.sha256 == hashlib.sha256(b"the build").hexdigest()
        assert run(read_all(store, key)) == b"the build"

    def test_a_put_after_finalize_changes_nothing_served(self, store: ObjectStore) -> None:
        key = "apps/demo/1.5.0/demo.apk"
        url = store.presign_put(staging_key(key), 300, max_bytes=100)
        assert self.http_put(store, url, b"the build").status == 200
        done = run(finalize_upload(store, key, max_bytes=100, content_type="application/zip"))
        assert self.http_put(store, url, b"a replacement").status == 200  # staged again
        assert run(read_all(store, key)) == b"the build"
        run(store.verify(key, done.sha256, etag=done.etag))
        run(store.verify(key, done.sha256))
        # Finalizing again answers the bytes first finalized, and drops what was staged since.
        again = run(finalize_upload(store, key, max_bytes=100, content_type="application/zip"))
        assert (again.size, again.sha256, again.etag) == (done.size, done.sha256, done.etag)
        assert run(store.head(staging_key(key))) is None
        assert run(read_all(store, key)) == b"the build"

    def test_promote_of_a_large_upload(self, store: ObjectStore) -> None:
        key = "apps/big/3.0.0/big.bin"
        data = payload(self.big_size + 12345, seed=10)
        run(store.put_stream(staging_key(key), sync_chunks(data, 64 << 10), max_bytes=len(data)))
        done = run(finalize_upload(store, key, max_bytes=len(data), content_type="application/zip"))
        assert (done.size, done.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert hashlib.sha256(run(read_all(store, key))).hexdigest() == done.sha256
        run(store.verify(key, done.sha256, etag=done.etag))

    def test_promote_is_write_once(self, store: ObjectStore) -> None:
        key = "apps/demo/1.6.0/demo.apk"
        first = run(store.put_stream(key, [b"the build"], max_bytes=100))
        run(store.put_stream(staging_key(key), [b"staged"], max_bytes=100))
        with pytest.raises(AlreadyExists):
            run(store.promote(key, max_bytes=100, content_type="application/zip"))
        info = run(store.head(key))
        assert info is not None
        assert info.etag == first.etag
        assert run(read_all(store, key)) == b"the build"
        assert run(read_all(store, staging_key(key))) == b"staged"  # left for the caller

    def test_a_promoted_object_is_write_once(self, store: ObjectStore) -> None:
        key = "apps/demo/1.7.0/demo.apk"
        run(store.put_stream(staging_key(key), [b"the build"], max_bytes=100))
        run(store.promote(key, max_bytes=100, content_type="application/zip"))
        with pytest.raises(AlreadyExists):
            run(store.put_stream(key, [b"other"], max_bytes=100))
        assert run(read_all(store, key)) == b"the build"

    def test_promote_of_nothing_staged(self, store: ObjectStore) -> None:
        with pytest.raises(NotFound):
            run(store.promote("apps/demo/1.8.0/x", max_bytes=100, content_type="application/zip"))
        assert run(store.head("apps/demo/1.8.0/x")) is None

    def test_promote_over_the_limit_stores_nothing(self, store: ObjectStore) -> None:
        key = "apps/demo/1.9.0/fat.bin"
        run(store.put_stream(staging_key(key), [payload(5000)], max_bytes=5000))
        with pytest.raises(TooLarge):
            run(store.promote(key, max_bytes=1000, content_type="application/zip"))
        assert run(store.head(key)) is None

    def test_concurrent_finalizes_agree(self, store: ObjectStore) -> None:
        key = "apps/demo/2.0.0/demo.apk"
        data = payload(300_000, seed=9)
        run(store.put_stream(staging_key(key), sync_chunks(data, 4096), max_bytes=len(data)))

        async def both() -> list[object]:
            return list(
                await asyncio.gather(
                    *(
                        finalize_upload(
                            store, key, max_bytes=len(data), content_type="application/zip"
                        )
                        for _ in range(2)
                    ),
                    return_exceptions=True,
                )
            )

        outcomes = run(both())
        digest = hashlib.sha256(data).hexdigest()
        assert [getattr(o, "sha256", o) for o in outcomes] == [digest, digest]
        assert run(read_all(store, key)) == data
        assert run(store.head(staging_key(key))) is None

    def test_presigned_put_with_content_type(self, store: ObjectStore) -> None:
        key = "uploads/img/logo.png"
        url = store.presign_put(key, 300, max_bytes=100, content_type="image/png")
        assert self.http_put(store, url, b"\x89PNG..", content_type="image/png").status == 200
        info = run(store.head(key))
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
        key = "apps/demo/9.9.9/fat.bin"
        url = store.presign_put(staging_key(key), 300, max_bytes=1000)
        status = self.http_put(store, url, payload(5000)).status
        kind = "application/zip"
        if status == 200:  # the server could not enforce the limit: finalize must
            with pytest.raises(TooLarge):
                run(finalize_upload(store, key, max_bytes=1000, content_type=kind))
        else:
            assert status == 413
            with pytest.raises(NotFound):
                run(finalize_upload(store, key, max_bytes=1000, content_type=kind))
        assert run(store.head(key)) is None
        assert run(store.head(staging_key(key))) is None

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
        put_url = store.presign_put("uploads/a/exp", 1, max_bytes=10)
        assert self.http_put(store, put_url, b"overwrite", later_s=2.5).status == 403
        assert run(store.head("uploads/a/exp")) is None

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
