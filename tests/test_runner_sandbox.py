"""Tasks in bubblewrap, for real (root, bwrap, a debootstrapped bookworm, loop-mounted
workspaces): output, exit status, environment, what a task can see, processes that outlive
their task, timeouts, cancellation, and a task that fills its workspace."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runner.images import PreparedImage
from runner.sandbox import SandboxLimits
from runner.workspace import JobFilesystem
from tests.support.runner_jobs import (
    MIB,
    open_job,
    prepared,
    processes_with,
    run_script,
    wait_until_gone,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def bookworm() -> PreparedImage:
    return prepared()[0]


@pytest.fixture
async def job(bookworm: PreparedImage, tmp_path: Path) -> AsyncIterator[JobFilesystem]:
    async for fs in open_job(bookworm, tmp_path / "disks"):
        yield fs


async def test_output_lines_arrive_in_order_with_timestamps(job: JobFilesystem) -> None:
    result, lines = await run_script(
        job, 'for i in $(seq 1 500); do echo "out $i"; echo "err $i" >&2; done'
    )
    assert result.status == "success"
    assert result.exit_code == 0
    expected = [f"{kind} {i}" for i in range(1, 501) for kind in ("out", "err")]
    assert lines.output() == expected
    stamps = [line.at_ns for line in lines.lines]
    assert stamps == sorted(stamps)
    assert abs(stamps[0] / 1e9 - time.time()) < 60


async def test_tasks_run_as_builds_sr_ht_runs_them(job: JobFilesystem) -> None:
    result, lines = await run_script(job, "echo $0 $- $BASH_VERSION; pwd; id -un; id -u")
    assert result.status == "success"
    shell, flags, *_ = lines.output()[0].split()
    assert shell.endswith("/run/hutch/task")
    assert "e" in flags
    assert "x" in flags
    assert lines.output()[1:] == ["/home/build", "build", "1000"]
    assert "+ pwd" in lines.texts  # the trace of `set -x`


async def test_a_failing_command_fails_the_task_with_its_status(job: JobFilesystem) -> None:
    result, lines = await run_script(job, "echo before\nfalse\necho never")
    assert (result.status, result.exit_code) == ("failed", 1)
    assert lines.output() == ["before"]
    result, _ = await run_script(job, "exit 3")
    assert (result.status, result.exit_code) == ("failed", 3)


async def test_complete_build_ends_the_job_with_success(job: JobFilesystem) -> None:
    result, lines = await run_script(job, "echo done\ncomplete-build\necho never")
    assert result.status == "success"
    assert result.complete_build
    assert "never" not in lines.output()
    result, _ = await run_script(job, "exit 255")  # ssh's failure is not complete-build
    assert (result.status, result.exit_code, result.complete_build) == ("failed", 255, False)


async def test_the_environment_is_the_jobs_only(
    job: JobFilesystem, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HUTCH_RUNNER_OWN_SECRET", "must-not-leak")
    result, lines = await run_script(
        job,
        'env | sort; echo "array=${FLAVOURS[1]} count=${#FLAVOURS[@]}"',
        environment={"GREETING": "hello world", "QUOTED": "it's $HOME", "FLAVOURS": ["a", "b c"]},
    )
    assert result.status == "success"
    env = dict(
        line.split("=", 1)
        for line in lines.output()
        if "=" in line and " " not in line.split("=")[0]
    )
    assert env["GREETING"] == "hello world"
    assert env["QUOTED"] == "it's $HOME"
    assert env["JOB_ID"] == "7"
    assert env["JOB_URL"] == "http://hutch.test/jobs/7"
    assert env["BUILD_SUBMITTER"] == "test"
    assert env["HOME"] == "/home/build"
    assert "array=b c count=2" in lines.output()
    assert not any("must-not-leak" in text or "HUTCH_RUNNER_OWN" in text for text in lines.texts)
    assert not any(name in env for name in ("VIRTUAL_ENV", "PYTEST_CURRENT_TEST", "SUDO_USER"))


async def test_sh_runs_tasks_when_the_image_has_no_bash(job: JobFilesystem) -> None:
    # bash is everywhere in bookworm; a task cannot remove it (the root is read-only), so the
    # fallback is checked on the launcher itself: with bash out of PATH, sh reads the script.
    result, lines = await run_script(
        job,
        'echo "shell=$0"; [ -z "${BASH_VERSION:-}" ] && echo no-bash',
        environment={"PATH": "/nowhere"},
    )
    assert result.status == "success", lines.texts
    assert "no-bash" in lines.output()


async def test_a_task_sees_only_its_root_and_its_workspace(
    bookworm: PreparedImage, job: JobFilesystem, tmp_path: Path
) -> None:
    hutch_data = tmp_path / "data"
    hutch_data.mkdir()
    (hutch_data / "hutch.db").write_text("secret")
    async for other in open_job(bookworm, tmp_path / "other-disks"):
        (other.home / "other-job.txt").write_text("not yours")
        paths = [
            str(Path(__file__).resolve()),  # the runner's own code
            str(Path(os.__file__).resolve()),  # its Python
            str(hutch_data / "hutch.db"),
            str(other.home / "other-job.txt"),
            str(Path.home() / ".cache" / "hutch" / "images"),  # the runner's image cache
            "/work",
            "/sys/kernel",
            "/run/hutch-runner-tests",
        ]
        checks = "".join(f'[ -e "{p}" ] && echo "visible: {p}"\n' for p in paths)
        result, lines = await run_script(
            job,
            checks + "ls /home\ntouch /usr/local/x 2>&1 || true\n"
            "touch /dev/x 2>&1 || true\nls /proc | grep -c '^[0-9]'\n",
        )
    assert result.status == "success", lines.texts
    out = lines.output()
    assert not [line for line in out if line.startswith("visible")]
    assert "build" in out  # ls /home
    assert any("Read-only file system" in line and "/usr/local/x" in line for line in out)
    assert any("Read-only file system" in line and "/dev/x" in line for line in out)
    assert int(out[-1]) <= 4  # its own PID namespace: bwrap, the shell, ls, grep


async def test_a_process_that_outlives_its_task_is_killed(job: JobFilesystem) -> None:
    marker = f"hutch-orphan-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    result, lines = await run_script(
        job,
        f"(exec -a {marker}-bg sleep 1000) &\n"
        f"(trap '' HUP TERM INT; exec -a {marker}-deaf sleep 1000) &\n"
        f"setsid bash -c 'exec -a {marker}-session sleep 1000' &\n"
        f"(bash -c 'exec -a {marker}-double sleep 1000' &) &\n"
        "sleep 0.3\necho started\n",
    )
    assert result.status == "success"
    assert "started" in lines.output()
    assert time.monotonic() - started < 10  # the orphans held the output pipe: not waited for
    assert wait_until_gone(marker) == []


async def test_a_task_past_its_timeout_is_stopped_promptly(job: JobFilesystem) -> None:
    marker = f"hutch-slow-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    result, lines = await run_script(job, f"echo going\nexec -a {marker} sleep 1000", timeout_s=1)
    took = time.monotonic() - started
    assert result.status == "timeout"
    assert result.exit_code is None
    assert 1 <= took < 3
    assert "going" in lines.output()
    assert lines.texts[-1] == "[hutch] task task stopped: it ran past the task's limit (1 s)"
    assert wait_until_gone(marker) == []


async def test_the_jobs_deadline_stops_a_task_before_its_own_limit(job: JobFilesystem) -> None:
    started = time.monotonic()
    result, lines = await run_script(
        job, "sleep 1000", timeout_s=600, job_deadline=time.monotonic() + 1
    )
    assert result.status == "timeout"
    assert time.monotonic() - started < 3
    assert "the job's limit" in lines.texts[-1]


async def test_a_cancelled_task_is_stopped_promptly(job: JobFilesystem) -> None:
    marker = f"hutch-cancel-{uuid.uuid4().hex[:8]}"
    cancel = threading.Event()
    asyncio.get_running_loop().call_later(0.5, cancel.set)
    started = time.monotonic()
    result, lines = await run_script(job, f"exec -a {marker} sleep 1000", cancel=cancel)
    assert result.status == "cancelled"
    assert time.monotonic() - started < 2
    assert lines.texts[-1] == "[hutch] task task stopped: the job was cancelled"
    assert wait_until_gone(marker) == []


async def test_a_cancelled_runner_leaves_no_process_behind(job: JobFilesystem) -> None:
    marker = f"hutch-abandoned-{uuid.uuid4().hex[:8]}"
    running = asyncio.create_task(run_script(job, f"exec -a {marker} sleep 1000"))
    deadline = time.monotonic() + 5
    while not processes_with(marker) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert processes_with(marker)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert wait_until_gone(marker) == []


@pytest.mark.slow
async def test_a_task_filling_its_workspace_fails_without_filling_the_host(
    job: JobFilesystem, tmp_path: Path
) -> None:
    before = os.statvfs(tmp_path)
    result, lines = await run_script(
        job, "dd if=/dev/zero of=$HOME/fill bs=1M count=1024\necho never"
    )
    after = os.statvfs(tmp_path)
    assert (result.status, result.exit_code) == ("failed", 1)
    assert any("No space left on device" in line for line in lines.output())
    used = (before.f_bavail - after.f_bavail) * after.f_frsize
    assert used < 8 * MIB  # the workspace's 64 MiB were reserved when the job started
    assert (job.home / "fill").stat().st_size < job.size_bytes
    result, lines = await run_script(job, "rm fill; echo room >> again && cat again")
    assert result.status == "success"
    assert "room" in lines.output()


async def test_tmp_and_shm_are_fresh_and_bounded(job: JobFilesystem) -> None:
    limits = SandboxLimits(tmp_bytes=4 * MIB, shm_bytes=1 * MIB)
    result, lines = await run_script(
        job, "echo one > /tmp/mark\ndd if=/dev/zero of=/tmp/fill bs=1M count=64", limits=limits
    )
    assert result.status == "failed"
    assert any("No space left on device" in line for line in lines.output())
    result, lines = await run_script(
        job,
        "[ -e /tmp/mark ] && echo kept\ndd if=/dev/zero of=/dev/shm/fill bs=1M count=64",
        limits=limits,
    )
    assert result.status == "failed"
    assert "kept" not in lines.output()
    assert any("No space left on device" in line for line in lines.output())
