"""A package's files for one of an app's builds: an Arch Linux PKGBUILD, its .SRCINFO and an
F-Droid-style metadata.yml (POST /api/publish/generate previews them; a publish run commits
them).

The build: the app's latest version (that of its newest upload), or a named one; `os`,
`arch` and `format` pick one of that version's files when it has several (without them, the
newest file a PKGBUILD can be made of, else the newest). The PKGBUILD's source is the
build's stable download URL, `GET /api/apps/{app}/versions/{version}/{fileName}`
(ingest/downloads.py), which always serves the bytes its recorded SHA-256 names (builds are
immutable, and a file that no longer hashes to it is refused, never served); that hash is its
`sha256sums`, and a build whose stored file no longer matches is a 409 here too. A build that
cannot be a PKGBUILD (an APK, an IPA...) gets no PKGBUILD nor .SRCINFO and a warning says
why; metadata.yml is written for every build. Only reads: nothing is recorded.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from base.client_errors import Forbidden, NotFound
from ingest.publish.generate_options import Checked, check_options
from ingest.upload_targets import VERSION
from schemas.builds import version_code
from schemas.identity import NAME
from schemas.publish.metadata import AppMetadata, metadata_yml
from schemas.publish.pkgbuild import ARCH, PACKAGEABLE, PackageSpec, pacman_version, pkgbuild
from schemas.publish.srcinfo import srcinfo
from state import builds_reads as q
from state import identity_reads as qi
from state.builds_reads import AppBuild
from state.command_context import CommandContext
from storage.relational import Relational

PKGBUILD = "PKGBUILD"
SRCINFO = ".SRCINFO"
METADATA = "metadata.yml"


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    """What the developer may add to what Hutch knows of the build (all optional; checked by
    `generated_files`: a bad one is a 422 naming its JSON field)."""

    os: str | None = None
    arch: str | None = None
    format: str | None = None
    maintainer: str | None = None
    """`Name <email>`: the PKGBUILD's `# Maintainer:` line, metadata.yml's AuthorName/Email."""
    description: str | None = None
    license: str | None = None
    """An SPDX license expression, e.g. MIT or GPL-3.0-or-later."""
    url: str | None = None
    """The project's home page (http or https)."""
    categories: tuple[str, ...] | None = None
    """F-Droid categories (schemas/publish/metadata.py CATEGORIES); System when not given."""

    @classmethod
    def stored(cls, values: dict[str, Any]) -> GenerateOptions:
        """The options as a publish run's event keeps them (dataclasses.asdict, as JSON)."""
        categories = values.get("categories")
        return cls(**{**values, "categories": None if categories is None else tuple(categories)})


@dataclass(frozen=True, slots=True)
class GeneratedFiles:
    app: str
    version: str
    build: AppBuild
    files: dict[str, str] = field(default_factory=dict)
    """File name ("PKGBUILD", ".SRCINFO", "metadata.yml") -> its text; PKGBUILD and .SRCINFO
    are absent for a build no PKGBUILD can be made of."""
    warnings: tuple[str, ...] = ()
    download_url: str = ""
    """The build's stable download URL (the PKGBUILD's source)."""

    def answer(self) -> dict[str, Any]:
        return {
            "app": self.app,
            "version": self.version,
            "build": {**self.build.summary(), "downloadUrl": self.download_url},
            "files": self.files,
            "warnings": list(self.warnings),
        }


def stable_download_url(public_url: str, build: AppBuild) -> str:
    """GET /api/apps/{app}/versions/{version}/{fileName}: each segment percent-encoded."""
    app, version, file_name = (
        quote(s, safe="") for s in (build.app, build.version, build.file_name)
    )
    return f"{public_url.rstrip('/')}/api/apps/{app}/versions/{version}/{file_name}"


async def generated_files(
    ctx: CommandContext,
    developer: str,
    app: str,
    version: str | None = None,
    options: GenerateOptions = GenerateOptions(),  # frozen: one default shared safely
) -> GeneratedFiles:
    """The files for `developer`'s app `app` at `version` (None: its latest).

    404 when there is no such app, version or file, 403 when the app is another developer's
    (as every other app route answers), 422 when an option is invalid, 409 when the build's
    stored file no longer matches its record."""
    checked = check_options(
        options.os,
        options.arch,
        options.format,
        options.maintainer,
        options.description,
        options.license,
        options.url,
        options.categories,
    )
    if not NAME.fullmatch(app):  # no name that could be an app's reaches the store
        raise NotFound(f"no app named {app!r}", field="app")
    if version is not None and not VERSION.fullmatch(version):
        raise NotFound(f"{app} has no build of version {version!r}", field="version")
    owner = await asyncio.to_thread(qi.app_named, ctx.db, app)
    if owner is None:
        raise NotFound(f"no app named {app!r}", field="app")
    if owner.developer != developer:
        raise Forbidden(f"app {app!r} belongs to another developer", field="app")
    build, warnings = await asyncio.to_thread(_pick, ctx.db, app, version, checked)
    await q.check_stored(ctx.objects, build)
    url = stable_download_url(ctx.settings.public_url, build)
    files: dict[str, str] = {}
    spec, why_not = _package_spec(build, url, checked)
    if spec is None:
        warnings.append(why_not)
    else:
        files |= {PKGBUILD: pkgbuild(spec), SRCINFO: srcinfo(spec)}
        if spec.arch == "any" and build.format == "appimage":
            warnings.append(
                f"{build.file_name} names no architecture, so the PKGBUILD says arch=('any'); "
                "an AppImage runs on one: name it in the file name (x86_64, arm64...) or the "
                "upload's architecture field"
            )
    files[METADATA] = metadata_yml(_app_metadata(build, checked, warnings))
    if checked.description is None:
        warnings.append("no description given: pkgdesc and Summary only name the app")
    if checked.license is None:
        warnings.append("no license given: the PKGBUILD has none and metadata.yml says Unknown")
    return GeneratedFiles(app, build.version, build, files, tuple(warnings), url)


def _pick(
    db: Relational, app: str, version: str | None, checked: Checked
) -> tuple[AppBuild, list[str]]:
    if version is None:
        latest = q.latest_build(db, app)
        if latest is None:
            raise NotFound(f"{app} has no builds yet", field="app", code="no_builds")
        version = latest.version
    files = q.builds_of_version(db, app, version)
    if not files:
        raise NotFound(f"{app} has no build of version {version!r}", field="version")
    matching = [
        b
        for b in files
        if checked.os in (None, b.os)
        and checked.format in (None, b.format)
        and (checked.arch is None or b.architecture in (checked.arch, "universal"))
    ]
    if checked.arch is not None:  # that architecture's own file before a universal one
        matching.sort(key=lambda b: b.architecture != checked.arch)
    if not matching:
        platforms = ", ".join(sorted({b.platform for b in files}))
        raise NotFound(
            f"{app} {version} has no file for that os/arch/format; it has: {platforms}",
            code="no_matching_build",
        )
    packageable = [b for b in matching if b.os == "linux" and b.format in PACKAGEABLE]
    build = (packageable or matching)[0]
    warnings = []
    if len(matching) > 1:
        others = ", ".join(b.file_name for b in matching if b is not build)
        warnings.append(
            f"{app} {version} has several files; {build.file_name} was used, not {others} "
            "(name os, arch and format to pick another)"
        )
    return build, warnings


def _package_spec(build: AppBuild, url: str, checked: Checked) -> tuple[PackageSpec | None, str]:
    if build.os != "linux" or build.format not in PACKAGEABLE:
        kinds = ", ".join(PACKAGEABLE)
        return None, (
            f"no PKGBUILD: {build.file_name} is a {build.os} {build.format} file, and a PKGBUILD "
            f"is made only of a Linux {kinds}"
        )
    spec = PackageSpec(
        name=build.app,
        version=pacman_version(build.version),
        format=build.format,
        arch=ARCH.get(build.architecture, "any"),
        source_url=url,
        sha256=build.sha256,
        description=" ".join((checked.description or build.app).split()),
        url=checked.url,
        license=checked.license,
        maintainer=checked.maintainer,
    )
    return spec, ""


def _app_metadata(build: AppBuild, checked: Checked, warnings: list[str]) -> AppMetadata:
    try:
        code: int | None = version_code(build.version)
    except ValueError:
        code = None
        warnings.append(
            f"{build.version!r} is not a semantic version: metadata.yml has no versionCode, "
            "so no Builds entry nor CurrentVersionCode"
        )
    name, email = checked.author
    return AppMetadata(
        name=build.app,
        version=build.version,
        version_code=code,
        description=checked.description or build.app,
        categories=checked.categories,
        license=checked.license,
        author_name=name,
        author_email=email,
        url=checked.url,
    )
