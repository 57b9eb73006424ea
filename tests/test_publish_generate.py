"""POST /api/publish/generate over real HTTP, for real uploaded builds, checked with the real
tools: makepkg (as nobody) prints the very .SRCINFO Hutch published beside the PKGBUILD and
builds the package from the stable download URL (its sha256sums must hold), and the
metadata.yml passes F-Droid's own parser and `fdroid lint` (fdroidserver, a dev dependency).
Also: the version-pinned download route, injection attempts against makepkg, every refusal."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import httpx
import pytest
from fdroidserver import metadata as fdroid_metadata

from schemas.events import Topic
from schemas.publish.metadata import CATEGORIES
from tests.support import makepkg
from tests.support.admin import developer_with_app, log_ends
from tests.support.builds import bearer, direct_upload, follow, json_of
from tests.support.responses import error_of
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

APP = "fern-app"
GENERATE = "/api/publish/generate"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_in_thread(tmp_path_factory.mktemp("generate") / "data")


def appimage() -> bytes:
    """An executable the AppImage stands for (its bytes only need to be installed as they are)."""
    return b"#!/bin/sh\necho fern\n" + bytes(range(256)) * 64


def deb(tmp: Path) -> bytes:
    """A real Debian package (dpkg-deb) with /usr/bin/fern-app in its data.tar."""
    root = tmp / "deb-root"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "usr" / "bin").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: fern-app\nVersion: 1.4.0\nArchitecture: amd64\n"
        "Maintainer: Fern <fern@example.org>\nDescription: Fern\n"
    )
    tool = root / "usr" / "bin" / "fern-app"
    tool.write_text("#!/bin/sh\necho fern\n")
    tool.chmod(0o755)
    out = tmp / "fern.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(out)],
        check=True,
        capture_output=True,
    )
    return out.read_bytes()


def tarball() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        data = b"#!/bin/sh\necho fern\n"
        info = tarfile.TarInfo("fern/bin/fern-app")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@pytest.fixture(scope="module")
def fern(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """fern's token and her uploads: version 1.4.0 as an AppImage, a .deb, a tarball and an
    APK; 2.0.0-rc.1 as an AppImage (the latest)."""
    _, token = developer_with_app(server.settings, "fern", APP)
    tmp = tmp_path_factory.mktemp("fern-builds")
    files = {
        ("1.4.0", "fern-app-x86_64.AppImage"): appimage(),
        ("1.4.0", "fern-app_1.4.0_amd64.deb"): deb(tmp),
        ("1.4.0", "fern-app-1.4.0-x86_64.tar.gz"): tarball(),
        ("1.4.0", "fern-app-arm64-v8a.apk"): b"not really an apk",
        ("2.0.0-rc.1", "fern-app-x86_64.AppImage"): appimage() + b"rc",
    }
    with server.client() as c:
        for (version, name), body in files.items():
            json_of(direct_upload(c, token, APP, version, name, body), 201)
    return {"token": token, "files": files}


def generate(server: Server, token: str, **body: Any) -> httpx.Response:
    with server.client() as c:
        return c.post(GENERATE, headers=bearer(token), json={"app": APP, **body})


def field(srcinfo: str, name: str) -> list[str]:
    """The values of `name` in a .SRCINFO's pkgbase section."""
    return [
        line.split(" = ", 1)[1] for line in srcinfo.splitlines() if line.startswith(f"\t{name} = ")
    ]


FULL = {
    "maintainer": "Fern Gully <fern@example.org>",
    "description": "Keeps ferns watered. Reminds you on time",
    "license": "gpl-3.0-or-later",
    "url": "https://github.com/fern/fern-app",
}


@pytest.mark.parametrize(
    ("fmt", "file_name"),
    [
        ("appimage", "fern-app-x86_64.AppImage"),
        ("deb", "fern-app_1.4.0_amd64.deb"),
        ("tar.gz", "fern-app-1.4.0-x86_64.tar.gz"),
    ],
)
def test_makepkg_prints_the_published_srcinfo(
    server: Server, fern: dict[str, Any], fmt: str, file_name: str
) -> None:
    answer = json_of(generate(server, fern["token"], version="1.4.0", format=fmt, **FULL), 200)
    body = fern["files"][("1.4.0", file_name)]
    assert answer["app"] == APP
    assert answer["version"] == "1.4.0"
    assert answer["build"]["fileName"] == file_name
    files = answer["files"]
    assert set(files) == {"PKGBUILD", ".SRCINFO", "metadata.yml"}
    assert makepkg.printsrcinfo(files["PKGBUILD"]) == files[".SRCINFO"]
    srcinfo = files[".SRCINFO"]
    assert field(srcinfo, "sha256sums") == [hashlib.sha256(body).hexdigest()]
    assert field(srcinfo, "pkgver") == ["1.4.0"]
    assert field(srcinfo, "license") == ["GPL-3.0-or-later"]
    assert field(srcinfo, "arch") == ["x86_64"]
    assert field(srcinfo, "pkgdesc") == [FULL["description"]]
    assert files["PKGBUILD"].startswith("# Maintainer: Fern Gully <fern@example.org>\n")
    # The source is the stable URL, and it serves exactly those bytes, to anyone.
    [source] = field(srcinfo, "source")
    local_name, url = source.split("::", 1)
    assert local_name == f"{APP}-1.4.0." + {"appimage": "AppImage"}.get(fmt, fmt)
    assert url == answer["build"]["downloadUrl"]
    assert url == f"{server.url}/api/apps/{APP}/versions/1.4.0/{file_name}"
    assert follow(httpx.get(url)).content == body


@pytest.mark.slow
@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        (
            "appimage",
            [
                "opt/",
                "opt/fern-app/",
                "opt/fern-app/fern-app.AppImage",
                "usr/",
                "usr/bin/",
                "usr/bin/fern-app -> /opt/fern-app/fern-app.AppImage",
            ],
        ),
        ("deb", ["usr/", "usr/bin/", "usr/bin/fern-app"]),
        (
            "tar.gz",
            ["opt/", "opt/fern-app/", "opt/fern-app/fern/", "opt/fern-app/fern/bin/",
             "opt/fern-app/fern/bin/fern-app"],
        ),
    ],
)  # fmt: skip
def test_makepkg_builds_the_package_from_the_stable_url(
    server: Server, fern: dict[str, Any], fmt: str, expected: list[str]
) -> None:
    files = json_of(generate(server, fern["token"], version="1.4.0", format=fmt), 200)["files"]
    done, contents = makepkg.build(files["PKGBUILD"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Validating source files with sha256sums" in done.stdout + done.stderr
    assert contents == expected


def test_a_changed_hash_fails_makepkg(server: Server, fern: dict[str, Any]) -> None:
    """The check is real: the same PKGBUILD with another sha256sums does not build."""
    files = json_of(generate(server, fern["token"], version="1.4.0", format="appimage"), 200)
    real = hashlib.sha256(fern["files"][("1.4.0", "fern-app-x86_64.AppImage")]).hexdigest()
    done, contents = makepkg.build(files["files"]["PKGBUILD"].replace(real, "0" * 64))
    assert done.returncode != 0
    assert contents == []
    assert "FAILED" in done.stdout + done.stderr


def test_the_latest_version_and_a_pacman_safe_pkgver(server: Server, fern: dict[str, Any]) -> None:
    with server.client() as c:
        newest = json_of(c.get(f"/api/app/{APP}"), 200)  # whatever other tests uploaded since
    latest = json_of(generate(server, fern["token"]), 200)
    assert latest["version"] == newest["version"]
    assert (
        latest["build"]["id"]
        == json_of(generate(server, fern["token"], version=newest["version"]), 200)["build"]["id"]
    )
    answer = json_of(generate(server, fern["token"], version="2.0.0-rc.1"), 200)
    srcinfo = answer["files"][".SRCINFO"]
    assert makepkg.printsrcinfo(answer["files"]["PKGBUILD"]) == srcinfo
    # '-' before a letter dropped: pacman orders 2.0.0rc.1 before 2.0.0, as semver does.
    assert field(srcinfo, "pkgver") == ["2.0.0rc.1"]
    order = subprocess.run(["vercmp", "2.0.0rc.1", "2.0.0"], capture_output=True, text=True)
    assert order.stdout.strip() == "-1"
    assert field(srcinfo, "source")[0].endswith(
        f"::{server.url}/api/apps/{APP}/versions/2.0.0-rc.1/fern-app-x86_64.AppImage"
    )
    assert "no description given: pkgdesc and Summary only name the app" in answer["warnings"]


def test_build_metadata_in_a_version_and_an_unknown_architecture(
    server: Server, fern: dict[str, Any]
) -> None:
    with server.client() as c:
        json_of(direct_upload(c, fern["token"], APP, "5.0.0+b.1", "fern.AppImage", b"5"), 201)
    answer = json_of(generate(server, fern["token"], version="5.0.0+b.1"), 200)
    files = answer["files"]
    assert makepkg.printsrcinfo(files["PKGBUILD"]) == files[".SRCINFO"]
    assert field(files[".SRCINFO"], "pkgver") == ["5.0.0+b.1"]
    assert field(files[".SRCINFO"], "arch") == ["any"]
    assert any("names no architecture" in w for w in answer["warnings"]), answer["warnings"]
    url = answer["build"]["downloadUrl"]
    assert url == f"{server.url}/api/apps/{APP}/versions/5.0.0%2Bb.1/fern.AppImage"
    assert follow(httpx.get(url)).content == b"5"


def test_several_files_pick_a_packageable_one_and_say_so(
    server: Server, fern: dict[str, Any]
) -> None:
    answer = json_of(generate(server, fern["token"], version="1.4.0"), 200)
    assert answer["build"]["os"] == "linux"
    assert "PKGBUILD" in answer["files"]
    assert any("has several files" in w for w in answer["warnings"]), answer["warnings"]


def test_an_apk_gets_metadata_only_and_a_warning(server: Server, fern: dict[str, Any]) -> None:
    answer = json_of(generate(server, fern["token"], version="1.4.0", os="android"), 200)
    assert answer["build"]["fileName"] == "fern-app-arm64-v8a.apk"
    assert set(answer["files"]) == {"metadata.yml"}
    assert any(w.startswith("no PKGBUILD: fern-app-arm64-v8a.apk") for w in answer["warnings"])


# --- injection: nothing a user writes runs in makepkg ----------------------------------------


def test_values_from_users_never_run_in_makepkg(
    server: Server, fern: dict[str, Any], tmp_path: Path
) -> None:
    canary = Path(f"/tmp/hutch-pwned-{uuid.uuid4().hex}")
    attacks = [
        f"$(touch {canary})",
        f"`touch {canary}`",
        f"'; touch {canary}; '",
        f'"; touch {canary}; "',
        f"'\ntouch {canary}\n'",
        f"x\n}}\ntouch {canary}\n",
        f"${{IFS}}$(touch${{IFS}}{canary})",
    ]
    with server.client() as c:
        # A file name may hold all of it too (no '/': `${PWD%%hutch-makepkg*}` is /tmp/ in
        # makepkg's directory); it reaches the PKGBUILD only percent-encoded.
        touch = f"touch ${{PWD%%hutch-makepkg*}}{canary.name}"
        name = f"fern'$({touch})`{touch}`\".AppImage"
        json_of(direct_upload(c, fern["token"], APP, "3.0.0", name, b"evil name"), 201)
    for attack in attacks:
        answer = json_of(
            generate(
                server,
                fern["token"],
                version="3.0.0",
                description=f"Fern {attack} end",
                url=f"https://example.org/{attack.replace(' ', '').replace(chr(10), '')}",
            ),
            200,
        )
        files = answer["files"]
        assert makepkg.printsrcinfo(files["PKGBUILD"]) == files[".SRCINFO"]
        assert not canary.exists(), attack
        # The text is kept, literally (pkgdesc on one line).
        assert field(files[".SRCINFO"], "pkgdesc") == [" ".join(f"Fern {attack} end".split())]
        assert follow(httpx.get(answer["build"]["downloadUrl"])).content == b"evil name"
    for maintainer in (f"Fern <f@example.org>\ntouch {canary}", f"$(touch {canary})"):
        refused = generate(server, fern["token"], version="3.0.0", maintainer=maintainer)
        assert refused.status_code == 422
        assert error_of(refused)["field"] == "maintainer"
    assert not canary.exists()


# --- F-Droid's own tools ---------------------------------------------------------------------


def fdroid(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    fdroid = Path(sys.executable).parent / "fdroid"  # fdroidserver's command, in this venv
    return subprocess.run(
        [str(fdroid), *args], cwd=tmp, capture_output=True, text=True, timeout=120
    )


def fdroid_data(tmp: Path, app_id: str, metadata: str) -> Path:
    """A fresh F-Droid data directory: metadata/APPID.yml, and the categories F-Droid's data
    repository defines (config/categories.yml: fdroidserver has none of its own)."""
    (tmp / "metadata").mkdir()
    (tmp / "metadata" / f"{app_id}.yml").write_text(metadata)
    (tmp / "config").mkdir()
    (tmp / "config" / "categories.yml").write_text(
        "".join(f"{c!r}:\n  name: {c!r}\n" for c in CATEGORIES)
    )
    return tmp / "metadata" / f"{app_id}.yml"


def test_metadata_passes_fdroids_parser_lint_and_format(
    server: Server, fern: dict[str, Any], tmp_path: Path
) -> None:
    answer = json_of(
        generate(server, fern["token"], version="1.4.0", os="android",
                 categories=["Time", "System"], **FULL),
        200,
    )  # fmt: skip
    text = answer["files"]["metadata.yml"]
    parsed = fdroid_metadata.parse_yaml_metadata(io.StringIO(text))
    assert parsed["Categories"] == ["System", "Time"]
    assert parsed["License"] == "GPL-3.0-or-later"
    assert parsed["AuthorName"] == "Fern Gully"
    assert parsed["AuthorEmail"] == "fern@example.org"
    assert parsed["SourceCode"] == "https://github.com/fern/fern-app"
    assert parsed["IssueTracker"] == "https://github.com/fern/fern-app/issues"
    assert parsed["Summary"] == "Keeps ferns watered"
    assert parsed["Description"] == FULL["description"]
    assert parsed["CurrentVersion"] == "1.4.0"
    assert parsed["CurrentVersionCode"] == 10040009
    [build] = parsed["Builds"]
    assert (build["versionName"], build["versionCode"]) == ("1.4.0", 10040009)
    path = fdroid_data(tmp_path, "org.example.fern", text)
    # `-f`: also as `fdroid rewritemeta` would write it; with an app id, yamllint runs too.
    lint = fdroid(tmp_path, "lint", "-f", "org.example.fern")
    assert lint.returncode == 0, lint.stdout + lint.stderr
    assert lint.stdout == ""
    rewrite = fdroid(tmp_path, "rewritemeta", "org.example.fern")
    assert rewrite.returncode == 0, rewrite.stderr
    assert path.read_text() == text


def test_fdroid_lint_is_not_a_rubber_stamp(tmp_path: Path) -> None:
    """The same lint refuses a license F-Droid does not accept, and another layout."""
    fdroid_data(tmp_path, "org.example.fern", "Categories:\n- System\nLicense: Foo\n")
    lint = fdroid(tmp_path, "lint", "-f", "org.example.fern")
    assert lint.returncode != 0
    assert "Unexpected license tag" in lint.stdout
    assert "wrong indentation" in lint.stdout


def test_metadata_text_cannot_become_fields(server: Server, fern: dict[str, Any]) -> None:
    sneaky = "Fern\nLicense: Proprietary\nBuilds:\n- versionName: evil\n"
    answer = json_of(generate(server, fern["token"], version="1.4.0", description=sneaky), 200)
    parsed = fdroid_metadata.parse_yaml_metadata(io.StringIO(answer["files"]["metadata.yml"]))
    assert parsed["License"] == "Unknown"
    assert parsed["Description"] == sneaky.strip()
    assert [b["versionName"] for b in parsed["Builds"]] == ["1.4.0"]


# --- the version-pinned download -------------------------------------------------------------


def test_the_stable_url_is_public_and_counts_downloads(
    server: Server, fern: dict[str, Any]
) -> None:
    _, other = developer_with_app(server.settings, "gale", "gale-app")
    name = "fern-app_1.4.0_amd64.deb"
    path = f"/api/apps/{APP}/versions/1.4.0/{name}"
    body = fern["files"][("1.4.0", name)]
    with server.client() as c:

        def downloads() -> int:
            listing = json_of(c.get(f"/api/apps/{APP}/builds", headers=bearer(fern["token"])), 200)
            return next(int(b["downloads"]) for b in listing["builds"] if b["fileName"] == name)

        before = downloads()
        for headers in ({}, bearer(other), bearer(fern["token"])):
            answer = c.get(path, headers={**headers, "X-Forwarded-For": "192.0.2.7"})
            assert answer.status_code == 302
            assert answer.headers["cache-control"] == "no-store"
            assert answer.json()["version"] == "1.4.0"
            assert follow(answer).content == body
        eventually(lambda: downloads() == before + 1)  # one client within 30 s: counted once


def test_the_stable_url_refuses_what_is_not_there(server: Server, fern: dict[str, Any]) -> None:
    with server.client() as c:
        cases = [
            (f"/api/apps/{APP}/versions/1.4.0/nothing.deb", "fileName", "fern-app_1.4.0_amd64.deb"),
            (f"/api/apps/{APP}/versions/9.9.9/fern.deb", "version", "no build of version"),
            ("/api/apps/ghost/versions/1.0.0/x.deb", "name", "no app named"),
        ]
        for path, field_name, said in cases:
            answer = c.get(path)
            assert answer.status_code == 404, path
            error = error_of(answer)
            assert error["field"] == field_name, error
            assert said in error["message"], error


def test_a_corrupted_build_is_never_packaged(server: Server, fern: dict[str, Any]) -> None:
    with server.client() as c:
        done = json_of(direct_upload(c, fern["token"], APP, "4.0.0", "f.AppImage", b"good"), 201)
    stored = server.settings.data / "objects" / done["s3Key"]
    stored.write_bytes(b"EVIL")
    answer = generate(server, fern["token"], version="4.0.0")
    assert answer.status_code == 409
    assert error_of(answer)["code"] == "build_corrupted"
    assert b"EVIL" not in answer.content
    with server.client() as c:
        assert c.get(f"/api/apps/{APP}/versions/4.0.0/f.AppImage").status_code == 409


# --- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "status", "field_name"),
    [
        ({"app": "ghost"}, 404, "app"),
        ({"app": APP, "version": "9.9.9"}, 404, "version"),
        ({"app": APP, "version": "1.4.0", "format": "rpm"}, 404, None),
        ({"app": APP, "format": "zzz"}, 422, "format"),
        ({"app": APP, "os": "plan9"}, 422, "os"),
        ({"app": APP, "arch": "z80"}, 422, "arch"),
        ({"app": APP, "license": "Foo-License"}, 422, "license"),
        ({"app": APP, "license": "MIT AND"}, 422, "license"),
        ({"app": APP, "license": "( ) AND"}, 422, "license"),
        ({"app": APP, "license": "( OR MIT )"}, 422, "license"),
        ({"app": APP, "url": "http://[::1/"}, 422, "url"),
        ({"app": "a\u0000b"}, 404, "app"),
        ({"app": APP, "version": "1.4.0\u0000"}, 404, "version"),
        ({"app": APP, "url": "javascript:alert(1)"}, 422, "url"),
        ({"app": APP, "url": "https://example.org/a b"}, 422, "url"),
        ({"app": APP, "maintainer": "no email"}, 422, "maintainer"),
        ({"app": APP, "description": "x" * 4001}, 422, "description"),
        ({"app": APP, "description": "bell\x07"}, 422, "description"),
        ({"app": APP, "categories": ["Toys"]}, 422, "categories"),
        ({"app": APP, "categories": "System"}, 400, "categories"),
        ({"app": APP, "version": 1}, 400, "version"),
        ({"app": 7}, 400, "app"),
        ({}, 400, "app"),
        ({"app": APP, "pkgrel": 2}, 400, "pkgrel"),
    ],
)
def test_bad_requests_are_clear(
    server: Server, fern: dict[str, Any], body: dict[str, Any], status: int, field_name: str | None
) -> None:
    with server.client() as c:
        answer = c.post(GENERATE, headers=bearer(fern["token"]), json=body)
    assert answer.status_code == status, answer.text
    assert error_of(answer).get("field") == field_name


def test_generating_records_nothing(server: Server, fern: dict[str, Any]) -> None:
    """A preview, answered or refused, appends nothing to any topic of the log."""
    topics = get_args(Topic)
    before = {t: log_ends(server.settings, t) for t in topics}
    json_of(generate(server, fern["token"], version="1.4.0", **FULL), 200)
    assert generate(server, fern["token"], license="Nope").status_code == 422
    assert generate(server, fern["token"], version="0.0.0").status_code == 404
    assert {t: log_ends(server.settings, t) for t in topics} == before


def test_only_the_owner_generates(server: Server, fern: dict[str, Any]) -> None:
    _, other = developer_with_app(server.settings, "hal", "hal-app")
    with server.client() as c:
        empty = c.post(GENERATE, headers=bearer(other), json={"app": "hal-app"})
        assert (empty.status_code, error_of(empty)["code"]) == (404, "no_builds")
        theirs = c.post(GENERATE, headers=bearer(other), json={"app": APP})
        assert (theirs.status_code, error_of(theirs)["field"]) == (403, "app")
        assert fern["files"][("1.4.0", "fern-app-x86_64.AppImage")][:20].decode() not in theirs.text
        anonymous = c.post(GENERATE, json={"app": APP})
        assert anonymous.status_code == 401
        form = c.post(GENERATE, headers=bearer(fern["token"]), data={"app": APP})
        assert (form.status_code, error_of(form)["field"]) == (415, "Content-Type")
        broken = c.post(
            GENERATE,
            headers={**bearer(fern["token"]), "Content-Type": "application/json"},
            content=b"{app",
        )
        assert (broken.status_code, error_of(broken)["code"]) == (400, "malformed_json")
