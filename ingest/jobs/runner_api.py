"""The provisioner's and runner's side of CI jobs (docs/jobs.md), for a provisioner token
(`Bearer hp_…`, from `hutch provisioner create`):

    GET  /api/provisioner/dequeue?available_vcpus=&cpu_architecture=&host=
                                                    -> {"new_job": {...}} or {"new_job": null}
    POST /api/runner/jobs/{uuid}/status             {lease_id, status} -> the lease's state
    POST /api/runner/jobs/{uuid}/tasks/{name}/status {lease_id, status} -> the lease's state
    POST /api/runner/jobs/{uuid}/logs               {lease_id, first, lines: [{task, line, at?}]}
    PUT  /api/runner/jobs/{uuid}/artifacts?lease_id=&path=   the file as the body
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import falcon.asgi

from base.client_errors import BadRequest, PayloadTooLarge, Unprocessable
from ingest.jobs import leases
from ingest.secret_commands import JobSecretError, secrets_for_job
from schemas.envelope import iso_micros, new_envelope
from schemas.jobs import events as e
from schemas.jobs.job_manifest import parse_manifest
from state.command_context import JOBS, CommandContext, object_error
from state.jobs import reads as q
from storage.errors import StorageError
from web.body import read_json_object, send_json
from web.worker_auth import ProvisionerAuth

MAX_LINES = 10_000
MAX_LINE_BYTES = 64 * 1024
MAX_LOG_BODY = 4 << 20
MAX_HOST = 255


def _int_param(req: falcon.asgi.Request, name: str) -> int:
    text = req.get_param(name)
    if text is None:
        raise BadRequest(f"{name} is required", field=name, code="missing_param")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 4096:
        raise BadRequest(f"{name} must be an integer from 1 to 4096", field=name)
    return int(text)


class ProvisionerDequeue:
    def __init__(self, ctx: CommandContext, provisioners: ProvisionerAuth) -> None:
        self._ctx = ctx
        self._provisioners = provisioners
        self._dequeuer = leases.Dequeuer(ctx)

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        provisioner = await self._provisioners.provisioner(req)
        vcpus = _int_param(req, "available_vcpus")
        architecture = req.get_param("cpu_architecture")
        if architecture not in e.ARCHITECTURES:
            raise BadRequest("cpu_architecture must be Amd64 or Arm64", field="cpu_architecture")
        host = req.get_param("host") or ""
        if not 1 <= len(host) <= MAX_HOST or not host.isprintable():
            raise BadRequest(f"host must be 1 to {MAX_HOST} printable characters", field="host")
        wanted = leases.Wanted(provisioner, vcpus, architecture, host)
        lease = await self._dequeuer.dequeue(wanted)
        job = None
        if lease is not None:
            try:
                job = await new_job(self._ctx, lease)
            except JobSecretError as exc:
                await leases.fail_at_dequeue(self._ctx, lease, exc.message)
        send_json(resp, 200, {"new_job": job})


async def new_job(ctx: CommandContext, lease: leases.Lease) -> dict[str, Any]:
    """What a runner needs to run the job (docs/jobs.md `new_job`)."""
    job = lease.job
    text = lease.manifest
    manifest = parse_manifest(text)
    found = manifest.to_json()
    secrets: list[dict[str, Any]] = []
    if job.use_secrets and manifest.secrets:
        secrets = await asyncio.to_thread(
            secrets_for_job, ctx.db, ctx.secret_box, job.owner, manifest.secrets
        )
    return {
        "id": job.number,
        "uuid": job.uuid,
        "lease_id": lease.lease.lease_id,
        "lease_expires_at": iso_micros(lease.lease.lease_until),
        "tenant_id": job.tenant_id,
        "owner": job.owner,
        "image": manifest.image,
        "arch": manifest.arch,
        "vcpus": job.vcpus,
        "cpu_architecture": job.cpu_architecture,
        "timeout_s": job.timeout_s,
        "manifest": text,
        "tasks": [{"name": t.name, "script": t.script} for t in manifest.tasks],
        "environment": found["environment"],
        "sources": found["sources"],
        "packages": found["packages"],
        "repositories": found["repositories"],
        "artifacts": found["artifacts"],
        "shell": manifest.shell,
        "secrets": secrets,
    }


class RunnerStatus:
    def __init__(self, ctx: CommandContext, provisioners: ProvisionerAuth) -> None:
        self._ctx = ctx
        self._provisioners = provisioners

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, uuid: str
    ) -> None:
        runner = await self._provisioners.provisioner(req)
        body = await read_json_object(req)
        send_json(resp, 200, await leases.report(self._ctx, runner, uuid, body))


class RunnerTaskStatus:
    def __init__(self, ctx: CommandContext, provisioners: ProvisionerAuth) -> None:
        self._ctx = ctx
        self._provisioners = provisioners

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, uuid: str, name: str
    ) -> None:
        runner = await self._provisioners.provisioner(req)
        body = await read_json_object(req)
        send_json(resp, 200, await leases.report_task(self._ctx, runner, uuid, name, body))


def log_lines(body: dict[str, Any], tasks: set[str]) -> tuple[int, tuple[e.LogLine, ...]]:
    """The batch's first sequence number and its lines; 400/422 naming what is wrong."""
    first = body.get("first", 0)
    if isinstance(first, bool) or not isinstance(first, int) or not 0 <= first < 2**62:
        raise BadRequest("first must be a non-negative integer", field="first", code="bad_type")
    lines = body.get("lines")
    if not isinstance(lines, list) or not 1 <= len(lines) <= MAX_LINES:
        raise BadRequest(f"lines must be a list of 1 to {MAX_LINES} lines", field="lines")
    now = time.time_ns()
    found: list[e.LogLine] = []
    for index, item in enumerate(lines):
        where = f"lines[{index}]"
        if not isinstance(item, dict):
            raise BadRequest(f"{where} must be an object", field=where)
        task, text, at = item.get("task"), item.get("line"), item.get("at", now)
        if task not in tasks:
            raise Unprocessable(
                f"{where}.task must be one of the job's tasks ({', '.join(sorted(tasks))}), "
                f"not {task!r}",
                field=where,
            )
        if not isinstance(text, str) or len(text.encode()) > MAX_LINE_BYTES:
            raise BadRequest(f"{where}.line must be text of at most 64 KiB", field=where)
        if isinstance(at, bool) or not isinstance(at, int) or not 0 <= at < 2**63:
            raise BadRequest(f"{where}.at must be nanoseconds since the epoch", field=where)
        found.append(e.LogLine(task, text, at))
    return first, tuple(found)


class RunnerLogs:
    def __init__(self, ctx: CommandContext, provisioners: ProvisionerAuth) -> None:
        self._ctx = ctx
        self._provisioners = provisioners

    async def on_post(
        self, req: falcon.asgi.Request, resp: falcon.asgi.Response, uuid: str
    ) -> None:
        runner = await self._provisioners.provisioner(req)
        body = await read_json_object(req, MAX_LOG_BODY)
        job = await leases.holder(self._ctx, runner, uuid, body.get("lease_id"))
        tasks = {t.name for t in await asyncio.to_thread(q.tasks_of, self._ctx.db, uuid)}
        first, lines = log_lines(body, tasks)
        assert job.lease_id is not None
        batch = e.JobLog(uuid, job.number, job.tenant_id, job.lease_id, first, lines)
        await self._ctx.append("jobs", [new_envelope("job.log.v1", e.encode(batch), key=uuid)])
        send_json(resp, 200, {"accepted": len(lines)})


class RunnerArtifacts:
    def __init__(self, ctx: CommandContext, provisioners: ProvisionerAuth) -> None:
        self._ctx = ctx
        self._provisioners = provisioners

    async def on_put(self, req: falcon.asgi.Request, resp: falcon.asgi.Response, uuid: str) -> None:
        runner = await self._provisioners.provisioner(req)
        job = await leases.holder(self._ctx, runner, uuid, req.get_param("lease_id"))
        path = req.get_param("path") or ""
        text = await asyncio.to_thread(q.manifest_of, self._ctx.db, uuid)
        assert text is not None
        if path not in parse_manifest(text).artifacts:
            raise Unprocessable(
                "path must be one of the manifest's artifacts", field="path", code="bad_path"
            )
        limit = self._ctx.settings.max_upload_bytes
        if req.content_length is not None and req.content_length > limit:
            raise PayloadTooLarge(f"an artifact may be at most {limit} bytes", field="body")
        key = f"jobs/{uuid}/artifacts/{path}"
        try:
            stored = await self._ctx.objects.put_stream(key, req.stream, max_bytes=limit)
        except StorageError as exc:
            raise object_error(exc, "path", limit) from None
        added = e.JobArtifactAdded(uuid, path, key, stored.size, stored.sha256)
        envelope = new_envelope("job.artifact_added.v1", e.encode(added), key=uuid)
        await self._ctx.append("jobs", [envelope], JOBS)
        send_json(
            resp,
            201,
            {"name": path.rsplit("/", 1)[-1], "path": path, "size": stored.size,
             "sha256": stored.sha256, "job": job.number},
        )  # fmt: skip
