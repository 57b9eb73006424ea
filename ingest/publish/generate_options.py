"""What a developer may add to a generated package (ingest/publish/generate.py), checked:
each refusal is a 422 naming the request's JSON field.

- `maintainer`: `Name <email>`, one line (it becomes a PKGBUILD comment, where a line break
  would start code), an e-mail F-Droid's AuthorEmail accepts;
- `description`: at most 4000 characters (F-Droid's limit), no control characters but line
  breaks and tabs; the PKGBUILD's pkgdesc is it on one line;
- `license`: an SPDX license expression, checked and normalised (`mit` -> `MIT`) by the
  license-expression library against the SPDX license list;
- `url`: an http(s) URL with a host, no spaces or control characters, at most 2048 long;
- `os`, `arch`, `format`: as the download routes take them (schemas/builds.py aliases);
- `categories`: F-Droid's (schemas/publish/metadata.py CATEGORIES).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Final
from urllib.parse import urlsplit

from license_expression import ExpressionError, Licensing, ParseError, get_spdx_licensing

from base.client_errors import Unprocessable
from schemas.builds import normalize_architecture, normalize_format, normalize_os
from schemas.publish.metadata import CATEGORIES, DESCRIPTION_MAX

MAINTAINER: Final = re.compile(
    r"(?P<name>[^<>\s](?:[^<>]{0,98}[^<>\s])?) <(?P<email>[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+"
    r"\.[a-zA-Z]{2,})>"
)
URL_MAX: Final = 2048
LICENSE_MAX: Final = 200
DEFAULT_CATEGORIES: Final = ("System",)


@dataclass(frozen=True, slots=True)
class Checked:
    os: str | None
    arch: str | None
    format: str | None
    maintainer: str | None
    author: tuple[str | None, str | None]
    description: str | None
    license: str | None
    url: str | None
    categories: tuple[str, ...]


def _controls(text: str, allowed: str = "") -> bool:
    return any(
        unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text if c not in allowed
    )


@cache
def _spdx() -> Licensing:
    return get_spdx_licensing()


def check_license(value: str) -> str:
    if len(value) > LICENSE_MAX or _controls(value):
        raise Unprocessable("license must be a short SPDX expression, e.g. MIT", field="license")
    try:
        parsed = _spdx().parse(value, validate=True, strict=True)
    except (ExpressionError, ParseError) as exc:
        parsed, why = None, f" ({exc})"
    except Exception:  # the library trips on some malformed ones: "( ) AND", "( OR MIT )"
        parsed, why = None, ""
    else:
        why = ""
    if parsed is None:
        raise Unprocessable(
            f"license {value!r} is not an SPDX license expression{why}; use identifiers from "
            "https://spdx.org/licenses/, e.g. MIT or GPL-3.0-or-later",
            field="license",
        )
    return str(parsed)


def check_url(value: str) -> str:
    try:
        parts = urlsplit(value) if len(value) <= URL_MAX else None
        host = None if parts is None else parts.hostname
    except ValueError:  # an unbalanced [ in the host
        parts = host = None
    if (
        parts is None
        or not host
        or parts.scheme not in ("http", "https")
        or any(c.isspace() for c in value)
        or _controls(value)
    ):
        raise Unprocessable(
            f"url must be an http or https URL with a host, without spaces, at most {URL_MAX} "
            "characters",
            field="url",
        )
    return value


def check_options(
    os: str | None,
    arch: str | None,
    fmt: str | None,
    maintainer: str | None,
    description: str | None,
    license: str | None,
    url: str | None,
    categories: tuple[str, ...] | None,
) -> Checked:
    os_name = _platform(normalize_os, os, "os")
    author: tuple[str | None, str | None] = (None, None)
    if maintainer is not None:
        found = MAINTAINER.fullmatch(maintainer)
        if found is None or _controls(maintainer):
            raise Unprocessable(
                "maintainer must be one line, `Name <name@example.org>`", field="maintainer"
            )
        author = (found["name"], found["email"])
    if description is not None:
        description = description.replace("\r\n", "\n").strip()
        if len(description) > DESCRIPTION_MAX or _controls(description, "\n\t"):
            raise Unprocessable(
                f"description must be at most {DESCRIPTION_MAX} characters, without control "
                "characters other than line breaks",
                field="description",
            )
    wanted = DEFAULT_CATEGORIES if categories is None else categories
    unknown = [c for c in wanted if c not in CATEGORIES]
    if unknown or not wanted or len(set(wanted)) != len(wanted):
        raise Unprocessable(
            f"categories must be distinct F-Droid categories: {', '.join(CATEGORIES)}",
            field="categories",
        )
    return Checked(
        os=os_name,
        arch=_platform(lambda v: normalize_architecture(v, os_name), arch, "arch"),
        format=_platform(normalize_format, fmt, "format"),
        maintainer=maintainer,
        author=author,
        description=description or None,
        license=None if license is None else check_license(license),
        url=None if url is None else check_url(url),
        categories=tuple(wanted),
    )


def _platform(normalize: Callable[[str], str], value: str | None, name: str) -> str | None:
    if value is None:
        return None
    try:
        return normalize(value)
    except ValueError as exc:
        raise Unprocessable(f"{name}: {exc}", field=name) from None
