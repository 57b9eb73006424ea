"""`/objects/{key}`: the signed URLs of the filesystem object store, served by Hutch.

    GET /objects/{key}?expires=..&filename=..&sha256=..&sig=..   stream the object
    PUT /objects/{key}?expires=..&max=..&sig=..                  store it, at most `max` bytes

Only mounted when HUTCH_OBJECTS is file:// (S3 serves its own presigned URLs). Ingest serves
both methods in every worker: the files are shared and writes are atomic links, and a
streamed download should not pass through the query forwarder, which buffers whole answers.
A forged, altered or expired URL is refused with 403; a body over the signed limit with 413,
before any of it is read when Content-Length says so, and with nothing kept in any case.

A PUT is a plain one, as S3 takes it (no header needed), and only ever writes a staging key
(`uploads/…`; a URL signed for any other key is refused, 403 not_an_upload_key): like S3, a
second PUT replaces what was staged (removed first, so one that fails leaves nothing staged),
and what is served is made from it, write-once, when the upload is finalized
(storage/objects/protocol.py). A full disk is 507. A GET whose URL names
a SHA-256 serves the object only if it still holds those bytes (409 otherwise).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import falcon
import falcon.asgi
import orjson

from base.client_errors import (
    ConflictError,
    Forbidden,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
)
from storage.errors import AlreadyExists, Corrupted, InvalidKey, NoSpace, TooLarge
from storage.errors import NotFound as MissingObject
from storage.objects import (
    DEFAULT_CONTENT_TYPE,
    Grant,
    ObjectStore,
    SignatureError,
    content_disposition,
    is_staging,
    verify_signature,
)
from storage.objects.names import validate_content_type
from web.body import media_type

log = logging.getLogger(__name__)
_CODES = {"malformed": "malformed_url", "bad_signature": "bad_signature", "expired": "url_expired"}


class SignedObjects:
    def __init__(
        self, store: ObjectStore, secret: bytes, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._secret = secret
        self._clock = clock

    def _grant(self, req: falcon.asgi.Request, key: str) -> Grant:
        # A repeated parameter arrives as a list: left out, so the signature cannot match.
        params = {k: v for k, v in req.params.items() if isinstance(v, str)}
        try:
            return verify_signature(self._secret, req.method, key, params, self._clock())
        except SignatureError as exc:
            raise Forbidden(str(exc), code=_CODES[exc.reason]) from None
        except InvalidKey:
            raise NotFound("no such object") from None

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key: str) -> None:
        grant = self._grant(req, key)
        try:
            if grant.sha256 is not None:
                await self._store.verify(grant.key, grant.sha256)
            stream = await self._store.open(grant.key)
        except MissingObject:
            raise NotFound("no such object") from None
        except Corrupted:
            log.error("refusing to serve a changed object", extra={"key": grant.key})
            raise ConflictError(
                "the stored file no longer matches the SHA-256 this URL was signed for; "
                "it is not served",
                code="object_corrupted",
            ) from None
        resp.content_type = stream.info.content_type
        resp.content_length = stream.info.size
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.cache_control = ["private", "no-cache"]
        if grant.filename:
            resp.set_header("Content-Disposition", content_disposition(grant.filename))
        resp.stream = stream.chunks

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, key: str) -> None:
        grant = self._grant(req, key)
        assert grant.max_bytes is not None  # verify_signature insists on it for PUT
        if not is_staging(grant.key):  # signed before uploads were staged: never a build's key
            raise Forbidden(
                "this URL may not write that key: uploads go through /api/upload/presign",
                code="not_an_upload_key",
            )
        length = req.content_length
        if length is not None and length > grant.max_bytes:
            raise PayloadTooLarge(
                f"the body of {length} bytes is over this URL's {grant.max_bytes}-byte limit"
            )
        sent_type = media_type(req)
        if grant.content_type is not None and sent_type != grant.content_type.lower():
            raise Forbidden(
                f"this URL was signed for Content-Type: {grant.content_type}",
                field="Content-Type",
                code="bad_signature",
            )
        content_type = grant.content_type or req.content_type or DEFAULT_CONTENT_TYPE
        try:
            validate_content_type(content_type)
        except ValueError:
            content_type = DEFAULT_CONTENT_TYPE  # not one the store records; bytes still fine
        try:
            if await self._store.head(grant.key) is not None:  # staged before: replaced
                await self._store.delete(grant.key)
            stored = await self._store.put_stream(
                grant.key, req.stream, max_bytes=grant.max_bytes, content_type=content_type
            )
        except TooLarge:
            raise PayloadTooLarge(
                f"the body is over this URL's {grant.max_bytes}-byte limit; nothing was stored"
            ) from None
        except AlreadyExists:  # another PUT to this URL, at the same time, stored first
            raise ConflictError(
                "another upload to this URL finished at the same time; nothing was stored",
                code="concurrent_upload",
            ) from None
        except NoSpace:
            raise InsufficientStorage(
                "the object store's disk is full; nothing was stored"
            ) from None
        resp.set_header("ETag", f'"{stored.sha256}"')
        resp.content_type = falcon.MEDIA_JSON
        resp.data = orjson.dumps({"key": stored.key, "size": stored.size, "sha256": stored.sha256})
