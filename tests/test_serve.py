"""`hutch serve` as a user runs it: separate processes (gunicorn ingest workers, the query
process owning chDB), one port. Killed with SIGKILL after a burst, nothing acknowledged is
lost or doubled; stopped with Ctrl-C, it exits cleanly."""

from __future__ import annotations

import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from base.settings import Settings
from tests.support.admin import developer_with_app
from tests.support.processes import descendants, kill_tree
from tests.support.responses import list_all
from tests.support.servers import Served, free_port
from tests.support.settings import make_settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


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

    def every_child_ended() -> bool:
        return not [c for c in children if _running(c)]

    eventually(every_child_ended, timeout_s=30, interval_s=0.1)


def _running(pid: int) -> bool:
    """Still there and not a zombie (one left for its reaper has stopped all the same)."""
    try:
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:  # gone
        return False
