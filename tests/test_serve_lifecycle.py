"""`hutch serve` and its data directory: one owner at a time, children that die with their
supervisor, a start that waits (bounded, and saying so) for an owner still exiting, and
nothing shared with other instances on the machine."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from base.settings import Settings
from tests.support.admin import developer_with_app
from tests.support.processes import descendants, kill_tree
from tests.support.servers import Served, free_port
from tests.support.settings import make_settings
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture
def data(tmp_path: Path) -> Settings:
    return make_settings(tmp_path / "data")


@pytest.fixture
def cleanup() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test started: whatever is left of them is killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        kill_tree(process.pid)
        process.wait()


def alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def hutch_process(settings: Settings, *args: str, home: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **settings.as_env(), "HOME": str(home)}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "hutch", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def refusal(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The JSON error a refused command printed last on stderr; it must have exited non-zero
    well within the bound (a refusal is immediate: no waiting, no hanging)."""
    try:
        _, err = process.communicate(timeout=45)
    except subprocess.TimeoutExpired:
        kill_tree(process.pid)
        process.wait()
        raise AssertionError(
            "the command did not exit: it hangs on a live data directory"
        ) from None
    assert process.returncode != 0
    last = err.decode(errors="replace").strip().splitlines()[-1]
    body = orjson.loads(last)
    assert set(body) == {"error", "message"}, last  # the one error shape, as over HTTP
    assert body["message"] == body["error"]["message"]
    return dict(body["error"])


def test_a_restart_right_after_a_sigkill_of_the_process_group_comes_up(data: Settings) -> None:
    port = free_port()
    first = Served(data, port, session=True)
    children = descendants(first.process.pid)
    assert len(children) >= 3  # query process, gunicorn master, its workers
    # Children slow to exit, at the extreme: frozen, they cannot react to anything but
    # SIGKILL. Then the supervisor's process group is killed, as `kill -9 -PGID` does (the
    # children, in sessions of their own, are not in it).
    for child in children:
        os.kill(child, signal.SIGSTOP)
    os.killpg(first.process.pid, signal.SIGKILL)
    first.process.wait()
    try:
        restarted = Served(data, port)  # at once: the old query process must not hold chDB
        try:
            assert httpx.get(f"{restarted.url}/api/health", timeout=10).status_code == 200
            assert [c for c in children if alive(c)] == []  # they died with the supervisor
        finally:
            kill_tree(restarted.process.pid)
            restarted.process.wait()
    finally:
        for child in children:  # whatever survived (before the fix: all of them, frozen)
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)


def test_a_second_serve_on_a_live_data_directory_refuses_at_once_and_touches_nothing(
    data: Settings, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    owner = Served(data, free_port())
    cleanup.append(owner.process)
    _, token = developer_with_app(data, "ona", "ona-app")
    run = data.data / "run"
    socket_inode = (run / "query.sock").stat().st_ino
    metrics_inode = (run / "metrics").stat().st_ino
    headers = {"Authorization": f"Bearer {token}"}
    assert httpx.get(f"{owner.url}/api/telemetry", headers=headers, timeout=10).status_code == 200

    second = Served(data, free_port(), wait=False)
    cleanup.append(second.process)
    try:
        second.process.wait(timeout=45)
    except subprocess.TimeoutExpired:
        raise AssertionError("a second `hutch serve` on a live data directory hangs") from None
    assert second.process.returncode != 0
    error = second.log_lines()[-1]["error"]
    assert error["code"] == "data_dir_in_use"
    assert str(owner.process.pid) in error["message"]
    assert str(data.data) in error["message"]

    # The other commands that would own the data directory refuse the same way, at once:
    # the query process (even on the live socket's path), the projectors, a replay.
    for args in (
        ["query", "--socket", str(run / "query.sock"), "--projectors"],
        ["project"],
        ["replay", "telemetry"],
    ):
        error = refusal(hutch_process(data, *args, home=owner.home))
        assert error["code"] == "data_dir_in_use", (args, error)
        assert str(owner.process.pid) in error["message"], (args, error)

    # The running instance did not notice.
    assert (run / "query.sock").stat().st_ino == socket_inode
    assert (run / "metrics").stat().st_ino == metrics_inode
    for _ in range(3):
        answer = httpx.get(f"{owner.url}/api/telemetry", headers=headers, timeout=10)
        assert answer.status_code == 200, answer.text
    assert owner.process.poll() is None


HOLDER = """
import os, subprocess, sys
from pathlib import Path
from hutch.data_lock import acquire

lock = acquire(Path(sys.argv[1]), wait_s=0)
# A descendant keeps the lock after this owner is gone, as an old query process still
# exiting after its supervisor was killed would.
heir = subprocess.Popen(
    [sys.executable, "-c", "import sys, time; time.sleep(float(sys.argv[1]))", sys.argv[2]],
    pass_fds=[lock.fd],
    start_new_session=True,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
)
print(heir.pid, flush=True)
os._exit(0)
"""


def owner_exiting(settings: Settings, seconds: float) -> tuple[int, int]:
    """A previous owner of the data directory (its pid) that is gone, and a descendant still
    holding its lock for `seconds` (its pid)."""
    settings.data.mkdir(parents=True, exist_ok=True)
    holder = subprocess.run(
        [sys.executable, "-c", HOLDER, str(settings.data), str(seconds)],
        capture_output=True,
        check=True,
        timeout=60,
    )
    heir = int(holder.stdout.split()[0])
    record = orjson.loads((settings.data / "hutch.lock").read_bytes())
    return int(record["pid"]), heir


def waiting_lines(served: Served) -> list[dict[str, Any]]:
    return [line for line in served.log_lines() if "owner_pid" in line]


def test_a_start_waits_for_the_previous_owner_still_exiting_and_says_so(data: Settings) -> None:
    gone, heir = owner_exiting(data, seconds=4)
    assert not alive(gone)
    served = Served(data, free_port())
    try:
        assert not alive(heir)  # it started only once the last holder was gone
        (line, *_) = waiting_lines(served)
        assert line["level"] == "warning"
        assert line["owner_pid"] == gone
        assert "waiting" in line["msg"]
        assert line["wait_s"] > 0
    finally:
        kill_tree(served.process.pid)
        served.process.wait()


def test_a_start_gives_up_after_its_bound_and_heeds_sigterm_while_waiting(
    data: Settings, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    gone, heir = owner_exiting(data, seconds=600)
    try:
        bounded = Served(data, free_port(), env={"HUTCH_START_WAIT": "2"}, wait=False)
        cleanup.append(bounded.process)
        assert bounded.process.wait(timeout=45) != 0
        error = bounded.log_lines()[-1]["error"]
        assert error["code"] == "data_dir_in_use"
        assert str(gone) in error["message"]
        assert waiting_lines(bounded)  # it said it was waiting before it gave up

        patient = Served(data, free_port(), env={"HUTCH_START_WAIT": "600"}, wait=False)
        cleanup.append(patient.process)
        eventually(lambda: waiting_lines(patient), timeout_s=45)
        patient.process.send_signal(signal.SIGTERM)
        assert patient.process.wait(timeout=30) != 0
        assert not (data.data / "run" / "query.sock").exists()  # it started nothing
    finally:
        os.kill(heir, signal.SIGKILL)


def test_gunicorn_control_socket_is_not_shared_between_instances(
    tmp_path: Path, cleanup: list[subprocess.Popen[bytes]]
) -> None:
    xdg = tmp_path / "xdg"
    xdg.mkdir()
    served = Served(
        make_settings(tmp_path / "data"), free_port(), env={"XDG_RUNTIME_DIR": str(xdg)}
    )
    cleanup.append(served.process)
    # Gunicorn's default is one socket per user ($XDG_RUNTIME_DIR or ~/.gunicorn), which
    # every instance would take from the one before and remove when it stops.
    assert list(xdg.iterdir()) == []
    assert not (served.home / ".gunicorn").exists()
    assert [p.name for p in tmp_path.rglob("*.ctl")] == []
