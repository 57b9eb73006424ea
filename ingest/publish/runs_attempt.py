"""One attempt at a publish run, step by step, each step recorded (`Recorder.step`) with its
log:

- `prepare`: the developer's SSH key (ingest/publish/ssh_keys.py), the build's generated files
  (ingest/publish/generate.py), the remote's host resolved and checked by the builder's address
  guard (HUTCH_BUILDER_ALLOW_NETWORKS);
- `known-hosts`: the request's `knownHosts` as given, else the keys stored for this developer's
  host on first use, else `ssh-keyscan` now, stored (`publish.host_key_stored.v1`) and used;
- `clone`: the branch fetched (a shallow history); if a commit in it names this run, an
  earlier attempt pushed it (and its outcome was lost): the run succeeds without pushing again;
- `commit`: the files written and committed by the developer; none changed: nothing to publish;
- `push`: to the branch, fast-forward only.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from base.client_errors import HutchError
from base.git_remote import GitRemote, host_key_name, parse_remote
from base.net_guard import BlockedURL, FetchError, parse_allowed_networks, resolve_and_check
from ingest.publish.generate import GenerateOptions, generated_files
from ingest.publish.runs_git import (
    HostKeyChanged,
    PublishFailure,
    Workdir,
    classify,
    fingerprints,
    host_key_failed,
    presented_fingerprint,
    workdir,
    workdirs,
)
from ingest.publish.ssh_keys import open_ssh_key
from schemas.envelope import now_micros
from schemas.publish.runs import RUN_TRAILER, StepStatus
from state.command_context import CommandContext
from state.publish.reads import Run

T = TypeVar("T")
HISTORY_DEPTH = 50
"""Commits fetched: how far back a retry looks for the run's own commit."""
_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True, slots=True)
class Outcome:
    commit: str | None
    message: str


class Recorder(Protocol):
    async def step(self, name: str, status: StepStatus, started_at: int, log: str) -> None: ...

    async def trusted_keys(
        self, run: Run, remote: GitRemote, scan: Callable[[], Awaitable[str]]
    ) -> str:
        """The host keys stored for the run's developer and host, scanned and stored first
        if there are none ('' when the scan found none)."""
        ...


async def step(recorder: Recorder, name: str, body: Callable[[], Awaitable[tuple[T, str]]]) -> T:
    """Run one step and record it, its log or its failure's."""
    started = now_micros()
    try:
        value, log = await body()
    except PublishFailure as exc:
        await recorder.step(name, "failed", started, exc.log or exc.message)
        raise
    await recorder.step(name, "succeeded", started, log)
    return value


def _failure(w: Workdir, what: str, said: str, known: str) -> PublishFailure:
    if host_key_failed(said):
        expected = ", ".join(fingerprints(known)) or "none"
        presented = presented_fingerprint(said) or "unknown"
        return HostKeyChanged(
            f"the host key of {host_key_name(w.remote)} does not match the trusted one: "
            f"expected {expected}, presented {presented}. If the host's key really changed, "
            "publish with the new key in knownHosts",
            transient=False,
            log=said,
        )
    known_reason = classify(said)
    transient, reason = known_reason or (False, f"git {what} failed")
    lines = [ln.strip() for ln in said.splitlines() if ln.strip()]
    remote_lines = [ln for ln in lines if ln.startswith("remote:")]
    telling = [ln for ln in lines if classify(ln) is not None and not ln.startswith("remote:")]
    detail = "; ".join(remote_lines[-5:]) or (telling or lines or [""])[0]
    return PublishFailure(
        f"{reason}: {detail}" if detail else reason, transient=transient, log=said
    )


async def _checked(w: Workdir, what: str, known: str, *args: str) -> str:
    result = await w.git(*args)
    if result.code != 0:
        raise _failure(w, what, result.said, known)
    return result.out


async def attempt(ctx: CommandContext, run: Run, recorder: Recorder) -> Outcome:
    async def prepare() -> tuple[tuple[str, dict[str, str], GitRemote, str], str]:
        allowed = parse_allowed_networks(ctx.settings.builder_allow_networks)
        try:
            key = await open_ssh_key(ctx, run.developer, run.ssh_key_id)
            generated = await generated_files(
                ctx, run.developer, run.app, run.version, GenerateOptions.stored(run.options)
            )
            remote = parse_remote(run.remote, allowed)
            addresses = await resolve_and_check(remote.host, remote.port or 22, allowed)
        except HutchError as exc:
            raise PublishFailure(exc.message, transient=False) from None
        except BlockedURL as exc:
            raise PublishFailure(
                f"the remote's host may not be reached: {exc}", transient=False
            ) from None
        except FetchError as exc:
            raise PublishFailure(
                f"the remote's host cannot be resolved: {exc}", transient=True
            ) from None
        except ValueError as exc:
            raise PublishFailure(f"remote {exc}", transient=False) from None
        missing = [name for name in run.files if name not in generated.files]
        if missing:
            raise PublishFailure(
                f"version {run.version} of {run.app} has no {', '.join(missing)}", transient=False
            )
        files = {name: generated.files[name] for name in run.files}
        log = (
            f"SSH key {key.fingerprint} ({key.label}); {run.app} {run.version}: "
            f"{', '.join(files)}; {remote.host} is {addresses[0]}"
        )
        return (key.private_key, files, remote, str(addresses[0])), log

    private_key, files, remote, address = await step(recorder, "prepare", prepare)
    with workdir(workdirs(ctx.settings.data), private_key, remote, address) as w:
        known = await step(recorder, "known-hosts", lambda: _known_hosts(run, w, recorder))
        w.known_hosts.write_text(known)
        base, ours = await step(recorder, "clone", lambda: _clone(run, w, known))
        if ours is not None:
            await recorder.step("push", "skipped", now_micros(), f"{ours} is already there")
            return Outcome(ours, f"already published by an earlier attempt: {ours}")
        commit = await step(recorder, "commit", lambda: _commit(run, w, files, known))
        if commit is None:
            return Outcome(base, "nothing to publish: the files are already as generated")
        await step(recorder, "push", lambda: _push(run, w, known))
        return Outcome(commit, f"published {', '.join(files)} as {commit}")


async def _known_hosts(run: Run, w: Workdir, recorder: Recorder) -> tuple[str, str]:
    if run.known_hosts is not None:
        return run.known_hosts, "the request's knownHosts: " + ", ".join(
            fingerprints(run.known_hosts)
        )
    known = await recorder.trusted_keys(run, w.remote, w.keyscan)
    if not known:
        raise PublishFailure(
            f"no SSH server answered at {host_key_name(w.remote)} to read its host key",
            transient=True,
        )
    return known, "trusted host keys: " + ", ".join(fingerprints(known))


async def _clone(run: Run, w: Workdir, known: str) -> tuple[tuple[str | None, str | None], str]:
    init = await w.run(["git", "init", "-q", "-b", run.branch, str(w.repo)], 30)
    if init.code != 0:
        raise PublishFailure(f"git init failed: {init.said}", transient=False)
    await _checked(w, "remote add", known, "remote", "add", "origin", w.url)
    ref = f"refs/heads/{run.branch}"
    listed = await _checked(w, "ls-remote", known, "ls-remote", "origin", ref)
    head = listed.split("\t", 1)[0].strip() if listed.strip() else None
    if head is None or not _SHA.match(head):
        return (None, None), f"{run.branch} does not exist yet on the remote: it will be created"
    tracking = f"refs/remotes/origin/{run.branch}"
    await _checked(
        w, "fetch", known, "fetch", "-q", f"--depth={HISTORY_DEPTH}", "origin", f"{ref}:{tracking}"
    )
    await _checked(w, "checkout", known, "checkout", "-q", "-B", run.branch, tracking)
    mine = await _checked(
        w, "log", known, "log", "--format=%H", "--fixed-strings",
        f"--grep={RUN_TRAILER}: {run.id}", run.branch,
    )  # fmt: skip
    ours = mine.split()[0] if mine.split() else None
    return (head, ours), f"{run.branch} is at {head}"


async def _commit(
    run: Run, w: Workdir, files: dict[str, str], known: str
) -> tuple[str | None, str]:
    for name, text in files.items():
        (w.repo / name).write_text(text)
    await _checked(w, "add", known, "add", "--", *files)
    staged = await w.git("diff", "--cached", "--quiet")
    if staged.code == 0:
        return None, "the files are already as generated: nothing to commit"
    w.env.update(
        GIT_AUTHOR_NAME=run.author_name,
        GIT_AUTHOR_EMAIL=run.author_email,
        GIT_COMMITTER_NAME=run.author_name,
        GIT_COMMITTER_EMAIL=run.author_email,
    )
    message = (
        f"{run.app} {run.version}\n\nPublished by Hutch from version {run.version} of "
        f"{run.app}.\n\n{RUN_TRAILER}: {run.id}\n"
    )
    await _checked(w, "commit", known, "-c", "commit.gpgsign=false", "commit", "-q", "-m", message)
    commit = (await _checked(w, "rev-parse", known, "rev-parse", "HEAD")).strip()
    return commit, f"committed {', '.join(files)} as {commit} by {run.author_name}"


async def _push(run: Run, w: Workdir, known: str) -> tuple[None, str]:
    result = await w.git("push", "--porcelain", "origin", f"HEAD:refs/heads/{run.branch}")
    if result.code != 0:
        raise _failure(w, "push", result.said + "\n" + w.clean(result.out), known)
    return None, w.clean(result.said + "\n" + result.out)
