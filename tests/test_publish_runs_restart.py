"""A publish run across a restart: the server stops while the run's push is in the remote's
post-receive hook (the branch has moved, the run's outcome was never recorded), and a new
server on the same data resumes it without pushing again. Its own module: it serves twice in
this process, and chDB holds one data directory per process, so no other server may be up."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import pytest

from ingest.publish.runs_git import PREFIX, workdirs
from tests.support.publishing import (
    assert_no_secret,
    commits,
    make_dev,
    no_workdirs_left,
    publish,
    status,
    until,
)
from tests.support.servers import serve_in_thread
from tests.support.sshd import running_sshd

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_runner_stopped_mid_push_resumes_without_pushing_again(tmp_path: Path) -> None:
    """The server stops while the push is in the remote's post-receive hook (the branch
    already moved; the run's outcome never recorded); a new server on the same data resumes
    the run: it finds its commit on the branch, skips the push, and succeeds."""
    data = tmp_path / "data"
    env = {"HUTCH_BUILDER_ALLOW_NETWORKS": "127.0.0.0/8", "HUTCH_PUBLISH_RETRY_DELAY": "1"}
    serving = contextlib.contextmanager(serve_in_thread)
    with running_sshd(tmp_path / "sshd") as sshd:
        with contextlib.ExitStack() as first:
            server = first.enter_context(serving(data, **env))
            dev = make_dev(server, tmp_path)
            # The same stores for the second server (on production backends too).
            same = {"HUTCH_LOG": server.settings.log_url, "HUTCH_DB": server.settings.db_url}
            sshd.authorize(dev.public_key)
            bare = sshd.bare_repository("stopped.git")
            pushed = tmp_path / "pushed"
            hook = bare / "hooks" / "post-receive"
            hook.write_text(f"#!/bin/sh\ntouch {pushed}\nsleep 30\n")
            hook.chmod(0o755)
            run_id = publish(server, dev, sshd.remote(bare))
            deadline = time.monotonic() + 60
            while not pushed.exists():
                assert time.monotonic() < deadline, status(server, dev, run_id)
                time.sleep(0.1)
        # The server stopped mid-push: its git was killed, the branch had moved already.
        assert len(commits(bare)) == 1
        hook.unlink()
        # What a killed process would leave: its attempt's directory, with the key file.
        stale = workdirs(data) / f"{PREFIX}killed"
        stale.mkdir(parents=True, exist_ok=True)
        (stale / "key").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        with serving(data, **env, **same) as server:
            done = until(server, dev, run_id)
            assert no_workdirs_left(server), "an attempt's directory (its key file) was left"
    assert done["status"] == "succeeded", done
    assert done["attempt"] == 2, done
    assert commits(bare) == [done["commit"]], "the run pushed a second commit"
    assert done["message"].startswith("already published by an earlier attempt"), done
    resumed = [(s["name"], s["status"]) for s in done["steps"] if s["attempt"] == 2]
    assert resumed[-1] == ("push", "skipped"), resumed
    assert_no_secret(dev, done)
