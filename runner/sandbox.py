"""Run a job's commands (its tasks, git, gpg) inside bubblewrap, as builds.sr.ht runs tasks.

What a task gets (`bwrap_argv`):
- the job's image as `/`, read-only (a task cannot change it, nor fill the host's disk through
  it); its workspace at /home/build, read-write, of a fixed size (workspace.py); fresh /tmp,
  /run and /dev/shm (tmpfs, each of a fixed size) and a minimal /dev (null, zero, full,
  random, urandom, tty, pts), read-only; its own /proc; the host's /etc/resolv.conf;
- its own user, mount, PID, IPC, UTS and cgroup namespaces; no further user namespaces
  (--disable-userns); no capabilities; the image's `build` user (uid 1000 inside), which on the
  host is the unprivileged uid the workspace belongs to (never root);
- the host's network, as builds.sr.ht gives its VMs a network (--share-net);
- exactly the job's environment: nothing of the runner's.

What it does not get: any of the runner's files, Hutch's data directory, another job's
workspace or processes, the host's /sys, /home, /root or devices.

What is *not* isolated: the network namespace is the host's, so a job reaches whatever the
host reaches, including services listening on the host's loopback (bind them to a socket or
firewall them off) and abstract Unix sockets; CPU, memory and process counts are not limited
(no cgroup limits); the kernel is shared (bubblewrap is not a VM).

When a command ends, times out or is cancelled, bubblewrap's PID namespace ends with it: every
process the task started, including those that forked into the background and outlived the
script, is killed by the kernel (bubblewrap is PID 1 of the namespace, and --die-with-parent
kills it when the runner kills bwrap).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from runner import build_user
from runner.process import CancelFlag, Finished, LineSink, run_streamed, say
from runner.workspace import JobFilesystem

MIB = 1 << 20
TASK_FILE = "/run/hutch/task"
COMPLETE_MARK = ".hutch-complete-build"
"""`complete-build` (builds.sr.ht's way to end a job early with success) leaves this in $HOME
before exiting 255, so that a command's own 255 (ssh's) is not taken for it."""

EnvValue = str | int | float | bool | Sequence[str | int | float | bool]
TaskStatus = Literal["success", "failed", "timeout", "cancelled"]

# builds.sr.ht's preamble, with ~/.buildenv sourced only if the task left it in place.
PREAMBLE = 'if [ -r "$HOME/.buildenv" ]; then . "$HOME/.buildenv"; fi\nset -xe\n'
LAUNCH = 'if command -v bash >/dev/null 2>&1; then exec bash "$1"; fi; exec /bin/sh "$1"'
"""The shell builds.sr.ht runs tasks with: bash if the image has it, else sh."""


@dataclass(frozen=True, slots=True)
class SandboxLimits:
    tmp_bytes: int = 1024 * MIB
    shm_bytes: int = 64 * MIB
    run_bytes: int = 16 * MIB


@dataclass(frozen=True, slots=True)
class TaskResult:
    name: str
    status: TaskStatus
    """success, failed (non-zero exit), timeout (task's or job's limit), cancelled."""
    exit_code: int | None
    duration_s: float
    complete_build: bool = False
    """The task ran `complete-build`: it succeeded, and the job ends now with success."""


def bwrap_argv(
    fs: JobFilesystem, limits: SandboxLimits, files: Sequence[tuple[int, str]] = ()
) -> list[str]:
    """bubblewrap's arguments up to the command; `files` are (fd, path): each fd's contents
    appear read-only at that path."""
    argv = ["bwrap", "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    argv += ["--unshare-cgroup-try", "--disable-userns"]
    argv += ["--uid", str(build_user.UID), "--gid", str(build_user.GID), "--hostname", "build"]
    argv += ["--die-with-parent", "--new-session"]
    argv += ["--ro-bind", str(fs.root), "/", "--bind", str(fs.home), build_user.HOME]
    argv += ["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
    # /dev/shm, /tmp: the sandbox's own, fresh and size-limited (not the host's)
    argv += ["--dev", "/dev", "--size", str(limits.shm_bytes), "--tmpfs", "/dev/shm"]  # noqa: S108
    argv += ["--remount-ro", "/dev", "--proc", "/proc"]
    argv += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]  # noqa: S108
    argv += ["--size", str(limits.run_bytes), "--tmpfs", "/run"]
    for fd, path in files:
        argv += ["--ro-bind-data", str(fd), path]
    return [*argv, "--chdir", build_user.HOME, "--"]


def base_environment() -> dict[str, str]:
    """What a login shell in the image would have, whatever the runner's environment."""
    return {
        "PATH": build_user.SHELL_PATH,
        "HOME": build_user.HOME,
        "USER": build_user.NAME,
        "LOGNAME": build_user.NAME,
        "LANG": "C.UTF-8",
    }


def task_environment(
    manifest: Mapping[str, EnvValue], *, job_id: int, job_url: str, submitter: str
) -> dict[str, str]:
    """A task's environment: the login basics, builds.sr.ht's JOB_ID, JOB_URL and
    BUILD_SUBMITTER, then the manifest's `environment` (which may override them, as in
    builds.sr.ht). A list is a shell array: only in ~/.buildenv (`write_buildenv`)."""
    env = base_environment() | {
        "JOB_ID": str(job_id),
        "JOB_URL": job_url,
        "BUILD_SUBMITTER": submitter,
    }
    for name, value in manifest.items():
        if not isinstance(value, str | int | float | bool):
            continue
        env[name] = _scalar(value)
    for name, value in env.items():
        if not name.isidentifier() or not name.isascii() or "\0" in value:
            raise ValueError(f"environment {name!r}: not a shell variable name or holds a NUL")
    return env


def _scalar(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else repr(value)


def write_buildenv(
    fs: JobFilesystem, manifest: Mapping[str, EnvValue], env: Mapping[str, str]
) -> None:
    """~/.buildenv, which every task sources, as builds.sr.ht writes it: the environment's
    exports, shell arrays, and `complete-build`. POSIX sh reads it too (the bash-only part is
    skipped there)."""
    lines = ["# The job's environment (Hutch's runner), sourced by every task."]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in env.items()]
    bash_only = [f"complete-build() {{ : > ~/{COMPLETE_MARK}; exit 255; }}"]
    for name, value in manifest.items():
        if not isinstance(value, str | int | float | bool):
            items = " ".join(shlex.quote(_scalar(item)) for item in value)
            bash_only.append(f"{name}=({items})")
    lines.append(
        f'if [ -n "${{BASH_VERSION:-}}" ]; then eval {shlex.quote(chr(10).join(bash_only))}; fi'
    )
    write_home_file(fs, ".buildenv", ("\n".join(lines) + "\n").encode(), 0o644)


def write_home_file(fs: JobFilesystem, name: str, data: bytes, mode: int) -> None:
    """A file directly in the workspace, owned by the build user, never through a symlink."""
    fd = os.open(
        fs.home / name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, mode
    )
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        os.fchmod(fd, mode)
        os.fchown(fd, fs.uid, fs.gid)


@contextlib.contextmanager
def _memory_files(files: Mapping[str, bytes]) -> Iterator[list[tuple[int, str]]]:
    """Anonymous files holding `files`' contents, for --ro-bind-data (never on a disk)."""
    opened: list[tuple[int, str]] = []
    try:
        for path, data in files.items():
            fd = os.memfd_create("hutch-file")
            opened.append((fd, path))
            os.write(fd, data)
            os.lseek(fd, 0, os.SEEK_SET)
        yield opened
    finally:
        for fd, _ in opened:
            os.close(fd)


async def run_in_sandbox(
    fs: JobFilesystem,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    on_line: LineSink,
    timeout_s: float | None,
    cancel: CancelFlag | None = None,
    limits: SandboxLimits | None = None,
    files: Mapping[str, bytes] | None = None,
) -> Finished:
    """`argv` inside the job's sandbox as its build user, with exactly `env`; `files` (path in
    the sandbox -> contents) appear read-only. See `process.run_streamed` for the rest."""
    with _memory_files(files or {}) as fds:
        command = bwrap_argv(fs, limits or SandboxLimits(), fds) + list(argv)
        return await run_streamed(
            command,
            on_line=on_line,
            env=env,
            timeout_s=timeout_s,
            cancel=cancel,
            user=fs.uid,
            group=fs.gid,
            pass_fds=[fd for fd, _ in fds],
        )


async def run_task(
    fs: JobFilesystem,
    name: str,
    script: str,
    *,
    env: Mapping[str, str],
    on_line: LineSink,
    timeout_s: float,
    job_deadline: float | None = None,
    cancel: CancelFlag | None = None,
    limits: SandboxLimits | None = None,
) -> TaskResult:
    """One task: builds.sr.ht's preamble (`. ~/.buildenv; set -xe`) and the script, run by bash
    (sh if the image has no bash) in the workspace. `timeout_s` is the task's limit and
    `job_deadline` (time.monotonic()) the job's; the nearer one applies."""
    limit, which = timeout_s, "the task's limit"
    if job_deadline is not None and job_deadline - time.monotonic() < limit:
        limit, which = max(0.0, job_deadline - time.monotonic()), "the job's limit"
    mark = fs.home / COMPLETE_MARK
    with contextlib.suppress(FileNotFoundError):
        mark.unlink()
    done = await run_in_sandbox(
        fs,
        ["/bin/sh", "-c", LAUNCH, "task", TASK_FILE],
        env=env,
        on_line=on_line,
        timeout_s=limit,
        cancel=cancel,
        limits=limits,
        files={TASK_FILE: (PREAMBLE + script).encode()},
    )
    if done.outcome == "timeout":
        say(on_line, f"[hutch] task {name} stopped: it ran past {which} ({limit:.0f} s)")
        return TaskResult(name, "timeout", None, done.duration_s)
    if done.outcome == "cancelled":
        say(on_line, f"[hutch] task {name} stopped: the job was cancelled")
        return TaskResult(name, "cancelled", None, done.duration_s)
    if done.exit_code == 255 and (mark.is_file() and not mark.is_symlink()):
        mark.unlink()
        return TaskResult(name, "success", 255, done.duration_s, complete_build=True)
    status: TaskStatus = "success" if done.exit_code == 0 else "failed"
    return TaskResult(name, status, done.exit_code, done.duration_s)
