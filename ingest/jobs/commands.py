"""Job commands: submit, start and cancel (developers), provisioners' credentials.

Each runs as every command does (state/command_context.py). Submissions share one lock,
`jobs`, under which the next job number is the last one plus one: the small increasing ids
builds.sr.ht users know, the same after a replay because the event carries it. Every way of
submitting (`POST /api/jobs`, a GitHub push: ingest/github_push.py) checks its request with
`validate` and records it with `record`. A job's own
changes lock `job:{uuid}`. What a developer may do to a job is builds.sr.ht's `access:read` /
`access:write` (the owner always has both); a job they may not read is a 404, as if it did not
exist.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from base.client_errors import BadRequest, ConflictError, NotFound, Unprocessable
from ingest.identity_commands import personal_tenant
from ingest.secret_commands import check_job_secrets
from schemas.envelope import new_envelope, uuid7
from schemas.events import EventType
from schemas.jobs import events as e
from schemas.jobs.job_manifest import Manifest, ManifestError, parse_manifest
from state.command_context import JOBS, CommandContext
from state.jobs import reads as q
from web.auth import Developer

MAX_TAGS = 64
MAX_ACCESS = 256
MAX_NOTE = 16 * 1024


def _strings(body: Mapping[str, object], name: str, default: list[str]) -> list[str]:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{name} must be a list of strings", field=name, code="bad_type")
    return list(value)


def _flag(body: Mapping[str, object], name: str) -> bool:
    value = body.get(name, True)
    if value is None:
        return True
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false", field=name, code="bad_type")
    return value


def _event(type_: EventType, key: str, payload: object) -> Any:
    return new_envelope(type_, e.encode(payload), key=key)


@dataclass(frozen=True, slots=True)
class NewJob:
    """A job request that passed every check, ready to be numbered and recorded (`record`)."""

    owner: str
    tenant_id: str
    text: str
    """The manifest as submitted."""
    manifest: Manifest
    architecture: e.Architecture
    note: str | None
    tags: tuple[str, ...]
    readers: tuple[str, ...]
    writers: tuple[str, ...]
    execute: bool
    use_secrets: bool
    uuid: str | None = None
    """Given by a caller that must not submit the same job twice (a webhook redelivered);
    None: a new UUIDv7, taken under the lock so that UUIDs follow the numbers."""


def _manifest(text: str) -> tuple[Manifest, e.Architecture]:
    try:
        manifest = parse_manifest(text)
    except ManifestError as exc:
        raise Unprocessable(
            exc.message,
            field=f"manifest.{exc.field}" if exc.field else "manifest",
            code="invalid_manifest",
        ) from None
    architecture = e.architecture_of(manifest.arch)
    if architecture is None:
        raise Unprocessable(
            f"no runner offers arch {manifest.arch!r}: x86_64 (Amd64) or aarch64 (Arm64)",
            field="manifest.arch",
            code="invalid_manifest",
        )
    return manifest, architecture


async def validate(
    ctx: CommandContext,
    owner: str,
    body: Mapping[str, object],
    *,
    tenant_id: str | None = None,
    uuid: str | None = None,
) -> NewJob:
    """Check a submission (`POST /api/jobs`'s body) for `owner`: the one set of checks every
    way of submitting a job goes through. Its tenant: `tenant_id`, else the owner's personal
    tenant (made if missing, once the request has passed)."""
    text = body.get("manifest")
    if not isinstance(text, str):
        raise BadRequest("manifest (the build manifest, YAML text) is required", field="manifest")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise BadRequest(f"note must be text of at most {MAX_NOTE} characters", field="note")
    if note is not None and "\x00" in note:
        # No store holds it (PostgreSQL text cannot): refused here, not left in the log for
        # the projection to choke on.
        raise Unprocessable("note cannot hold a NUL character (U+0000)", field="note")
    tags = _strings(body, "tags", [])
    bad = [t for t in tags if not e.TAG.match(t)]
    if bad or len(tags) > MAX_TAGS:
        raise Unprocessable(
            f"tags must be at most {MAX_TAGS}, each of a-z, 0-9 and -_.: (not {bad[:3]})",
            field="tags",
        )
    readers = _strings(body, "access:read", [q.EVERYONE])
    writers = _strings(body, "access:write", [])
    if len(readers) > MAX_ACCESS or len(writers) > MAX_ACCESS:
        raise Unprocessable(f"access lists hold at most {MAX_ACCESS} names", field="access:read")
    if q.EVERYONE in writers:
        raise Unprocessable("access:write cannot be everyone (*)", field="access:write")
    execute, use_secrets = _flag(body, "execute"), _flag(body, "secrets")
    manifest, architecture = _manifest(text)
    await asyncio.to_thread(check_job_secrets, ctx.db, owner, manifest.secrets)
    tenant = tenant_id if tenant_id is not None else await personal_tenant(ctx, owner)
    return NewJob(
        owner=owner,
        tenant_id=tenant,
        text=text,
        manifest=manifest,
        architecture=architecture,
        note=note,
        tags=tuple(tags),
        readers=tuple(dict.fromkeys([owner, *readers])),
        writers=tuple(dict.fromkeys([owner, *writers])),
        execute=execute,
        use_secrets=use_secrets,
        uuid=uuid,
    )


async def record(ctx: CommandContext, jobs: Sequence[NewJob]) -> list[int]:
    """Number and append `jobs` (one `job.submitted.v1` each, the only place one is made);
    their numbers. A job whose given UUID is already recorded is not submitted again: its
    number is answered. Call under the `jobs` command (`ctx.command("jobs", JOBS)`)."""
    numbers: list[int] = []
    envelopes: list[Any] = []
    next_number = await asyncio.to_thread(q.last_number, ctx.db) + 1
    for new in jobs:
        if new.uuid is not None:
            found = await asyncio.to_thread(q.job_by_uuid, ctx.db, new.uuid)
            if found is not None:
                numbers.append(found.number)
                continue
        manifest = new.manifest
        job = e.JobSubmitted(
            uuid=new.uuid or uuid7(),
            number=next_number,
            tenant_id=new.tenant_id,
            owner=new.owner,
            manifest=new.text,
            image=manifest.image,
            tasks=manifest.task_names,
            note=new.note,
            tags=new.tags,
            read_access=new.readers,
            write_access=new.writers,
            execute=new.execute,
            secrets=new.use_secrets,
            vcpus=manifest.vcpus,
            cpu_architecture=new.architecture,
            timeout_s=manifest.timeout_s,
            triggers=tuple(manifest.to_json()["triggers"] or ()),  # type: ignore[arg-type]
        )
        envelopes.append(_event("job.submitted.v1", job.uuid, job))
        numbers.append(next_number)
        next_number += 1
    if envelopes:
        await ctx.append("jobs", envelopes, JOBS)
    return numbers


async def submit(
    ctx: CommandContext, caller: Developer, body: Mapping[str, object], uuid: str | None = None
) -> int:
    """POST /api/jobs: a new job, queued (`execute`, the default) or pending; its number.
    With `uuid`, submitting the same job again answers the first one's number."""
    new = await validate(ctx, caller.name, body, uuid=uuid)
    async with ctx.command("jobs", JOBS):
        (number,) = await record(ctx, [new])
    return number


async def _writable(ctx: CommandContext, caller: str, number: int) -> q.Job:
    job = await asyncio.to_thread(q.readable_job, ctx.db, number, caller)
    if not job.writable_by(caller):
        raise NotFound(f"no job {number} that you can change", code="no_job")
    return job


async def start(ctx: CommandContext, caller: str, number: int) -> None:
    """POST /api/jobs/:id/start: a pending job (execute=false) is queued."""
    job = await _writable(ctx, caller, number)
    async with ctx.command(f"job:{job.uuid}", JOBS):
        current = await asyncio.to_thread(q.job_by_uuid, ctx.db, job.uuid)
        assert current is not None
        if current.status != "pending":
            raise BadRequest(
                f"job {number} is {current.status}: only a pending job can be started",
                field="status",
                code="not_pending",
            )
        await ctx.append("jobs", [_event("job.started.v1", job.uuid, e.JobStarted(job.uuid))], JOBS)


async def cancel(ctx: CommandContext, caller: str, number: int) -> None:
    """POST /api/jobs/:id/cancel: a pending or queued job ends now; a running one is asked to
    stop (its runner sees it at its next report and ends it as cancelled)."""
    job = await _writable(ctx, caller, number)
    async with ctx.command(f"job:{job.uuid}", JOBS):
        current = await asyncio.to_thread(q.job_by_uuid, ctx.db, job.uuid)
        assert current is not None
        if current.status in e.ENDED:
            raise ConflictError(
                f"job {number} has already ended ({current.status})", code="job_ended"
            )
        if current.status == "running":
            if current.cancel_requested:
                return
            request = e.JobCancelRequested(job.uuid, caller)
            envelope = _event("job.cancel_requested.v1", job.uuid, request)
        else:
            ended = e.JobStatusChanged(job.uuid, "cancelled", reason=f"cancelled by {caller}")
            envelope = _event("job.status_changed.v1", job.uuid, ended)
        await ctx.append("jobs", [envelope], JOBS)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_provisioner(ctx: CommandContext, name: object) -> dict[str, Any]:
    """A provisioner credential (`hp_…`, answered once) for `hutch runner` or a Builtiful
    provisioner."""
    if not isinstance(name, str) or not 1 <= len(name) <= 128:
        raise Unprocessable("name must be 1 to 128 characters", field="name")
    token = "hp_" + secrets.token_hex(32)
    created = e.ProvisionerCreated(id=uuid7(), name=name, token_hash=digest(token))
    async with ctx.command(f"provisioner:{created.id}", JOBS):
        envelope = _event("provisioner.created.v1", created.id, created)
        await ctx.append("jobs", [envelope], JOBS)
    return {"id": created.id, "name": name, "token": token}


async def revoke_provisioner(ctx: CommandContext, provisioner_id: str) -> dict[str, Any]:
    async with ctx.command(f"provisioner:{provisioner_id}", JOBS):
        found = await asyncio.to_thread(q.provisioner_by_id, ctx.db, provisioner_id)
        if found is None:
            raise NotFound(f"no provisioner {provisioner_id!r}", field="id")
        if found.revoked_at is None:
            revoked = e.ProvisionerRevoked(provisioner_id)
            envelope = _event("provisioner.revoked.v1", provisioner_id, revoked)
            await ctx.append("jobs", [envelope], JOBS)
    return {"revoked": provisioner_id}
