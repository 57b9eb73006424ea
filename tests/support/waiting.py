"""Waiting for what happens on its own time (projections, servers starting, processes ending):
call a probe until it answers something truthy, or fail saying what it answered last.

`eventually` sleeps between calls; `eventually_async` awaits instead, so the event loop runs
the work being waited for, and it takes a probe that is a coroutine function or a plain one
(a chDB count is synchronous, a log's poll is not).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


class NotInTime(AssertionError):
    """The probe did not answer in time: a failed check, not an error of the test itself."""


def eventually(
    probe: Callable[[], T | None],
    timeout_s: float = 15.0,
    *,
    interval_s: float = 0.05,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """Call `probe` until it returns something truthy, and return that. An exception in
    `ignoring` counts as "not yet" (a server still starting refuses connections); any other
    exception ends the wait at once (a probe raises to say the wait is hopeless)."""
    deadline = time.monotonic() + timeout_s
    while True:
        error: Exception | None = None
        try:
            value = probe()
        except ignoring as exc:
            value, error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            raise NotInTime(_message(probe, timeout_s, value, error)) from error
        time.sleep(interval_s)


async def eventually_async(
    probe: Callable[[], Awaitable[T | None] | T | None],
    timeout_s: float = 15.0,
    *,
    interval_s: float = 0.05,
    ignoring: tuple[type[Exception], ...] = (),
) -> T:
    """`eventually` on an event loop: between calls the loop runs other tasks (the projector
    or consumer being waited for). `interval_s=0` suits a probe that waits by itself."""
    deadline = time.monotonic() + timeout_s
    while True:
        error: Exception | None = None
        try:
            answer = probe()
            value = await answer if inspect.isawaitable(answer) else answer
        except ignoring as exc:
            value, error = None, exc
        if value:
            return value
        if time.monotonic() > deadline:
            raise NotInTime(_message(probe, timeout_s, value, error)) from error
        await asyncio.sleep(interval_s)


def _message(probe: object, timeout_s: float, value: object, error: Exception | None) -> str:
    name = getattr(probe, "__qualname__", repr(probe))
    last = f"last raised {error!r}" if error is not None else f"last value {value!r}"
    return f"{name}: not met within {timeout_s}s; {last}"
