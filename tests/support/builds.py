"""Helpers for the build and upload tests: developers with tokens, uploads as a CI job makes
them (presigned or direct), and small HTTP conveniences."""

from __future__ import annotations

from typing import Any

import httpx

from base.settings import Settings
from tests.support.admin import hutch


def developer_token(settings: Settings, developer: str) -> str:
    """A developer (without apps) and a bearer token for them."""
    hutch(settings, "developer", "create", developer)
    code, token = hutch(settings, "token", "create", "--developer", developer)
    assert code == 0, token
    return str(token["token"])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def presigned_upload(
    client: httpx.Client, token: str, app: str, version: str, file_name: str, body: bytes
) -> httpx.Response:
    """presign -> PUT the bytes -> finalize, as a CI job would; the finalize answer."""
    presigned = client.post(
        "/api/upload/presign",
        headers=bearer(token),
        json={"fileName": file_name, "name": app, "version": version},
    )
    assert presigned.status_code == 200, presigned.text
    grant = presigned.json()
    put = httpx.put(grant["uploadUrl"], content=body, timeout=30)  # a plain PUT, as curl sends
    assert put.status_code == 200, put.text
    return client.post(
        "/api/upload",
        headers=bearer(token),
        json={"name": app, "version": version, "fileName": file_name, "s3Key": grant["s3Key"]},
    )


def direct_upload(
    client: httpx.Client,
    token: str,
    app: str,
    version: str,
    file_name: str,
    body: bytes,
    **fields: str,
) -> httpx.Response:
    return client.post(
        "/api/upload",
        headers=bearer(token),
        data={"name": app, "version": version, **fields},
        files={"file": (file_name, body, "application/octet-stream")},
    )


def follow(answer: httpx.Response) -> httpx.Response:
    """GET where a redirect points (the signed URL may be on another host: S3)."""
    assert answer.status_code == 302, answer.text
    return httpx.get(answer.headers["location"], timeout=30)


def payload(size: int, seed: int = 0) -> bytes:
    block = bytes((i * 31 + seed) % 251 for i in range(4096))
    return (block * (size // len(block) + 1))[:size]


def json_of(answer: httpx.Response, status: int) -> Any:
    assert answer.status_code == status, answer.text
    return answer.json()
