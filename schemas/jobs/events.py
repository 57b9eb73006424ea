"""Payloads of the events on the `jobs` topic (key: the job's UUIDv7, or the provisioner's id),
and the statuses a job and its tasks move through (docs/jobs.md).

Payloads are these dataclasses as JSON; a new field must have a default, so that older
records still decode.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal, get_args

import orjson

JobStatus = Literal["pending", "queued", "running", "success", "failed", "cancelled", "timeout"]
TaskStatus = Literal["pending", "running", "success", "failed", "skipped"]
JOB_STATUSES: tuple[JobStatus, ...] = get_args(JobStatus)
TASK_STATUSES: tuple[TaskStatus, ...] = get_args(TaskStatus)
ENDED: frozenset[JobStatus] = frozenset({"success", "failed", "cancelled", "timeout"})

JOB_MOVES: dict[JobStatus, frozenset[JobStatus]] = {
    "pending": frozenset({"queued", "cancelled"}),
    "queued": frozenset({"running", "cancelled"}),
    "running": frozenset({"queued", "success", "failed", "cancelled", "timeout"}),
    "success": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
    "timeout": frozenset(),
}
"""Where a job may go from each status: forward only (`running -> queued` is a requeue after
a lapsed lease, which the server decides, not a runner)."""

TASK_MOVES: dict[TaskStatus, frozenset[TaskStatus]] = {
    "pending": frozenset({"running", "skipped"}),
    "running": frozenset({"success", "failed"}),
    "success": frozenset(),
    "failed": frozenset(),
    "skipped": frozenset(),
}

Architecture = Literal["Amd64", "Arm64"]
ARCHITECTURES: tuple[Architecture, ...] = get_args(Architecture)
_ARCH_OF_MANIFEST: dict[str, Architecture] = {
    "x86_64": "Amd64",
    "amd64": "Amd64",
    "aarch64": "Arm64",
    "arm64": "Arm64",
}


def architecture_of(arch: str | None) -> Architecture | None:
    """Builtiful's CPU architecture for a manifest's `arch` (none given: Amd64); None for an
    architecture no provisioner offers."""
    if arch is None:
        return "Amd64"
    return _ARCH_OF_MANIFEST.get(arch.lower())


TAG = re.compile(r"^[a-z0-9_.:-]{1,128}$")
"""builds.sr.ht: lowercase alphanumerics and any of `-_.:`."""
SETUP = "setup"
"""The implicit first step: image, sources, secrets. Its log is the job's `setup_log`."""
PROVISIONER_TOKEN = re.compile(r"^hp_[0-9a-f]{64}$")
MAX_ATTEMPTS = 3
"""Leases a job may lose (a silent host) before it ends as `timeout`."""


@dataclass(frozen=True, slots=True)
class JobSubmitted:
    uuid: str
    number: int
    tenant_id: str
    owner: str
    manifest: str
    """The original text, as submitted."""
    image: str
    tasks: tuple[str, ...]
    note: str | None
    tags: tuple[str, ...]
    read_access: tuple[str, ...]
    write_access: tuple[str, ...]
    execute: bool
    secrets: bool
    vcpus: int
    cpu_architecture: Architecture
    timeout_s: int
    triggers: tuple[dict[str, object], ...] = ()
    """The manifest's triggers, for the dispatcher (as the parsed manifest gives them)."""


@dataclass(frozen=True, slots=True)
class JobStarted:
    uuid: str


@dataclass(frozen=True, slots=True)
class JobLeased:
    uuid: str
    lease_id: str
    provisioner: str
    host: str
    lease_until: int
    attempt: int


@dataclass(frozen=True, slots=True)
class JobLeaseRenewed:
    uuid: str
    lease_id: str
    lease_until: int


@dataclass(frozen=True, slots=True)
class JobRequeued:
    uuid: str
    lease_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class JobStatusChanged:
    uuid: str
    status: JobStatus
    lease_id: str | None = None
    """The lease under which a runner reported it (None: decided by the server)."""
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class JobTaskStatusChanged:
    uuid: str
    task: str
    status: TaskStatus
    lease_id: str | None = None


@dataclass(frozen=True, slots=True)
class JobCancelRequested:
    uuid: str
    by: str


@dataclass(frozen=True, slots=True)
class LogLine:
    task: str
    line: str
    at: int
    """Nanoseconds since the epoch (the runner's clock, or the server's when not given)."""


@dataclass(frozen=True, slots=True)
class JobLog:
    uuid: str
    number: int
    tenant_id: str
    lease_id: str
    first: int
    """The sequence number of the batch's first line within the job (lines are numbered from
    0 in the order the server took them)."""
    lines: tuple[LogLine, ...] = field(default_factory=tuple)


@dataclass(frozen=True, slots=True)
class JobArtifactAdded:
    uuid: str
    path: str
    object_key: str
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class JobTriggerDelivered:
    uuid: str
    action: Literal["webhook", "email"]
    target: str
    attempt: int
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class ProvisionerCreated:
    id: str
    name: str
    token_hash: str


@dataclass(frozen=True, slots=True)
class ProvisionerRevoked:
    id: str


def encode(payload: object) -> bytes:
    return orjson.dumps(payload)
