"""Local S3 servers over real HTTP for the object-store tests (conftest's `moto_endpoint` and
`verifying_s3` fixtures start them).

moto (server mode) runs everything except the signature checks: it accepts presigned URLs
whatever their signature or expiry. Versity's S3 gateway (`versitygw`, a Go program: `go
install github.com/versity/versitygw/cmd/versitygw@v1.8.0`) verifies them; it is started when
it is on PATH or named by HUTCH_TEST_VERSITYGW, or any S3 server given as HUTCH_TEST_S3_URL
(s3://bucket?endpoint=..., with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY) is used instead.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.support.servers import free_port
from tests.support.services import unavailable
from tests.support.waiting import eventually

CREDENTIALS = ("testing-key", "testing-secret")


@contextmanager
def moto_server() -> Iterator[str]:
    """The endpoint of a moto server in this process."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        unavailable("moto[server] is not installed")
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@contextmanager
def verifying_server(root: Path) -> Iterator[tuple[str, Any]]:
    """(s3:// URL, credentials or None for the environment's) of a verifying S3 server;
    versitygw keeps its objects under `root`."""
    if url := os.environ.get("HUTCH_TEST_S3_URL"):
        yield url, None
        return
    binary = os.environ.get("HUTCH_TEST_VERSITYGW") or shutil.which("versitygw")
    if not binary:
        unavailable("no verifying S3 server: install versitygw or set HUTCH_TEST_S3_URL")
    (root / "data").mkdir()
    port = free_port()
    log = root / "versitygw.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                binary,
                "--access",
                CREDENTIALS[0],
                "--secret",
                CREDENTIALS[1],
                "--port",
                f"127.0.0.1:{port}",
                "posix",
                str(root / "data"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_listening(port, process, log)
        yield f"s3://hutch?endpoint=http://127.0.0.1:{port}&region=us-east-1", CREDENTIALS
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_listening(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"it exited with {process.returncode}")
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True

    try:
        eventually(listening, timeout_s=20, interval_s=0.1, ignoring=(OSError,))
    except AssertionError:  # it exited, or did not listen in time
        process.kill()
        unavailable(f"versitygw did not start: {log.read_text()[-500:]}")
