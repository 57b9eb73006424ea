"""A job's `sources`: each git URL cloned into the build user's home, in a directory named
after the repository, and checked out at its `#ref` when it has one, as builds.sr.ht does.

git runs inside the job's sandbox (the image's git, the job's network, its ~/.ssh from
secret_files.py, as the build user), never on the host with the runner's rights; its output is
the setup log's. The server's manifest parser decides which URLs a user may give (it refuses
file://); this library clones what its caller hands it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from runner.process import CancelFlag, LineSink, say
from runner.sandbox import SandboxLimits, base_environment, run_in_sandbox
from runner.workspace import JobFilesystem

REF = re.compile(r"^[^-~^:?*\[\\\s][^~^:?*\[\\\s]*$")
SCP_LIKE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:(?!-)(.+)$")
CONTROL = re.compile(r"[\x00-\x20\x7f]")


@dataclass(frozen=True, slots=True)
class GitSource:
    url: str
    ref: str | None
    directory: str

    @property
    def shown(self) -> str:
        """The URL for logs, without a password it may carry."""
        parts = urlsplit(self.url)
        if parts.password is None:
            return self.url
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


class SourceError(Exception):
    """A source cannot be cloned; the message is for the setup log."""


def parse_source(text: str) -> GitSource:
    """`url[#ref]` (builds.sr.ht also writes `git+https://`) -> what to clone where."""
    if CONTROL.search(text):
        raise SourceError(f"{text!r}: a source URL has no spaces or control characters")
    url, hashed, ref = text.partition("#")
    if url.startswith("git+"):
        url = url[4:]
    elif re.match(r"^[a-z]+\+", url):
        raise SourceError(f"{text!r}: only git sources are supported")
    if hashed and (not REF.match(ref) or ".." in ref):
        raise SourceError(f"{text!r}: {ref!r} is not a git ref")
    if url.startswith("-"):
        raise SourceError(f"{text!r} is not a URL")
    scp = SCP_LIKE.match(url)
    path = scp.group(1) if scp else urlsplit(url).path
    directory = path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    if directory in ("", ".", "..") or directory.startswith("-"):
        raise SourceError(f"{text!r}: the URL must end with the repository's name")
    return GitSource(url, ref if hashed else None, directory)


async def clone_sources(
    fs: JobFilesystem,
    sources: Sequence[str],
    *,
    on_line: LineSink,
    timeout_s: float = 600.0,
    cancel: CancelFlag | None = None,
    limits: SandboxLimits | None = None,
) -> list[GitSource]:
    """Clone each source (`timeout_s` for each clone and checkout); what was cloned where.
    Raises SourceError on the first that fails, saying why."""
    parsed = [parse_source(text) for text in sources]
    seen: dict[str, str] = {}
    for source in parsed:
        if source.directory in seen:
            raise SourceError(
                f"{source.shown} and {seen[source.directory]} would both be cloned into "
                f"~/{source.directory}"
            )
        seen[source.directory] = source.shown
    env = base_environment() | {"GIT_TERMINAL_PROMPT": "0"}
    for source in parsed:
        at = f" at {source.ref}" if source.ref else ""
        say(on_line, f"Cloning {source.shown}{at} into ~/{source.directory}")
        steps = [["git", "clone", "--recursive", "--", source.url, source.directory]]
        if source.ref:
            steps.append(["git", "-C", source.directory, "checkout", "-q", source.ref, "--"])
        for argv in steps:
            done = await run_in_sandbox(
                fs,
                argv,
                env=env,
                on_line=on_line,
                timeout_s=timeout_s,
                cancel=cancel,
                limits=limits,
            )
            if done.ok:
                continue
            what = "clone" if argv[1] == "clone" else f"checkout of {source.ref}"
            if done.outcome == "timeout":
                raise SourceError(f"{what} of {source.shown} timed out after {timeout_s:.0f} s")
            if done.outcome == "cancelled":
                raise SourceError(f"{what} of {source.shown} was cancelled")
            hint = " (a private repository needs an SSH key secret)" if what == "clone" else ""
            raise SourceError(
                f"{what} of {source.shown} failed (exit status {done.exit_code}){hint}"
            )
    return parsed
