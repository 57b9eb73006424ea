"""The images a job can name: `debian/<suite>`, built once with Debian's debootstrap and cached.

Cache layout (`ImageSettings.cache_dir`, by default ~/.cache/hutch/images):

    bookworm-amd64/root          the debootstrap root (minbase + git, ca-certificates,
    bookworm-amd64/image.json    openssh-client, and the `build` user); never written again
    bookworm-amd64+<key>/upper   the packages a manifest asks for: an overlayfs upper layer
    bookworm-amd64+<key>/layer.json   over that root, one per (base build, sorted package set)

Each is built in a temporary directory and renamed into place, under a lock file, so that a
half-built image is never used and two jobs wanting the same one build it once.

Why layers: installing `packages:` into a full copy of the root per job costs a copy of ~220 MB
(0.4 s warm, seconds cold) and that much disk per job; a hard-link copy (`cp -al`) is cheap
but dpkg's maintainer scripts may write into shared inodes and corrupt the cached root. apt-get
run in an overlay writes only the difference (19 MB for curl and jq), once per package set;
each job then mounts `layer:root` as one read-only overlay in milliseconds (workspace.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import os
import platform
import re
import secrets
import shutil
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from runner import build_user, mounts
from runner.process import CancelFlag, Finished, LineSink, run_streamed, say

DEBIAN_MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ("git", "ca-certificates", "openssh-client")
"""What every image has beyond minbase: sources are cloned with the image's own git."""
PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]*(:[a-z0-9-]+)?(=[A-Za-z0-9.+~:-]+)?$")
LOCK_POLL_S = 0.5
HOST_ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"}
ARCHES = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}
"""builds.sr.ht's and Debian's architecture names -> Debian's."""
_USERADD = ["useradd", "--uid", str(build_user.UID), "--user-group", "--create-home"]
_USERADD += ["--home-dir", build_user.HOME, "--shell", "/bin/bash"]
_NO_SERVICES = "#!/bin/sh\n# Hutch: packages installed for a job start no services.\nexit 101\n"


def default_images_dir() -> Path:
    return Path.home() / ".cache" / "hutch" / "images"


@dataclass(frozen=True, slots=True)
class ImageSettings:
    cache_dir: Path
    suites: tuple[str, ...] = ("bookworm", "trixie")
    """The Debian suites offered, as `debian/<suite>`."""
    mirror: str = DEBIAN_MIRROR
    include: tuple[str, ...] = BASE_PACKAGES
    build_timeout_s: float = 1800.0
    packages_timeout_s: float = 900.0


@dataclass(frozen=True, slots=True)
class PreparedImage:
    name: str
    """As the manifest names it: `debian/bookworm`."""
    arch: str
    base: Path
    """The cached debootstrap root (read-only from here on)."""
    layer: Path | None
    """The overlay upper directory holding the manifest's packages, if it asked for any."""
    packages: tuple[str, ...] = ()

    @property
    def lower_dirs(self) -> tuple[Path, ...]:
        """The layers of the job's root, top first."""
        return (self.base,) if self.layer is None else (self.layer, self.base)


class ImageError(Exception):
    """The job cannot have this image; the message is for its setup log."""


def offered(settings: ImageSettings) -> tuple[str, ...]:
    return tuple(f"debian/{suite}" for suite in settings.suites)


def host_arch() -> str:
    machine = platform.machine()
    return ARCHES.get(machine, machine)


def resolve(image: str, arch: str | None, settings: ImageSettings) -> tuple[str, str]:
    """(suite, Debian arch) of an image name, or ImageError saying what this runner offers."""
    distro, _, suite = image.partition("/")
    if distro != "debian" or suite not in settings.suites:
        raise ImageError(
            f"image {image!r} is not offered by this runner; it offers: "
            + ", ".join(offered(settings))
        )
    native = host_arch()
    wanted = native if arch is None else ARCHES.get(arch, arch)
    if wanted != native:
        raise ImageError(f"arch {arch!r} is not offered by this runner; it builds {native} only")
    return suite, native


def check_packages(packages: Sequence[str]) -> tuple[str, ...]:
    """The package set, sorted and without duplicates; ImageError naming a bad name."""
    for name in packages:
        if not PACKAGE.match(name):
            raise ImageError(f"{name!r} is not a Debian package name (name[:arch][=version])")
    return tuple(sorted(set(packages)))


async def prepare_image(
    image: str,
    *,
    settings: ImageSettings,
    on_line: LineSink,
    arch: str | None = None,
    packages: Sequence[str] = (),
    cancel: CancelFlag | None = None,
) -> PreparedImage:
    """The image, built now if it is not cached (the build's progress goes to `on_line`), with
    the packages' layer. Raises ImageError (unknown image, bad package, failed build)."""
    suite, debian_arch = resolve(image, arch, settings)
    wanted = check_packages(packages)
    base = await _base(image, suite, debian_arch, settings, on_line, cancel)
    if not wanted:
        return PreparedImage(image, debian_arch, base / "root", None)
    layer = await _layer(image, base, wanted, settings, on_line, cancel)
    return PreparedImage(image, debian_arch, base / "root", layer / "upper", wanted)


async def _base(
    image: str,
    suite: str,
    arch: str,
    settings: ImageSettings,
    on_line: LineSink,
    cancel: CancelFlag | None,
) -> Path:
    final = settings.cache_dir / f"{suite}-{arch}"
    async with _locked(final, on_line, cancel):
        if (final / "image.json").is_file():
            built = json.loads((final / "image.json").read_text())["built_at"]
            say(on_line, f"Using cached image {image} ({arch}, built {built})")
            return final
        await asyncio.to_thread(_clear_leftovers, final)
        say(on_line, f"Building image {image} ({arch}) with debootstrap: once, for minutes")
        started = time.monotonic()
        async with _building(final) as tmp:
            root = tmp / "root"
            done = await run_streamed(
                [
                    "debootstrap",
                    "--variant=minbase",
                    f"--arch={arch}",
                    "--components=main",
                    f"--include={','.join(settings.include)}",
                    suite,
                    str(root),
                    settings.mirror,
                ],
                on_line=on_line,
                env=HOST_ENV,
                timeout_s=settings.build_timeout_s,
                cancel=cancel,
            )
            _check(done, f"debootstrap of {image}")
            (root / "usr/sbin/policy-rc.d").write_text(_NO_SERVICES)
            (root / "usr/sbin/policy-rc.d").chmod(0o755)
            for command in (
                [*_USERADD, build_user.NAME],
                ["apt-get", "clean"],
            ):
                done = await as_root_in(
                    root, command, on_line=on_line, timeout_s=120, cancel=cancel
                )
                _check(done, f"{command[0]} in {image}")
            manifest = {
                "image": image,
                "suite": suite,
                "arch": arch,
                "mirror": settings.mirror,
                "include": list(settings.include),
                "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "id": secrets.token_hex(8),
            }
            (tmp / "image.json").write_text(json.dumps(manifest, indent=2) + "\n")
            os.rename(tmp, final)
        say(on_line, f"Built image {image} in {time.monotonic() - started:.0f} s")
        return final


async def _layer(
    image: str,
    base: Path,
    packages: tuple[str, ...],
    settings: ImageSettings,
    on_line: LineSink,
    cancel: CancelFlag | None,
) -> Path:
    base_id = json.loads((base / "image.json").read_text())["id"]
    key = hashlib.sha256("\n".join((base_id, *packages)).encode()).hexdigest()[:16]
    final = base.with_name(f"{base.name}+{key}")
    listed = " ".join(packages)
    async with _locked(final, on_line, cancel):
        if (final / "layer.json").is_file():
            say(on_line, f"Using cached packages for {image}: {listed}")
            return final
        await asyncio.to_thread(_clear_leftovers, final)
        say(on_line, f"Installing packages into {image}: {listed}")
        async with _building(final) as tmp:
            for part in ("upper", "work", "merged"):
                (tmp / part).mkdir()
            await asyncio.to_thread(
                mounts.mount_overlay,
                tmp / "merged",
                [base / "root"],
                upper=tmp / "upper",
                work=tmp / "work",
            )
            try:
                done = await as_root_in(
                    tmp / "merged",
                    ["sh", "-c", _APT, "apt", *packages],
                    on_line=on_line,
                    timeout_s=settings.packages_timeout_s,
                    cancel=cancel,
                    network=True,
                )
            finally:
                await asyncio.to_thread(mounts.unmount_under, tmp / "merged")
            _check(done, f"installing {listed}")
            await asyncio.to_thread(shutil.rmtree, tmp / "work")
            (tmp / "merged").rmdir()
            record = {"base": base_id, "packages": list(packages)}
            (tmp / "layer.json").write_text(json.dumps(record, indent=2) + "\n")
            os.rename(tmp, final)
        return final


_APT = (
    'apt-get update -q && apt-get install -y -q --no-install-recommends "$@"'
    " && apt-get clean && rm -rf /var/lib/apt/lists/*"
)


async def as_root_in(
    root: Path,
    command: Sequence[str],
    *,
    on_line: LineSink,
    timeout_s: float,
    cancel: CancelFlag | None = None,
    network: bool = False,
) -> Finished:
    """`command` as root with its capabilities in `root`, a chroot with its own PID, IPC and
    UTS namespaces and fresh /dev, /proc, /tmp: how images are set up (useradd, apt-get and
    the packages' maintainer scripts, which are Debian's). Never used for a job's tasks."""
    argv = ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"]
    argv += ["--new-session", "--cap-add", "ALL", "--bind", str(root), "/"]
    # The chroot's own /tmp and /run, not the host's.
    argv += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/run"]  # noqa: S108
    if network:
        argv += ["--ro-bind-try", "/etc/resolv.conf", "/etc/resolv.conf"]
    else:
        argv += ["--unshare-net"]
    env = HOST_ENV | {"DEBIAN_FRONTEND": "noninteractive", "HOME": "/root"}
    return await run_streamed(
        [*argv, "--", *command], on_line=on_line, env=env, timeout_s=timeout_s, cancel=cancel
    )


def _check(done: Finished, what: str) -> None:
    if done.outcome == "timeout":
        raise ImageError(f"{what} timed out after {done.duration_s:.0f} s")
    if done.outcome == "cancelled":
        raise ImageError(f"{what} was cancelled")
    if done.exit_code != 0:
        raise ImageError(f"{what} failed (exit status {done.exit_code})")


@contextlib.asynccontextmanager
async def _locked(final: Path, on_line: LineSink, cancel: CancelFlag | None) -> AsyncIterator[None]:
    """Hold `<final>.lock` (another job or runner building the same image waits)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(f"{final}.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        waiting = False
        while not _try_lock(fd):
            if cancel is not None and cancel.is_set():
                raise ImageError(f"cancelled while waiting for {final.name} to be built")
            if not waiting:
                say(on_line, f"Waiting for another job building {final.name}")
                waiting = True
            await asyncio.sleep(LOCK_POLL_S)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextlib.asynccontextmanager
async def _building(final: Path) -> AsyncIterator[Path]:
    """A temporary directory next to `final`, removed (with anything mounted in it: a killed
    debootstrap leaves /proc and /sys mounted) unless it was renamed to `final`."""
    tmp = final.with_name(f".building-{final.name}-{secrets.token_hex(4)}")
    tmp.mkdir(mode=0o755)
    try:
        yield tmp
    finally:
        if tmp.exists():
            await asyncio.to_thread(_remove, tmp)


def _clear_leftovers(final: Path) -> None:
    """Under the lock: what an interrupted build of `final` left (its temporary directories,
    or `final` itself without its record, which cannot happen but would block the rename)."""
    for tmp in final.parent.glob(f".building-{final.name}-" + "?" * 8):
        _remove(tmp)
    if final.exists():
        _remove(final)


def _remove(path: Path) -> None:
    mounts.unmount_under(path)
    shutil.rmtree(path, ignore_errors=True)
