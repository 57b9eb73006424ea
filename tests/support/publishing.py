"""Publish runs from a test's side (tests/test_publish_runs*.py): a developer with an AppImage
build and imported SSH keys (so the test knows the private key no answer may show), starting a
run, polling it, and reading the bare repository it pushed to."""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest.publish.runs_git import PREFIX, workdirs
from tests.support.admin import developer_with_app
from tests.support.builds import direct_upload
from tests.support.servers import Server
from tests.support.sshd import keygen

ENDED = ("succeeded", "failed")
APPIMAGE = b"\x7fELF" + b"hutch publish test AppImage " * 64


@dataclass(frozen=True)
class Dev:
    name: str
    token: str
    key_id: str
    private_key: str
    public_key: str
    other_key_id: str
    """A key of hers that no remote authorizes."""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def import_key(server: Server, token: str, path: Path, label: str) -> tuple[str, str, str]:
    public = keygen(path)
    private = path.read_text()
    with server.client(Authorization=f"Bearer {token}") as c:
        added = c.post("/api/publish/ssh-keys", json={"label": label, "privateKey": private})
    assert added.status_code == 201, added.text
    return str(added.json()["id"]), private, public


def make_dev(server: Server, keys: Path) -> Dev:
    """pia, her app `hello` with an AppImage 1.0.0, her publishing key and one no remote
    authorizes (both imported, so the test knows the private key it must never see)."""
    _, token = developer_with_app(server.settings, "pia", "hello")
    with server.client() as c:
        uploaded = direct_upload(c, token, "hello", "1.0.0", "hello.AppImage", APPIMAGE)
        assert uploaded.status_code == 201, uploaded.text
    key_id, private, public = import_key(server, token, keys / "pia", "publish")
    other_id, _, _ = import_key(server, token, keys / "stranger", "not authorized")
    return Dev("pia", token, key_id, private, public, other_id)


def publish(server: Server, dev: Dev, remote: str, **extra: Any) -> str:
    body = {"app": "hello", "remote": remote, "sshKeyId": dev.key_id, **extra}
    with server.client(**dev.auth) as c:
        answer = c.post("/api/publish/publish", json=body)
    assert answer.status_code == 202, answer.text
    document = answer.json()
    assert document["status"] == "queued"
    assert document["statusUrl"].endswith(f"/api/publish/status/{document['runId']}")
    return str(document["runId"])


def status(server: Server, dev: Dev, run_id: str) -> dict[str, Any]:
    with server.client(**dev.auth) as c:
        answer = c.get(f"/api/publish/status/{run_id}")
    assert answer.status_code == 200, answer.text
    document: dict[str, Any] = answer.json()
    return document


def until(server: Server, dev: Dev, run_id: str, wanted: tuple[str, ...] = ENDED) -> dict[str, Any]:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        document = status(server, dev, run_id)
        if document["status"] in wanted:
            return document
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} never reached {wanted}: {document}")


def git(bare: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "--git-dir", str(bare), *args], capture_output=True, text=True, check=False
    )
    return done.stdout


def commits(bare: Path) -> list[str]:
    return git(bare, "log", "--all", "--format=%H").split()


def assert_no_secret(dev: Dev, document: dict[str, Any]) -> None:
    text = str(document)
    body = [ln for ln in dev.private_key.splitlines() if ln and not ln.startswith("-----")]
    assert not any(line in text for line in body), "a line of the private key was answered"
    assert "PRIVATE KEY" not in text
    assert "/publish-runs/" not in text, "the key file's directory was answered"
    assert "/key" not in text.replace("/api/publish/ssh-keys", ""), "a key file's path"


def no_workdirs_left(server: Server) -> bool:
    """No attempt's directory (with its key file) is left in the data directory."""
    return not any(workdirs(server.settings.data).glob(f"{PREFIX}*"))


def generated(server: Server, dev: Dev, **options: Any) -> dict[str, str]:
    with server.client(**dev.auth) as c:
        body = {"app": "hello", "version": "1.0.0", **options}
        answer = c.post("/api/publish/generate", json=body)
    assert answer.status_code == 200, answer.text
    files: dict[str, str] = answer.json()["files"]
    return files
