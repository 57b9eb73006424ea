"""An F-Droid-style `metadata.yml` for an app's build: pure text, no I/O.

The fields are F-Droid's (fdroidserver's metadata format, in its field order): Categories,
License (an SPDX id; F-Droid's own default `Unknown` when none is known), AuthorName,
AuthorEmail, WebSite, SourceCode, IssueTracker, Summary (at most 80 characters, no closing
punctuation, as `fdroid lint` wants), Description, RepoType/Repo (a GitHub, GitLab or Codeberg
project URL is a git repository), Builds (versionName, versionCode, commit),
AutoUpdateMode/UpdateCheckMode (`None`: Hutch does not watch the repository), CurrentVersion
and CurrentVersionCode. versionCode is Hutch's Android versionCode of a semver version
(schemas/builds.py `version_code`); a version that is not semver has none, and then no Builds
entry either. PyYAML writes it (so no value can become a key of its own), laid out as
`fdroid rewritemeta` writes F-Droid's files: the test checks both with fdroidserver itself.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

CATEGORIES: Final = (
    "Connectivity",
    "Development",
    "Games",
    "Graphics",
    "Internet",
    "Money",
    "Multimedia",
    "Navigation",
    "Phone & SMS",
    "Reading",
    "Science & Education",
    "Security",
    "Sports & Health",
    "System",
    "Theming",
    "Time",
    "Writing",
)
"""F-Droid's categories (fdroiddata's config/categories.yml)."""
SUMMARY_MAX: Final = 80
DESCRIPTION_MAX: Final = 4000
GIT_FORGES: Final = frozenset({"github.com", "gitlab.com", "codeberg.org"})


@dataclass(frozen=True, slots=True)
class AppMetadata:
    name: str
    version: str
    version_code: int | None
    description: str
    categories: tuple[str, ...]
    license: str | None = None
    author_name: str | None = None
    author_email: str | None = None
    url: str | None = None
    commit: str | None = None
    """The source revision of this version (a tag); `v<version>` when not given."""


def summary_of(description: str) -> str:
    """The description's first sentence on one line, without its closing punctuation, cut to
    SUMMARY_MAX characters at a word."""
    first = " ".join(description.strip().splitlines()[0].split()) if description.strip() else ""
    first = re.split(r"(?<=[A-Za-z0-9][.!?])\s", first, maxsplit=1)[0].rstrip(".!? ")
    if len(first) <= SUMMARY_MAX:
        return first
    cut = first[: SUMMARY_MAX - 1].rsplit(" ", 1)[0].rstrip(",;:.!? ")
    return cut + "…"


def project_links(url: str | None) -> dict[str, str]:
    """WebSite, and for a forge's project URL SourceCode, IssueTracker and the git Repo."""
    if not url:
        return {}
    links = {"WebSite": url}
    parts = urlsplit(url)
    path = parts.path.strip("/").removesuffix(".git")
    if parts.scheme == "https" and parts.hostname in GIT_FORGES and path.count("/") == 1:
        project = f"https://{parts.hostname}/{path}"
        links |= {"SourceCode": project, "IssueTracker": f"{project}/issues"}
    return links


GROUPS: Final = (
    ("Categories", "License", "AuthorName", "AuthorEmail", "WebSite", "SourceCode", "IssueTracker"),
    ("Summary", "Description"),
    ("RepoType", "Repo"),
    ("Builds",),
    ("AutoUpdateMode", "UpdateCheckMode", "CurrentVersion", "CurrentVersionCode"),
)
"""The fields Hutch writes, in F-Droid's order and blank-line-separated groups (fdroidserver's
`yaml_app_field_order`), so the file is as `fdroid rewritemeta` writes it."""


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, laid out as F-Droid's files are: a sequence indented under its
    key, multi-line text as a literal block (`|-`)."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def fields(meta: AppMetadata) -> dict[str, Any]:
    """The metadata's fields and values (only those that have one)."""
    links = project_links(meta.url)
    doc: dict[str, Any] = {
        "Categories": sorted(meta.categories, key=str.lower),
        "License": meta.license or "Unknown",
        "AuthorName": meta.author_name,
        "AuthorEmail": meta.author_email,
        **links,
        "Summary": summary_of(meta.description),
        "Description": meta.description.strip(),
        "AutoUpdateMode": "None",
        "UpdateCheckMode": "None",
        "CurrentVersion": meta.version,
    }
    if "SourceCode" in links:
        doc |= {"RepoType": "git", "Repo": links["SourceCode"]}
    if meta.version_code is not None:
        build = {
            "versionName": meta.version,
            "versionCode": meta.version_code,
            "commit": meta.commit or f"v{meta.version}",
        }
        doc |= {"Builds": [build], "CurrentVersionCode": meta.version_code}
    return {k: v for k, v in doc.items() if v not in (None, "")}


def metadata_yml(meta: AppMetadata) -> str:
    values = fields(meta)
    groups = []
    for group in GROUPS:
        present = {name: values[name] for name in group if name in values}
        if present:
            groups.append(
                yaml.dump(present, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096)
            )
    return "\n".join(groups)
