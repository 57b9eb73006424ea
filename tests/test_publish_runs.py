"""Publish runs over real SSH: POST /api/publish/publish and GET /api/publish/status/{runId}
against a real sshd (tests/support/sshd.py) serving local bare repositories through
git-shell, with a key imported through POST /api/publish/ssh-keys.

Each behaviour a user sees: the PKGBUILD and .SRCINFO committed by the developer with the
run's id, host keys trusted on first use and a changed one refused naming both fingerprints,
a refused key and a rejected push failing at once with the remote's words, a remote that is
down retried until it is up (one commit), a run never pushing twice, and no secret (the
private key, the key file's path) in any answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hutch.runtime import Runtime
from ingest.publish.runs_attempt import attempt
from ingest.publish.runs_worker import RunRecorder
from state.publish.reads import run_by_id
from tests.support.admin import developer_with_app, log_ends
from tests.support.publishing import (
    ENDED,
    Dev,
    assert_no_secret,
    commits,
    generated,
    git,
    make_dev,
    no_workdirs_left,
    publish,
    status,
    until,
)
from tests.support.servers import Server, serve_in_thread
from tests.support.sshd import Sshd, fingerprint, keygen, running_sshd

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_in_thread(
        tmp_path_factory.mktemp("publish") / "data",
        HUTCH_BUILDER_ALLOW_NETWORKS="127.0.0.0/8",
        HUTCH_PUBLISH_RETRY_DELAY="2",
    )


@pytest.fixture(scope="module")
def dev(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Dev:
    return make_dev(server, tmp_path_factory.mktemp("keys"))


@pytest.fixture
def sshd(tmp_path: Path, dev: Dev) -> Iterator[Sshd]:
    with running_sshd(tmp_path / "sshd") as server:
        server.authorize(dev.public_key)
        yield server


def test_publish_commits_the_files_and_trusts_the_host_on_first_use(
    server: Server, dev: Dev, sshd: Sshd
) -> None:
    bare = sshd.bare_repository("hello-bin.git")
    run_id = publish(server, dev, sshd.remote(bare))
    done = until(server, dev, run_id)
    assert done["status"] == "succeeded", done
    assert (done["attempt"], done["version"], done["branch"]) == (1, "1.0.0", "master")
    assert [s["name"] for s in done["steps"]] == [
        "prepare", "known-hosts", "clone", "commit", "push",
    ]  # fmt: skip
    assert all(s["status"] == "succeeded" for s in done["steps"]), done["steps"]
    assert sshd.host_fingerprint in done["steps"][1]["log"]
    assert_no_secret(dev, done)
    assert no_workdirs_left(server)
    # The bare repository has one commit, the run's, by the developer, with both files.
    assert commits(bare) == [done["commit"]]
    head = git(bare, "show", "-s", "--format=%an <%ae>%n%B", "master")
    assert head.startswith("pia <pia@127.0.0.1>\nhello 1.0.0\n"), head
    assert f"Hutch-Publish-Run: {run_id}" in head
    assert git(bare, "ls-tree", "--name-only", "master").split() == [".SRCINFO", "PKGBUILD"]
    files = generated(server, dev)
    assert git(bare, "show", "master:PKGBUILD") == files["PKGBUILD"]
    assert git(bare, "show", "master:.SRCINFO") == files[".SRCINFO"]

    # Again with the same files: nothing to publish, the same head, no new commit.
    again = until(server, dev, publish(server, dev, sshd.remote(bare)))
    assert again["status"] == "succeeded", again["error"]
    assert again["message"].startswith("nothing to publish"), again
    assert again["attempt"] == 1, again["steps"]
    assert again["commit"] == done["commit"]
    assert commits(bare) == [done["commit"]]


PACKAGE = {
    "maintainer": "Pia Example <pia@example.org>",
    "license": "mit",
    "description": "Says hello",
    "url": "https://github.com/pia/hello",
}


def test_a_run_publishes_the_package_as_generate_previews_it(
    server: Server, dev: Dev, sshd: Sshd
) -> None:
    bare = sshd.bare_repository("hello-options.git")
    done = until(server, dev, publish(server, dev, sshd.remote(bare), **PACKAGE))
    assert done["status"] == "succeeded", done
    previewed = generated(server, dev, **PACKAGE)
    pkgbuild = git(bare, "show", "master:PKGBUILD")
    assert pkgbuild == previewed["PKGBUILD"]
    assert pkgbuild.startswith("# Maintainer: Pia Example <pia@example.org>\n")
    assert "license=('MIT')" in pkgbuild
    assert git(bare, "show", "master:.SRCINFO") == previewed[".SRCINFO"]
    # An option generate refuses is refused when asked, and no run is made.
    with server.client(**dev.auth) as c:
        bad = c.post(
            "/api/publish/publish",
            json={"app": "hello", "remote": sshd.remote(bare), "sshKeyId": dev.key_id,
                  "license": "not a licence ("},
        )  # fmt: skip
    assert bad.status_code == 422, bad.text
    assert bad.json()["error"]["field"] == "license"
    assert commits(bare) == [done["commit"]]


def test_a_remote_that_refuses_the_key_fails_at_once(server: Server, dev: Dev, sshd: Sshd) -> None:
    bare = sshd.bare_repository("refused.git")
    body = {"sshKeyId": dev.other_key_id}
    done = until(server, dev, publish(server, dev, sshd.remote(bare), **body))
    assert done["status"] == "failed", done
    assert done["attempt"] == 1, "a refused key is not retried"
    assert "refused the SSH key" in done["error"], done["error"]
    assert "Permission denied (publickey)" in done["error"]
    assert [s["status"] for s in done["steps"]][-1] == "failed"
    assert_no_secret(dev, done)
    assert commits(bare) == []


def test_a_changed_host_key_fails_naming_both_fingerprints(
    server: Server, dev: Dev, sshd: Sshd
) -> None:
    bare = sshd.bare_repository("moved.git")
    first = until(server, dev, publish(server, dev, sshd.remote(bare)))
    assert first["status"] == "succeeded", first
    trusted = sshd.host_fingerprint
    sshd.new_host_key()
    sshd.restart()
    assert sshd.host_fingerprint != trusted
    done = until(server, dev, publish(server, dev, sshd.remote(bare), branch="other"))
    assert done["status"] == "failed", done
    assert done["attempt"] == 1, "a changed host key is not retried"
    assert f"expected {trusted}, presented {sshd.host_fingerprint}" in done["error"], done
    assert_no_secret(dev, done)
    assert git(bare, "for-each-ref", "--format=%(refname)").split() == ["refs/heads/master"]
    # The new key given as knownHosts is used as given.
    fixed = publish(
        server, dev, sshd.remote(bare), branch="other", knownHosts=sshd.known_hosts_line
    )
    assert until(server, dev, fixed)["status"] == "succeeded"


def test_a_push_the_remote_rejects_fails_with_its_message(
    server: Server, dev: Dev, sshd: Sshd
) -> None:
    bare = sshd.bare_repository("closed.git")
    hook = bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'pushes to this package are closed today' >&2\nexit 1\n")
    hook.chmod(0o755)
    done = until(server, dev, publish(server, dev, sshd.remote(bare)))
    assert done["status"] == "failed", done
    assert done["attempt"] == 1
    assert "rejected the push" in done["error"], done["error"]
    assert "pushes to this package are closed today" in done["error"]
    push = done["steps"][-1]
    assert (push["name"], push["status"]) == ("push", "failed")
    assert "pushes to this package are closed today" in push["log"]
    assert_no_secret(dev, done)
    assert commits(bare) == []


def test_a_remote_that_is_down_is_retried_until_it_is_up(
    server: Server, dev: Dev, tmp_path: Path
) -> None:
    with running_sshd(tmp_path / "later", start=False) as sshd:
        sshd.authorize(dev.public_key)
        bare = sshd.bare_repository("later.git")
        run_id = publish(server, dev, sshd.remote(bare), knownHosts=sshd.known_hosts_line)
        waiting = until(server, dev, run_id, ("retrying", *ENDED))
        assert waiting["status"] == "retrying", waiting
        assert "connection refused" in waiting["error"], waiting
        sshd.start()
        done = until(server, dev, run_id)
        assert done["status"] == "succeeded", done
        assert done["attempt"] >= 2
        assert [s["status"] for s in done["steps"] if s["attempt"] == 1][-1] == "failed"
        assert commits(bare) == [done["commit"]]
        assert_no_secret(dev, done)


def test_a_run_never_pushes_twice(server: Server, dev: Dev, sshd: Sshd) -> None:
    """A consumer restarted after the push but before `publish.finished.v1` landed runs the
    run's next attempt: it finds its commit on the branch and does not push again."""
    bare = sshd.bare_repository("once.git")
    run_id = publish(server, dev, sshd.remote(bare))
    done = until(server, dev, run_id)
    assert done["status"] == "succeeded", done

    async def restarted_attempt() -> str | None:
        runtime = Runtime(server.settings)
        await runtime.start()
        try:
            ctx = runtime.command_context
            stored = run_by_id(ctx.db, run_id)
            assert stored is not None
            crashed = dataclasses.replace(stored, status="running")
            outcome = await attempt(ctx, crashed, RunRecorder(ctx, crashed, stored.attempt + 1))
            return outcome.commit
        finally:
            await runtime.close()

    assert asyncio.run(restarted_attempt()) == done["commit"]
    assert commits(bare) == [done["commit"]], "the run pushed a second commit"
    after = status(server, dev, run_id)
    skipped = [s for s in after["steps"] if s["attempt"] == 2]
    assert [(s["name"], s["status"]) for s in skipped][-1] == ("push", "skipped"), skipped


def test_another_developers_run_and_key_are_not_found(server: Server, dev: Dev, sshd: Sshd) -> None:
    run_id = publish(server, dev, sshd.remote(sshd.bare_repository("mine.git")))
    _, token = developer_with_app(server.settings, "quin", "quin-app")
    with server.client(Authorization=f"Bearer {token}") as c:
        own = c.post("/api/publish/ssh-keys", json={"label": "quin", "generate": True})
        assert own.status_code == 201, own.text
        theirs = c.get(f"/api/publish/status/{run_id}")
        missing = c.get("/api/publish/status/no-such-run")
        remote = "git@127.0.0.1:x.git"
        her_key = c.post(
            "/api/publish/publish",
            json={"app": "quin-app", "remote": remote, "sshKeyId": dev.key_id},
        )
        her_app = c.post(
            "/api/publish/publish",
            json={"app": "hello", "remote": remote, "sshKeyId": own.json()["id"]},
        )
    assert (theirs.status_code, missing.status_code) == (404, 404), theirs.text
    assert theirs.json()["error"]["code"] == missing.json()["error"]["code"] == "no_run"
    assert her_key.status_code == 404, her_key.text
    assert her_app.status_code in (403, 404), her_app.text
    until(server, dev, run_id)


BAD: list[tuple[dict[str, Any], int, str]] = [
    ({"app": 5}, 400, "app"),
    ({"remote": None}, 400, "remote"),
    ({"files": "PKGBUILD"}, 400, "files"),
    ({"remote": "https://example.com/x.git"}, 422, "remote"),
    ({"remote": "example.com:x.git"}, 422, "remote"),
    ({"remote": "git@10.0.0.1:x.git"}, 422, "remote"),
    ({"remote": "git@-oProxyCommand=x:y.git"}, 422, "remote"),
    ({"remote": "ssh://git@127.0.0.1/x.git --upload-pack=x"}, 422, "remote"),
    ({"sshKeyId": 7}, 400, "sshKeyId"),
    ({"sshKeyId": "no-such-key"}, 404, "sshKeyId"),
    ({"branch": "../x"}, 422, "branch"),
    ({"branch": "-x"}, 422, "branch"),
    ({"files": ["../etc/passwd"]}, 422, "files"),
    ({"files": []}, 422, "files"),
    ({"files": [{"a": 1}, {"a": 1}]}, 422, "files"),
    ({"knownHosts": "not a key"}, 422, "knownHosts"),
    ({"knownHosts": 3}, 400, "knownHosts"),
    ({"version": "9.9.9"}, 404, ""),
]


@pytest.mark.parametrize(("change", "code", "field"), BAD)
def test_bad_requests_are_refused_and_record_nothing(
    server: Server, dev: Dev, change: dict[str, Any], code: int, field: str
) -> None:
    body = {"app": "hello", "remote": "git@127.0.0.1:x.git", "sshKeyId": dev.key_id, **change}
    before = log_ends(server.settings, "publish")
    with server.client(**dev.auth) as c:
        answer = c.post("/api/publish/publish", json=body)
    assert answer.status_code == code, answer.text
    error = answer.json()["error"]
    assert error["message"]
    if field:
        assert error.get("field") == field, error
    assert log_ends(server.settings, "publish") == before, "a refused request recorded a run"


def test_anonymous_callers_are_refused(server: Server, dev: Dev) -> None:
    with server.client() as c:
        anonymous = c.post("/api/publish/publish", json={})
        status_ = c.get("/api/publish/status/x")
    assert (anonymous.status_code, status_.status_code) == (401, 401)
    assert anonymous.json()["error"]["code"]


def test_the_remote_fingerprint_helper_matches_ssh_keygen(tmp_path: Path) -> None:
    public = keygen(tmp_path / "k")
    printed = subprocess.run(
        ["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True, check=True
    ).stdout.split()[1]
    assert fingerprint(public) == printed
