"""Hutch on its production backends as separate processes, and the faults it must survive.

Kafka (the real broker `ops/services.sh` runs), PostgreSQL (likewise) and a ClickHouse server
(the stand-in speaking ClickHouse's HTTP interface over chDB: no ClickHouse server can be
installed here). `hutch ingest` (gunicorn), `hutch query` and two `hutch project` processes,
started as an operator would. Checked: the telemetry round trip with the two projectors
sharing the partitions; a projector killed with SIGKILL mid-load and started again; the Kafka
broker stopped under load (503 + Retry-After, nothing acknowledged lost or doubled); a
PostgreSQL restart (commands fail cleanly, then work).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import orjson
import pytest

from base.settings import Settings
from tests.support.admin import developer_with_app, hutch
from tests.support.clickhouse import StandIn
from tests.support.processes import kill_tree
from tests.support.responses import list_all
from tests.support.servers import free_port
from tests.support.services import IN_CI, fresh_postgres_schema, need_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

SERVICES = Path(__file__).resolve().parent.parent / "ops" / "services.sh"
APPS = [f"topo-{i}" for i in range(6)]  # several keys, so events spread over the partitions


def services(command: str) -> None:
    done = subprocess.run(
        ["bash", str(SERVICES), command], capture_output=True, text=True, timeout=180
    )
    if done.returncode != 0 and command.endswith("start"):
        # The script may give up waiting while the service comes up; the caller checks.
        sys.stderr.write(done.stderr[-2000:])


def need_managed_services(kafka: str, postgres: str) -> None:
    """The fault tests stop and start the services: they must be the ones ops/services.sh
    runs for this checkout (its status says so)."""
    status = subprocess.run(["bash", str(SERVICES), "status"], capture_output=True, text=True)
    if status.returncode != 0:
        message = "Kafka/PostgreSQL are not run by ops/services.sh for this checkout"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@dataclass
class Topology:
    settings: Settings
    env: dict[str, str]
    tmp: Path
    ingest_url: str = ""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> None:
        log = open(self.tmp / f"{name}.log", "ab")  # noqa: SIM115 (the child keeps it open)
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "hutch", *args],
            env=self.env,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    def log_of(self, name: str) -> str:
        return (self.tmp / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes.values():
            kill_tree(process.pid)
            process.wait()


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    kafka = need_service("HUTCH_TEST_KAFKA", "Kafka")
    postgres = need_service("HUTCH_TEST_POSTGRES", "PostgreSQL")
    standin = StandIn(free_port(), tmp_path)
    standin.start()
    query_port, ingest_port = free_port(), free_port()
    env = {
        **os.environ,
        "HUTCH_DATA": str(tmp_path / "data"),
        "HUTCH_LOG": f"{kafka}?prefix=t{uuid.uuid4().hex[:10]}.&partitions=4",
        "HUTCH_DB": fresh_postgres_schema(postgres),
        "HUTCH_ANALYTICS": standin.url,
        "HUTCH_WORKERS": "2",
        "HUTCH_LOG_LEVEL": "INFO",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    settings = Settings.from_env(env)
    assert hutch(settings, "migrate")[0] == 0
    topo = Topology(settings, env, tmp_path, f"http://127.0.0.1:{ingest_port}")
    try:
        topo.start("query", "query", "--bind", f"127.0.0.1:{query_port}")
        eventually(lambda: _up(f"http://127.0.0.1:{query_port}"), timeout_s=60)
        topo.start(
            "ingest",
            "ingest",
            "--bind",
            f"127.0.0.1:{ingest_port}",
            "--forward",
            f"http://127.0.0.1:{query_port}",
        )
        eventually(lambda: _up(topo.ingest_url), timeout_s=60)
        topo.start("project-a", "project")
        topo.start("project-b", "project")
        yield topo
    finally:
        topo.stop_all()
        standin.stop()


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _apps(topo: Topology) -> tuple[dict[str, str], str]:
    """Secrets of APPS (one developer) and the developer's token."""
    secrets: dict[str, str] = {}
    secret, token = developer_with_app(topo.settings, "topo", APPS[0])
    secrets[APPS[0]] = secret
    for app in APPS[1:]:
        code, created = hutch(topo.settings, "app", "create", app, "--developer", "topo")
        assert code == 0, created
        secrets[app] = created["secret"]
    return secrets, token


def _listed(topo: Topology, token: str, version: str) -> list[int]:
    with httpx.Client(
        base_url=topo.ingest_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as c:
        events = list_all(c, "/api/telemetry", "events", version=version, limit="1000")
    return [e["bits"]["n"] for e in events]


def _send(topo: Topology, secret: str, version: str, n: int) -> httpx.Response:
    return httpx.post(
        f"{topo.ingest_url}/api/telemetry",
        headers={"X-Secret": secret, "Content-Type": "application/json"},
        content=orjson.dumps({"kind": "info", "version": version, "bits": {"n": n}}),
        timeout=60,
    )


class Load:
    """Clients sending events (a unique n each) until stopped; what each answer was."""

    def __init__(self, topo: Topology, secrets: dict[str, str], version: str) -> None:
        self.acknowledged: set[int] = set()
        self.statuses: dict[int, int] = {}
        self.retry_after: set[str] = set()
        self.slowest = 0.0
        self._topo, self._secrets, self._version = topo, secrets, version
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self.errors: list[str] = []
        self.refusal = ""
        self._pool = ThreadPoolExecutor(max_workers=8)
        self._futures = [self._pool.submit(self._run) for _ in range(8)]

    def __enter__(self) -> Load:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()  # also when a check failed, or pytest would wait for the threads forever

    def _run(self) -> None:
        apps = list(self._secrets)
        while not self._stop.is_set():
            with self._lock:
                n = self._next
                self._next += 1
            started = time.monotonic()
            try:
                answer = _send(self._topo, self._secrets[apps[n % len(apps)]], self._version, n)
            except httpx.HTTPError as exc:
                with self._lock:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                continue
            with self._lock:
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.statuses[n] = answer.status_code
                if answer.status_code == 202:
                    self.acknowledged.add(n)
                else:
                    self.refusal = answer.text[:300]
                    if "retry-after" in answer.headers:
                        self.retry_after.add(answer.headers["retry-after"])
            if answer.status_code != 202:
                time.sleep(0.05)

    def until_acknowledged(self, count: int, timeout_s: float) -> None:
        try:
            eventually(lambda: len(self.acknowledged) >= count, timeout_s=timeout_s)
        except AssertionError as exc:
            with self._lock:
                recent = Counter(list(self.statuses.values())[-200:])
                errors = self.errors[-3:]
            raise AssertionError(
                f"{len(self.acknowledged)} of {count} acknowledged ({exc}); "
                f"last answers {dict(recent)} of {len(self.statuses)}, last refusal "
                f"{self.refusal!r}, last client errors {errors}"
            ) from None

    def stop(self) -> None:
        self._stop.set()
        for future in self._futures:
            future.result()
        self._pool.shutdown()


@pytest.mark.slow
def test_round_trip_with_two_projectors_sharing_the_partitions(topology: Topology) -> None:
    secrets, token = _apps(topology)
    for n in range(300):
        assert _send(topology, secrets[APPS[n % len(APPS)]], "shared", n).status_code == 202
    ns = eventually(
        lambda: (lambda got: got if len(got) >= 300 else None)(_listed(topology, token, "shared")),
        timeout_s=90,
    )
    assert sorted(ns) == list(range(300))
    for name in ("project-a", "project-b"):
        assert "partitions assigned" in topology.log_of(name)
    assigned = {
        name: [
            line
            for line in topology.log_of(name).splitlines()
            if "partitions assigned" in line and "hutch.telemetry" in line
        ][-1]
        for name in ("project-a", "project-b")
    }
    # Each projector process holds some of the telemetry partitions, none holds them all.
    for line in assigned.values():
        partitions = orjson.loads(line)["partitions"]
        assert 0 < len(partitions) < 4, line


@pytest.mark.slow
def test_a_projector_killed_mid_load_loses_and_doubles_nothing(topology: Topology) -> None:
    secrets, token = _apps(topology)
    with Load(topology, secrets, "killed") as load:
        load.until_acknowledged(300, timeout_s=90)
        kill_tree(topology.processes["project-a"].pid)  # SIGKILL, whatever it was doing
        topology.processes["project-a"].wait()
        load.until_acknowledged(600, timeout_s=90)
        topology.start("project-a", "project")
        load.until_acknowledged(900, timeout_s=90)
    assert set(load.statuses.values()) == {202}

    def complete() -> list[int] | None:
        ns = _listed(topology, token, "killed")
        return ns if load.acknowledged <= set(ns) else None

    ns = eventually(complete, timeout_s=120)
    assert len(ns) == len(set(ns)), "an event is listed twice"


@pytest.mark.slow
def test_kafka_down_answers_503_then_nothing_acknowledged_is_lost(topology: Topology) -> None:
    kafka = topology.env["HUTCH_LOG"]
    postgres = topology.env["HUTCH_DB"]
    need_managed_services(kafka, postgres)
    secrets, token = _apps(topology)
    with Load(topology, secrets, "broker") as load:
        try:
            load.until_acknowledged(200, timeout_s=90)
            services("kafka-stop")
            down = len(load.statuses)
            eventually(
                lambda: sum(1 for s in list(load.statuses.values())[down:] if s == 503) >= 5,
                timeout_s=90,
            )
        finally:
            services("kafka-start")
        load.until_acknowledged(len(load.acknowledged) + 200, timeout_s=180)
    assert set(load.statuses.values()) <= {202, 503}, "no 500s, only 202 or 503"
    assert load.retry_after == {"1"}
    assert load.slowest < 60, "a request hung"

    def complete() -> list[int] | None:
        ns = _listed(topology, token, "broker")
        return ns if load.acknowledged <= set(ns) else None

    ns = eventually(complete, timeout_s=180)
    assert len(ns) == len(set(ns)), "an event is listed twice"


@pytest.mark.slow
def test_postgresql_restart_fails_commands_cleanly_then_they_work(topology: Topology) -> None:
    need_managed_services(topology.env["HUTCH_LOG"], topology.env["HUTCH_DB"])
    _, token = _apps(topology)
    bearer = {"Authorization": f"Bearer {token}"}
    services("pg-stop")
    try:
        answer = httpx.post(
            f"{topology.ingest_url}/api/apps",
            headers=bearer,
            json={"name": "during-outage"},
            timeout=90,
        )
        # The token is cached for a second at most; either way the answer is clean.
        assert answer.status_code in (401, 503), answer.text
        assert answer.json()["error"]["code"] in ("unavailable", "invalid_token")
        if answer.status_code == 503:
            assert answer.headers["retry-after"] == "1"
    finally:
        services("pg-start")
    port = urlsplit(need_service("HUTCH_TEST_POSTGRES", "PostgreSQL")).port
    assert port

    def created() -> bool:
        answer = httpx.post(
            f"{topology.ingest_url}/api/apps",
            headers=bearer,
            json={"name": "after-outage"},
            timeout=30,
        )
        return answer.status_code == 201

    eventually(created, timeout_s=60)
    with httpx.Client(base_url=topology.ingest_url, headers=bearer, timeout=30) as c:
        names = {a["name"] for a in c.get("/api/apps").json()["apps"]}
    assert "after-outage" in names
    assert "during-outage" not in names
