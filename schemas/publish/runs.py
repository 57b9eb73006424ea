"""Payloads of the publish runs' events on the `publish` topic (key: the run id; a stored
host key's: its developer). A run clones a git remote over SSH, commits a build's generated
files (ingest/publish/runs_worker.py) and pushes; each step's log is recorded on the log,
never a secret (no private key, no key file's path).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import orjson

RunStatus = Literal["queued", "running", "retrying", "succeeded", "failed"]
RUN_STATUSES: tuple[RunStatus, ...] = get_args(RunStatus)
ENDED: frozenset[str] = frozenset({"succeeded", "failed"})
StepStatus = Literal["succeeded", "failed", "skipped"]
PUBLISHABLE_FILES: tuple[str, ...] = ("PKGBUILD", ".SRCINFO", "metadata.yml")
DEFAULT_FILES: tuple[str, ...] = ("PKGBUILD", ".SRCINFO")
"""An AUR-style repository: the PKGBUILD and its .SRCINFO."""
DEFAULT_BRANCH = "master"
"""The AUR's branch."""
RUN_TRAILER = "Hutch-Publish-Run"
"""The commit message's trailer naming the run: how a retry knows it already pushed."""


@dataclass(frozen=True, slots=True)
class PublishRequested:
    run_id: str
    developer: str
    app: str
    version: str
    """The build's version, pinned when the run was requested."""
    remote: str
    branch: str
    ssh_key_id: str
    files: tuple[str, ...]
    known_hosts: str | None
    """OpenSSH known_hosts lines given with the request; None: the ones stored for the remote
    on first use."""
    author_name: str
    author_email: str
    options: dict[str, Any] = field(default_factory=dict)
    """What the package says besides the build (maintainer, description, license, url,
    categories, which file: ingest/publish/generate.py GenerateOptions), as generate takes it."""


@dataclass(frozen=True, slots=True)
class PublishAttemptStarted:
    run_id: str
    attempt: int


@dataclass(frozen=True, slots=True)
class PublishStep:
    run_id: str
    attempt: int
    name: str
    status: StepStatus
    started_at: int
    ended_at: int
    log: str


@dataclass(frozen=True, slots=True)
class PublishRetrying:
    run_id: str
    attempt: int
    """The attempt that failed."""
    error: str
    delay_s: float


@dataclass(frozen=True, slots=True)
class PublishHostKeyStored:
    developer: str
    host: str
    port: int
    known_hosts: str
    """The lines `ssh-keyscan` answered, trusted from here on for this developer's remote."""
    fingerprints: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PublishFinished:
    run_id: str
    status: RunStatus
    commit: str | None
    message: str
    error: str | None


def encode(payload: object) -> bytes:
    return orjson.dumps(payload)
