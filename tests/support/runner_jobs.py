"""For the runner's tests: the real tools they need (root, bubblewrap, debootstrap, git), one
debian/bookworm image for the whole session (cached in ~/.cache/hutch/images, so later runs on
this machine reuse it), and a job's filesystem per test."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from runner.images import ImageSettings, PreparedImage, default_images_dir, prepare_image
from runner.process import CancelFlag, LogLine
from runner.sandbox import SandboxLimits, TaskResult, run_task, task_environment, write_buildenv
from runner.workspace import JobFilesystem, WorkspaceSettings, job_filesystem
from tests.support.services import unavailable

MIB = 1 << 20
TEST_RUN_DIR = Path("/run/hutch-runner-tests")


def need_runner_tools(*tools: str) -> None:
    """Skip (fail under CI=true) unless the runner could run here: root and these tools."""
    if os.geteuid() != 0:
        unavailable("the runner's tests need root (debootstrap, loop mounts, overlays)")
    for tool in ("bwrap", "debootstrap", "mkfs.ext4", *tools):
        if shutil.which(tool, path="/usr/sbin:/usr/bin:/sbin:/bin") is None:
            unavailable(f"{tool} is not installed (apt-get install bubblewrap debootstrap)")


def image_settings() -> ImageSettings:
    return ImageSettings(Path(os.environ.get("HUTCH_RUNNER_IMAGES") or default_images_dir()))


def prepared(packages: Sequence[str] = ()) -> tuple[PreparedImage, list[str]]:
    """debian/bookworm with these packages (built once, then cached), and the setup log."""
    need_runner_tools()
    lines: list[str] = []
    image = asyncio.run(
        prepare_image(
            "debian/bookworm",
            settings=image_settings(),
            packages=packages,
            on_line=lambda line: lines.append(line.text),
        )
    )
    return image, lines


def workspace_settings(disk_dir: Path, size_bytes: int = 64 * MIB) -> WorkspaceSettings:
    return WorkspaceSettings(disk_dir=disk_dir, run_dir=TEST_RUN_DIR, size_bytes=size_bytes)


async def open_job(
    image: PreparedImage, disk_dir: Path, size_bytes: int = 64 * MIB
) -> AsyncIterator[JobFilesystem]:
    async with job_filesystem(
        f"test-{uuid.uuid4().hex[:12]}", image, workspace_settings(disk_dir, size_bytes)
    ) as fs:
        yield fs


class Lines:
    """A LineSink keeping what it is given."""

    def __init__(self) -> None:
        self.lines: list[LogLine] = []

    def __call__(self, line: LogLine) -> None:
        self.lines.append(line)

    @property
    def texts(self) -> list[str]:
        return [line.text for line in self.lines]

    def output(self) -> list[str]:
        """Without the shell's `set -x` trace."""
        return [text for text in self.texts if not text.startswith("+")]


async def run_script(
    fs: JobFilesystem,
    script: str,
    *,
    environment: dict[str, str | list[str]] | None = None,
    timeout_s: float = 60.0,
    job_deadline: float | None = None,
    cancel: CancelFlag | None = None,
    limits: SandboxLimits | None = None,
) -> tuple[TaskResult, Lines]:
    """One task (`environment` as a manifest's), its result and its log."""
    manifest = environment or {}
    env = task_environment(manifest, job_id=7, job_url="http://hutch.test/jobs/7", submitter="test")
    write_buildenv(fs, manifest, env)
    lines = Lines()
    result = await run_task(
        fs,
        "task",
        script,
        env=env,
        on_line=lines,
        timeout_s=timeout_s,
        job_deadline=job_deadline,
        cancel=cancel,
        limits=limits,
    )
    return result, lines


def processes_with(marker: str) -> list[int]:
    """Host PIDs whose command line holds `marker`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                if marker.encode() in cmdline.read():
                    found.append(int(entry))
        except OSError:
            continue
    return found


def wait_until_gone(marker: str, within_s: float = 2.0) -> list[int]:
    deadline = time.monotonic() + within_s
    while (left := processes_with(marker)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left
