"""Each job's filesystem on the host, made when the job starts and taken down when it ends:

    <run_dir>/<job>/root   the job's image, read-only: a bind of the cached root, or an overlay
                           of the packages' layer over it (images.py)
    <run_dir>/<job>/home   the workspace: `<disk_dir>/<job>.ext4`, a file allocated whole
                           (fallocate) and formatted ext4, loop-mounted nodev,nosuid

A task that fills its workspace gets ENOSPC at the workspace's size; the host's disk never
sees more than that, reserved up front (a job that cannot get its size fails at setup). The
workspace's root is owned by the unprivileged uid tasks run as (`uid`, not root), and run_dir
must be traversable by it: bubblewrap, running as that uid, opens these paths itself.

Needs root (debootstrap, loop devices, overlays): the runner runs as root and drops to `uid`
for everything a job runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from runner import mounts
from runner.images import PreparedImage

GIB = 1 << 30
JOB_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
NOBODY = 65534


def default_disk_dir() -> Path:
    return Path.home() / ".cache" / "hutch" / "workspaces"


@dataclass(frozen=True, slots=True)
class WorkspaceSettings:
    disk_dir: Path
    """Where the workspaces' image files are (root-only is fine)."""
    run_dir: Path = Path("/run/hutch-runner")
    """Where each job's root and home are mounted (traversable by `uid`)."""
    size_bytes: int = 10 * GIB
    uid: int = NOBODY
    """The host uid (and gid) a job's processes run as; never root."""
    gid: int = NOBODY


@dataclass(frozen=True, slots=True)
class JobFilesystem:
    key: str
    root: Path
    """Host path of the job's root filesystem (read-only)."""
    home: Path
    """Host path of the workspace, the build user's home in the sandbox."""
    uid: int
    gid: int
    size_bytes: int


class WorkspaceError(Exception):
    """The job's filesystem could not be made; the message is for its setup log."""


@contextlib.asynccontextmanager
async def job_filesystem(
    key: str, image: PreparedImage, settings: WorkspaceSettings
) -> AsyncIterator[JobFilesystem]:
    """The job's root and workspace, mounted until the block ends (then unmounted and deleted,
    workspace and all). `key` names the job (its UUID). Raises WorkspaceError."""
    fs = await asyncio.to_thread(_make, key, image, settings)
    try:
        yield fs
    finally:
        await asyncio.to_thread(_remove, key, settings)


def sweep_stale(settings: WorkspaceSettings) -> list[str]:
    """Remove what jobs of a runner that died left behind (mounts, workspaces); the keys found.
    For the runner's start, when none of its jobs runs."""
    found: set[str] = set()
    if settings.run_dir.is_dir():
        found |= {p.name for p in settings.run_dir.iterdir()}
    if settings.disk_dir.is_dir():
        found |= {p.name.removesuffix(".ext4") for p in settings.disk_dir.glob("*.ext4")}
    for key in sorted(found):
        _remove(key, settings)
    return sorted(found)


def _make(key: str, image: PreparedImage, settings: WorkspaceSettings) -> JobFilesystem:
    if os.geteuid() != 0:
        raise WorkspaceError("the runner must run as root (loop-mounted workspaces, overlays)")
    if not JOB_KEY.match(key):
        raise WorkspaceError(f"{key!r} cannot name a job's directory")
    if settings.uid == 0 or settings.gid == 0:
        raise WorkspaceError("jobs must not run as root: set an unprivileged uid and gid")
    _remove(key, settings)
    stage = settings.run_dir / key
    _make_traversable(settings.run_dir)
    _check_traversable(settings.run_dir, settings)
    stage.mkdir(mode=0o711)
    # bwrap, as the job's uid, traverses it (not lists it); the umask must not narrow that.
    os.chmod(stage, 0o711)  # noqa: S103
    (stage / "root").mkdir()
    (stage / "home").mkdir()
    try:
        if image.layer is None:
            mounts.bind_read_only(image.base, stage / "root")
        else:
            mounts.mount_overlay(stage / "root", image.lower_dirs)
        disk = _allocate(settings.disk_dir / f"{key}.ext4", settings.size_bytes)
        _format(disk, settings)
        mounts.mount_loop(disk, stage / "home")
        (stage / "home" / "lost+found").rmdir()
    except (OSError, mounts.MountError, WorkspaceError) as exc:
        _remove(key, settings)
        if isinstance(exc, WorkspaceError):
            raise
        raise WorkspaceError(f"could not make the job's filesystem: {exc}") from None
    return JobFilesystem(
        key, stage / "root", stage / "home", settings.uid, settings.gid, settings.size_bytes
    )


def _allocate(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as exc:
        os.close(fd)
        path.unlink()
        raise WorkspaceError(
            f"no room for a {size / GIB:.1f} GiB workspace in {path.parent}: {exc.strerror}"
        ) from None
    os.close(fd)
    return path


def _format(disk: Path, settings: WorkspaceSettings) -> None:
    owner = f"nodiscard,root_owner={settings.uid}:{settings.gid}"
    done = subprocess.run(
        ["mkfs.ext4", "-q", "-F", "-m", "0", "-L", "hutch-job", "-E", owner, str(disk)],
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
        check=False,
    )
    if done.returncode != 0:
        raise WorkspaceError(f"mkfs.ext4 failed: {done.stderr.strip()}")


def _remove(key: str, settings: WorkspaceSettings) -> None:
    stage = settings.run_dir / key
    if stage.exists():
        mounts.unmount_under(stage)
        shutil.rmtree(stage, ignore_errors=True)
    with contextlib.suppress(FileNotFoundError):
        (settings.disk_dir / f"{key}.ext4").unlink()


def _make_traversable(path: Path) -> None:
    if not path.exists():
        path.mkdir(parents=True, mode=0o711)
        os.chmod(path, 0o711)  # noqa: S103 (traversed by the job's uid, not listed)


def _check_traversable(path: Path, settings: WorkspaceSettings) -> None:
    """bubblewrap runs as the job's uid and must reach the mount points itself."""
    for part in [path, *path.parents]:
        mode = part.stat()
        if mode.st_uid == settings.uid:
            ok = bool(mode.st_mode & stat.S_IXUSR)
        elif mode.st_gid == settings.gid:
            ok = bool(mode.st_mode & stat.S_IXGRP)
        else:
            ok = bool(mode.st_mode & stat.S_IXOTH)
        if not ok:
            raise WorkspaceError(
                f"{part} is not traversable by uid {settings.uid}: jobs cannot be mounted under "
                f"{path} (choose another run directory)"
            )
