"""The issue's "done when", for real: a builds.sr.ht manifest (debian/bookworm, packages,
sources, three tasks, an artifact, a webhook trigger) submitted over HTTP is run by
`hutch runner` (a real process: debootstrap's image, bubblewrap, git over the git protocol
from a real `git daemon`) to success, its logs and artifact readable through the API and the
webhook delivered; a failing task fails the job cleanly, the tasks after it skipped."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.admin import hutch
from tests.support.receivers import HttpReceiver, http_receiver
from tests.support.runner_jobs import image_settings, need_runner_tools, prepared, wait_until_gone
from tests.support.servers import Server, free_port, serve_in_thread
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_DIR = "/run/hutch-runner-e2e"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    need_runner_tools("git")
    prepared(["jq"])  # the image and its packages' layer, built once and cached
    yield from serve_in_thread(
        tmp_path_factory.mktemp("e2e") / "data",
        HUTCH_WEBHOOK_ALLOW_NETWORKS="127.0.0.0/8",
        HUTCH_JOB_LEASE="3",
    )


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A git repository served by `git daemon` on 127.0.0.1: its git:// URL."""
    base = tmp_path_factory.mktemp("git")
    work = base / "work"
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.org",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.org",
    }

    def git(*args: str, cwd: Path = work) -> None:
        subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)

    work.mkdir()
    git("init", "-q", "-b", "main")
    (work / "greeting.txt").write_text("hello from the repository\n")
    (work / "build.sh").write_text(
        "#!/bin/sh\nmkdir -p out && jq -n '{\"built\": true}' > out/app.json\n"
    )
    git("add", ".")
    git("commit", "-q", "-m", "first")
    git("clone", "-q", "--bare", str(work), str(base / "project.git"), cwd=base)
    port = free_port()
    daemon = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            "--export-all",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        eventually(lambda: _listening(port), timeout_s=10)
        yield f"git://127.0.0.1:{port}/project.git"
    finally:
        daemon.terminate()
        daemon.wait(10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as found:
        yield found


@pytest.fixture(scope="module")
def accounts(server: Server) -> tuple[str, str]:
    """(a developer's token with the jobs scopes, a provisioner's token)."""
    assert hutch(server.settings, "developer", "create", "rita")[0] == 0
    code, token = hutch(
        server.settings,
        "token",
        "create",
        "--developer",
        "rita",
        "--scopes",
        "jobs:read,jobs:write",
    )
    assert code == 0, token
    code, prov = hutch(server.settings, "provisioner", "create", "e2e-host")
    assert code == 0, prov
    return str(token["token"]), str(prov["token"])


def manifest(repo: str, hook: str, middle: str) -> str:
    return f"""\
image: debian/bookworm
packages:
  - jq
sources:
  - {repo}
environment:
  GREETING: hello
artifacts:
  - project/out/app.json
tasks:
  - show: |
      cat project/greeting.txt
      echo "$GREETING from $JOB_ID"
  - build: |
      {middle}
  - check: |
      jq -r .built project/out/app.json
triggers:
  - action: webhook
    condition: always
    url: {hook}
"""


def runner_argv(server: Server, provisioner: str, tmp: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "hutch",
        "runner",
        "--server",
        server.url,
        "--token",
        provisioner,
        "--images",
        str(image_settings().cache_dir),
        "--work-dir",
        str(tmp / "disks"),
        "--run-dir",
        RUN_DIR,
        "--workspace-gib",
        "0.125",
        "--vcpus",
        "2",
        "--host",
        "e2e-host",
    ]


def run_runner(server: Server, provisioner: str, tmp: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*runner_argv(server, provisioner, tmp), "--once"],
        capture_output=True,
        timeout=900,
        env={**os.environ, "HUTCH_DATA": str(tmp / "runner-data")},
    )
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    result: dict[str, Any] = orjson.loads(done.stdout.splitlines()[-1])
    return result


def submit(server: Server, token: str, text: str) -> int:
    with server.client(Authorization=f"Bearer {token}") as c:
        answer = c.post("/api/jobs", json={"manifest": text, "tags": ["e2e"], "note": "end to end"})
    assert answer.status_code == 201, answer.text
    return int(answer.json()["id"])


def text(c: httpx.Client, url: str) -> str:
    answer = c.get(url)
    assert answer.status_code == 200, answer.text
    return answer.text


def test_a_manifest_runs_to_success_with_logs_artifact_and_webhook(
    server: Server, repo: str, receiver: HttpReceiver, accounts: tuple[str, str], tmp_path: Path
) -> None:
    token, prov = accounts
    number = submit(
        server, token, manifest(repo, f"{receiver.url}/done", "cd project && sh build.sh")
    )
    result = run_runner(server, prov, tmp_path)
    assert result["job"] == number
    assert result["status"] == "success", result
    with server.client(Authorization=f"Bearer {token}") as c:
        job = c.get(f"/api/jobs/{number}").json()
        assert job["status"] == "success"
        assert [(t["name"], t["status"]) for t in job["tasks"]] == [
            ("show", "success"),
            ("build", "success"),
            ("check", "success"),
        ]
        setup = eventually(lambda: (t := text(c, job["setup_log"])) and "Cloning" in t and t)
        assert "project" in setup
        shown = eventually(
            lambda: (t := text(c, job["tasks"][0]["log"])) and "from" in t and t, timeout_s=10
        )
        assert "hello from the repository" in shown
        assert f"hello from {number}" in shown
        checked = eventually(lambda: (t := text(c, job["tasks"][2]["log"])) and "true" in t and t)
        assert "true" in checked.splitlines()
        (artifact,) = job["artifacts"]
        assert artifact["path"] == "project/out/app.json"
        body = httpx.get(artifact["url"], follow_redirects=True, timeout=30)
        assert body.status_code == 200
        assert orjson.loads(body.content) == {"built": True}
    hooks = eventually(lambda: receiver.to("/done"), timeout_s=20)
    delivered = orjson.loads(hooks[0].body)
    assert (delivered["id"], delivered["status"]) == (number, "success")


def test_a_failing_task_fails_the_job_and_skips_the_rest(
    server: Server, repo: str, receiver: HttpReceiver, accounts: tuple[str, str], tmp_path: Path
) -> None:
    token, prov = accounts
    number = submit(server, token, manifest(repo, f"{receiver.url}/failed", "echo breaking; false"))
    result = run_runner(server, prov, tmp_path)
    assert (result["job"], result["status"]) == (number, "failed")
    with server.client(Authorization=f"Bearer {token}") as c:
        job = c.get(f"/api/jobs/{number}").json()
        assert job["status"] == "failed"
        assert [(t["name"], t["status"]) for t in job["tasks"]] == [
            ("show", "success"),
            ("build", "failed"),
            ("check", "skipped"),
        ]
        assert job["artifacts"] == []
        log = eventually(lambda: (t := text(c, job["tasks"][1]["log"])) and "breaking" in t and t)
        assert "+ false" in log
    hooks = eventually(lambda: receiver.to("/failed"), timeout_s=20)
    assert orjson.loads(hooks[0].body)["status"] == "failed"


def test_an_image_this_runner_does_not_offer_fails_at_setup(
    server: Server, accounts: tuple[str, str], tmp_path: Path
) -> None:
    token, prov = accounts
    number = submit(server, token, "image: alpine/edge\ntasks:\n  - one: echo never\n")
    result = run_runner(server, prov, tmp_path)
    assert (result["job"], result["status"]) == (number, "failed")
    with server.client(Authorization=f"Bearer {token}") as c:
        job = c.get(f"/api/jobs/{number}").json()
        assert [(t["name"], t["status"]) for t in job["tasks"]] == [("one", "skipped")]
        setup = eventually(lambda: (t := text(c, job["setup_log"])) and "offers" in t and t)
        assert "debian/bookworm" in setup


def start_runner(server: Server, provisioner: str, tmp: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [*runner_argv(server, provisioner, tmp), "--poll", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "HUTCH_DATA": str(tmp / "runner-data")},
    )


def task_status(c: httpx.Client, number: int, index: int) -> str:
    return str(c.get(f"/api/jobs/{number}").json()["tasks"][index]["status"])


def test_a_cancelled_job_stops_its_task_promptly(
    server: Server, accounts: tuple[str, str], tmp_path: Path
) -> None:
    token, prov = accounts
    number = submit(server, token, "image: debian/bookworm\ntasks:\n  - wait: sleep 600\n")
    runner = start_runner(server, prov, tmp_path)
    try:
        with server.client(Authorization=f"Bearer {token}") as c:
            eventually(lambda: task_status(c, number, 0) == "running", timeout_s=60)
            assert c.post(f"/api/jobs/{number}/cancel").status_code == 200
            job = eventually(
                lambda: (j := c.get(f"/api/jobs/{number}").json())["status"] == "cancelled" and j,
                timeout_s=30,
            )
        assert [t["status"] for t in job["tasks"]] == ["failed"]
    finally:
        runner.terminate()
        runner.wait(30)


def test_a_runner_killed_mid_job_loses_it_to_the_next(
    server: Server, accounts: tuple[str, str], tmp_path: Path
) -> None:
    token, prov = accounts
    marker = "hutch-e2e-killed"
    script = f"(exec -a {marker} sleep 3)\necho survived\n"
    number = submit(server, token, f"image: debian/bookworm\ntasks:\n  - slow: |\n{indent(script)}")
    first = start_runner(server, prov, tmp_path)
    with server.client(Authorization=f"Bearer {token}") as c:
        eventually(lambda: task_status(c, number, 0) == "running", timeout_s=60)
        first.kill()  # SIGKILL: no report, no cleanup; bubblewrap dies with its parent
        first.wait(10)
        assert wait_until_gone(marker, within_s=5) == []
        # the lease (3 s here) lapses; the next runner sweeps the leftovers and gets the job
        second = start_runner(server, prov, tmp_path)
        try:
            job = eventually(
                lambda: (j := c.get(f"/api/jobs/{number}").json())["status"] == "success" and j,
                timeout_s=90,
            )
        finally:
            second.terminate()
            second.wait(30)
        assert job["tasks"][0]["status"] == "success"
        log = text(c, job["tasks"][0]["log"])
        assert "survived" in log


def indent(script: str) -> str:
    return "".join(f"      {line}\n" for line in script.splitlines())


def test_a_jobs_secrets_are_in_place_and_only_when_it_asks(
    server: Server, accounts: tuple[str, str], tmp_path: Path
) -> None:
    token, prov = accounts
    code, full = hutch(server.settings, "token", "create", "--developer", "rita", "--name", "s")
    assert code == 0, full
    content = "machine git.example.org login rita password s3cr3t-e2e\n"
    with server.client(Authorization=f"Bearer {full['token']}") as c:
        added = c.post(
            "/api/secrets",
            json={
                "name": "netrc",
                "type": "file",
                "path": "~/.netrc",
                "mode": "0600",
                "data": base64.b64encode(content.encode()).decode(),
            },
        )
    assert added.status_code == 201, added.text
    secret = added.json()["id"]
    script = "stat -c '%a %U' ~/.netrc\nsha256sum ~/.netrc\n"
    text_ = f"image: debian/bookworm\nsecrets:\n  - {secret}\ntasks:\n  - use: |\n{indent(script)}"
    with_secrets = submit(server, token, text_)
    assert run_runner(server, prov, tmp_path)["status"] == "success"
    with server.client(Authorization=f"Bearer {token}") as c:
        job = c.get(f"/api/jobs/{with_secrets}").json()
        log = eventually(lambda: (t := text(c, job["tasks"][0]["log"])) and "600" in t and t)
        assert "600 build" in log
        assert hashlib.sha256(content.encode()).hexdigest() in log
        assert "s3cr3t" not in log
        # the same manifest with secrets: false gets none (the task fails: no ~/.netrc)
        answer = c.post("/api/jobs", json={"manifest": text_, "secrets": False})
        assert answer.status_code == 201, answer.text
        without = answer.json()["id"]
    assert run_runner(server, prov, tmp_path)["status"] == "failed"
    with server.client(Authorization=f"Bearer {token}") as c:
        job = c.get(f"/api/jobs/{without}").json()
        log = eventually(lambda: (t := text(c, job["tasks"][0]["log"])) and "stat" in t and t)
        assert "No such file" in log


def test_package_repositories_are_refused_at_setup_and_shell_is_said_ignored(
    server: Server, accounts: tuple[str, str], tmp_path: Path
) -> None:
    token, prov = accounts
    manifest_ = (
        "image: debian/bookworm\nshell: true\n"
        "repositories:\n  extra: http://deb.example.org/debian bookworm main\n"
        "tasks:\n  - one: echo never\n"
    )
    number = submit(server, token, manifest_)
    assert run_runner(server, prov, tmp_path)["status"] == "failed"
    with server.client(Authorization=f"Bearer {token}") as c:
        job = c.get(f"/api/jobs/{number}").json()
        assert [t["status"] for t in job["tasks"]] == ["skipped"]
        setup = eventually(lambda: (t := text(c, job["setup_log"])) and "repositor" in t and t)
    assert "adds no package repositories (repositories: extra)" in setup
    assert "shell: true is ignored" in setup
