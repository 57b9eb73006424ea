"""The reference builder's pure parts: web app manifest parsing and the TWA project zip."""

from __future__ import annotations

import io
import json
import zipfile
from xml.etree import ElementTree as ET

import pytest

from builder.manifest import Icon, Page, best_icon, parse_color, parse_html, parse_manifest
from builder.twa import ANDROID_NS, TwaSpec, project_files, project_zip, spec_for

A = f"{{{ANDROID_NS}}}"


def xml(data: bytes) -> ET.Element:
    """Parse XML the generator produced (our own output, the thing under test)."""
    return ET.fromstring(data)  # noqa: S314


PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32

HTML = """<!doctype html>
<html><head>
  <base href="/app/">
  <title>  Pocket
     Planner </title>
  <meta name="theme-color" media="(prefers-color-scheme: dark)" content="#000">
  <meta name="theme-color" content="#3367d6">
  <link rel="icon" href="favicon.ico">
  <link rel="apple-touch-icon" sizes="180x180" href="/touch.png">
  <link rel="Manifest" href="site.webmanifest">
  <link rel="manifest" href="second.webmanifest">
</head><body><p>Hi</p></body></html>"""

MANIFEST = json.dumps(
    {
        "name": "Pocket Planner",
        "short_name": "Planner",
        "start_url": "./?source=pwa",
        "scope": "/app/",
        "display": "fullscreen",
        "theme_color": "#3367D6",
        "background_color": "rgb(255, 250, 240)",
        "orientation": "portrait",
        "icons": [
            {"src": "icons/72.png", "sizes": "72x72", "type": "image/png"},
            {"src": "icons/512.png", "sizes": "512x512", "type": "image/png"},
            {"src": "icons/192.png", "sizes": "192x192", "type": "image/png"},
            {
                "src": "icons/mask.png",
                "sizes": "192x192",
                "type": "image/png",
                "purpose": "maskable",
            },
            {"src": "icons/logo.svg", "sizes": "any", "type": "image/svg+xml"},
            {"sizes": "48x48"},
        ],
    }
)


def test_parse_html_finds_manifest_icons_and_theme() -> None:
    page = parse_html(HTML, "https://planner.example/index.html")
    assert page.manifest_url == "https://planner.example/app/site.webmanifest"
    assert page.title == "Pocket Planner"
    assert page.theme_color == "#3367D6"
    assert [i.src for i in page.icons] == [
        "https://planner.example/app/favicon.ico",
        "https://planner.example/touch.png",
    ]
    assert page.icons[1].sizes == (180,)


def test_parse_manifest_resolves_against_the_manifest_url() -> None:
    page = parse_html(HTML, "https://planner.example/app/")
    app = parse_manifest(MANIFEST, page)
    assert (app.name, app.short_name) == ("Pocket Planner", "Planner")
    assert app.start_url == "https://planner.example/app/?source=pwa"
    assert app.scope == "https://planner.example/app/"
    assert (app.display, app.orientation) == ("fullscreen", "portrait")
    assert (app.theme_color, app.background_color) == ("#3367D6", "#FFFAF0")
    assert app.manifest_url == "https://planner.example/app/site.webmanifest"
    assert len(app.icons) == 5  # the one without src is dropped
    chosen = best_icon(app.icons)
    assert chosen is not None
    assert chosen.src == "https://planner.example/app/icons/192.png"
    assert best_icon(app.icons, min_size=256) == app.icons[1]


def test_manifest_fallbacks() -> None:
    page = Page(
        url="https://planner.example/start",
        title="From Title",
        theme_color="#112233",
        icons=(Icon("https://planner.example/i.png", (96,)),),
        manifest_url="https://planner.example/m.json",
    )
    cross_origin = json.dumps(
        {
            "short_name": "Short",
            "start_url": "https://evil.example/",
            "scope": "https://evil.example/",
            "display": "kiosk",
        }
    )
    app = parse_manifest(cross_origin, page)
    assert (app.name, app.short_name) == ("Short", "Short")
    assert app.start_url == "https://planner.example/start"
    assert app.scope == "https://planner.example/"
    assert app.display == "standalone"
    assert app.theme_color == "#112233"
    assert app.icons == page.icons
    for broken in (None, b"", b"{not json", b"[1, 2]"):
        fallback = parse_manifest(broken, page)
        assert fallback.name == "From Title"
        assert fallback.manifest_url is None
    bare = parse_manifest(None, Page(url="https://bare.example/"))
    assert bare.name == "bare.example"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#abc", "#AABBCC"),
        ("#AbCdEf80", "#ABCDEF"),
        ("rgba(1, 2, 3, 0.5)", "#010203"),
        ("White", "#FFFFFF"),
        ("rgb(300,0,0)", None),
        ("url(x)", None),
        ("#12", None),
        (None, None),
    ],
)
def test_parse_color(text: str | None, expected: str | None) -> None:
    assert parse_color(text) == expected


def spec(**overrides: object) -> TwaSpec:
    values: dict[str, object] = {
        "package_id": "com.example.planner",
        "app_name": "Pocket Planner",
        "launcher_name": "Planner",
        "version": "1.4.2",
        "start_url": "https://planner.example/app/?source=pwa",
        "permissions": ("camera", "gps", "notifications"),
        "icon_png": PNG,
    }
    values.update(overrides)
    return TwaSpec(**values)  # type: ignore[arg-type]


def test_project_contains_the_expected_files() -> None:
    files = project_files(spec())
    assert set(files) == {
        "settings.gradle",
        "build.gradle",
        "gradle.properties",
        "gradle/wrapper/gradle-wrapper.properties",
        "app/build.gradle",
        "app/proguard-rules.pro",
        "app/src/main/AndroidManifest.xml",
        "app/src/main/res/values/strings.xml",
        "app/src/main/res/values/colors.xml",
        "app/src/main/res/mipmap-xxxhdpi/ic_launcher.png",
        "assetlinks.json",
        "README.md",
    }
    assert files["app/src/main/res/mipmap-xxxhdpi/ic_launcher.png"] == PNG
    app_gradle = files["app/build.gradle"].decode()
    assert "applicationId 'com.example.planner'" in app_gradle
    assert "versionCode 10040029" in app_gradle
    assert "versionName '1.4.2'" in app_gradle
    assert "com.google.androidbrowserhelper:androidbrowserhelper:" in app_gradle
    assert "include ':app'" in files["settings.gradle"].decode()


def test_android_manifest_is_well_formed_and_lists_permissions() -> None:
    root = xml(project_files(spec())["app/src/main/AndroidManifest.xml"])
    assert root.tag == "manifest"
    permissions = {e.get(f"{A}name") for e in root.iter("uses-permission")}
    assert permissions == {
        "android.permission.CAMERA",
        "android.permission.ACCESS_FINE_LOCATION",
        "android.permission.ACCESS_COARSE_LOCATION",
        "android.permission.POST_NOTIFICATIONS",
    }
    application = root.find("application")
    assert application is not None
    assert application.get(f"{A}icon") == "@mipmap/ic_launcher"
    activity = application.find("activity")
    assert activity is not None
    assert activity.get(f"{A}name") == "com.google.androidbrowserhelper.trusted.LauncherActivity"
    assert activity.get(f"{A}exported") == "true"
    metas = {m.get(f"{A}name"): m for m in activity.iter("meta-data")}
    assert "android.support.customtabs.trusted.DEFAULT_URL" in metas
    hosts = [d.get(f"{A}host") for d in activity.iter("data")]
    assert hosts == ["planner.example"]
    assert application.find("service") is not None  # notification delegation
    quiet = xml(project_files(spec(permissions=()))["app/src/main/AndroidManifest.xml"])
    assert list(quiet.iter("uses-permission")) == []
    assert quiet.find("application/service") is None


def test_values_are_escaped_not_injected() -> None:
    hostile = spec(app_name='It\'s "@me" </string><x/>', version="1.0.0")
    files = project_files(hostile)
    strings = xml(files["app/src/main/res/values/strings.xml"])
    by_name = {e.get("name"): e.text for e in strings}
    assert by_name["appName"] == 'It\\\'s \\"@me\\" </string><x/>'
    assert "rootProject.name = 'It\\'s \"@me\" </string><x/>'" in files["settings.gradle"].decode()
    statements = by_name["assetStatements"]
    assert statements is not None
    assert json.loads(statements.replace('\\"', '"')) == [
        {
            "relation": ["delegate_permission/common.handle_all_urls"],
            "target": {"namespace": "web", "site": "https://planner.example"},
        }
    ]


def test_assetlinks_statement() -> None:
    fingerprint = ":".join(["AB"] * 32)
    links = json.loads(project_files(spec(cert_fingerprints=(fingerprint,)))["assetlinks.json"])
    assert links == [
        {
            "relation": ["delegate_permission/common.handle_all_urls"],
            "target": {
                "namespace": "android_app",
                "package_name": "com.example.planner",
                "sha256_cert_fingerprints": [fingerprint],
            },
        }
    ]
    placeholder = json.loads(project_files(spec())["assetlinks.json"])
    assert placeholder[0]["target"]["sha256_cert_fingerprints"] == [
        "REPLACE_WITH_YOUR_SIGNING_KEY_SHA256"
    ]


def test_zip_is_deterministic_and_complete() -> None:
    first, second = project_zip(spec()), project_zip(spec())
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        assert names == sorted(names)
        assert all(name.startswith("twa/") for name in names)
        assert archive.read("twa/assetlinks.json") == project_files(spec())["assetlinks.json"]


def test_without_icon_a_vector_icon_is_generated() -> None:
    files = project_files(spec(icon_png=None, theme_color="#3367D6"))
    icon = xml(files["app/src/main/res/drawable/ic_launcher.xml"])
    assert icon.find("path") is not None
    manifest = xml(files["app/src/main/AndroidManifest.xml"])
    application = manifest.find("application")
    assert application is not None
    assert application.get(f"{A}icon") == "@drawable/ic_launcher"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"package_id": "planner"}, "bundleId"),
        ({"start_url": "http://planner.example/"}, "https"),
        ({"permissions": ("camera", "telepathy")}, "telepathy"),
        ({"cert_fingerprints": ("AB:CD",)}, "fingerprint"),
        ({"icon_png": b"GIF89a"}, "PNG"),
        ({"version": "1.0"}, "semantic version"),
    ],
)
def test_invalid_specs_refused(overrides: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        project_files(spec(**overrides))


def test_spec_from_a_web_app() -> None:
    page = parse_html(HTML, "https://planner.example/app/")
    app = parse_manifest(MANIFEST, page)
    built = spec_for(
        app,
        name="Pocket Planner",
        bundle_id="com.example.planner",
        version="2.0.0-beta.1",
        permissions=["location"],
    )
    assert built.start_url == "https://planner.example/app/?source=pwa"
    assert built.permissions == ("gps",)
    assert built.display == "fullscreen"
    assert built.code == 20_000_000
    manifest = xml(project_files(built)["app/src/main/AndroidManifest.xml"])
    values = {m.get(f"{A}name"): m.get(f"{A}value") for m in manifest.iter("meta-data")}
    assert values["android.support.customtabs.trusted.DISPLAY_MODE"] == "immersive"
    assert values["android.support.customtabs.trusted.SCREEN_ORIENTATION"] == "portrait"
    assert values["web_manifest_url"] == "https://planner.example/app/site.webmanifest"
