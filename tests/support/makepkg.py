"""The real makepkg (Debian's pacman-package-manager) on a PKGBUILD, as it must run: as
`nobody` (it refuses root), in a fresh directory of nobody's own under /tmp (pytest's are
root's, 0700). A package can be built too (`build`): makepkg fetches the source over HTTP
with curl, checks its sha256sums and runs package() under fakeroot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import unavailable

TOOLS = ("makepkg", "runuser", "fakeroot", "bsdtar", "curl")


def need_makepkg(*tools: str) -> None:
    """Skip (fail under CI=true) unless makepkg and `tools` are installed (.ci/run installs
    them: pacman-package-manager, libarchive-tools)."""
    missing = [t for t in ("makepkg", "runuser", *tools) if shutil.which(t) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed (apt-get install pacman-package-manager)")


@contextmanager
def package_dir(pkgbuild: str) -> Iterator[Path]:
    """A directory only nobody writes, holding the PKGBUILD; removed afterwards."""
    where = Path(tempfile.mkdtemp(prefix="hutch-makepkg-", dir="/tmp"))
    try:
        (where / "PKGBUILD").write_text(pkgbuild)
        (where / "PKGBUILD").chmod(0o644)
        where.chmod(0o755)
        shutil.chown(where, "nobody")
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def as_nobody(where: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["runuser", "-u", "nobody", "--", *args],
        cwd=where,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C", "HOME": str(where)},
        check=False,
    )


def printsrcinfo(pkgbuild: str) -> str:
    """What `makepkg --printsrcinfo` prints for this PKGBUILD; AssertionError if it fails."""
    need_makepkg()
    with package_dir(pkgbuild) as where:
        done = as_nobody(where, "makepkg", "--printsrcinfo")
    assert done.returncode == 0, done.stderr
    return done.stdout


def build(pkgbuild: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """makepkg's build (dependencies not checked: no pacman database here) and the paths the
    package holds (as `bsdtar -tf` lists them, metadata files left out)."""
    need_makepkg(*TOOLS)
    with package_dir(pkgbuild) as where:
        done = as_nobody(where, "makepkg", "--nodeps", "--noconfirm", "--noprogressbar")
        packages = sorted(where.glob("*.pkg.tar*"))
        if done.returncode != 0 or not packages:
            return done, []
        listing = subprocess.run(
            ["bsdtar", "-tvf", str(packages[0])], capture_output=True, text=True, check=True
        ).stdout
    return done, sorted(
        line.split(None, 8)[8]
        for line in listing.splitlines()
        if not line.split(None, 8)[8].startswith(".")
    )
