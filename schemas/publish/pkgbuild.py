"""An Arch Linux PKGBUILD for one uploaded build: pure text, no I/O.

makepkg runs a PKGBUILD as bash, so nothing a user gave may ever be read as code: every
value is written in single quotes (`bash_quote`), inside which bash expands nothing ($(...),
backticks, $VAR, quotes and newlines are all literal), and the one comment that carries a
user's words (`# Maintainer:`) takes a value checked to be one line (`package_spec` callers
validate it; `pkgbuild` refuses a multi-line one). The package() bodies are Hutch's own
fixed text and name the source file through `$pkgname` and `$pkgver`, which are safe by
construction: an app name is `[a-z0-9][a-z0-9_-]*` and `pacman_version` leaves only
`[A-Za-z0-9._+]`.

What each format installs:
- AppImage: `/opt/<name>/<name>.AppImage` and a `/usr/bin/<name>` symlink; `!strip`, since
  stripping the ELF runtime would cut off the image appended to it; depends on fuse2, which
  AppImages mount themselves with.
- .deb: its `data.tar.*` unpacked into the package root (bsdtar, which pacman itself needs);
  Debian's dependency names are not Arch's, so depends is left for the maintainer.
- .tar.gz: unpacked into `/opt/<name>/` as it is.
Other formats (APK, IPA, RPM, Flatpak...) are not packaged: `PACKAGEABLE` says which are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

PACKAGEABLE: Final[dict[str, str]] = {"appimage": "AppImage", "deb": "deb", "tar.gz": "tar.gz"}
"""Hutch's format -> the extension the PKGBUILD names its source file with."""

ARCH: Final[dict[str, str]] = {
    "x86_64": "x86_64",
    "arm64": "aarch64",
    "armv7": "armv7h",
    "x86": "i686",
    "universal": "any",
}
"""Hutch's architecture -> Arch Linux's."""

_UNSAFE_IN_PKGVER = re.compile(r"[^A-Za-z0-9._+]")
_PRERELEASE_DASH = re.compile(r"-(?=[A-Za-z])")


def pacman_version(version: str) -> str:
    """A version pacman accepts as pkgver (no '-', ':', '/', whitespace or non-ASCII).

    The rule: a '-' before a letter is dropped, so a semver prerelease `2.0.0-rc.1` becomes
    `2.0.0rc.1`, which pacman (vercmp) orders before `2.0.0` as semver does; every other
    character that is not an ASCII letter, digit, '.', '_' or '+' becomes '_'. An empty
    result is `0`."""
    return _UNSAFE_IN_PKGVER.sub("_", _PRERELEASE_DASH.sub("", version)) or "0"


def bash_quote(text: str) -> str:
    """`text` as one bash word that expands to exactly `text`: single quotes, each ' inside
    written as '\\'' (close, an escaped quote, reopen). NUL cannot be in a bash string."""
    if "\0" in text:
        raise ValueError("a NUL character cannot be written into a PKGBUILD")
    return "'" + text.replace("'", "'\\''") + "'"


@dataclass(frozen=True, slots=True)
class PackageSpec:
    """What a PKGBUILD and its .SRCINFO say, every value as it will appear."""

    name: str
    """pkgname: the app's name."""
    version: str
    """pkgver, already pacman-safe (`pacman_version`)."""
    format: str
    """A key of PACKAGEABLE."""
    arch: str
    """Arch Linux's architecture (x86_64, aarch64, any...)."""
    source_url: str
    sha256: str
    description: str
    url: str | None = None
    license: str | None = None
    maintainer: str | None = None
    pkgrel: int = 1

    @property
    def source_file(self) -> str:
        return f"{self.name}-{self.version}.{PACKAGEABLE[self.format]}"

    @property
    def depends(self) -> tuple[str, ...]:
        return ("fuse2",) if self.format == "appimage" else ()

    @property
    def options(self) -> tuple[str, ...]:
        return ("!strip", "!debug") if self.format == "appimage" else ()

    @property
    def noextract(self) -> tuple[str, ...]:
        """Archives package() unpacks itself, where they belong (not makepkg into $srcdir)."""
        return (self.source_file,) if self.format in ("deb", "tar.gz") else ()

    def fields(self) -> list[tuple[str, tuple[str, ...]]]:
        """(variable, values) in the order the PKGBUILD writes them; a 1-tuple of a scalar
        variable is its value; empty arrays are left out (makepkg prints none for them)."""
        scalars: list[tuple[str, str | None]] = [
            ("pkgname", self.name),
            ("pkgver", self.version),
            ("pkgrel", str(self.pkgrel)),
            ("pkgdesc", self.description or None),
            ("url", self.url),
        ]
        arrays: list[tuple[str, tuple[str, ...]]] = [
            ("arch", (self.arch,)),
            ("license", (self.license,) if self.license else ()),
            ("depends", self.depends),
            ("options", self.options),
            ("noextract", self.noextract),
            ("source", (f"{self.source_file}::{self.source_url}",)),
            ("sha256sums", (self.sha256,)),
        ]
        return [(k, (v,)) for k, v in scalars if v is not None] + [(k, v) for k, v in arrays if v]


SCALARS: Final = frozenset({"pkgname", "pkgver", "pkgrel", "pkgdesc", "url"})

_PACKAGE_BODY: Final[dict[str, tuple[str, ...]]] = {
    "appimage": (
        'install -Dm755 "$srcdir/$pkgname-$pkgver.AppImage" '
        '"$pkgdir/opt/$pkgname/$pkgname.AppImage"',
        'install -dm755 "$pkgdir/usr/bin"',
        'ln -s "/opt/$pkgname/$pkgname.AppImage" "$pkgdir/usr/bin/$pkgname"',
    ),
    "deb": (
        'mkdir -p "$srcdir/deb"',
        'bsdtar -xf "$srcdir/$pkgname-$pkgver.deb" -C "$srcdir/deb" \'data.tar.*\'',
        'bsdtar -xf "$srcdir"/deb/data.tar.* -C "$pkgdir"',
    ),
    "tar.gz": (
        'install -dm755 "$pkgdir/opt/$pkgname"',
        'bsdtar -xf "$srcdir/$pkgname-$pkgver.tar.gz" -C "$pkgdir/opt/$pkgname"',
    ),
}


def pkgbuild(spec: PackageSpec) -> str:
    """The PKGBUILD's text."""
    lines = []
    if spec.maintainer is not None:
        if any(ch in spec.maintainer for ch in "\r\n\0"):
            raise ValueError("the maintainer must be one line")
        lines.append(f"# Maintainer: {spec.maintainer}")
    lines.append("# Generated by Hutch from an uploaded build; sha256sums is its recorded hash.")
    for name, values in spec.fields():
        if name in SCALARS:
            lines.append(f"{name}={bash_quote(values[0])}")
        else:
            lines.append(f"{name}=({' '.join(map(bash_quote, values))})")
    lines += ["", "package() {", *(f"\t{line}" for line in _PACKAGE_BODY[spec.format]), "}"]
    return "\n".join(lines) + "\n"
