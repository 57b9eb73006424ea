"""A job's `artifacts`, found after its tasks: literal paths relative to the build user's home
(builds.sr.ht's rule), each a regular file inside the workspace.

Paths are resolved as the sandbox saw them, symlink by symlink, with the workspace as the
only place they may lead: a symlink to /etc/passwd, to ../../, or to an absolute path outside
/home/build is refused, so that an artifact can only ever be a file the job wrote. (Every
process of the job is dead by now, so nothing changes under the resolution.)
"""

from __future__ import annotations

import os
import stat
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from runner import build_user

MAX_SYMLINKS = 40


@dataclass(frozen=True, slots=True)
class Artifact:
    path: str
    """As the manifest names it."""
    name: str
    """Its file name (the last part of `path`)."""
    file: Path
    """Where it is on the host (inside the workspace, no symlink left)."""
    size: int


@dataclass(frozen=True, slots=True)
class ArtifactSet:
    found: tuple[Artifact, ...]
    refused: tuple[str, ...]
    """One line per artifact that is missing, not a regular file, or outside the workspace."""


class ArtifactError(Exception):
    """This path cannot be an artifact; the message says why."""


def collect_artifacts(home: Path, paths: Sequence[str]) -> ArtifactSet:
    """Each of `paths` found in the workspace `home`, or a line saying why not."""
    found: list[Artifact] = []
    refused: list[str] = []
    for path in paths:
        try:
            found.append(find_artifact(home, path))
        except ArtifactError as exc:
            refused.append(f"artifact {path!r}: {exc}")
    return ArtifactSet(tuple(found), tuple(refused))


def find_artifact(home: Path, path: str) -> Artifact:
    file = resolve_in_home(home, path)
    try:
        info = file.lstat()
    except FileNotFoundError:
        raise ArtifactError("not found") from None
    except NotADirectoryError:
        raise ArtifactError("not found (a part of it is not a directory)") from None
    if not stat.S_ISREG(info.st_mode):
        raise ArtifactError("not a regular file")
    return Artifact(path, PurePosixPath(path).name, file, info.st_size)


def resolve_in_home(home: Path, path: str) -> Path:
    """The host path `path` (relative to the home, or under /home/build) leads to, following
    symlinks as inside the sandbox; ArtifactError if it leaves the workspace."""
    if "\0" in path or not path.strip("/"):
        raise ArtifactError("not a file path")
    if path.startswith("/"):
        if not path.startswith(build_user.HOME + "/"):
            raise ArtifactError(f"outside the build user's home ({build_user.HOME})")
        path = path[len(build_user.HOME) + 1 :]
    pending = deque(path.split("/"))
    inside: list[str] = []
    followed = 0
    while pending:
        part = pending.popleft()
        if part in ("", "."):
            continue
        if part == "..":
            if not inside:
                raise ArtifactError("leads outside the workspace")
            inside.pop()
            continue
        here = home.joinpath(*inside, part)
        if not here.is_symlink():
            inside.append(part)
            continue
        followed += 1
        if followed > MAX_SYMLINKS:
            raise ArtifactError("too many levels of symbolic links")
        target = os.readlink(here)
        if target.startswith("/"):
            if target != build_user.HOME and not target.startswith(build_user.HOME + "/"):
                raise ArtifactError(f"a symlink in it leads outside the workspace ({target})")
            inside = []
            target = target[len(build_user.HOME) :]
        pending.extendleft(reversed(target.split("/")))
    if not inside:
        raise ArtifactError("is the home directory itself")
    return home.joinpath(*inside)
