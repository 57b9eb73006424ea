"""An app's current flag definitions for the SDK-facing endpoints, read through a short cache.

SDKs poll `GET /v1/flags`, report to `POST /v1/flags/eval` and evaluate over OFREP, often.
Each app's version (where in the log its last flag change is) is remembered for `TTL_S`; the
definitions, their parsed form and the encoded `GET /v1/flags` body are kept per version, so
a poll costs at most one indexed lookup a second per app and the body is encoded once per
change. A change reaches SDKs within `TTL_S`, or at once in the process that made it (the
flag commands' resources call `forget`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import orjson

from schemas.flags.definitions import FlagDefinition, flag_to_json
from state.flags import reads as fq
from storage.relational import Relational

TTL_S = 1.0
MAX_APPS = 10_000


@dataclass(frozen=True, slots=True)
class AppFlags:
    app: str
    etag: str
    """Opaque (unquoted) strong entity tag: derived from the log position of the last change."""
    flags: tuple[FlagDefinition, ...]
    """Sorted by name."""
    by_name: Mapping[str, FlagDefinition] = field(hash=False)
    body: bytes
    """`GET /v1/flags`'s answer: {"appName", "flags": [flag_to_json, ...]}."""


def app_flags(app: str, version: fq.FlagsVersion | None, stored: list[fq.StoredFlag]) -> AppFlags:
    flags = tuple(sorted((s.definition for s in stored), key=lambda d: d.name))
    body = orjson.dumps({"appName": app, "flags": [flag_to_json(d) for d in flags]})
    return AppFlags(app, fq.etag(version), flags, {d.name: d for d in flags}, body)


class FlagCache:
    def __init__(self, db: Relational, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._clock = clock
        self._entries: dict[str, tuple[float, AppFlags]] = {}

    async def current(self, app: str) -> AppFlags:
        now = self._clock()
        entry = self._entries.get(app)
        if entry is not None and entry[0] >= now:
            return entry[1]
        version = await asyncio.to_thread(fq.version_of, self._db, app)
        if entry is not None and entry[1].etag == fq.etag(version):
            flags = entry[1]
        else:
            version, stored = await asyncio.to_thread(fq.snapshot, self._db, app)
            flags = app_flags(app, version, stored)
        if len(self._entries) >= MAX_APPS:
            self._entries.clear()  # bounded; apps are few, but secrets are checked first anyway
        self._entries[app] = (now + TTL_S, flags)
        return flags

    def forget(self, app: str) -> None:
        """Drop what is cached for `app` (after a change made in this process)."""
        self._entries.pop(app, None)
