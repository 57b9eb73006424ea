"""Web-app build commands: create a build, and the worker side: claim, report, finish.

Every command on the queue runs under one command lock ("web-builds"), so two workers
claiming at once are served one after the other and never get the same build, and a late
report from a worker whose claim lapsed is judged against the claim that replaced it.

Leases are events, not timers: a claim carries its expiry (`lease_until`), each `building`
report carries a renewed one, and a claim made after a lease ran out first appends
`build.requeued.v1` for the lapsed claim, then its own `build.claimed.v1`. A build whose
workers went silent MAX_ATTEMPTS times is failed instead of claimed again.
"""

from __future__ import annotations

import asyncio
import secrets
import unicodedata
from collections.abc import Mapping
from typing import Any, cast, get_args

from base.client_errors import ConflictError, NotFound, Unprocessable
from base.net_guard import AllowedNetworks, check_url_literal, parse_allowed_networks
from ingest.identity_commands import digest
from schemas import build_events as e
from schemas.builds import (
    BuildPlatform,
    BuildStatus,
    can_move,
    is_newer,
    key_segment,
    parse_semver,
    validate_bundle_id,
    version_code,
)
from schemas.envelope import Envelope, iso_micros, new_envelope, uuid7
from schemas.events import EventType
from schemas.permissions import normalize_permissions
from state import web_builds_reads as q
from state.command_context import BUILDS, IDENTITY, CommandContext, object_error
from storage.errors import StorageError
from storage.objects import finalize_upload, staging_key
from web.worker_auth import WORKER_TOKEN_PREFIX, Worker

LOCK = "web-builds"
MAX_ATTEMPTS = 3
MAX_NAME_CHARS = 50
MAX_ERROR_CHARS = 2000
REPORTS: tuple[BuildStatus, ...] = ("building", "success", "failed")


def _event(ctx: CommandContext, type_: EventType, payload: object, key: str) -> Envelope:
    """Stamped with the command's clock, the one its leases are measured by."""
    return new_envelope(type_, e.encode(payload), key=key, received_at=ctx.clock())


def artifact_key(build: q.WebBuild, attempt: int) -> str:
    """Per attempt, so a lapsed worker's late upload cannot replace its successor's. The
    worker PUTs to its staging key; the `success` report makes this object from it, once."""
    name = f"{key_segment(build.bundle_id)}-{key_segment(build.version)}-{build.platform}.zip"
    return f"web-builds/{build.id}/{attempt}/{name}"


def _lease_s(ctx: CommandContext) -> int:
    return max(1, ctx.settings.build_lease_s)


# --- creating builds --------------------------------------------------------------------------


def _display_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise Unprocessable("name (the app's display name) is required", field="name")
    name = unicodedata.normalize("NFC", value.strip())
    if len(name) > MAX_NAME_CHARS:
        raise Unprocessable(f"name must be at most {MAX_NAME_CHARS} characters", field="name")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise Unprocessable("name must not contain control characters", field="name")
    return name


def _platform(value: object) -> BuildPlatform:
    if value is None:
        return "android"
    if value in get_args(BuildPlatform):
        return cast(BuildPlatform, value)
    raise Unprocessable("platform must be android or ios", field="platform")


def _string(body: Mapping[str, object], name: str, what: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise Unprocessable(f"{name} ({what}) is required", field=name)
    return value


def validate_request(
    body: Mapping[str, object], developer: str, allowed: AllowedNetworks
) -> e.WebBuildCreated:
    """Everything but the version order, which needs the queue's state. 422 per field."""
    url = _string(body, "url", "the web app's public https URL")
    if problem := check_url_literal(url, allowed):
        raise Unprocessable(problem, field="url", code="url_not_allowed")
    platform = _platform(body.get("platform"))
    bundle_id = _string(body, "bundleId", "reverse domain notation, e.g. com.example.app")
    try:
        validate_bundle_id(bundle_id, platform)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="bundleId", code="bad_bundle_id") from None
    version = _string(body, "version", "semver, e.g. 1.2.0")
    try:
        parse_semver(version)
        if platform == "android":
            version_code(version)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="version", code="bad_version") from None
    permissions = body.get("permissions")
    if permissions is None:
        permissions = []
    if not isinstance(permissions, list):
        raise Unprocessable("permissions must be a list of names", field="permissions")
    try:
        names = normalize_permissions(permissions)
    except ValueError as exc:
        raise Unprocessable(str(exc), field="permissions", code="unknown_permission") from None
    return e.WebBuildCreated(
        id=uuid7(),
        developer=developer,
        url=url.strip(),
        name=_display_name(body.get("name")),
        bundle_id=bundle_id,
        version=version,
        permissions=names,
        platform=platform,
    )


async def create_build(
    ctx: CommandContext, developer: str, body: Mapping[str, object]
) -> dict[str, Any]:
    allowed = parse_allowed_networks(ctx.settings.builder_allow_networks)
    created = validate_request(body, developer, allowed)
    async with ctx.command(LOCK, IDENTITY, BUILDS):
        used = await asyncio.to_thread(
            q.versions_in_use, ctx.db, developer, created.bundle_id, created.platform
        )
        if used:
            last = max(used, key=parse_semver)
            if not is_newer(created.version, last):
                raise ConflictError(
                    f"version {created.version} is not higher than {last}, the last build of "
                    f"{created.bundle_id} for {created.platform}",
                    field="version",
                    code="version_not_higher",
                )
        await ctx.append(
            "builds", [_event(ctx, "build.created.v1", created, created.id)], IDENTITY, BUILDS
        )
    build = await asyncio.to_thread(q.web_build, ctx.db, created.id)
    assert build is not None
    return {"id": build.id, "status": build.status, "createdAt": iso_micros(build.created_at)}


# --- the worker side --------------------------------------------------------------------------


def _upload(ctx: CommandContext, build: q.WebBuild, attempt: int) -> dict[str, Any]:
    expires_s = _lease_s(ctx) + 300
    key = staging_key(artifact_key(build, attempt))
    return {
        "url": ctx.objects.presign_put(key, expires_s, max_bytes=ctx.settings.max_upload_bytes),
        "method": "PUT",
        "s3Key": key,
        "expiresAt": iso_micros(ctx.clock() + expires_s * 1_000_000),
    }


async def claim(ctx: CommandContext, worker: Worker, platform: object) -> dict[str, Any] | None:
    """The oldest queued (or lapsed) build for `platform`, now held by `worker`; None if the
    queue is empty."""
    wanted = _platform(platform)
    async with ctx.command(LOCK, IDENTITY, BUILDS):
        now = ctx.clock()
        for build in await asyncio.to_thread(q.claimable, ctx.db, wanted, now, 50):
            events: list[Envelope] = []
            if build.status == "building":  # its lease lapsed
                assert build.claim_id is not None
                if build.attempt >= MAX_ATTEMPTS:
                    failed = e.BuildStatusChanged(
                        id=build.id,
                        claim_id=None,
                        status="failed",
                        error=f"builder workers stopped responding {build.attempt} times; "
                        "giving up on this build",
                    )
                    await ctx.append(
                        "builds", [_event(ctx, "build.status_changed.v1", failed, build.id)]
                    )
                    continue
                requeued = e.BuildRequeued(
                    id=build.id,
                    claim_id=build.claim_id,
                    attempt=build.attempt,
                    reason=f"worker {build.worker} did not report before its lease ran out",
                )
                events.append(_event(ctx, "build.requeued.v1", requeued, build.id))
            claimed = e.BuildClaimed(
                id=build.id,
                claim_id=uuid7(),
                worker=worker.id,
                attempt=build.attempt + 1,
                lease_until=now + _lease_s(ctx) * 1_000_000,
            )
            events.append(_event(ctx, "build.claimed.v1", claimed, build.id))
            await ctx.append("builds", events, IDENTITY, BUILDS)
            return {
                "claimId": claimed.claim_id,
                "leaseExpiresAt": iso_micros(claimed.lease_until),
                "build": {
                    "id": build.id,
                    "url": build.url,
                    "name": build.name,
                    "bundleId": build.bundle_id,
                    "version": build.version,
                    "permissions": list(build.permissions),
                    "platform": build.platform,
                    "attempt": claimed.attempt,
                },
                "upload": _upload(ctx, build, claimed.attempt),
            }
        await ctx.catch_up(IDENTITY, BUILDS)
    return None


def _report_fields(body: Mapping[str, object]) -> tuple[str, BuildStatus, str | None]:
    claim_id = body.get("claimId")
    if not isinstance(claim_id, str) or not claim_id:
        raise Unprocessable("claimId (from the claim) is required", field="claimId")
    status = body.get("status")
    if status not in REPORTS:
        raise Unprocessable("status must be building, success or failed", field="status")
    error = body.get("error")
    if status == "failed":
        if not isinstance(error, str) or not error.strip():
            raise Unprocessable("a failed build needs an error message", field="error")
        error = error.strip()[:MAX_ERROR_CHARS]
    else:
        error = None
    return claim_id, status, error


def _held(build: q.WebBuild | None, build_id: str, worker: Worker, claim_id: str) -> q.WebBuild:
    if build is None:
        raise NotFound(f"no build {build_id!r}")
    if build.claim_id != claim_id or build.worker != worker.id:
        raise ConflictError(
            "this build is no longer held by this claim: its lease ran out and it was "
            "requeued (or another worker holds it); drop it",
            field="claimId",
            code="lease_lost",
        )
    return build


async def report(
    ctx: CommandContext, worker: Worker, build_id: str, body: Mapping[str, object]
) -> dict[str, Any]:
    """A worker's report on the build it holds: building (renews the lease), success (its
    artifact is already uploaded to the claim's upload URL) or failed (with an error)."""
    claim_id, status, error = _report_fields(body)
    stored = None
    if status == "success":
        build = _held(
            await asyncio.to_thread(q.web_build, ctx.db, build_id), build_id, worker, claim_id
        )
        if build.status == "success":
            return _state(ctx, build)  # a repeated report, answered as the first was
        if not can_move(build.status, "success"):
            raise _backwards(build.status, "success")
        try:
            stored = await finalize_upload(
                ctx.objects,
                artifact_key(build, build.attempt),
                max_bytes=ctx.settings.max_upload_bytes,
                content_type="application/zip",
            )
        except StorageError as exc:
            raise object_error(exc, "artifact", ctx.settings.max_upload_bytes) from None
    async with ctx.command(LOCK, IDENTITY, BUILDS):
        build = _held(
            await asyncio.to_thread(q.web_build, ctx.db, build_id), build_id, worker, claim_id
        )
        if build.status == status and status != "building":
            return _state(ctx, build)
        if status == "building" and build.status != "building":
            raise _backwards(build.status, status)
        if status != "building" and not can_move(build.status, status):
            raise _backwards(build.status, status)
        changed = e.BuildStatusChanged(
            id=build.id,
            claim_id=claim_id,
            status=status,
            lease_until=ctx.clock() + _lease_s(ctx) * 1_000_000 if status == "building" else None,
            error=error,
            artifact_key=stored.key if stored else None,
            artifact_size=stored.size if stored else None,
            artifact_sha256=stored.sha256 if stored else None,
        )
        await ctx.append(
            "builds", [_event(ctx, "build.status_changed.v1", changed, build.id)], IDENTITY, BUILDS
        )
        latest = await asyncio.to_thread(q.web_build, ctx.db, build_id)
        assert latest is not None
    answer = _state(ctx, latest)
    if latest.status == "building":
        answer["upload"] = _upload(ctx, latest, latest.attempt)
    return answer


def _backwards(current: BuildStatus, wanted: BuildStatus) -> ConflictError:
    return ConflictError(
        f"the build is {current}; it cannot become {wanted} (status only moves forward: "
        "queued -> building -> success or failed)",
        field="status",
        code="bad_transition",
    )


def _state(ctx: CommandContext, build: q.WebBuild) -> dict[str, Any]:
    answer: dict[str, Any] = {"id": build.id, "status": build.status}
    if build.status == "building" and build.lease_until is not None:
        answer["leaseExpiresAt"] = iso_micros(build.lease_until)
    return answer


# --- workers --------------------------------------------------------------------------------


async def create_worker(ctx: CommandContext, name: object) -> dict[str, Any]:
    if not isinstance(name, str) or not 1 <= len(name) <= 64:
        raise Unprocessable("a worker name must be 1 to 64 characters", field="name")
    token = WORKER_TOKEN_PREFIX + secrets.token_hex(32)
    created = e.WorkerCreated(id=uuid7(), name=name, token_hash=digest(token), prefix=token[:10])
    await ctx.append(
        "builds", [_event(ctx, "worker.created.v1", created, created.id)], IDENTITY, BUILDS
    )
    return {"worker": created.id, "name": name, "token": token}


async def revoke_worker(ctx: CommandContext, worker_id: str) -> dict[str, Any]:
    async with ctx.command(LOCK, IDENTITY, BUILDS):
        worker = await asyncio.to_thread(q.worker_by_id, ctx.db, worker_id)
        if worker is None:
            raise NotFound(f"no worker {worker_id!r}")
        if worker.revoked_at is None:
            revoked = e.WorkerRevoked(worker_id)
            await ctx.append(
                "builds", [_event(ctx, "worker.revoked.v1", revoked, worker_id)], IDENTITY, BUILDS
            )
    return {"revoked": worker_id}
