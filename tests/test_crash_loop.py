"""Exactly-once projection across crashes: `hutch serve` (the real process tree) under a
steady load of telemetry events is SIGKILLed whole at random moments, HUTCH_CRASH_LOOPS times
(50 by default), and started again at once each time. Once the projections have caught up,
every event that was acknowledged (202) is in telemetry_events exactly once, and no event is
there twice.

A start that fails because the previous tree has not let go of the data directory yet is
tried again (bounded) and counted; the summary line printed at the end gives the figures.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest

from base.settings import Settings
from tests.support.admin import developer_with_app
from tests.support.processes import kill_tree
from tests.support.responses import list_all
from tests.support.servers import free_port
from tests.support.settings import make_settings
from tests.support.waiting import NotInTime, eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LOOPS = int(os.environ.get("HUTCH_CRASH_LOOPS", "50"))
LOAD_S = (0.3, 1.5)
"""How long the load runs on a started tree before the kill, drawn uniformly."""
CLIENTS = 4
EVENTS_PER_REQUEST = 10
START_TRIES = 20
VERSION = "crash-loop"
LOCKED = ("Cannot lock file", "data directory")
"""What a start refused by a data directory still held by the killed tree logs."""


@dataclass
class Load:
    """Clients posting telemetry events, each event numbered once, the acknowledged ones
    recorded. They keep posting while the server is down (those requests fail)."""

    url: str
    secret: str
    acknowledged: set[int] = field(default_factory=set)
    sent: int = 0
    _numbers: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for _ in range(CLIENTS):
            thread = threading.Thread(target=self._post_until_stopped, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=30)

    def _post_until_stopped(self) -> None:
        with httpx.Client(base_url=self.url, headers={"X-Secret": self.secret}) as client:
            while not self._stop.is_set():
                with self._lock:
                    numbers = [next(self._numbers) for _ in range(EVENTS_PER_REQUEST)]
                    self.sent += len(numbers)
                body = [{"kind": "info", "version": VERSION, "bits": {"n": n}} for n in numbers]
                try:
                    answer = client.post("/api/telemetry", json=body, timeout=10)
                except httpx.HTTPError:
                    time.sleep(0.05)  # down: being killed or starting
                    continue
                if answer.status_code == 202:
                    with self._lock:
                        self.acknowledged.update(numbers)
                else:
                    time.sleep(0.05)


@dataclass
class Tree:
    """`hutch serve` and its children, in a session of their own, with their own HOME."""

    settings: Settings
    port: int
    logs: Path
    lock_waits: int = 0
    """Starts refused because the previous tree still held the data directory."""
    other_failures: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> subprocess.Popen[bytes]:
        """A started tree that answers /api/health; a start the old tree's locks refuse is
        tried again at once, up to START_TRIES times."""
        for attempt in range(START_TRIES):
            log = self.logs / f"serve-{time.monotonic_ns()}.log"
            process = self._spawn(log)
            if self._healthy_within(process, 60):
                return process
            kill_tree(process.pid)
            process.wait()
            text = log.read_text(errors="replace")
            if any(sign in text for sign in LOCKED):
                self.lock_waits += 1
            else:
                self.other_failures.append(text[-2000:])
            time.sleep(0.1 * attempt)
        raise AssertionError(f"hutch serve did not start in {START_TRIES} tries: {self}")

    def _spawn(self, log: Path) -> subprocess.Popen[bytes]:
        home = self.logs / "home"
        home.mkdir(exist_ok=True)
        env = {**os.environ, **self.settings.as_env()}
        for inherited in ("PROMETHEUS_MULTIPROC_DIR", "XDG_RUNTIME_DIR"):
            env.pop(inherited, None)
        env.update({"HUTCH_BIND": f"127.0.0.1:{self.port}", "HOME": str(home)})
        with log.open("ab") as stderr:  # the child keeps its own descriptor
            return subprocess.Popen(
                [sys.executable, "-m", "hutch", "serve"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
            )

    def _healthy_within(self, process: subprocess.Popen[bytes], timeout_s: float) -> bool:
        def settled() -> str | None:
            if process.poll() is not None:
                return "exited"
            healthy = httpx.get(f"{self.url}/api/health", timeout=2).status_code == 200
            return "healthy" if healthy else None

        try:
            answer = eventually(settled, timeout_s, ignoring=(httpx.HTTPError,))
        except NotInTime:
            return False
        return answer == "healthy"


def inserting(spool: Path, timeout_s: float = 2.0) -> None:
    """Return once the projector is inserting into chDB (it inserts from a spool file, there
    while the insert runs), or after `timeout_s`: every other kill lands mid-insert."""

    def spooling() -> bool:
        return any(entry.name.endswith(".spool") for entry in os.scandir(spool))

    with contextlib.suppress(NotInTime):
        eventually(spooling, timeout_s, interval_s=0.0005, ignoring=(OSError,))


def projected_numbers(url: str, token: str) -> list[int]:
    """The event numbers in telemetry_events, as the query service lists them."""
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as client:
        events = list_all(client, "/api/telemetry", "events", version=VERSION, limit="1000")
    return [int(event["bits"]["n"]) for event in events]


def test_acknowledged_events_are_projected_exactly_once_across_sigkills(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path / "data")
    secret, token = developer_with_app(settings, "crash", "crash-app")
    tree = Tree(settings, free_port(), tmp_path)
    load = Load(tree.url, secret)
    rng = random.Random(os.environ.get("HUTCH_CRASH_SEED", "13"))
    started = time.monotonic()
    process = tree.start()
    load.start()
    try:
        for loop in range(LOOPS):
            time.sleep(rng.uniform(*LOAD_S))
            if loop % 2:
                inserting(settings.data / "clickhouse" / "spool")
            kill_tree(process.pid)  # every process of the tree at once, mid-load
            process.wait()
            process = tree.start()  # at once: the old tree may still be exiting
        time.sleep(rng.uniform(*LOAD_S))
        load.stop()
        acknowledged = set(load.acknowledged)

        def caught_up() -> list[int] | None:
            numbers = projected_numbers(tree.url, token)
            return numbers if acknowledged <= set(numbers) else None

        try:
            numbers = eventually(caught_up, timeout_s=180)
        except AssertionError:
            numbers = projected_numbers(tree.url, token)
        time.sleep(1.0)  # a late duplicate would show now
        numbers = projected_numbers(tree.url, token)
    finally:
        load.stop()
        kill_tree(process.pid)
        process.wait()

    counted = Counter(numbers)
    missing = sorted(acknowledged - set(counted))
    duplicated = sorted(n for n, times in counted.items() if times > 1)
    summary = {
        "crash_loops": LOOPS,
        "events_sent": load.sent,
        "events_acknowledged": len(acknowledged),
        "events_projected": len(numbers),
        "acknowledged_but_missing": len(missing),
        "duplicated": len(duplicated),
        "starts_refused_by_the_old_tree": tree.lock_waits,
        "other_failed_starts": len(tree.other_failures),
        "seconds": round(time.monotonic() - started, 1),
    }
    print("crash loop:", orjson.dumps(summary).decode())
    assert acknowledged, "no event was acknowledged: the load never reached the server"
    assert (missing[:20], duplicated[:20]) == ([], []), summary
    assert tree.other_failures == [], tree.other_failures[:3]
