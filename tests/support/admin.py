"""Hutch's own tools run in-process against a test's settings: `hutch` admin commands, a
developer with an app and a token, the log's end offsets."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
from typing import Any

import orjson

from base.settings import Settings
from hutch.cli import main
from schemas.events import Topic


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


def log_ends(settings: Settings, topic: Topic) -> dict[int, int]:
    """The log's end offset per partition of `topic`, read by a log of the test's own (the
    server's log lives on the server's event loop)."""
    from hutch.wiring import open_log

    async def ends() -> dict[int, int]:
        log = open_log(settings)
        await log.start()
        try:
            return {p: await log.end_offset(topic, p) for p in await log.partitions(topic)}
        finally:
            await log.close()

    return asyncio.run(ends())
