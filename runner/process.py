"""Run one command, streaming its output (stdout and stderr merged) as timestamped lines, and
stop it on a timeout or when asked to: the whole process group is killed.

Every external step of the runner goes through `run_streamed`: debootstrap, apt-get, git and
the tasks themselves (bubblewrap, whose own PID namespace takes the rest of the process tree
down with it: see sandbox.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

MAX_LINE_BYTES = 16 * 1024
"""A longer line (or output with no newline at all) arrives in pieces of this size, so that a
task printing a gigabyte without a newline cannot make the runner hold it all."""
READ_CHUNK = 64 * 1024
POLL_S = 0.05
"""How often the timeout and the cancel flag are looked at while a command runs."""
DRAIN_S = 2.0
"""How long output is still read after the command ended (a descendant outside a PID namespace
may hold the pipe open; it is not waited for longer)."""

HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""Where the runner's tools (bwrap, debootstrap, git, mount) are looked for: never in the PATH
of the environment a command is given, which is the job's."""

Outcome = Literal["exited", "timeout", "cancelled"]


@dataclass(frozen=True, slots=True)
class LogLine:
    at_ns: int
    """Unix time in nanoseconds when the runner read the line."""
    text: str
    """Without its line break; undecodable bytes replaced."""


LineSink = Callable[[LogLine], None]


class CancelFlag(Protocol):
    """Set from outside to stop what runs (threading.Event and asyncio.Event both fit)."""

    def is_set(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Finished:
    outcome: Outcome
    exit_code: int | None
    """The exit status when the command exited by itself (negative: killed by that signal);
    None when the runner stopped it."""
    duration_s: float

    @property
    def ok(self) -> bool:
        return self.outcome == "exited" and self.exit_code == 0


def say(on_line: LineSink, text: str) -> None:
    """A line of the runner's own, in the same log as the command's output."""
    on_line(LogLine(time.time_ns(), text))


class LineSplitter:
    """Bytes in, complete lines out; a line longer than MAX_LINE_BYTES is cut into pieces."""

    def __init__(self) -> None:
        self._pending = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self._pending += data
        lines: list[str] = []
        while True:
            end = self._pending.find(b"\n")
            if end < 0 or end > MAX_LINE_BYTES:
                if len(self._pending) < MAX_LINE_BYTES:
                    return lines
                end = MAX_LINE_BYTES
                piece, self._pending = self._pending[:end], self._pending[end:]
            else:
                piece, self._pending = self._pending[:end], self._pending[end + 1 :]
            lines.append(_text(piece))

    def flush(self) -> list[str]:
        rest, self._pending = self._pending, bytearray()
        return [_text(rest)] if rest else []


def _text(raw: bytes | bytearray) -> str:
    return bytes(raw).removesuffix(b"\r").decode("utf-8", "replace")


async def run_streamed(
    argv: Sequence[str],
    *,
    on_line: LineSink,
    env: Mapping[str, str],
    timeout_s: float | None = None,
    cancel: CancelFlag | None = None,
    cwd: str | None = None,
    user: int | None = None,
    group: int | None = None,
    pass_fds: Sequence[int] = (),
) -> Finished:
    """Run `argv` with exactly `env` (nothing of the runner's environment), stdin from
    /dev/null, in a session of its own; `user`/`group` drop to those ids first (the caller
    must be root). Returns when it exited, or once it was killed for the timeout or the cancel
    flag. Raises what `on_line` raises, after killing the command; OSError if it cannot start.
    If the awaiting task is itself cancelled, the command is killed before the CancelledError
    goes on."""
    program = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=HOST_PATH)
    if program is None:
        raise FileNotFoundError(f"{argv[0]} is not installed (looked in {HOST_PATH})")
    started = time.monotonic()
    ids: dict[str, object] = {}
    if user is not None:
        ids = {"user": user, "group": group, "extra_groups": []}
    proc = await asyncio.create_subprocess_exec(
        program,
        *argv[1:],
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=dict(env),
        cwd=cwd,
        start_new_session=True,
        pass_fds=tuple(pass_fds),
        **ids,  # type: ignore[arg-type]
    )
    assert proc.stdout is not None
    reader = asyncio.create_task(_pump(proc.stdout, on_line))
    waiter = asyncio.create_task(proc.wait())
    outcome: Outcome = "exited"
    try:
        while not waiter.done():
            if reader.done() and reader.exception() is not None:
                break
            if cancel is not None and cancel.is_set():
                outcome = "cancelled"
                break
            if timeout_s is not None and time.monotonic() - started >= timeout_s:
                outcome = "timeout"
                break
            running = {task for task in (waiter, reader) if not task.done()}
            await asyncio.wait(running, timeout=POLL_S, return_when="FIRST_COMPLETED")
    finally:
        if not waiter.done():
            _kill_group(proc.pid)
        code = await waiter
        await _drain(reader)
    if reader.done() and not reader.cancelled() and (error := reader.exception()) is not None:
        raise error
    return Finished(
        outcome,
        code if outcome == "exited" else None,
        round(time.monotonic() - started, 3),
    )


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


async def _pump(stream: asyncio.StreamReader, on_line: LineSink) -> None:
    split = LineSplitter()
    while chunk := await stream.read(READ_CHUNK):
        for text in split.feed(chunk):
            on_line(LogLine(time.time_ns(), text))
    for text in split.flush():
        on_line(LogLine(time.time_ns(), text))


async def _drain(reader: asyncio.Task[None]) -> None:
    """Let the reader take the last output; give up after DRAIN_S."""
    done, _ = await asyncio.wait({reader}, timeout=DRAIN_S)
    if not done:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
