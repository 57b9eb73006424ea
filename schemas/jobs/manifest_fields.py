"""The values of a build manifest's keys, one reader each: from a YAML node (with its line) to
checked data, or a ManifestError naming the field.

Values that reach a shell, git, a package manager, a mail header or a file name are checked
here so that no manifest can pass an option or a line where a value belongs: environment names
are shell identifiers, packages and refs cannot start with `-`, repository names are file
names, e-mail fields hold no line breaks, sources are git URLs of the network kinds only.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import TypeAlias
from urllib.parse import SplitResult, urlsplit

from yaml.nodes import MappingNode, Node, SequenceNode

from schemas.jobs.manifest_yaml import (
    entries,
    fail,
    integer,
    items,
    join,
    line_of,
    plain_scalar,
    text,
)

EnvScalar: TypeAlias = str | int | float | bool
EnvValue: TypeAlias = EnvScalar | tuple[EnvScalar, ...]

TASK_NAME = re.compile(r"^[a-z0-9_-]+$")
MAX_TASK_NAME = 128
RESERVED_TASKS = frozenset({"setup"})
"""`setup` names the implicit first step (image, sources, secrets) and its log."""
IMAGE = re.compile(r"^[a-z0-9][a-z0-9._+-]*(/[a-z0-9][a-z0-9._+-]*)?$")
ARCH = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PACKAGE = re.compile(r"^[^\s\x00-\x1f\x7f-][^\s\x00-\x1f\x7f]*$")
REPOSITORY_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
CONTROL = re.compile(r"[\x00-\x1f\x7f\x85\u2028\u2029]")
SPACE_OR_CONTROL = re.compile(r"[\s\x00-\x1f\x7f]")
GLOB = re.compile(r"[*?\[\]]")
REF = re.compile(r"^[^-~^:?*\[\\][^~^:?*\[\\]*$")
SCP_LIKE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*@[A-Za-z0-9][A-Za-z0-9.-]*:(?!-)(.+)$")
SOURCE_SCHEMES = frozenset({"https", "http", "git", "ssh"})
DURATION = re.compile(r"^(?:(\d{1,5})h)?(?:(\d{1,7})m)?(?:(\d{1,9})s)?$")
MAX_VCPUS = 64
DEFAULT_TIMEOUT_S = 3600
MAX_TIMEOUT_S = 24 * 3600


@dataclass(frozen=True, slots=True)
class Task:
    name: str
    script: str
    """As written; the runner runs it with the job's shell."""


@dataclass(frozen=True, slots=True)
class Source:
    text: str
    """As written: `https://git.example.org/app#v1.2`."""
    url: str
    ref: str | None
    """What follows `#`: a branch, tag or commit to check out."""
    directory: str
    """Where it is cloned, under the build user's home: the URL's last part without `.git`."""


def matching(node: Node, path: str, pattern: re.Pattern[str], what: str) -> str:
    value = text(node, path)
    if not pattern.match(value):
        fail(node, path, f"expected {what}, found {value!r}")
    return value


def one_line(node: Node, path: str) -> str:
    value = text(node, path)
    if CONTROL.search(value):
        fail(node, path, "must be one line, without control characters")
    return value


def tasks(node: Node) -> tuple[Task, ...]:
    found: list[Task] = []
    first_line: dict[str, int | None] = {}
    for i, item in enumerate(items(node, "tasks")):
        at = f"tasks[{i}]"
        pairs = entries(item, at) if isinstance(item, MappingNode) else {}
        if len(pairs) != 1:
            fail(item, at, "a task is one `name: script` pair, e.g. `- build: make`")
        [(name, (key, script))] = pairs.items()
        if not TASK_NAME.match(name) or len(name) > MAX_TASK_NAME:
            fail(key, at, f"task names must match {TASK_NAME.pattern} (at most 128 characters)")
        if name in RESERVED_TASKS:
            fail(key, at, f"{name!r} is reserved for the job's setup step")
        if name in first_line:
            fail(key, at, f"duplicate task name {name!r} (first on line {first_line[name]})")
        first_line[name] = line_of(key)
        found.append(Task(name, text(script, f"{at}.{name}")))
    if not found:
        fail(node, "tasks", "at least one task is required")
    return tuple(found)


def packages(node: Node) -> tuple[str, ...]:
    what = "a package name (no spaces, not starting with -)"
    return tuple(
        matching(n, f"packages[{i}]", PACKAGE, what) for i, n in enumerate(items(node, "packages"))
    )


def repositories(node: Node) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, (key, value) in entries(node, "repositories").items():
        path = join("repositories", name)
        if not REPOSITORY_NAME.match(name):
            fail(key, path, "repository names are file names: letters, digits, '.', '_' and '-'")
        out[name] = one_line(value, path)
    return out


def sources(node: Node) -> tuple[Source, ...]:
    return tuple(_source(n, f"sources[{i}]") for i, n in enumerate(items(node, "sources")))


def _source(node: Node, path: str) -> Source:
    written = text(node, path)
    if SPACE_OR_CONTROL.search(written):
        fail(node, path, "a source URL has no spaces or control characters")
    url, hashed, ref = written.partition("#")
    if hashed and (not REF.match(ref) or ".." in ref):
        fail(node, path, f"{ref!r} is not a git ref (a branch, tag or commit after #)")
    repo_path = url.split(":", 1)[1] if SCP_LIKE.match(url) else _network_path(url)
    if repo_path is None:
        fail(
            node, path, "sources are git URLs: https://, http://, git://, ssh:// or user@host:path"
        )
    directory = repo_path.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    if directory in ("", ".", "..") or directory.startswith("-"):
        fail(node, path, "the URL must end with the repository's name")
    return Source(written, url, ref if hashed else None, directory)


def _network_path(url: str) -> str | None:
    """The repository path of an https, http, git or ssh URL naming a host; None otherwise."""
    parts = split_url(url, SOURCE_SCHEMES)
    if parts is None or (parts.username or "").startswith("-"):
        return None
    return parts.path


def split_url(url: str, schemes: frozenset[str]) -> SplitResult | None:
    """The URL's parts if it is one of these schemes and names a host (not an option)."""
    try:
        parts = urlsplit(url)
        host, _ = parts.hostname, parts.port  # both raise ValueError on a malformed netloc
    except ValueError:
        return None
    if parts.scheme.lower() not in schemes or not host or host.startswith("-"):
        return None
    return parts


def environment(node: Node) -> dict[str, EnvValue]:
    out: dict[str, EnvValue] = {}
    for name, (key, value) in entries(node, "environment").items():
        path = join("environment", name)
        if not ENV_NAME.match(name):
            fail(key, path, f"environment names must match {ENV_NAME.pattern}")
        if isinstance(value, SequenceNode):
            out[name] = tuple(
                plain_scalar(n, f"{path}[{i}]") for i, n in enumerate(items(value, path))
            )
        else:
            out[name] = plain_scalar(value, path)
    return out


def secrets(node: Node) -> tuple[str, ...]:
    out: dict[str, int | None] = {}
    for i, item in enumerate(items(node, "secrets")):
        path = f"secrets[{i}]"
        written = text(item, path)
        try:
            secret = str(uuid.UUID(written))
        except ValueError:
            fail(item, path, "secrets are named by their UUID")
        if secret in out:
            fail(item, path, f"secret {secret} is listed twice (first on line {out[secret]})")
        out[secret] = line_of(item)
    return tuple(out)


def artifacts(node: Node) -> tuple[str, ...]:
    out: dict[str, int | None] = {}
    for i, item in enumerate(items(node, "artifacts")):
        path = f"artifacts[{i}]"
        value = text(item, path)
        problem = _artifact_problem(value)
        if problem:
            fail(item, path, f"artifacts are literal paths relative to the build's home: {problem}")
        if value in out:
            fail(item, path, f"{value!r} is listed twice (first on line {out[value]})")
        out[value] = line_of(item)
    return tuple(out)


def _artifact_problem(path: str) -> str | None:
    if CONTROL.search(path):
        return "no control characters"
    if path.startswith(("/", "~")):
        return f"{path!r} is not relative"
    if GLOB.search(path):
        return f"{path!r} has glob characters (*?[])"
    if any(part in ("", "..") for part in path.split("/")):
        return f"{path!r} has an empty or '..' part"
    return None


def vcpus(node: Node) -> int:
    count = integer(node, "vcpus")
    if not 1 <= count <= MAX_VCPUS:
        fail(node, "vcpus", f"expected 1 to {MAX_VCPUS}, found {count}")
    return count


def timeout_s(node: Node) -> int:
    value = text(node, "timeout")
    match = DURATION.match(value)
    if not value or not match:
        fail(node, "timeout", f"expected a duration such as 30m, 1h or 1h30m, found {value!r}")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    total = hours * 3600 + minutes * 60 + seconds
    if not 0 < total <= MAX_TIMEOUT_S:
        fail(node, "timeout", f"expected more than 0s and at most 24h, found {value!r}")
    return total


def format_duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{n}{unit}" for n, unit in ((hours, "h"), (minutes, "m"), (secs, "s")) if n]
    return "".join(parts) or "0s"
