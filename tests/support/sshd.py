"""A real OpenSSH server for tests (Debian's `openssh-server`): `sshd -D` on a free port of
127.0.0.1 with its own host key, an AuthorizedKeysFile the test fills, and git-shell as the
only command (ForceCommand), so a test pushes to a local bare repository over real SSH.

sshd runs as root here; it wants its privilege separation directory (/run/sshd, root's, not
group- or world-writable) to exist even when no system service made it, so `start` creates
it. The login user is the user running the tests (root here: `PermitRootLogin
prohibit-password` lets keys in); StrictModes is off because the key files live in a pytest
temporary directory.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.servers import free_port

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


def sshd_available() -> str | None:
    """Why a real sshd cannot run here, or None."""
    for tool in (SSHD, "ssh", "ssh-keygen", "ssh-keyscan", "git", "git-shell"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install openssh-server openssh-client git)"
    if os.geteuid() != 0:
        return "sshd must run as root to log a user in"
    return None


def fingerprint(public_line: str) -> str:
    """`SHA256:...` of an OpenSSH public key line, as ssh-keygen -l prints it."""
    blob = base64.b64decode(public_line.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def keygen(path: Path, kind: str = "ed25519") -> str:
    """A new key pair at `path` (and `path`.pub); its public line."""
    path.unlink(missing_ok=True)
    Path(f"{path}.pub").unlink(missing_ok=True)
    subprocess.run(
        ["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "test", "-f", str(path)],
        check=True,
        capture_output=True,
    )
    return Path(f"{path}.pub").read_text().strip()


@dataclass
class Sshd:
    root: Path
    port: int = field(default_factory=free_port)
    user: str = field(default_factory=lambda: os.environ.get("USER") or "root")
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.host_key = self.root / "host_ed25519"
        self.authorized_keys = self.root / "authorized_keys"
        self.authorized_keys.touch()
        self.config = self.root / "sshd_config"
        self.log = self.root / "sshd.log"
        self.host_public = keygen(self.host_key)

    @property
    def host_fingerprint(self) -> str:
        return fingerprint(self.host_public)

    @property
    def known_hosts_line(self) -> str:
        kind, key = self.host_public.split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}"

    def authorize(self, public_line: str) -> None:
        with self.authorized_keys.open("a") as out:
            out.write(public_line.strip() + "\n")

    def new_host_key(self) -> None:
        """Replace the host key (a restart serves the new one): what a changed host looks
        like to a client that trusted the old one."""
        self.host_public = keygen(self.host_key)

    def bare_repository(self, name: str) -> Path:
        path = self.root / "repos" / name
        subprocess.run(["git", "init", "-q", "--bare", str(path)], check=True)
        return path

    def remote(self, repository: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repository}"

    def start(self) -> None:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
        self.config.write_text(
            f"ListenAddress 127.0.0.1\n"
            f"HostKey {self.host_key}\n"
            f"PidFile {self.root / 'sshd.pid'}\n"
            f"AuthorizedKeysFile {self.authorized_keys}\n"
            "StrictModes no\n"
            "PubkeyAuthentication yes\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "PermitRootLogin prohibit-password\n"
            "UsePAM no\n"
            f"AllowUsers {self.user}\n"
            'ForceCommand git-shell -c "$SSH_ORIGINAL_COMMAND"\n'
            "LogLevel VERBOSE\n"
        )
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config), "-p", str(self.port)],
                stdout=log,
                stderr=log,
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    if s.recv(4).startswith(b"SSH-"):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"sshd did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def running_sshd(root: Path, *, start: bool = True) -> Iterator[Sshd]:
    """An sshd under `root` (started unless `start` is False: the test starts it later)."""
    reason = sshd_available()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"sshd is required under CI: {reason}")
        pytest.skip(reason)
    server = Sshd(root)
    try:
        if start:
            server.start()
        yield server
    finally:
        server.stop()
