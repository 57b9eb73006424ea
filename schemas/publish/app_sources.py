"""Payload of `app.source_set.v1` on the `apps` topic (key: the app): the git repository an
app's source lives in, which `GET /api/branches` lists (base/git_remote.py parses it)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AppSourceSet:
    app: str
    repository: str | None
    """None: the app has no source repository any more."""
