"""A job's secrets, put in place before its sources are cloned, as builds.sr.ht does:

- `file`: written at its path under the build user's home (`~/x`, `/home/build/x` or `x`),
  with its mode; a path outside the home is refused;
- `ssh_key`: ~/.ssh/<uuid> (0600), the first also as ~/.ssh/id_rsa, and ~/.ssh/config naming
  every key, so that ssh and git over ssh use them;
- `pgp_key`: `gpg --batch --import`, inside the sandbox, if the image has gpg (`gnupg` in the
  manifest's packages); the key reaches gpg from memory, never the workspace's disk.

Files are written by the runner into the fresh workspace, component by component without
following a symlink, owned by the build user. Nothing of a secret is ever logged.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal

from runner import build_user
from runner.process import CancelFlag, LineSink, say
from runner.sandbox import SandboxLimits, base_environment, run_in_sandbox
from runner.workspace import JobFilesystem

SecretKind = Literal["file", "ssh_key", "pgp_key"]
KINDS: tuple[SecretKind, ...] = ("file", "ssh_key", "pgp_key")
PGP_FILE = "/run/hutch/pgp-key"
GPG_MISSING = 127


@dataclass(frozen=True, slots=True)
class Secret:
    id: str
    name: str
    kind: SecretKind
    data: bytes
    path: str | None = None
    """Where a `file` secret goes; None for keys."""
    mode: int = 0o600

    @classmethod
    def from_json(cls, item: Mapping[str, Any]) -> Secret:
        """From the runner protocol's `secrets` list (docs/jobs.md); `data` is base64."""
        kind = item["type"]
        if kind not in KINDS:
            raise SecretError(f"secret {item.get('id')}: unknown type {kind!r}")
        mode = item.get("mode")
        return cls(
            id=str(item["id"]),
            name=str(item.get("name") or ""),
            kind=kind,
            data=base64.b64decode(item["data"], validate=True),
            path=item.get("path"),
            mode=0o600 if mode is None else int(mode),
        )

    @property
    def label(self) -> str:
        return f"{self.id} ({self.name})" if self.name else self.id


class SecretError(Exception):
    """A secret cannot be put in place; the message is for the setup log (and names no data)."""


def home_relative(path: str) -> PurePosixPath:
    """A file secret's path as a path inside the home, or SecretError."""
    if path.startswith("~/"):
        inside = path[2:]
    elif path.startswith(build_user.HOME + "/"):
        inside = path[len(build_user.HOME) + 1 :]
    elif path.startswith(("/", "~")):
        raise SecretError(f"{path!r} is outside the build user's home (~/...)")
    else:
        inside = path
    parts = PurePosixPath(inside).parts
    if not parts or any(p in ("..", ".") for p in inside.split("/")) or "\0" in inside:
        raise SecretError(f"{path!r} is not a file path inside the home")
    return PurePosixPath(*parts)


async def place_secrets(
    fs: JobFilesystem,
    secrets: Sequence[Secret],
    *,
    on_line: LineSink,
    timeout_s: float = 60.0,
    cancel: CancelFlag | None = None,
    limits: SandboxLimits | None = None,
) -> None:
    """Put every secret in place (see the module's doc). Raises SecretError."""
    ssh_keys: list[str] = []
    for secret in secrets:
        if secret.kind == "file":
            if not secret.path:
                raise SecretError(f"secret {secret.label}: a file secret needs a path")
            target = home_relative(secret.path)
            write_file(fs, target, secret.data, secret.mode)
            say(on_line, f"Secret {secret.label}: file ~/{target} (mode {secret.mode:o})")
        elif secret.kind == "ssh_key":
            key = secret.data if secret.data.endswith(b"\n") else secret.data + b"\n"
            write_file(fs, PurePosixPath(".ssh", secret.id), key, 0o600)
            if not ssh_keys:
                _symlink(fs, PurePosixPath(".ssh", "id_rsa"), secret.id)
            ssh_keys.append(secret.id)
            say(on_line, f"Secret {secret.label}: SSH key ~/.ssh/{secret.id}")
        else:
            await _import_pgp(fs, secret, on_line, timeout_s, cancel, limits)
    if ssh_keys:
        config = ["Host *", "    StrictHostKeyChecking accept-new"]
        config += [f"    IdentityFile ~/.ssh/{key}" for key in ssh_keys]
        write_file(fs, PurePosixPath(".ssh", "config"), ("\n".join(config) + "\n").encode(), 0o600)


async def _import_pgp(
    fs: JobFilesystem,
    secret: Secret,
    on_line: LineSink,
    timeout_s: float,
    cancel: CancelFlag | None,
    limits: SandboxLimits | None,
) -> None:
    script = f'command -v gpg >/dev/null 2>&1 || exit {GPG_MISSING}; exec gpg --batch --import "$1"'
    done = await run_in_sandbox(
        fs,
        ["/bin/sh", "-c", script, "gpg-import", PGP_FILE],
        env=base_environment(),
        on_line=on_line,
        timeout_s=timeout_s,
        cancel=cancel,
        limits=limits,
        files={PGP_FILE: secret.data},
    )
    if done.outcome == "exited" and done.exit_code == GPG_MISSING:
        say(
            on_line,
            f"Secret {secret.label}: PGP key not imported: the image has no gpg "
            "(add gnupg to the manifest's packages)",
        )
    elif not done.ok:
        raise SecretError(
            f"secret {secret.label}: gpg --import failed ({done.outcome}, "
            f"exit status {done.exit_code})"
        )
    else:
        say(on_line, f"Secret {secret.label}: PGP key imported")


def write_file(fs: JobFilesystem, target: PurePosixPath, data: bytes, mode: int) -> None:
    """`data` at `target` (inside the home), parents made 0700/0755 as needed, all owned by the
    build user; no component is followed if it is a symlink (ELOOP / ENOTDIR instead)."""
    parent = _open_parent(fs, target)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(target.name, flags, mode & 0o7777, dir_fd=parent)
        try:
            os.write(fd, data)
            os.fchown(fd, fs.uid, fs.gid)
            os.fchmod(fd, mode & 0o7777)
        finally:
            os.close(fd)
    except OSError as exc:
        raise SecretError(f"cannot write ~/{target}: {exc.strerror}") from None
    finally:
        os.close(parent)


def _symlink(fs: JobFilesystem, link: PurePosixPath, to: str) -> None:
    parent = _open_parent(fs, link)
    try:
        os.symlink(to, link.name, dir_fd=parent)
        os.chown(link.name, fs.uid, fs.gid, dir_fd=parent, follow_symlinks=False)
    except OSError as exc:
        raise SecretError(f"cannot link ~/{link}: {exc.strerror}") from None
    finally:
        os.close(parent)


def _open_parent(fs: JobFilesystem, target: PurePosixPath) -> int:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(fs.home, flags)
    try:
        for part in target.parts[:-1]:
            try:
                os.mkdir(part, 0o700 if part == ".ssh" else 0o755, dir_fd=fd)
                os.chown(part, fs.uid, fs.gid, dir_fd=fd, follow_symlinks=False)
            except FileExistsError:
                pass
            next_fd = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = next_fd
    except OSError as exc:
        os.close(fd)
        raise SecretError(f"cannot make ~/{target.parent}: {exc.strerror}") from None
    return fd
