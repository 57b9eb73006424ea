"""The build manifests of a pushed commit, as builds.sr.ht's git integration finds them: the
file `.build.yml` (or `.build.yaml`) at the repository's root and every `.builds/*.yml` (or
`.yaml`), read through the GitHub App (base/github.py) at the commit itself, not at the
branch, which may have moved on since.

As builds.sr.ht does, a manifest's `sources` entry naming the pushed repository (by any of
its URLs: https, git, ssh or `git@host:owner/name`) is pinned to the commit (`#<sha>`,
replacing a ref written there), so the job builds what was pushed. The text is edited in
place (comments and layout kept); a manifest whose YAML does not parse is left as it is, for
the submission's checks to refuse with their message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Collection
from dataclasses import dataclass
from urllib.parse import urlsplit

from yaml.nodes import ScalarNode, SequenceNode

from base.github import GitHub
from schemas.jobs.job_manifest import ManifestError, parse_manifest
from schemas.jobs.manifest_fields import SCP_LIKE
from schemas.jobs.manifest_yaml import STR, compose, entries

ROOT = (".build.yml", ".build.yaml")
DIRECTORY = ".builds"
SUFFIXES = (".yml", ".yaml")
MAX_MANIFESTS = 8
"""Manifests run for one push; more are refused by name (each is a job on every push)."""


@dataclass(frozen=True, slots=True)
class Found:
    path: str
    text: str | None
    """None: not read, being past MAX_MANIFESTS."""


async def manifests_at(github: GitHub, installation_id: int, repo: str, sha: str) -> list[Found]:
    """The commit's manifests, root first then `.builds/` by name. Raises GitHubError. The
    reads run together: GitHub gives a webhook 10 seconds to be answered."""

    def read(path: str) -> Awaitable[str | None]:
        return github.file_at(installation_id, repo, path, sha)

    roots, names = await asyncio.gather(
        asyncio.gather(*(read(path) for path in ROOT)),
        github.files_in(installation_id, repo, DIRECTORY, sha),
    )
    found = [Found(p, text) for p, text in zip(ROOT, roots, strict=True) if text is not None][:1]
    paths = [f"{DIRECTORY}/{name}" for name in sorted(names) if name.endswith(SUFFIXES)]
    kept = paths[: MAX_MANIFESTS - len(found)]
    texts = await asyncio.gather(*(read(path) for path in kept))
    # A file gone between the listing and the read has nothing to run.
    found += [Found(p, text) for p, text in zip(kept, texts, strict=True) if text is not None]
    return found + [Found(path, None) for path in paths[len(kept) :]]


def repository_key(url: str) -> str | None:
    """`host/owner/name` of a git URL, lowercase, without `.git` or a trailing slash: the same
    for every way of naming one repository. None for what is not a git URL."""
    url = url.partition("#")[0]
    scp = SCP_LIKE.match(url)
    if scp is not None:
        host = url.split("@", 1)[1].split(":", 1)[0]
        path = scp.group(1)
    else:
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            return None
        path = parts.path
    path = path.strip("/").removesuffix(".git").strip("/")
    if not host or not path:
        return None
    return f"{host}/{path}".lower()


def _quoted(style: str | None, value: str) -> str:
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def pin_sources(text: str, urls: Collection[str], sha: str) -> tuple[str, list[str]]:
    """`text` with each source naming the repository (one of `urls`) at `sha`, and the
    sources so pinned (as written now)."""
    keys = {key for key in map(repository_key, urls) if key is not None}
    try:
        pair = entries(compose(text), "").get("sources")
    except ManifestError:
        return text, []
    if pair is None or not isinstance(pair[1], SequenceNode):
        return text, []
    edits: dict[int, tuple[int, str]] = {}
    pinned: list[str] = []
    for node in pair[1].value:
        styled = isinstance(node, ScalarNode) and node.tag == STR
        if not styled or node.style not in (None, "", "'", '"'):
            continue
        url = str(node.value).partition("#")[0]
        if repository_key(url) in keys and node.start_mark.index not in edits:
            value = f"{url}#{sha}"
            edits[node.start_mark.index] = (node.end_mark.index, _quoted(node.style, value))
            pinned.append(value)
    edited = text
    for start in sorted(edits, reverse=True):
        end, replacement = edits[start]
        edited = edited[:start] + replacement + edited[end:]
    if edited == text or not _pinned_as_meant(edited, pinned):
        return text, []
    return edited, pinned


def _pinned_as_meant(edited: str, pinned: list[str]) -> bool:
    """A check of the edit itself: the edited manifest reads, and lists the pinned sources."""
    try:
        sources = [source.text for source in parse_manifest(edited).sources]
    except ManifestError:
        return False
    return all(value in sources for value in pinned)
