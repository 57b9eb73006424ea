"""A GitHub `push` delivery → CI jobs for the installation's tenant, as builds.sr.ht's git
integration submits them: one job per manifest of the pushed commit (ingest/github_manifests.py),
its source pinned to the commit, the commit in its note (builds.sr.ht's: the first line of
the message, the short id linking to the commit, the author) and its tags
`[repository, "commits", branch]`.

- Owner: the developer signed in with the pusher's GitHub account if they are a member of the
  tenant, else the tenant's owner. Access: the owner reads and writes; the tenant's members
  read through their membership (state/jobs/reads.readable_job). Secrets are off: a push
  cannot hand anyone's secrets to what it builds.
- Nothing is built for a deleted branch, nor for a tag: a tag names a commit its branch's
  push has built already, and each release would otherwise run every job twice.
- Each job's UUID is derived from the delivery id and the manifest's path (a UUIDv8 laid out
  as a UUIDv7: the push's time, then the hash), so a redelivery after a crash between the jobs
  and the delivery's event submits nothing twice (ingest/jobs/commands.record). The jobs and
  the delivery are recorded under the `jobs` command, the delivery checked there first: of two
  copies of one delivery, one submits.
- A manifest the submission's checks refuse makes no job; the others still run, and the
  answer names it with the reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from base.client_errors import BadRequest, HutchError, NotFound
from base.github import GitHub
from ingest import github_deliveries as deliveries
from ingest import github_manifests as manifests
from ingest.jobs import commands as jobs
from schemas.people import DeliveryReceived
from state import identity_reads as qi
from state import people_reads as qp
from state.command_context import IDENTITY, JOBS, CommandContext

ZERO = "0" * 40
BRANCH = "refs/heads/"
SHA = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
REPOSITORY = re.compile(r"^[A-Za-z0-9_.-]{1,100}/[A-Za-z0-9_.-]{1,100}$")
MAX_ID = 2**63 - 1
"""GitHub's ids (installations, accounts, repositories) are kept as BIGINT."""
NOT_A_TAG = re.compile(r"[^a-z0-9_.:-]+")
MAX_SUBJECT = 1024


@dataclass(frozen=True, slots=True)
class Push:
    installation_id: int
    repository: str
    """owner/name"""
    name: str
    ref: str
    after: str
    deleted: bool
    urls: tuple[str, ...]
    """Every URL of the repository (clone, ssh, git, web), to find it among `sources`."""
    sender_id: int | None
    subject: str
    author: str
    email: str | None
    commit_url: str
    at_ms: int
    """When it was pushed (GitHub's clock), milliseconds: the jobs' UUIDs start with it."""


def _field(payload: dict[str, Any], path: str) -> Any:
    value: Any = payload
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def github_id(value: object) -> int | None:
    """A GitHub id from a payload: a positive integer a BIGINT holds; None for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def _text(payload: dict[str, Any], path: str) -> str:
    value = _field(payload, path)
    if not isinstance(value, str) or not value:
        raise BadRequest(f"a push carries {path}", field=path, code="bad_payload")
    return value


def _time_ms(payload: dict[str, Any]) -> int:
    pushed = _field(payload, "repository.pushed_at")
    if isinstance(pushed, int) and not isinstance(pushed, bool) and 0 < pushed < 2**40:
        return pushed * 1000
    stamp = _field(payload, "head_commit.timestamp")
    if isinstance(stamp, str):
        try:
            return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            pass
    return 0


def read_push(payload: dict[str, Any]) -> Push:
    """What a push delivery says (400 for a body that is not one)."""
    installation = github_id(_field(payload, "installation.id"))
    if installation is None:
        raise BadRequest(
            "a push carries installation.id", field="installation.id", code="bad_payload"
        )
    after = _text(payload, "after")
    if not SHA.match(after):
        raise BadRequest("after must be a commit id", field="after", code="bad_payload")
    repository = _text(payload, "repository.full_name")
    if not REPOSITORY.match(repository):
        raise BadRequest(
            "repository.full_name is owner/name", field="repository.full_name", code="bad_payload"
        )
    message = _field(payload, "head_commit.message")
    subject = message.split("\n", 1)[0] if isinstance(message, str) else ""
    author = _field(payload, "head_commit.author.name") or _field(payload, "pusher.name")
    email = _field(payload, "head_commit.author.email")
    url = _field(payload, "head_commit.url")
    web = _field(payload, "repository.html_url")
    if not isinstance(url, str) and isinstance(web, str):
        url = f"{web}/commit/{after}"
    keys = ("clone_url", "ssh_url", "git_url", "html_url")
    urls = tuple(
        u for u in (_field(payload, f"repository.{k}") for k in keys) if isinstance(u, str)
    )
    return Push(
        installation_id=installation,
        repository=repository,
        name=str(_field(payload, "repository.name") or repository.split("/")[1]),
        ref=_text(payload, "ref"),
        after=after,
        deleted=_field(payload, "deleted") is True or after == ZERO,
        urls=urls,
        sender_id=github_id(_field(payload, "sender.id")),
        subject=_clean(subject)[:MAX_SUBJECT],
        author=_clean(author if isinstance(author, str) else "") or "someone",
        email=_clean(email) if isinstance(email, str) and email else None,
        commit_url=_clean(url) if isinstance(url, str) else "",
        at_ms=_time_ms(payload),
    )


def _clean(text: str) -> str:
    """One line without control characters (a note holds no NUL; markdown no stray lines)."""
    return "".join(c for c in text if c.isprintable()).strip()


def note(push: Push) -> str:
    """builds.sr.ht's note for a commit: its subject, then its short id linking to it and its
    author (markdown)."""
    who = f"[{push.author}](mailto:{push.email})" if push.email else push.author
    link = f"[{push.after[:7]}]({push.commit_url})" if push.commit_url else push.after[:7]
    return f"{push.subject}\n\n{link} — {who}" if push.subject else f"{link} — {who}"


def tag(text: str) -> str:
    """`text` as a job tag: lowercase, each run of other characters than `a-z0-9_.:-` a `-`
    (a branch `feature/x` is the tag `feature-x`)."""
    return NOT_A_TAG.sub("-", text.lower()).strip("-")[:128] or "-"


def job_uuid(delivery_id: str, path: str, at_ms: int) -> str:
    """The same for the same delivery and manifest: the push's time in the first 48 bits (so
    a tenant's listing keeps its order, as UUIDv7s do), version 8, then 74 bits of SHA-256."""
    digest = int.from_bytes(hashlib.sha256(f"{delivery_id}\n{path}".encode()).digest()[:10])
    value = (at_ms & (2**48 - 1)) << 80 | 0x8 << 76 | (digest >> 68) << 64
    value |= 0b10 << 62 | digest & (2**62 - 1)
    return str(uuid.UUID(int=value))


async def _owner(ctx: CommandContext, tenant_id: str, sender_id: int | None) -> str:
    def find() -> str:
        account = None if sender_id is None else qp.account_by_github_id(ctx.db, sender_id)
        if account is not None and qi.is_member(ctx.db, tenant_id, account.developer):
            return account.developer
        tenant = qi.tenant_by_id(ctx.db, tenant_id)
        if tenant is None:
            raise NotFound("the installation's tenant is gone", code="unknown_installation")
        return tenant.owner

    return await asyncio.to_thread(find)


async def push_jobs(
    ctx: CommandContext, github: GitHub, delivery_id: str, payload: dict[str, Any]
) -> tuple[int, dict[str, Any]]:
    """Handle a verified push delivery; (status, answer). Raises GitHubError when GitHub cannot
    be read (nothing recorded then), NotFound for an installation Hutch has not linked."""
    push = read_push(payload)
    installation = await asyncio.to_thread(qp.installation_by_id, ctx.db, push.installation_id)
    if installation is None or installation.removed_at is not None:
        raise NotFound(
            f"installation {push.installation_id} is not linked to a tenant here; install the "
            "GitHub App (or finish its setup) first",
            field="installation.id",
            code="unknown_installation",
        )
    tenant = installation.tenant_id
    summary: dict[str, Any] = {"repository": push.repository, "ref": push.ref, "after": push.after}
    if push.deleted or not push.ref.startswith(BRANCH):
        why = "a deleted branch" if push.deleted else f"{push.ref}: only branch pushes build"
        received = DeliveryReceived(delivery_id, "push", None, push.installation_id, summary)
        if not await deliveries.record(ctx, received, key=tenant):
            return 200, already(delivery_id)
        return 200, {"message": f"no jobs for {why}", "delivery": delivery_id, "jobs": []}
    found = await manifests.manifests_at(github, push.installation_id, push.repository, push.after)
    owner = await _owner(ctx, tenant, push.sender_id)
    branch = push.ref.removeprefix(BRANCH)
    accepted: list[tuple[str, jobs.NewJob]] = []
    refused: list[dict[str, Any]] = []
    for manifest in found:
        if manifest.text is None:
            error = {
                "code": "too_many_manifests",
                "message": f"at most {manifests.MAX_MANIFESTS} manifests run for a push",
            }
            refused.append({"manifest": manifest.path, "error": error})
            continue
        text, _ = manifests.pin_sources(manifest.text, push.urls, push.after)
        body = {
            "manifest": text,
            "note": note(push),
            "tags": [tag(push.name), "commits", tag(branch)],
            "access:read": [],
            "access:write": [],
            "secrets": False,
        }
        uuid_ = job_uuid(delivery_id, manifest.path, push.at_ms)
        try:
            new = await jobs.validate(ctx, owner, body, tenant_id=tenant, uuid=uuid_)
        except HutchError as exc:
            refused.append({"manifest": manifest.path, "error": exc.body()["error"]})
            continue
        accepted.append((manifest.path, new))
    async with ctx.command("jobs", JOBS, IDENTITY):
        if await asyncio.to_thread(qp.delivery_seen, ctx.db, delivery_id):
            return 200, already(delivery_id)
        numbers = await jobs.record(ctx, [new for _, new in accepted])
        made = [
            {"id": number, "uuid": new.uuid, "manifest": path}
            for number, (path, new) in zip(numbers, accepted, strict=True)
        ]
        summary |= {"jobs": numbers, "refused": [r["manifest"] for r in refused]}
        received = DeliveryReceived(delivery_id, "push", None, push.installation_id, summary)
        await ctx.append("apps", [deliveries.envelope(received, key=tenant)], IDENTITY)
    return 200, {
        "message": _said(push, branch, len(made), len(refused)),
        "delivery": delivery_id,
        "jobs": made,
        "refused": refused,
    }


def _said(push: Push, branch: str, made: int, refused: int) -> str:
    at = f"{push.repository} at {push.after[:7]} ({branch})"
    if made == refused == 0:
        return f"no build manifest (.build.yml, .builds/*.yml) in {at}"
    text = f"{made} job{'s' if made != 1 else ''} submitted for {at}"
    return f"{text}; {refused} manifest{'s' if refused != 1 else ''} refused" if refused else text


def already(delivery_id: str) -> dict[str, Any]:
    return {
        "message": "delivery already received",
        "delivery": delivery_id,
        "jobs": [],
    }
