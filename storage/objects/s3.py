"""The production object store: any S3 API (AWS, MinIO, R2, ...) through boto3.

    s3://bucket?endpoint=http://127.0.0.1:9000&region=us-east-1&prefix=hutch/&create_bucket=1

Credentials come from boto3's standard chain (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY,
profiles, instance roles), never from the URL. With `endpoint` (anything but AWS) requests use
path-style addressing and send checksums only where the API requires them, which the
S3-compatible servers accept; `public_endpoint` signs download and upload URLs for the host
clients reach when it differs from the one Hutch talks to (a docker network name, say).

Uploads stream: an object smaller than two parts goes up in one PutObject; a larger one as a
multipart upload of `part_size` parts, aborted on any failure (TooLarge included) so no part
is left behind. Every write Hutch makes is conditional (`If-None-Match: *` on PutObject and
on the multipart upload's completion): S3 refuses to replace an object, so what was hashed
stays what is served. Presigned PUTs are plain (a client sends no extra header) and signed
for staging keys only; `promote` streams a staged object into its final key through such a
conditional write, hashing it on the way: CopyObject would save the transfer, but its
`If-None-Match` is not honoured everywhere (versitygw 1.8 and moto 5 copy over an existing
object regardless), and write-once must hold on every S3. boto3 blocks, so every call runs
in a worker thread; the client is thread-safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from storage.errors import AlreadyExists, Corrupted, NotFound, StorageError, TooLarge
from storage.objects.names import (
    content_disposition,
    validate_content_type,
    validate_expiry,
    validate_key,
)
from storage.objects.protocol import (
    DEFAULT_CONTENT_TYPE,
    MAX_PRESIGN_SECONDS,
    Chunks,
    ObjectInfo,
    ObjectStream,
    StoredObject,
    require_staging,
    staging_key,
)
from storage.objects.s3_location import S3Location, translate
from storage.objects.streams import Meter, metered_parts

__all__ = ["S3Location", "S3ObjectStore"]

T = TypeVar("T")
log = logging.getLogger(__name__)
PART_SIZE = 8 << 20  # S3 wants >= 5 MiB for every part but the last
READ_BLOCK = 256 << 10


class S3ObjectStore:
    def __init__(
        self,
        location: S3Location,
        *,
        part_size: int = PART_SIZE,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.location = location
        self.part_size = part_size
        self._client = self._make_client(location.endpoint, credentials)
        self._signer = (
            self._make_client(location.public_endpoint, credentials)
            if location.public_endpoint
            else self._client
        )

    def _make_client(self, endpoint: str | None, credentials: tuple[str, str] | None) -> Any:
        options: dict[str, Any] = {
            "signature_version": "s3v4",
            "retries": {"mode": "standard", "max_attempts": 3},
            "connect_timeout": 5,
            "read_timeout": 60,
        }
        if endpoint:
            options["s3"] = {"addressing_style": "path"}
            options["request_checksum_calculation"] = "when_required"
            options["response_checksum_validation"] = "when_required"
        kwargs: dict[str, Any] = {"config": Config(**options)}
        if endpoint:
            kwargs["endpoint_url"] = endpoint
        if self.location.region:
            kwargs["region_name"] = self.location.region
        if credentials:
            kwargs["aws_access_key_id"], kwargs["aws_secret_access_key"] = credentials
        return boto3.session.Session().client("s3", **kwargs)

    def _key(self, key: str) -> str:
        return self.location.prefix + validate_key(key)

    async def _call(self, fn: Callable[..., T], key: str = "", **kwargs: Any) -> T:
        try:
            return await asyncio.to_thread(fn, **kwargs)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc, key) from exc

    async def start(self) -> None:
        bucket = self.location.bucket
        try:
            await self._call(self._client.head_bucket, Bucket=bucket)
            return
        except NotFound:
            if not self.location.create_bucket:
                raise StorageError(f"bucket {bucket!r} does not exist") from None
        config: dict[str, Any] = {}
        region = self.location.region
        if region and region != "us-east-1":
            config["CreateBucketConfiguration"] = {"LocationConstraint": region}
        try:
            await self._call(self._client.create_bucket, Bucket=bucket, **config)
        except StorageError:
            # Another process may have created it meanwhile; only a missing bucket is fatal.
            await self._call(self._client.head_bucket, Bucket=bucket)

    async def close(self) -> None:
        for client in {id(self._client): self._client, id(self._signer): self._signer}.values():
            await asyncio.to_thread(client.close)

    async def put_stream(
        self,
        key: str,
        chunks: Chunks,
        *,
        max_bytes: int,
        content_type: str = DEFAULT_CONTENT_TYPE,
    ) -> StoredObject:
        s3_key = self._key(key)
        validate_content_type(content_type)
        meter = Meter(max_bytes)
        parts = metered_parts(chunks, meter, self.part_size)
        first = await anext(parts, b"")
        second = await anext(parts, None) if len(first) == self.part_size else None
        if second is None:
            answer = await self._call(
                self._client.put_object,
                key,
                Bucket=self.location.bucket,
                Key=s3_key,
                Body=first,
                ContentType=content_type,
                IfNoneMatch="*",
            )
        else:
            answer = await self._multipart(s3_key, content_type, first, second, parts)
        return StoredObject(
            key=key,
            size=meter.size,
            sha256=meter.sha256,
            content_type=content_type,
            etag=str(answer["ETag"]),
        )

    async def _multipart(
        self,
        s3_key: str,
        content_type: str,
        first: bytes,
        second: bytes,
        rest: AsyncIterator[bytes],
    ) -> dict[str, Any]:
        bucket = self.location.bucket
        created = await self._call(
            self._client.create_multipart_upload,
            Bucket=bucket,
            Key=s3_key,
            ContentType=content_type,
        )
        upload_id = created["UploadId"]
        done: list[dict[str, Any]] = []

        async def send(body: bytes) -> None:
            number = len(done) + 1
            answer = await self._call(
                self._client.upload_part,
                Bucket=bucket,
                Key=s3_key,
                UploadId=upload_id,
                PartNumber=number,
                Body=body,
            )
            done.append({"PartNumber": number, "ETag": answer["ETag"]})

        try:
            await send(first)
            await send(second)
            async for part in rest:
                await send(part)
            completed: dict[str, Any] = await self._call(
                self._client.complete_multipart_upload,
                s3_key,
                Bucket=bucket,
                Key=s3_key,
                UploadId=upload_id,
                MultipartUpload={"Parts": done},
                IfNoneMatch="*",
            )
        except BaseException:
            # Shielded: even when the upload is cancelled its parts must not linger.
            await asyncio.shield(
                asyncio.to_thread(self._abort, Bucket=bucket, Key=s3_key, UploadId=upload_id)
            )
            raise
        return completed

    def _abort(self, **kwargs: str) -> None:
        try:
            self._client.abort_multipart_upload(**kwargs)
        except (ClientError, BotoCoreError) as exc:
            # The original failure is what the caller must see; a bucket lifecycle rule
            # (AbortIncompleteMultipartUpload) is the backstop for the orphaned parts.
            log.warning("could not abort multipart upload of %s: %s", kwargs.get("Key"), exc)

    async def promote(self, key: str, *, max_bytes: int, content_type: str) -> StoredObject:
        if await self.head(key) is not None:  # before moving a byte; the write decides races
            raise AlreadyExists(key)
        staged = staging_key(key)
        stream = await self.open(staged)
        try:
            if stream.info.size > max_bytes:
                raise TooLarge(max_bytes)
            stored = await self.put_stream(
                key, stream.chunks, max_bytes=max_bytes, content_type=content_type
            )
        finally:
            await stream.aclose()
        await self.delete(staged)
        return stored

    async def head(self, key: str) -> ObjectInfo | None:
        try:
            answer = await self._call(
                self._client.head_object, key, Bucket=self.location.bucket, Key=self._key(key)
            )
        except NotFound:
            return None
        return _info(key, answer)

    async def open(self, key: str) -> ObjectStream:
        answer = await self._call(
            self._client.get_object, key, Bucket=self.location.bucket, Key=self._key(key)
        )
        return ObjectStream(info=_info(key, answer), chunks=self._read(answer["Body"], key))

    async def _read(self, body: Any, key: str) -> AsyncGenerator[bytes, None]:
        try:
            while True:
                try:
                    chunk = await asyncio.to_thread(body.read, READ_BLOCK)
                except (ClientError, BotoCoreError) as exc:
                    raise translate(exc, key) from exc
                if not chunk:
                    return
                yield chunk
        finally:
            body.close()

    async def delete(self, key: str) -> None:
        await self._call(
            self._client.delete_object, key, Bucket=self.location.bucket, Key=self._key(key)
        )

    async def verify(self, key: str, sha256: str, *, etag: str | None = None) -> None:
        if etag is not None:
            info = await self.head(key)
            if info is None:
                raise NotFound(key)
            if info.etag == etag:
                return
        else:  # recorded without an ETag: only the bytes can tell
            stream = await self.open(key)
            digest = hashlib.sha256()
            try:
                async for chunk in stream.chunks:
                    digest.update(chunk)
            finally:
                await stream.aclose()
            if digest.hexdigest() == sha256:
                return
        raise Corrupted(f"{key}: the stored bytes do not match their recorded SHA-256")

    def presign_get(
        self,
        key: str,
        expires_s: int,
        *,
        filename: str | None = None,
        sha256: str | None = None,  # S3 cannot be told to check it: callers verify first
    ) -> str:
        validate_expiry(expires_s, MAX_PRESIGN_SECONDS)
        params = {"Bucket": self.location.bucket, "Key": self._key(key)}
        if filename is not None:
            params["ResponseContentDisposition"] = content_disposition(filename)
        url: str = self._signer.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=expires_s, HttpMethod="GET"
        )
        return url

    def presign_put(
        self,
        key: str,
        expires_s: int,
        *,
        max_bytes: int,
        content_type: str | None = None,
    ) -> str:
        # max_bytes cannot be expressed in a presigned PUT; finalize_upload checks the size.
        validate_expiry(expires_s, MAX_PRESIGN_SECONDS)
        params = {"Bucket": self.location.bucket, "Key": self._key(require_staging(key))}
        if content_type is not None:
            params["ContentType"] = validate_content_type(content_type)
        url: str = self._signer.generate_presigned_url(
            "put_object", Params=params, ExpiresIn=expires_s, HttpMethod="PUT"
        )
        return url


def _info(key: str, answer: dict[str, Any]) -> ObjectInfo:
    """What HeadObject and GetObject say about the object."""
    return ObjectInfo(
        key=key,
        size=int(answer["ContentLength"]),
        content_type=answer.get("ContentType") or DEFAULT_CONTENT_TYPE,
        etag=str(answer.get("ETag", "")),
    )
