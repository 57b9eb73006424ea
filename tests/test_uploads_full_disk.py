"""Uploads onto a full disk: the filesystem object store on a real 1 MiB tmpfs.

A write that runs out of space answers 507 Insufficient Storage with a JSON error, and leaves
nothing behind: no object, no temporary file, no build. Mounting needs root (CAP_SYS_ADMIN);
without it the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn

import httpx
import pytest

from tests.support.admin import developer_with_app
from tests.support.builds import bearer, direct_upload, follow, json_of, payload
from tests.support.responses import error_of
from tests.support.servers import Server, serve_in_thread
from tests.support.services import IN_CI

pytestmark = pytest.mark.integration

DISK = 1 << 20
LIMIT = 4 << 20  # over the disk: the size limit is not what refuses these uploads


def unavailable(reason: str) -> NoReturn:
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def disk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mount = tmp_path_factory.mktemp("tiny-disk")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        unavailable(f"cannot mount a small tmpfs: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, disk: Path) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("full-disk") / "data"
    yield from serve_in_thread(
        data, HUTCH_OBJECTS=f"file:///{disk}/objects", HUTCH_MAX_UPLOAD=str(LIMIT)
    )


@pytest.fixture(scope="module")
def token(server: Server) -> str:
    return developer_with_app(server.settings, "fay", "fay-app")[1]


def _files(disk: Path) -> list[str]:
    return sorted(
        str(Path(root, name).relative_to(disk))
        for root, _, names in os.walk(disk)
        for name in names
    )


def _versions(c: httpx.Client, token: str) -> list[str]:
    listing = json_of(c.get("/api/apps/fay-app/builds", headers=bearer(token)), 200)
    return [b["version"] for b in listing["builds"]]


def test_direct_upload_onto_a_full_disk(server: Server, token: str, disk: Path) -> None:
    with server.client() as c:
        answer = direct_upload(c, token, "fay-app", "1.0.0", "fay.apk", payload(2 * DISK))
        assert answer.status_code == 507, answer.text
        error = error_of(answer)
        assert (error["code"], error["field"]) == ("insufficient_storage", "file")
        assert _files(disk) == []
        assert _versions(c, token) == []
        # The space is free again: an upload that fits is stored.
        json_of(direct_upload(c, token, "fay-app", "1.0.1", "fay.apk", b"fits"), 201)
        assert follow(c.get("/api/apps/fay-app/latest")).content == b"fits"


def test_presigned_upload_onto_a_full_disk(server: Server, token: str, disk: Path) -> None:
    before = _files(disk)
    with server.client() as c:
        grant = json_of(
            c.post(
                "/api/upload/presign",
                headers=bearer(token),
                json={"fileName": "fay.apk", "name": "fay-app", "version": "2.0.0"},
            ),
            200,
        )
        put = httpx.put(grant["uploadUrl"], content=payload(2 * DISK))
        assert put.status_code == 507, put.text
        assert error_of(put)["code"] == "insufficient_storage"
        assert _files(disk) == before
        finalize = c.post(
            "/api/upload",
            headers=bearer(token),
            json={
                "name": "fay-app",
                "version": "2.0.0",
                "fileName": "fay.apk",
                "s3Key": grant["s3Key"],
            },
        )
        assert (finalize.status_code, error_of(finalize)["code"]) == (404, "no_upload")
        assert "2.0.0" not in _versions(c, token)


def test_finalize_moves_a_staged_upload_without_copying_it(
    server: Server, token: str, disk: Path
) -> None:
    """A staged upload filling most of the disk still becomes a build: finalize links the
    file to the build's key, it does not write a second copy."""
    body = payload(DISK * 7 // 10, seed=4)
    with server.client() as c:
        grant = json_of(
            c.post(
                "/api/upload/presign",
                headers=bearer(token),
                json={"fileName": "fay.apk", "name": "fay-app", "version": "3.0.0"},
            ),
            200,
        )
        assert httpx.put(grant["uploadUrl"], content=body).status_code == 200
        finalize = c.post(
            "/api/upload",
            headers=bearer(token),
            json={
                "name": "fay-app",
                "version": "3.0.0",
                "fileName": "fay.apk",
                "s3Key": grant["s3Key"],
            },
        )
        done = json_of(finalize, 201)
        assert done["size"] == len(body)
        assert follow(c.get("/api/apps/fay-app/latest")).content == body
    assert not (disk / "objects" / grant["s3Key"]).exists()
