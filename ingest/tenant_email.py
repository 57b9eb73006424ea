"""A tenant's e-mail address, changed only through a mailed link (issue 16).

A member of the tenant asks for a new address (`request_change`): the request is recorded
(tenant.email_change_requested.v1, with the link's id) and a link mailed to the new address,
`{public_url}/api/tenants/{id}/email/verify?jwt=...`. The JWT (PyJWT, HS256 under a key
derived from the server key for this purpose alone) carries the tenant id, the address, the
link id (`jti`), when it was issued and when it expires (HUTCH_EMAIL_LINK_TTL), and an
audience naming its use. Following it (`verify`) needs no session (the mail may be opened on
another device; the token is the proof) and applies the change once
(tenant.email_changed.v1). Refused, changing nothing:
- a token that does not verify (tampered, garbage, another key or audience): 400 invalid_link;
- an expired one: 400 link_expired;
- one for another tenant than the path's: 400 link_for_other_tenant (the link is wrong for
  this URL, not a permission question: the tenant named in it is the holder's own);
- one already followed, or superseded (the tenant's address changed through another link
  since, or a newer link was asked for): 409 link_used.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid, parseaddr
from typing import Any

from base import signed_claims
from base.client_errors import (
    BadRequest,
    ConflictError,
    ServiceUnavailable,
    Unprocessable,
)
from schemas import identity as s
from schemas import people as p
from schemas.envelope import new_envelope, uuid7
from state import identity_reads as qi
from state import people_reads as q
from state import tenant_reads as qt
from state.command_context import IDENTITY, CommandContext
from web.auth import Developer, confirm

LOCK = "tenants"  # the tenant commands' lock (ingest/tenant_commands.py)
AUDIENCE = "hutch:tenant-email"
MAX_EMAIL = 254
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_LOCAL = re.compile(rf"{_ATOM}(?:\.{_ATOM})*", re.ASCII)
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"(?:{_LABEL}\.)+[A-Za-z](?:[A-Za-z0-9-]{{0,61}}[A-Za-z0-9])?", re.ASCII)


def check_email(value: str) -> str:
    """`value` if it is a plain address `local@domain.tld` (RFC 5322 dot-atoms, no quoting,
    no comments, no display name, at most 254 characters): nothing a mail header could be
    split at (no spaces, CR or LF, commas or angle brackets). 422 `invalid_email` else."""
    local, at, domain = value.partition("@")
    if (
        len(value) > MAX_EMAIL
        or not at
        or len(local) > 64
        or not _LOCAL.fullmatch(local)
        or not _DOMAIN.fullmatch(domain)
    ):
        raise Unprocessable(
            "email must be a plain address like ops@example.org (one @, a domain with a dot, "
            "no spaces or display name, at most 254 characters)",
            field="email",
            code="invalid_email",
        )
    return value


@dataclass(frozen=True, slots=True)
class Link:
    """What a verification link carries, once its signature and times are checked."""

    tenant_id: str
    email: str
    jti: str


def issue(key: bytes, tenant_id: str, email: str, now_s: int, ttl_s: int) -> tuple[str, Link]:
    """A signed link token for this change, and what it says."""
    link = Link(tenant_id, email, uuid7())  # time-ordered: the latest request is the last
    claims = {"tenant_id": tenant_id, "email": email, "jti": link.jti}
    return signed_claims.sign(key, AUDIENCE, claims, now_s, ttl_s), link


def read(key: bytes, token: str) -> Link:
    """What a link token says; 400 `link_expired` or `invalid_link` when it cannot be used."""
    try:
        claims = signed_claims.read(key, AUDIENCE, token, ("tenant_id", "email", "jti"))
    except signed_claims.ClaimsExpired:
        raise BadRequest(
            "this verification link has expired; ask for the e-mail change again",
            field="jwt",
            code="link_expired",
        ) from None
    except signed_claims.ClaimsInvalid:
        raise _invalid() from None
    return Link(claims["tenant_id"], claims["email"], claims["jti"])


def _invalid() -> BadRequest:
    return BadRequest(
        "this verification link is not valid (damaged or not issued by this server); use the "
        "link from the e-mail as it is, or ask for the e-mail change again",
        field="jwt",
        code="invalid_link",
    )


def verify_url(public_url: str, tenant_id: str, token: str) -> str:
    return f"{public_url.rstrip('/')}/api/tenants/{tenant_id}/email/verify?jwt={token}"


def message(sender: str, to: str, tenant: str, url: str, ttl_s: int) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"Confirm the e-mail address of {tenant} on Hutch"
    msg["From"] = sender
    msg["To"] = to
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain=parseaddr(sender)[1].rpartition("@")[2] or None)
    hours = max(1, ttl_s // 3600)
    msg.set_content(
        f"Someone asked for {to} to become the e-mail address of the tenant {tenant} on "
        f"Hutch.\n\nTo confirm, open this link (it works once, for {hours} hour(s)):\n\n"
        f"{url}\n\nIf you did not ask for this, ignore this mail: nothing changes.\n"
    )
    return msg


async def member_tenant(ctx: CommandContext, caller: Developer, tenant_id: str) -> qi.Tenant:
    """The tenant if the caller is a member (read caught up, their credential re-checked); a
    404 otherwise, the same whether or not it exists."""
    await asyncio.to_thread(confirm, ctx.db, caller)
    return await asyncio.to_thread(qi.member_tenant, ctx.db, tenant_id, caller.name)


async def request_change(
    ctx: CommandContext,
    key: bytes,
    caller: Developer,
    tenant_id: str,
    email: str,
    can_mail: bool,
) -> tuple[qi.Tenant, str]:
    """Record a change of the tenant's e-mail to `email` (checked); answer the tenant and the
    link token to mail. The caller must be a member; without a mail server (`can_mail`
    false) nothing is recorded: 503 `mail_not_configured`."""
    email = check_email(email)
    async with ctx.command(LOCK, IDENTITY):
        tenant = await member_tenant(ctx, caller, tenant_id)
        if not can_mail:
            raise ServiceUnavailable(
                "no mail server is configured (HUTCH_SMTP_URL), so the new address cannot be "
                "verified; nothing changed",
                code="mail_not_configured",
            )
        now_s = ctx.clock() // 1_000_000
        ttl_s = ctx.settings.email_link_ttl_s
        token, link = issue(key, tenant_id, email, now_s, ttl_s)
        requested = p.EmailChangeRequested(
            tenant_id=tenant_id,
            email=email,
            jti=link.jti,
            expires_at=(now_s + ttl_s) * 1_000_000,
            requested_by=caller.name,
        )
        envelope = new_envelope(
            "tenant.email_change_requested.v1", s.encode(requested), key=tenant_id
        )
        await ctx.append("apps", [envelope], IDENTITY)
    return tenant, token


async def verify(ctx: CommandContext, key: bytes, tenant_id: str, token: str) -> dict[str, Any]:
    """Apply the change a link token asks for, once (see the module's docstring)."""
    link = read(key, token)
    if link.tenant_id != tenant_id:
        raise BadRequest(
            "this verification link is for another tenant than the one in this URL",
            field="jwt",
            code="link_for_other_tenant",
        )
    async with ctx.command(LOCK, IDENTITY):
        recorded = await asyncio.to_thread(q.email_link, ctx.db, link.jti)
        if recorded is None or (recorded.tenant_id, recorded.email) != (tenant_id, link.email):
            raise _invalid()
        latest = await asyncio.to_thread(qt.latest_email_link, ctx.db, tenant_id)
        if recorded.used_at is not None or latest != link.jti:
            raise ConflictError(
                "this verification link was already used, or a later one replaced it; the "
                "tenant's e-mail stays as it is",
                field="jwt",
                code="link_used",
            )
        if recorded.expires_at <= ctx.clock():
            raise BadRequest(
                "this verification link has expired; ask for the e-mail change again",
                field="jwt",
                code="link_expired",
            )
        changed = p.EmailChanged(tenant_id, link.email, link.jti)
        envelope = new_envelope("tenant.email_changed.v1", s.encode(changed), key=tenant_id)
        await ctx.append("apps", [envelope], IDENTITY)
    return {"message": f"The tenant's e-mail is now {link.email}", "email": link.email}
