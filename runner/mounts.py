"""The few mounts the runner makes on the host (as root, with util-linux's `mount`/`umount`):
read-only overlays and binds of image roots, loop-mounted workspaces; and taking down whatever
is left mounted under a directory (a killed debootstrap's /proc, a crashed runner's jobs).

These calls block for milliseconds; async callers run them in a thread.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

TIMEOUT_S = 60.0
_OPTION_BREAKERS = (",", ":", "\n", "\\")


class MountError(Exception):
    """A mount or unmount failed; the message says which and why (mount's own words)."""


def _run(argv: Sequence[str]) -> None:
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MountError(f"{argv[0]}: {exc}") from None
    if done.returncode != 0:
        raise MountError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


def overlay_option_path(path: Path) -> str:
    """A path as overlayfs takes it in lowerdir=/upperdir=, refused if it would be misread."""
    text = str(path)
    if any(c in text for c in _OPTION_BREAKERS):
        raise MountError(f"{text!r} cannot be an overlay layer (it has one of , : \\ or a newline)")
    return text


def mount_overlay(
    target: Path, lower: Sequence[Path], *, upper: Path | None = None, work: Path | None = None
) -> None:
    """An overlay of `lower` (first listed on top) at `target`: read-only without `upper`."""
    options = ["lowerdir=" + ":".join(overlay_option_path(p) for p in lower)]
    if upper is None or work is None:
        options.insert(0, "ro")
    else:
        options += [
            f"upperdir={overlay_option_path(upper)}",
            f"workdir={overlay_option_path(work)}",
        ]
    _run(["mount", "-t", "overlay", "overlay", "-o", ",".join(options), str(target)])


def bind_read_only(source: Path, target: Path) -> None:
    _run(["mount", "--bind", "-o", "ro", str(source), str(target)])


def mount_loop(image: Path, target: Path) -> None:
    """An ext4 image file on `target` through a loop device (freed again on unmount)."""
    _run(["mount", "-t", "ext4", "-o", "loop,nodev,nosuid", str(image), str(target)])


def unmount(target: Path) -> None:
    """Unmount `target`; if it is busy, detach it now (lazily) and let the kernel finish."""
    try:
        _run(["umount", str(target)])
    except MountError:
        _run(["umount", "--lazy", str(target)])


def mounts_under(path: Path) -> list[Path]:
    """Mount points at or below `path`, deepest first (the order to unmount them in)."""
    prefix = os.path.realpath(path)
    found: list[Path] = []
    with open("/proc/self/mountinfo", encoding="utf-8") as info:
        for line in info:
            point = _unescape(line.split()[4])
            if point == prefix or point.startswith(prefix.rstrip("/") + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_under(path: Path) -> None:
    """Take down every mount at or below `path` (e.g. before removing the directory)."""
    for point in mounts_under(path):
        unmount(point)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040...)."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)
