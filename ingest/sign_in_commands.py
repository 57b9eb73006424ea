"""Sign-in commands: the developer a GitHub account signs in as, and browser sessions.

A GitHub account is found by its id first (github_accounts), so a renamed login keeps its
developer. A new account makes a developer named after the login, lowercased, with their
personal tenant (`identity_commands.new_developer`), and links the account, in one append:
the developer is never left without the link that finds it again. If a developer of that
name exists (made at the CLI, or by another GitHub account), the new one is `{login}-{id}`.
A returning account whose profile GitHub reports changed gets one `developer.github_linked.v1`.

A session is the SHA-256 of a random `bs_` token, with its expiry; the token itself is only
in the answer (the cookie). Ending one is idempotent.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from dataclasses import dataclass

from base.client_errors import BadGateway, ConflictError
from base.github import GitHubUser
from ingest.identity_commands import new_developer
from schemas import identity as s
from schemas.envelope import Envelope, new_envelope, uuid7
from schemas.people import GitHubLinked, SessionCreated, SessionRevoked
from state import identity_reads as q
from state import people_reads as people
from state.command_context import IDENTITY, CommandContext
from web.auth import Developer


@dataclass(frozen=True, slots=True)
class NewSession:
    id: str
    developer: str
    token: str
    """`bs_` and 64 hex digits: the session-token cookie, answered once, stored hashed."""
    expires_at: int


async def link_developer(ctx: CommandContext, user: GitHubUser) -> str:
    """The developer `user` signs in as, made or updated as needed."""
    login = user.login.lower()
    if not s.NAME.match(login) or len(f"{login}-{user.id}") > 63:
        raise BadGateway(
            f"GitHub answered a login Hutch cannot use as a name: {user.login!r}",
            code="github_unavailable",
        )
    # Two sign-ins of one account take the same lock: the second finds the first's link.
    async with ctx.command(f"developer:{login}", IDENTITY):
        account = await asyncio.to_thread(people.account_by_github_id, ctx.db, user.id)
        envelopes: list[Envelope] = []
        if account is not None:
            name = account.developer
            before = (account.login, account.name, account.email, account.avatar_url)
            if before == (user.login, user.name, user.email, user.avatar_url):
                return name
        else:
            name = await _free_name(ctx, login, user.id)
            envelopes, _ = new_developer(name)
        event = GitHubLinked(name, user.id, user.login, user.name, user.email, user.avatar_url)
        envelopes.append(new_envelope("developer.github_linked.v1", s.encode(event), key=name))
        await ctx.append("apps", envelopes, IDENTITY)
    return name


async def _free_name(ctx: CommandContext, login: str, github_id: int) -> str:
    """The login if no developer has it, else `{login}-{github_id}` (409 if that is taken
    too: someone chose it at the CLI)."""
    for name in (login, f"{login}-{github_id}"):
        if not await asyncio.to_thread(q.developer_exists, ctx.db, name):
            return name
    raise ConflictError(
        f"the developer names {login!r} and {name!r} are both taken by other developers; "
        "ask the operator to rename one",
        code="name_taken",
    )


async def start_session(ctx: CommandContext, developer: str, ttl_s: int) -> NewSession:
    token = "bs_" + secrets.token_hex(32)
    async with ctx.command(f"developer:{developer}", IDENTITY):
        session = SessionCreated(
            id=uuid7(),
            developer=developer,
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            expires_at=ctx.clock() + ttl_s * 1_000_000,
        )
        envelope = new_envelope("session.created.v1", s.encode(session), key=developer)
        await ctx.append("apps", [envelope], IDENTITY)
    return NewSession(session.id, developer, token, session.expires_at)


async def end_session(ctx: CommandContext, caller: Developer) -> bool:
    """Revoke the caller's session; False if it had already ended (or there is none)."""
    if caller.session_id is None:
        return False
    async with ctx.command(f"developer:{caller.name}", IDENTITY):
        found = await asyncio.to_thread(people.session_by_id, ctx.db, caller.session_id)
        if found is None or found.developer != caller.name or not found.live(ctx.clock()):
            return False
        revoked = SessionRevoked(found.id, found.developer)
        envelope = new_envelope("session.revoked.v1", s.encode(revoked), key=found.developer)
        await ctx.append("apps", [envelope], IDENTITY)
    return True
