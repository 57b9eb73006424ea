"""One command at a time per process waits for the store's command lock.

Waiting for the cross-process lock (an flock, a PostgreSQL advisory lock) blocks a worker
thread. A burst of commands in one process would otherwise fill the default thread pool with
waiters while the holder needs a thread to finish its own command, and every one of them would
stall. So tasks of one event loop take turns before any of them waits in a thread.
"""

from __future__ import annotations

import asyncio
import weakref

_TURNS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)


def local_turn() -> asyncio.Lock:
    """This event loop's lock to hold while waiting for, and holding, the command lock."""
    return _TURNS.setdefault(asyncio.get_running_loop(), asyncio.Lock())
