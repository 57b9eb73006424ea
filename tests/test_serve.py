"""`hutch serve` as a user runs it: separate processes (gunicorn ingest workers, the query
process owning chDB), one port. Killed with SIGKILL after a burst, nothing acknowledged is
lost or doubled; stopped with Ctrl-C, it exits cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from hutch.settings import Settings
from tests.conftest import free_port, make_settings
from tests.helpers import descendants, developer_with_app, eventually, kill_tree, list_all


class Served:
    """`hutch serve` as a real process, its stderr kept in a file beside the data directory.

    Its HOME is a directory of its own, so nothing it might leave there (gunicorn once put
    its control socket in ~/.gunicorn) reaches other instances. `session`: in a process group
    of its own, which a test can SIGKILL whole as a shell's job control would. `wait`: until
    it answers /api/health."""

    def __init__(
        self,
        settings: Settings,
        port: int,
        *,
        env: dict[str, str] | None = None,
        wait: bool = True,
        session: bool = False,
    ) -> None:
        self.settings = settings
        data = settings.data
        data.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{port}"
        self.home = data.parent / "home"
        self.home.mkdir(exist_ok=True)
        full_env = {**os.environ, **settings.as_env()}
        for inherited in ("PROMETHEUS_MULTIPROC_DIR", "XDG_RUNTIME_DIR"):
            full_env.pop(inherited, None)
        full_env.update({"HUTCH_BIND": f"127.0.0.1:{port}", "HOME": str(self.home), **(env or {})})
        self.log = data.parent / f"serve-{port}-{time.monotonic_ns()}.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hutch", "serve"],
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.log, "ab"),  # noqa: SIM115
            start_new_session=session,
        )
        if wait:
            eventually(self._healthy, timeout_s=60)

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:]
            raise AssertionError(f"hutch serve exited with {self.process.returncode}: {tail}")
        try:
            return httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def log_lines(self) -> list[dict[str, Any]]:
        """What it logged, one JSON object per line (anything else is a test failure)."""
        return [orjson.loads(line) for line in self.log.read_text().splitlines() if line]


@pytest.fixture
def data(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.mark.integration
@pytest.mark.slow
def test_sigkill_after_a_burst_loses_nothing_acknowledged(data: Settings) -> None:
    port = free_port()
    served = Served(data, port)
    secret, token = developer_with_app(data, "kim", "kim-app")
    acknowledged: set[int] = set()
    lock = threading.Lock()
    stop = threading.Event()

    def post(n: int) -> None:
        if stop.is_set():
            return
        try:
            answer = httpx.post(
                f"{served.url}/api/telemetry",
                headers={"X-Secret": secret},
                json={"kind": "info", "version": "burst", "bits": {"n": n}},
                timeout=10,
            )
        except httpx.HTTPError:
            return
        if answer.status_code == 202:
            with lock:
                acknowledged.add(n)

    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [pool.submit(post, n) for n in range(3000)]
        eventually(lambda: len(acknowledged) >= 400, timeout_s=60)
        kill_tree(served.process.pid)  # mid-burst: some requests are still in flight
        stop.set()
        for f in futures:
            f.result()
    served.process.wait()

    restarted = Served(data, port)
    try:
        with httpx.Client(
            base_url=restarted.url, headers={"Authorization": f"Bearer {token}"}
        ) as c:

            def listed() -> list[int] | None:
                ns = [
                    e["bits"]["n"]
                    for e in list_all(c, "/api/telemetry", "events", version="burst", limit="1000")
                ]
                return ns if acknowledged <= set(ns) else None

            ns = eventually(listed, timeout_s=60)
        assert acknowledged <= set(ns)
        assert len(ns) == len(set(ns)), "an event is listed twice"
    finally:
        kill_tree(restarted.process.pid)


@pytest.mark.integration
@pytest.mark.slow
def test_ctrl_c_stops_every_process(data: Settings) -> None:
    served = Served(data, free_port())
    children = descendants(served.process.pid)
    assert len(children) >= 3  # query process, gunicorn master, its workers
    served.process.send_signal(signal.SIGINT)
    assert served.process.wait(timeout=60) == 0
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{c}").exists() for c in children):
        time.sleep(0.1)
    alive = [
        c
        for c in children
        if Path(f"/proc/{c}").exists() and "Z" not in Path(f"/proc/{c}/stat").read_text().split()[2]
    ]
    assert alive == []
