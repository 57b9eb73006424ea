"""GET /api/branches?app={name}: the branches of the app's source repository (PATCH
/api/apps/{app} `sourceRepository`), listed by the real `git ls-remote` (base/git_remote.py)
under the builder's address guard (HUTCH_BUILDER_ALLOW_NETWORKS names the non-public networks
allowed), within HUTCH_GIT_TIMEOUT seconds and HUTCH_GIT_MAX_OUTPUT bytes.

    -> {"app", "repository", "branches": [{"name", "commit"}], "default": "main" | null}

`default` is the branch the remote's HEAD points to, when the remote says.

An SSH remote needs one of the caller's publishing SSH keys, `sshKeyId=`, and its host key:
`knownHosts=` (OpenSSH known_hosts lines, URL-encoded), else the keys a publish run to that
host stored on first use; neither is a 422 `host_key_unknown` (a read does not trust a host on
first use). The host key is checked strictly: a changed one fails as the remote's refusal.

Errors: no such app 404, another developer's 403 (as the identity routes); no source
repository 409 `no_source_repository`; an address the guard refuses 422 `blocked_remote`, a
host name without an address 422 `unresolvable_remote` (the URL's fault); the
remote refusing, unreachable, too slow or too large 502 (`remote_unavailable`,
`remote_timeout`, `remote_too_large`), with git's words filtered of any key or path.
"""

from __future__ import annotations

import asyncio

import falcon.asgi

from base.client_errors import (
    BadGateway,
    BadRequest,
    ConflictError,
    Forbidden,
    NotFound,
    Unprocessable,
)
from base.git_remote import (
    GitRemote,
    RemoteError,
    RemoteTimeout,
    RemoteTooLarge,
    SshAccess,
    Unresolvable,
    ls_remote,
    parse_remote,
)
from base.net_guard import BlockedURL, parse_allowed_networks
from state import identity_reads as q
from state import ssh_keys as keys
from state.command_context import CommandContext
from state.publish.reads import known_hosts_of
from web.auth import Authenticator
from web.body import send_json

MAX_KNOWN_HOSTS_CHARS = 16 * 1024


class BranchListing:
    def __init__(self, ctx: CommandContext, auth: Authenticator) -> None:
        self._ctx = ctx
        self._auth = auth

    async def on_get(self, req: falcon.asgi.Request, resp: falcon.asgi.Response) -> None:
        developer = await self._auth.developer(req)
        app = req.get_param("app") or ""
        if not app:
            raise BadRequest("app is required: ?app={name}", field="app", code="missing_app")
        db = self._ctx.db
        found = await asyncio.to_thread(q.app_named, db, app)
        if found is None:
            raise NotFound(f"no app named {app!r}", field="app")
        if found.developer != developer.name:
            raise Forbidden(f"app {app!r} belongs to another developer", field="app")
        source = await asyncio.to_thread(keys.source_repository, db, app)
        if source is None:
            raise ConflictError(
                f"app {app!r} has no source repository: set one with PATCH /api/apps/{app} "
                '{"sourceRepository": "https://..."}',
                field="app",
                code="no_source_repository",
            )
        settings = self._ctx.settings
        allowed = parse_allowed_networks(settings.builder_allow_networks)
        try:
            remote = parse_remote(source, allowed)
        except ValueError as exc:
            raise _blocked(f"the source repository {exc}") from None
        ssh = await self._ssh_access(req, developer.name, remote)
        try:
            heads = await ls_remote(
                remote,
                allowed=allowed,
                timeout_s=settings.git_timeout_s,
                max_bytes=settings.git_max_output,
                ca_file=settings.git_ca_file,
                ssh=ssh,
            )
        except BlockedURL as exc:
            raise _blocked(f"the source repository's host is refused: {exc}") from None
        except Unresolvable as exc:
            raise Unprocessable(
                f"the source repository's host {exc}", field="app", code="unresolvable_remote"
            ) from None
        except RemoteTimeout as exc:
            raise BadGateway(str(exc), code="remote_timeout") from None
        except RemoteTooLarge as exc:
            raise BadGateway(str(exc), code="remote_too_large") from None
        except RemoteError as exc:
            raise BadGateway(str(exc), code="remote_unavailable") from None
        send_json(
            resp,
            200,
            {
                "app": app,
                "repository": source,
                "branches": [{"name": n, "commit": c} for n, c in heads.branches],
                "default": heads.default,
            },
        )

    async def _ssh_access(
        self, req: falcon.asgi.Request, developer: str, remote: GitRemote
    ) -> SshAccess | None:
        if remote.scheme != "ssh":
            return None
        key_id = req.get_param("sshKeyId") or ""
        if not key_id:
            raise Unprocessable(
                "the source repository is an SSH remote: name one of your publishing SSH "
                "keys as sshKeyId= (GET /api/publish/ssh-keys lists them)",
                field="sshKeyId",
                code="ssh_key_required",
            )
        db, box = self._ctx.db, self._ctx.secret_box
        key = await asyncio.to_thread(keys.open_key, db, box, developer, key_id)
        known = req.get_param("knownHosts") or ""
        if len(known) > MAX_KNOWN_HOSTS_CHARS:
            raise BadRequest(
                f"knownHosts is over {MAX_KNOWN_HOSTS_CHARS} characters",
                field="knownHosts",
                code="too_long",
            )
        if not known.strip():
            stored = await asyncio.to_thread(
                known_hosts_of, db, developer, remote.host, remote.port or 22
            )
            if stored is None:
                raise Unprocessable(
                    f"Hutch does not know {remote.host}'s host key: pass knownHosts= (lines "
                    "as in ~/.ssh/known_hosts, e.g. from ssh-keyscan) or publish to it once",
                    field="knownHosts",
                    code="host_key_unknown",
                )
            known = stored.known_hosts
        return SshAccess(key.private_key, known)


def _blocked(message: str) -> Unprocessable:
    return Unprocessable(message, field="app", code="blocked_remote")
