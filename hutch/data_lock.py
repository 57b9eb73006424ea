"""One owner per data directory: an exclusive lock on `<data>/hutch.lock` for the owner's
whole life.

The owner is `hutch serve` (the directory's `run/` folder, and chDB through its query
process), or a process that opens the embedded analytics store itself (`hutch query`,
`hutch project`, `hutch replay` or `migrate` on chDB: chDB allows one process per data
directory). The lock is flock(2) on an open file: the kernel drops it when the last process
holding that open file is gone, whatever ended it, so none is ever left behind. `hutch serve`
hands the open file to its children (HUTCH_DATA_LOCK_FD), and the lock stays held until the
last of them has exited: a new start cannot take the directory while an old query process is
still dying.

The file records who took it. A start that finds the lock held
- by an owner that is running: refuses at once and touches nothing;
- by an owner that is gone (killed) while processes it started still hold the lock: waits
  for them, at most HUTCH_START_WAIT seconds, and logs that it does.
"""

from __future__ import annotations

import fcntl
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from schemas.error_body import error_body

log = logging.getLogger(__name__)

LOCK_NAME = "hutch.lock"
FD_ENV = "HUTCH_DATA_LOCK_FD"
"""The number of the lock's open file a supervisor passed to its child, which then holds
the lock with it (flock belongs to the open file, so the child's is the same lock)."""
POLL_S = 0.1
UNRECORDED_S = 2.0
"""How long a held lock may have no owner recorded (just taken, its record not written yet)
before it counts as held by an unknown live process."""


class DataDirInUse(Exception):
    """Another process owns the data directory (or its processes would not exit in time)."""

    code = "data_dir_in_use"

    def body(self) -> dict[str, Any]:
        return error_body(self.code, str(self))


@dataclass(frozen=True, slots=True)
class Owner:
    pid: int
    started: int  # start time in clock ticks after boot (/proc/PID/stat); 0: unknown
    command: str

    @classmethod
    def this_process(cls) -> Owner:
        first, *rest = sys.argv or [""]
        name = "hutch" if first.endswith(("/hutch", "hutch/__main__.py")) else first
        return cls(os.getpid(), _start_time(os.getpid()) or 0, " ".join([name, *rest])[:300])

    def is_running(self) -> bool:
        """Still the same process, and not a zombie (a killed owner its parent has not
        reaped yet is gone)."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            return False
        except OSError:  # no /proc: whether the pid exists at all
            try:
                os.kill(self.pid, 0)
            except ProcessLookupError:
                return False
            except PermissionError:
                return True
            return True
        same = self.started == 0 or int(fields[19]) == self.started
        return same and fields[0] not in ("Z", "X")

    def describe(self) -> str:
        return f"pid {self.pid}, {self.command!r}"


def _start_time(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class _Held:
    fd: int
    count: int


_held: dict[Path, _Held] = {}
_guard = threading.Lock()
"""Holds in this process, by lock path: one process may open its own directory twice (a
command run in-process beside a server, in tests), as chDB lets it."""


class DataLock:
    """A hold on a data directory's lock; `release()` it once."""

    def __init__(self, path: Path, held: _Held) -> None:
        self.path = path
        self._held = held
        self._released = False

    @property
    def fd(self) -> int:
        return self._held.fd

    def child_env(self) -> dict[str, str]:
        """What a child given `fd` (subprocess pass_fds) needs to hold the lock as its own."""
        return {FD_ENV: str(self.fd)}

    def release(self) -> None:
        with _guard:
            if self._released:
                return
            self._released = True
            self._held.count -= 1
            if self._held.count == 0:
                _held.pop(self.path, None)
                os.close(self._held.fd)


def acquire(data: Path, *, wait_s: float) -> DataLock:
    """Own `data`, or raise DataDirInUse: at once if its owner is running, after up to
    `wait_s` seconds if its owner is gone but processes it started are still exiting."""
    path = Path(os.path.abspath(data)) / LOCK_NAME
    with _guard:
        held = _held.get(path)
        if held is None:
            fd = _inherited(path)
            held = _Held(fd if fd is not None else _take(path, wait_s), 0)
            _held[path] = held
        held.count += 1
        return DataLock(path, held)


def _inherited(path: Path) -> int | None:
    """The lock's open file, passed down by the supervisor that holds it, if it is one."""
    raw = os.environ.get(FD_ENV, "")
    try:
        fd = int(raw)
        mine, lock = os.fstat(fd), os.stat(path)
    except (ValueError, OSError):
        return None
    if (mine.st_dev, mine.st_ino) != (lock.st_dev, lock.st_ino):
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours already if it is the same open file
    except OSError:
        return None
    os.set_inheritable(fd, False)
    return fd


def _take(path: Path, wait_s: float) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        _wait_for(fd, path, wait_s)
        record = Owner.this_process()
        os.ftruncate(fd, 0)
        os.pwrite(fd, orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE), 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _wait_for(fd: int, path: Path, wait_s: float) -> None:
    data = path.parent
    started = time.monotonic()
    unrecorded: float | None = None
    waiting = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass
        else:
            if waiting:
                waited = round(time.monotonic() - started, 3)
                log.info("the previous owner's processes have exited", extra={"waited_s": waited})
            return
        owner = _recorded(fd)
        now = time.monotonic()
        if owner is not None and owner.is_running():
            raise DataDirInUse(
                f"the data directory {data} is in use by another Hutch process "
                f"({owner.describe()}); stop it first, or give this one another --data"
            )
        if owner is None:
            unrecorded = now if unrecorded is None else unrecorded
            if now - unrecorded > UNRECORDED_S:
                raise DataDirInUse(
                    f"the data directory {data} is in use by another process "
                    f"(it holds {path}); stop it first, or give this one another --data"
                )
        else:
            if not waiting:
                waiting = True
                log.warning(
                    "waiting for the previous owner of the data directory to exit",
                    extra={
                        "data": str(data),
                        "owner_pid": owner.pid,
                        "owner": owner.command,
                        "wait_s": wait_s,
                    },
                )
            if now - started >= wait_s:
                raise DataDirInUse(
                    f"the previous owner of the data directory {data} ({owner.describe()}) "
                    f"is gone, but processes it started still hold {path} after {wait_s:g}s "
                    f"(HUTCH_START_WAIT); `fuser {path}` lists them"
                )
        time.sleep(POLL_S)


def _recorded(fd: int) -> Owner | None:
    try:
        raw = orjson.loads(os.pread(fd, 4096, 0))
        return Owner(int(raw["pid"]), int(raw["started"]), str(raw["command"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
