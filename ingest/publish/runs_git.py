"""Git and ssh for a publish run: one working directory per attempt (under the data directory's
`publish-runs/`, swept when the runner starts) holding the key file (0600), the known_hosts
file and the clone, all removed when the attempt ends; git run with no user or
system configuration, no prompts, only SSH allowed, connecting to the address the guard
checked (base/git_remote.py's way: the real name as `HostKeyAlias`, so known_hosts is checked
against it), in its own process group, killed at its deadline.

What git and ssh say goes into the steps' logs filtered (`Workdir.clean`): the working
directory's path (the key file's) is replaced, and no line carrying the key's text survives.
Failures are classified (`classify`): a connection refused, timed out or hung up is transient
(the run is retried); a refused key, a changed host key, a rejected push is not.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import re
import shlex
import shutil
import signal
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from base.git_remote import GitRemote, host_key_name, ssh_command

MAX_OUTPUT_BYTES = 256 * 1024
MAX_LOG_CHARS = 8000
GIT_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 10
PREFIX = "attempt-"
_FINGERPRINT = re.compile(r"sent by the remote host is\s+(SHA256:[A-Za-z0-9+/]+)")

PERMANENT = (
    ("Permission denied", "the remote refused the SSH key"),
    ("[remote rejected]", "the remote rejected the push"),
    ("pre-receive hook declined", "the remote rejected the push"),
    ("non-fast-forward", "the remote branch has commits the run's base lacks (non-fast-forward)"),
    ("[rejected]", "the remote rejected the push"),
    ("does not appear to be a git repository", "there is no git repository at the remote's path"),
    ("Repository not found", "there is no git repository at the remote's path"),
)
TRANSIENT = (
    "Connection refused",
    "Connection timed out",
    "Operation timed out",
    "Connection reset",
    "Connection closed",
    "closed by remote host",
    "hung up unexpectedly",
    "early EOF",
    "No route to host",
    "Network is unreachable",
    "kex_exchange_identification",
    "Temporary failure in name resolution",
    "Broken pipe",
)


class PublishFailure(Exception):
    """An attempt failed; `message` is safe to show (no key, no path). `transient`: worth
    another attempt."""

    def __init__(self, message: str, *, transient: bool, log: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.transient = transient
        self.log = log


class HostKeyChanged(PublishFailure):
    pass


def fingerprint(key_base64: str) -> str:
    """`SHA256:...` of a public key blob (base64), as `ssh-keygen -l` prints it."""
    digest = hashlib.sha256(base64.b64decode(key_base64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def fingerprints(known_hosts: str) -> tuple[str, ...]:
    found: list[str] = []
    for line in known_hosts.splitlines():
        parts = line.split()
        if parts and parts[0].startswith("@"):
            parts = parts[1:]
        if len(parts) >= 3 and not line.startswith("#"):
            with contextlib.suppress(ValueError):
                found.append(fingerprint(parts[2]))
    return tuple(dict.fromkeys(found))


def classify(said: str) -> tuple[bool, str] | None:
    """(transient, reason) for what git/ssh said, None when nothing is recognised. Host key
    failures are the caller's (they need the fingerprints)."""
    for needle, reason in PERMANENT:
        if needle in said:
            return False, reason
    for needle in TRANSIENT:
        if needle in said:
            return True, f"the remote could not be reached ({needle.lower()})"
    return None


def host_key_failed(said: str) -> bool:
    return "Host key verification failed" in said or "HOST IDENTIFICATION HAS CHANGED" in said


def presented_fingerprint(said: str) -> str | None:
    match = _FINGERPRINT.search(said)
    return None if match is None else match.group(1)


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    out: str
    said: str


class Workdir:
    """One attempt's directory: the key, known_hosts and the clone (`repo`)."""

    def __init__(self, path: Path, private_key: str, remote: GitRemote, address: str) -> None:
        self.path = path
        self.repo = path / "repo"
        self.remote = remote
        self._secret_lines = [
            ln for ln in private_key.splitlines() if len(ln) >= 16 and not ln.startswith("---")
        ]
        port = remote.port or 22
        ssh = ssh_command(path, private_key, "", remote, CONNECT_TIMEOUT_S)
        self.known_hosts = path / "known_hosts"
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(path),
            "LANG": "C",
            "LC_ALL": "C",
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_ASKPASS": "/bin/false",
            "SSH_ASKPASS": "/bin/false",
            "GIT_ALLOW_PROTOCOL": "ssh",
            "GIT_SSH_COMMAND": shlex.join(ssh),
            "GIT_SSH_VARIANT": "ssh",
        }
        user = f"{remote.user}@" if remote.user else ""
        repo_path = remote.path if remote.path.startswith("/") else "/~/" + remote.path
        host = f"[{address}]" if ":" in address else address
        self.url = f"ssh://{user}{host}:{port}{repo_path}"
        self.address = address

    def clean(self, text: str) -> str:
        """`text` safe to record: no working directory path, no line of the key."""
        lines = []
        for line in text.replace(str(self.path), "<workdir>").splitlines():
            if any(secret in line for secret in self._secret_lines) or "PRIVATE KEY" in line:
                continue
            lines.append(line.rstrip())
        cleaned = "\n".join(ln for ln in lines if ln)
        return cleaned[-MAX_LOG_CHARS:]

    async def git(self, *args: str, timeout_s: float = GIT_TIMEOUT_S) -> Result:
        return await self.run(["git", "-C", str(self.repo), *args], timeout_s)

    async def run(self, argv: list[str], timeout_s: float) -> Result:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
            cwd=self.path,
            start_new_session=True,  # its own group: ssh dies with git
        )
        assert process.stdout is not None
        assert process.stderr is not None
        try:
            async with asyncio.timeout(timeout_s):
                out, err = await asyncio.gather(_read(process.stdout), _read(process.stderr))
                code = await process.wait()
        except TimeoutError:
            what = f"git {argv[3]}" if argv[0] == "git" else argv[0]
            raise PublishFailure(
                f"{what} did not finish within {timeout_s:g} s (the remote stopped answering)",
                transient=True,
            ) from None
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()
        text, said = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        return Result(code, text, self.clean(said))

    async def keyscan(self) -> str:
        """The host's keys as known_hosts lines under the remote's own name, or ''."""
        port = self.remote.port or 22
        argv = ["ssh-keyscan", "-T", str(CONNECT_TIMEOUT_S), "-p", str(port), self.address]
        result = await self.run(argv, CONNECT_TIMEOUT_S + 5)
        name = host_key_name(self.remote)
        lines = []
        for line in result.out.splitlines():
            parts = line.split()
            if len(parts) >= 3 and not line.startswith("#"):
                lines.append(f"{name} {parts[1]} {parts[2]}")
        return "\n".join(sorted(lines)) + "\n" if lines else ""


async def _read(stream: asyncio.StreamReader) -> bytes:
    """Everything `stream` says up to MAX_OUTPUT_BYTES; the rest is read and dropped, so the
    process never blocks on a full pipe."""
    data = bytearray()
    while chunk := await stream.read(64 * 1024):
        if len(data) < MAX_OUTPUT_BYTES:
            data += chunk[: MAX_OUTPUT_BYTES - len(data)]
    return bytes(data)


def workdirs(data: Path) -> Path:
    """Where attempts' directories go: under the data directory, which one runner owns."""
    return data / "publish-runs"


def sweep(parent: Path) -> int:
    """Remove what attempts left behind (a killed process removes nothing: its key files
    would stay); call before any attempt starts. How many were removed."""
    if not parent.is_dir():
        return 0
    left = [child for child in parent.iterdir() if child.name.startswith(PREFIX)]
    for child in left:
        shutil.rmtree(child, ignore_errors=True)
    return len(left)


@contextlib.contextmanager
def workdir(parent: Path, private_key: str, remote: GitRemote, address: str) -> Iterator[Workdir]:
    parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=PREFIX, dir=parent) as path:
        os.chmod(path, 0o700)
        yield Workdir(Path(path), private_key, remote, address)
