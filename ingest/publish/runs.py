"""Publish run requests: `POST /api/publish/publish` checks what it can at once (the remote,
the branch, the files, the developer's SSH key, the build and its generated files) and records
`publish.requested.v1`; the consumer in ingest/publish/runs_worker.py runs it.

The build's version is pinned when the run is requested (the latest one then, if none was
named), so a retry commits the files the developer asked for, not a newer build's. The commit
is authored by the developer: their GitHub name and e-mail when they signed in with GitHub and
GitHub shares one, else their Hutch name and `<name>@<public host>`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import re
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

from base.client_errors import BadRequest, TooManyRequests, Unprocessable
from base.git_remote import GitRemote, parse_remote
from base.net_guard import parse_allowed_networks
from ingest.publish.generate import generated_files
from ingest.publish.generate_api import generate_fields
from ingest.publish.ssh_keys import open_ssh_key
from schemas.envelope import new_envelope, uuid7
from schemas.publish.runs import (
    DEFAULT_BRANCH,
    DEFAULT_FILES,
    PUBLISHABLE_FILES,
    PublishRequested,
    encode,
)
from state import people_reads
from state.command_context import IDENTITY, PUBLISH, CommandContext
from state.publish import reads
from web.auth import Developer, confirm

MAX_ACTIVE_RUNS = 10
"""Runs one developer may have queued or running at once."""
MAX_KNOWN_HOSTS_BYTES = 16 * 1024
MAX_BRANCH_CHARS = 200
_BRANCH = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._/-]*$")
_VERSION = re.compile(r"^[^\x00-\x1f\x7f]{1,128}$")
_APP = re.compile(r"^[^\x00-\x1f\x7f/]{1,128}$")


def check_branch(value: object) -> str:
    """A branch name git accepts (a subset of `git check-ref-format --branch`)."""
    if value is None:
        return DEFAULT_BRANCH
    if (
        not isinstance(value, str)
        or not 1 <= len(value) <= MAX_BRANCH_CHARS
        or not _BRANCH.match(value)
        or ".." in value
        or "//" in value
        or value.endswith(("/", ".", ".lock"))
        or "/." in value
    ):
        raise Unprocessable(
            f"branch must be a git branch name of 1 to {MAX_BRANCH_CHARS} characters (letters, "
            "digits, '.', '_', '-', '/'; no '..', no leading '-' or '/', no trailing '/', '.' "
            f"or '.lock'); got {value!r}",
            field="branch",
        )
    return value


def check_files(value: object) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_FILES
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(f, str) and f in PUBLISHABLE_FILES for f in value)
        or len(set(value)) != len(value)
    ):
        raise Unprocessable(
            f"files must be a non-empty list of distinct names among "
            f"{', '.join(PUBLISHABLE_FILES)}",
            field="files",
        )
    return tuple(str(f) for f in value)


def check_known_hosts(value: object) -> str | None:
    """OpenSSH known_hosts lines (`host keytype base64key [comment]`), used as given."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value.encode()) > MAX_KNOWN_HOSTS_BYTES:
        raise Unprocessable(
            f"knownHosts must be known_hosts lines, at most {MAX_KNOWN_HOSTS_BYTES} bytes",
            field="knownHosts",
        )
    lines = [ln.strip() for ln in value.splitlines() if ln.strip() and not ln.startswith("#")]
    for number, line in enumerate(lines, 1):
        parts = line.split()
        if parts[0].startswith("@"):  # @cert-authority / @revoked markers
            parts = parts[1:]
        if len(parts) < 3 or not _base64(parts[2]):
            raise Unprocessable(
                f"knownHosts line {number} is not `host keytype base64-key`",
                field="knownHosts",
            )
    if not lines:
        raise Unprocessable("knownHosts has no host key line", field="knownHosts")
    return "\n".join(lines) + "\n"


def _base64(text: str) -> bool:
    try:
        return bool(base64.b64decode(text, validate=True))
    except (binascii.Error, ValueError):
        return False


def check_remote(value: object, allow_networks: str) -> GitRemote:
    try:
        remote = parse_remote(value, parse_allowed_networks(allow_networks))
    except ValueError as exc:
        raise Unprocessable(f"remote {exc}", field="remote") from None
    if remote.scheme != "ssh" or not remote.user:
        raise Unprocessable(
            "remote must be an SSH remote with a user: ssh://user@host[:port]/path.git or "
            "user@host:path.git",
            field="remote",
        )
    return remote


FIELDS: dict[str, type] = {
    "app": str,
    "version": str,
    "remote": str,
    "sshKeyId": str,
    "branch": str,
    "knownHosts": str,
    "files": list,
}


def check_types(body: dict[str, Any]) -> None:
    """A 400 naming the first field of the wrong JSON type (or missing, when required)."""
    for name, kind in FIELDS.items():
        value = body.get(name)
        if value is None and name not in ("app", "remote", "sshKeyId"):
            continue
        if not isinstance(value, kind):
            wanted = "a list of file names" if kind is list else "a string"
            raise BadRequest(f"{name} must be {wanted}", field=name, code="bad_type")


def _text(body: dict[str, Any], name: str, pattern: re.Pattern[str]) -> Any:
    value = body.get(name)
    if value is not None and not pattern.match(value):
        raise Unprocessable(f"{name} must be 1 to 128 characters, no control ones", field=name)
    return value


async def _author(ctx: CommandContext, developer: str) -> tuple[str, str]:
    account = await asyncio.to_thread(people_reads.account_of, ctx.db, developer)
    host = urlsplit(ctx.settings.public_url).hostname or "localhost"
    name = (account.name or account.login) if account is not None else developer
    email = account.email if account is not None and account.email else f"{developer}@{host}"
    return name, email


async def request_run(
    ctx: CommandContext, caller: Developer, body: dict[str, Any]
) -> dict[str, Any]:
    """Check and record a publish run; answers {runId, status: queued, statusUrl}."""
    check_types(body)
    app = _text(body, "app", _APP)
    version = _text(body, "version", _VERSION)
    remote = check_remote(body["remote"], ctx.settings.builder_allow_networks)
    key_id = str(body["sshKeyId"])
    branch = check_branch(body.get("branch"))
    files = check_files(body.get("files"))
    known_hosts = check_known_hosts(body.get("knownHosts"))
    _, options = generate_fields(body)  # the package's maintainer, license... as generate's
    owner = caller.name
    await open_ssh_key(ctx, owner, key_id)  # 404 unless it is the caller's live key
    generated = await generated_files(ctx, owner, app, version, options)
    missing = [f for f in files if f not in generated.files]
    if missing:
        why = "; ".join(generated.warnings)
        raise Unprocessable(
            f"version {generated.version} of {app} has no {', '.join(missing)} to publish"
            + (f": {why}" if why else ""),
            field="files",
        )
    author_name, author_email = await _author(ctx, owner)
    run_id = uuid7()
    event = PublishRequested(
        run_id, owner, app, generated.version, remote.url, branch, key_id, files,
        known_hosts, author_name, author_email, asdict(options),
    )  # fmt: skip
    async with ctx.command(f"developer:{owner}", IDENTITY, PUBLISH):
        await asyncio.to_thread(confirm, ctx.db, caller)
        if await asyncio.to_thread(reads.active_runs, ctx.db, owner) >= MAX_ACTIVE_RUNS:
            raise TooManyRequests(
                f"you have {MAX_ACTIVE_RUNS} publish runs queued or running, the most allowed; "
                "wait for one to finish",
                code="too_many_runs",
            )
        envelope = new_envelope("publish.requested.v1", encode(asdict(event)), key=run_id)
        await ctx.append("publish", [envelope], PUBLISH)
    base = ctx.settings.public_url.rstrip("/")
    return {"runId": run_id, "status": "queued", "statusUrl": f"{base}/api/publish/status/{run_id}"}
