"""The ClickHouse stand-in (clickhouse_standin.py) as a process of its own, on a fixed port
and data directory, so a test can stop it and start it again in place."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.waiting import eventually

STANDIN = Path(__file__).with_name("clickhouse_standin.py")
USER, PASSWORD, DATABASE = "hutch", "pa:ss@w%rd", "hutch_test"


@dataclass
class StandIn:
    """A stand-in server process on a fixed port and data directory: it can be stopped and
    started again in place."""

    port: int
    data: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"clickhouse://{USER}:pa%3Ass%40w%25rd@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> None:
        log = self.data / "standin.log"
        argv = [sys.executable, str(STANDIN), "--port", str(self.port)]
        argv += ["--path", str(self.data / "db"), "--user", USER, "--password", PASSWORD]
        argv += ["--database", DATABASE]
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        self.process = process

        def answering() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"it exited with {process.returncode}")
            return httpx.get(f"http://127.0.0.1:{self.port}/ping", timeout=1).text == "Ok.\n"

        try:
            eventually(answering, timeout_s=60, interval_s=0.1, ignoring=(httpx.TransportError,))
        except AssertionError as failed:
            self.stop()
            message = f"the stand-in did not start ({failed}):\n{log.read_text()[-3000:]}"
            raise RuntimeError(message) from None

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
