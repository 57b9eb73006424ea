"""Test helpers: run `hutch` admin commands, wait for projections, read error bodies."""

from __future__ import annotations

import contextlib
import io
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

from hutch.cli import main
from hutch.settings import Settings
from schemas.events import Topic

T = TypeVar("T")


def hutch(settings: Settings, *args: str) -> tuple[int, dict[str, Any]]:
    """Run a `hutch` command in-process against these settings; its exit code and the JSON
    it printed."""
    out, err = io.StringIO(), io.StringIO()
    saved = dict(os.environ)
    os.environ.update(settings.as_env())
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--data", str(settings.data), *args])
    finally:
        os.environ.clear()
        os.environ.update(saved)
    text = out.getvalue().strip() or err.getvalue().strip().splitlines()[-1]
    return code, orjson.loads(text)


def developer_with_app(data: Settings, developer: str, app: str) -> tuple[str, str]:
    """Create a developer, an app and a token; returns (secret, token)."""
    hutch(data, "developer", "create", developer)
    code, created = hutch(data, "app", "create", app, "--developer", developer)
    assert code == 0, created
    code, token = hutch(data, "token", "create", "--developer", developer)
    assert code == 0, token
    return str(created["secret"]), str(token["token"])


def eventually(probe: Callable[[], T | None], timeout_s: float = 15.0) -> T:
    """Call `probe` until it returns something truthy (projections are asynchronous)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s}s; last value {value!r}")
        time.sleep(0.05)


def error_of(response: httpx.Response) -> dict[str, Any]:
    """The `error` object of a JSON error answer (and check it is one)."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert set(body) == {"error"}, body
    assert {"code", "message"} <= set(body["error"]), body
    return dict(body["error"])


def list_all(client: httpx.Client, path: str, key: str, **params: str) -> list[dict[str, Any]]:
    """Every item of a cursor-paginated listing."""
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        page = client.get(path, params=query)
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body[key])
        cursor = body["next"]
        if cursor is None:
            return items


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (children, grandchildren...), from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a process and all its descendants at once (frozen first, so none reacts)."""
    import os
    import signal

    victims = [pid, *descendants(pid)]
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGSTOP)
    for victim in victims:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)


def log_ends(settings: Settings, topic: Topic) -> dict[int, int]:
    """The log's end offset per partition of `topic`, read by a log of the test's own (the
    server's log lives on the server's event loop)."""
    import asyncio

    from hutch.wiring import open_log

    async def ends() -> dict[int, int]:
        log = open_log(settings)
        await log.start()
        try:
            return {p: await log.end_offset(topic, p) for p in await log.partitions(topic)}
        finally:
            await log.close()

    return asyncio.run(ends())
