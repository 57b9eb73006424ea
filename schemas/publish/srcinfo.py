"""The .SRCINFO of a PKGBUILD (schemas/publish/pkgbuild.py), as `makepkg --printsrcinfo`
prints it (pacman 6's libmakepkg/srcinfo.sh), byte for byte: the test runs the real makepkg
on the same PKGBUILD and compares.

What makepkg does and this repeats: a `pkgbase` section with the single-valued attributes
(pkgdesc pkgver pkgrel epoch url install changelog), then the multi-valued ones in its fixed
order, one `key = value` line per element, each value's runs of whitespace made one space and
one leading and trailing space cut; unset or empty attributes are not printed; then a blank
line and a `pkgname` section, which lists only what a package() function overrides (Hutch's
never do).
"""

from __future__ import annotations

import re
from typing import Final

from schemas.publish.pkgbuild import PackageSpec

SINGLE_VALUED: Final = ("pkgdesc", "pkgver", "pkgrel", "epoch", "url", "install", "changelog")
HASH_ALGORITHMS: Final = ("ck", "md5", "sha1", "sha224", "sha256", "sha384", "sha512", "b2")
MULTI_VALUED: Final = (
    "arch",
    "groups",
    "license",
    "checkdepends",
    "makedepends",
    "depends",
    "optdepends",
    "provides",
    "conflicts",
    "replaces",
    "noextract",
    "options",
    "backup",
    "source",
    "validpgpkeys",
    *(f"{algorithm}sums" for algorithm in HASH_ALGORITHMS),
)

_SPACE_RUN = re.compile(r"[ \t\n\v\f\r]+")
"""bash's [[:space:]] in the C locale."""


def _normalized(value: str) -> str:
    value = _SPACE_RUN.sub(" ", value)
    return value.removeprefix(" ").removesuffix(" ")


def srcinfo(spec: PackageSpec) -> str:
    fields = dict(spec.fields())
    lines = [f"pkgbase = {spec.name}"]
    for attribute in (*SINGLE_VALUED, *MULTI_VALUED):
        lines += [f"\t{attribute} = {_normalized(v)}" for v in fields.get(attribute, ())]
    lines += ["", f"pkgname = {spec.name}"]
    return "\n".join(lines) + "\n"
