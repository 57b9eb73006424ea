"""Git remotes Hutch may read on a developer's behalf: parsing a source repository's URL, and
listing its branches with the real `git ls-remote`, under the same address guard as the
builder (base/net_guard.py) and with time and size limits.

A remote is `https://host[:port]/path`, `ssh://[user@]host[:port]/path` or scp-like
`[user@]host:path`; no credentials in the URL (a token there would be stored and shown), no
query or fragment, and no host or path that git or ssh could read as an option.

`ls_remote` resolves the host once, refuses it if ANY address is not public (unless in the
allowed networks), and makes git connect to the checked addresses only: HTTPS through curl's
resolve list (`http.curloptResolve`, so TLS still checks the real name), SSH by giving ssh the
address with the real name as `HostKeyAlias` (so known_hosts is checked against the name).
Redirects are not followed (`http.followRedirects=false`): a redirect cannot reach an address
the guard did not check. Git runs with no user or system configuration, no prompts, only the
remote's protocol allowed, in its own process group, killed at the deadline; its output is
read up to a limit, and what it says on failure is filtered of local paths before a client
sees it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import shlex
import signal
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from base.net_guard import (
    MAX_URL_LENGTH,
    AllowedNetworks,
    IPAddress,
    check_resolved,
    check_url_literal,
    literal_address,
)

RemoteScheme = Literal["https", "ssh"]
_SCP = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[^/:@\[\]]+):(?P<path>.+)$"
)
_USER = re.compile(r"^[A-Za-z0-9._][A-Za-z0-9._-]{0,63}$")
_BAD = re.compile(r"[\x00-\x20\x7f\\]")
_SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")
MAX_STDERR_BYTES = 16 * 1024


class RemoteError(Exception):
    """The remote could not be listed; the message is safe to show (no key, path or token)."""


class RemoteTimeout(RemoteError):
    pass


class Unresolvable(RemoteError):
    """The remote's host name has no address: the URL's fault, not the remote's."""


class RemoteTooLarge(RemoteError):
    pass


@dataclass(frozen=True, slots=True)
class GitRemote:
    url: str
    """As the developer wrote it (stored, shown)."""
    scheme: RemoteScheme
    host: str
    """Without brackets for IPv6."""
    port: int | None
    user: str | None
    path: str
    scp_like: bool = False


@dataclass(frozen=True, slots=True)
class SshAccess:
    private_key: str = field(repr=False)
    known_hosts: str
    """OpenSSH known_hosts lines for the remote's host (`host` or `[host]:port`)."""


@dataclass(frozen=True, slots=True)
class Heads:
    branches: tuple[tuple[str, str], ...]
    """(name, commit) in git's order."""
    default: str | None
    """The branch HEAD points to, when the remote says (protocol v2 and --symref)."""


def parse_remote(url: object, allowed: AllowedNetworks = ()) -> GitRemote:
    """The remote `url` names; ValueError saying why it is not one Hutch reads."""
    if not isinstance(url, str) or not 1 <= len(url) <= MAX_URL_LENGTH:
        raise ValueError(f"must be a git URL of 1 to {MAX_URL_LENGTH} characters")
    if _BAD.search(url):
        raise ValueError("must not contain spaces, backslashes or control characters")
    remote = _parse_url(url) if "://" in url else _parse_scp(url)
    if remote.host.startswith("-") or remote.path.lstrip("/").startswith("-"):
        raise ValueError("host and path must not start with '-'")
    # The same literal check as the builder's (no DNS yet): private, loopback and spelled
    # addresses are refused when they are written in the URL itself.
    probe = f"https://{_bracketed(remote.host)}/"
    problem = check_url_literal(probe, allowed)
    if problem:
        raise ValueError(problem.replace("url ", "the repository's ", 1))
    return remote


def _parse_url(url: str) -> GitRemote:
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"is malformed: {exc}") from None
    if parts.scheme not in ("https", "ssh"):
        raise ValueError("must be https://, ssh:// or scp-like (user@host:path)")
    if parts.password is not None or (parts.scheme == "https" and parts.username is not None):
        raise ValueError("must not contain credentials: add an SSH key instead")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise ValueError("must not have a query or a fragment")
    if parts.username is not None and not _USER.match(parts.username):
        raise ValueError("has an invalid user name")
    host = parts.hostname or ""
    if not host or len(parts.path) < 2:
        raise ValueError("needs a host and a repository path")
    scheme: RemoteScheme = "https" if parts.scheme == "https" else "ssh"
    return GitRemote(url, scheme, host, port, parts.username, parts.path)


def _parse_scp(url: str) -> GitRemote:
    match = _SCP.match(url)
    if match is None:
        raise ValueError("must be https://, ssh:// or scp-like (user@host:path)")
    host = match["host"].strip("[]").lower()
    return GitRemote(url, "ssh", host, None, match["user"], match["path"], scp_like=True)


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def host_key_name(remote: GitRemote) -> str:
    """The remote's name in known_hosts: `host`, or `[host]:port` off port 22."""
    if remote.port in (None, 22):
        return remote.host
    return f"[{remote.host}]:{remote.port}"


async def ls_remote(
    remote: GitRemote,
    *,
    allowed: AllowedNetworks = (),
    timeout_s: float = 15.0,
    max_bytes: int = 1 << 20,
    ca_file: str = "",
    ssh: SshAccess | None = None,
) -> Heads:
    """The remote's branches. BlockedURL (the guard), Unresolvable, RemoteTimeout,
    RemoteTooLarge or RemoteError (git failed: its words, filtered)."""
    if remote.scheme == "ssh" and ssh is None:
        raise ValueError("an SSH remote needs an SshAccess")
    default_port = 443 if remote.scheme == "https" else 22
    port = remote.port or default_port
    addresses = await _resolve(remote.host, port, allowed, timeout_s)
    with tempfile.TemporaryDirectory(prefix="hutch-git-") as home:
        argv, env = _command(remote, port, addresses, Path(home), ca_file, ssh, timeout_s)
        out, err, code = await _run(argv, env, timeout_s, max_bytes)
        if code != 0:
            raise RemoteError(_filtered(err, home, ssh))
    return _parse_heads(out)


async def _resolve(
    host: str, port: int, allowed: AllowedNetworks, timeout_s: float
) -> list[IPAddress]:
    """Every address of `host`, checked by the guard (BlockedURL if ANY is refused)."""
    literal = literal_address(host)
    if literal is not None:
        return check_resolved(host, [str(literal)], allowed)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout_s):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Unresolvable(f"{host} does not resolve to an address") from None
    except TimeoutError:
        raise RemoteTimeout(f"resolving {host} took longer than {timeout_s:g} s") from None
    return check_resolved(host, [str(info[4][0]) for info in infos], allowed)


def _command(
    remote: GitRemote,
    port: int,
    addresses: list[IPAddress],
    home: Path,
    ca_file: str,
    ssh: SshAccess | None,
    timeout_s: float,
) -> tuple[list[str], dict[str, str]]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "LANG": "C",
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "/bin/false",
        "SSH_ASKPASS": "/bin/false",
        "GIT_ALLOW_PROTOCOL": remote.scheme,
    }
    config = ["-c", "http.followRedirects=false", "-c", "credential.helper="]
    first = addresses[0]
    if remote.scheme == "https":
        pinned = ",".join(_bracketed(str(ip)) for ip in addresses)
        config += ["-c", f"http.curloptResolve={remote.host}:{port}:{pinned}"]
        config += [
            "-c",
            f"http.lowSpeedTime={max(1, int(timeout_s))}",
            "-c",
            "http.lowSpeedLimit=1",
        ]
        if ca_file:
            env["GIT_SSL_CAINFO"] = ca_file
        url = remote.url
    else:
        assert ssh is not None
        ssh_argv = ssh_command(
            home, ssh.private_key, ssh.known_hosts + "\n", remote, max(1, int(timeout_s))
        )
        env["GIT_SSH_COMMAND"] = shlex.join(ssh_argv)
        env["GIT_SSH_VARIANT"] = "ssh"
        user = f"{remote.user}@" if remote.user else ""
        if remote.scp_like:  # kept scp-like: its path is relative to the login's home
            url = f"{user}{_bracketed(str(first))}:{remote.path}"
        else:
            url = f"ssh://{user}{_bracketed(str(first))}:{port}{remote.path}"
    argv = ["git", *config, "ls-remote", "--symref", url, "HEAD", "refs/heads/*"]
    return argv, env


async def _run(
    argv: list[str], env: dict[str, str], timeout_s: float, max_bytes: int
) -> tuple[bytes, bytes, int]:
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
        start_new_session=True,  # its own group: ssh and curl die with it
    )
    assert process.stdout is not None
    assert process.stderr is not None
    stdout, stderr = process.stdout, process.stderr

    async def read_capped() -> bytes:
        data = bytearray()
        while chunk := await stdout.read(64 * 1024):
            data += chunk
            if len(data) > max_bytes:
                raise RemoteTooLarge(
                    f"the remote lists more than {max_bytes} bytes of branches; Hutch stopped "
                    "reading"
                )
        return bytes(data)

    async def read_stderr() -> bytes:
        kept = bytearray()
        while chunk := await stderr.read(64 * 1024):
            kept += chunk[: MAX_STDERR_BYTES - len(kept)]  # drained, but only the start kept
        return bytes(kept)

    try:
        async with asyncio.timeout(timeout_s):
            out, err = await asyncio.gather(read_capped(), read_stderr())
            code = await process.wait()
    except TimeoutError:
        raise RemoteTimeout(
            f"the remote did not answer within {timeout_s:g} s; git was stopped"
        ) from None
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
    return out, err, code


def _filtered(stderr: bytes, home: str, ssh: SshAccess | None) -> str:
    """What git said, safe to show: no line naming the temporary directory (the key file),
    no secret text, at most a few short lines."""
    lines = []
    for raw in stderr.decode("utf-8", "replace").splitlines():
        line = raw.strip()
        if not line or home in line or "hutch-git-" in line:
            continue
        if ssh is not None and any(part and part in line for part in _secret_parts(ssh)):
            continue
        lines.append(line[:300])
    said = "; ".join(lines[-4:])
    return f"git could not list the remote: {said}" if said else "git could not list the remote"


def _secret_parts(ssh: SshAccess) -> list[str]:
    body = [ln for ln in ssh.private_key.splitlines() if ln and not ln.startswith("-----")]
    return [ln for ln in body if len(ln) >= 16]


def _parse_heads(out: bytes) -> Heads:
    branches: list[tuple[str, str]] = []
    default: str | None = None
    for raw in out.decode("utf-8", "replace").splitlines():
        left, _, ref = raw.partition("\t")
        if left.startswith("ref: ") and ref == "HEAD":
            target = left.removeprefix("ref: ")
            if target.startswith("refs/heads/"):
                default = target.removeprefix("refs/heads/")
        elif _SHA.match(left) and ref.startswith("refs/heads/"):
            branches.append((ref.removeprefix("refs/heads/"), left))
    return Heads(tuple(branches), default)


def ssh_command(
    directory: Path, private_key: str, known_hosts: str, remote: GitRemote, timeout_s: int
) -> list[str]:
    """The ssh command git runs (GIT_SSH_COMMAND) with `private_key`, written to a file created
    0600 in `directory` (never readable by others, not even for a moment), trusting exactly
    `known_hosts` (written beside it) for `remote`: no agent, no config, no prompts, no
    proxies, no shared connections."""
    key = directory / "id"
    text = private_key if private_key.endswith("\n") else private_key + "\n"
    with os.fdopen(os.open(key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    known = directory / "known_hosts"
    known.write_text(known_hosts)
    options = {
        "IdentitiesOnly": "yes",
        "IdentityAgent": "none",
        "BatchMode": "yes",
        "StrictHostKeyChecking": "yes",
        "UserKnownHostsFile": str(known),
        "GlobalKnownHostsFile": os.devnull,
        "HostKeyAlias": host_key_name(remote),
        "CheckHostIP": "no",
        "ConnectTimeout": str(timeout_s),
        "ProxyCommand": "none",
        "ProxyJump": "none",
        "PermitLocalCommand": "no",
        "ControlMaster": "no",
        "ControlPath": "none",
    }
    argv = ["ssh", "-F", os.devnull, "-i", str(key)]
    for name, value in options.items():
        argv += ["-o", f"{name}={value}"]
    return argv
