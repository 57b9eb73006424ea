"""An Android Trusted Web Activity project for a web app, as a deterministic zip.

The project opens the web app full-screen in the user's browser (Chrome's TWA protocol)
through Google's android-browser-helper library, whose LauncherActivity does the work, so it
contains no Java: Gradle files, the manifest, resources, the launcher icon, and the Digital
Asset Links statement the site must publish at /.well-known/assetlinks.json for the browser
to drop its URL bar. `./gradlew assembleRelease` (Gradle 8, Android SDK 34) builds the APK.

Everything is generated from data with escaping (XML through ElementTree, Android string
resources escaped, Gradle strings quoted), so no manifest value can inject markup or code.
Same inputs give byte-identical zips.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.etree import ElementTree as ET

import orjson

from builder.manifest import WebApp
from schemas.builds import validate_bundle_id, version_code
from schemas.permissions import android_permissions, normalize_permissions

ANDROID_NS = "http://schemas.android.com/apk/res/android"
BROWSER_HELPER = "com.google.androidbrowserhelper:androidbrowserhelper:2.5.0"
ANDROID_GRADLE_PLUGIN = "8.5.2"
GRADLE_VERSION = "8.9"
COMPILE_SDK = 34
MIN_SDK = 21
TRUSTED = "android.support.customtabs.trusted"
HELPER = "com.google.androidbrowserhelper.trusted"
_FINGERPRINT = re.compile(r"([0-9A-F]{2}:){31}[0-9A-F]{2}")
_EPOCH = (1980, 1, 1, 0, 0, 0)

ET.register_namespace("android", ANDROID_NS)


@dataclass(frozen=True, slots=True)
class TwaSpec:
    package_id: str
    app_name: str
    launcher_name: str
    version: str  # semver: versionName, and versionCode unless given
    start_url: str  # absolute https URL the app opens
    theme_color: str = "#FFFFFF"
    background_color: str = "#FFFFFF"
    navigation_color: str = "#000000"
    display: str = "standalone"
    orientation: str | None = None
    permissions: tuple[str, ...] = ()
    icon_png: bytes | None = field(default=None, repr=False)
    cert_fingerprints: tuple[str, ...] = ()  # SHA-256 of the signing key, AA:BB:... form
    manifest_url: str | None = None
    version_code: int | None = None

    def __post_init__(self) -> None:
        validate_bundle_id(self.package_id, "android")
        parts = urlsplit(self.start_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("a Trusted Web Activity needs an https start URL")
        object.__setattr__(self, "permissions", normalize_permissions(self.permissions))
        for fp in self.cert_fingerprints:
            if not _FINGERPRINT.fullmatch(fp):
                raise ValueError(f"{fp!r} is not a SHA-256 fingerprint (AA:BB:...:FF)")
        if self.icon_png is not None and not self.icon_png.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ValueError("the launcher icon must be a PNG")

    @property
    def host(self) -> str:
        return urlsplit(self.start_url).netloc

    @property
    def code(self) -> int:
        return self.version_code if self.version_code is not None else version_code(self.version)


def spec_for(
    app: WebApp,
    *,
    name: str,
    bundle_id: str,
    version: str,
    permissions: Sequence[str] = (),
    icon_png: bytes | None = None,
    cert_fingerprints: Sequence[str] = (),
) -> TwaSpec:
    """The project for a web app as the build request names it (name and id from the request,
    look and start page from the manifest)."""
    return TwaSpec(
        package_id=bundle_id,
        app_name=name,
        launcher_name=app.short_name if len(name) > 30 else name,
        version=version,
        start_url=app.start_url,
        theme_color=app.theme_color or "#FFFFFF",
        background_color=app.background_color or app.theme_color or "#FFFFFF",
        display=app.display,
        orientation=app.orientation,
        permissions=tuple(permissions),
        icon_png=icon_png,
        cert_fingerprints=tuple(cert_fingerprints),
        manifest_url=app.manifest_url,
    )


def android_string(text: str) -> str:
    """Escape for an Android string resource (after XML escaping, which ElementTree does)."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')
    escaped = escaped.replace("\n", "\\n").replace("\t", "\\t")
    return "\\" + escaped if escaped[:1] in ("@", "?") else escaped


def gradle_string(text: str) -> str:
    """A single-quoted Groovy string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'").replace("$", "\\$") + "'"


def _xml(root: ET.Element) -> bytes:
    ET.indent(root, space="    ")
    body: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=False)
    return b'<?xml version="1.0" encoding="utf-8"?>\n' + body + b"\n"


def _a(name: str) -> str:
    return f"{{{ANDROID_NS}}}{name}"


def _el(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    return ET.SubElement(parent, tag, {_a(k): v for k, v in attrs.items()})


def android_manifest(spec: TwaSpec) -> bytes:
    root = ET.Element("manifest")
    for permission in android_permissions(spec.permissions):
        attrs = {"name": permission.name}
        if permission.max_sdk is not None:
            attrs["maxSdkVersion"] = str(permission.max_sdk)
        _el(root, "uses-permission", **attrs)
    app = _el(
        root,
        "application",
        allowBackup="true",
        icon="@mipmap/ic_launcher" if spec.icon_png else "@drawable/ic_launcher",
        label="@string/appName",
        supportsRtl="true",
        theme="@android:style/Theme.Translucent.NoTitleBar",
    )
    _el(app, "meta-data", name="asset_statements", resource="@string/assetStatements")
    if spec.manifest_url:
        _el(app, "meta-data", name="web_manifest_url", value=spec.manifest_url)
    activity = _el(
        app,
        "activity",
        name=f"{HELPER}.LauncherActivity",
        exported="true",
        label="@string/launcherName",
        alwaysRetainTaskState="true",
    )
    _el(activity, "meta-data", name=f"{TRUSTED}.DEFAULT_URL", value="@string/launchUrl")
    _el(activity, "meta-data", name=f"{TRUSTED}.STATUS_BAR_COLOR", resource="@color/colorPrimary")
    _el(
        activity,
        "meta-data",
        name=f"{TRUSTED}.NAVIGATION_BAR_COLOR",
        resource="@color/navigationColor",
    )
    _el(
        activity,
        "meta-data",
        name=f"{TRUSTED}.SPLASH_SCREEN_BACKGROUND_COLOR",
        resource="@color/backgroundColor",
    )
    if spec.display == "fullscreen":
        _el(activity, "meta-data", name=f"{TRUSTED}.DISPLAY_MODE", value="immersive")
    if spec.orientation:
        _el(activity, "meta-data", name=f"{TRUSTED}.SCREEN_ORIENTATION", value=spec.orientation)
    launcher = ET.SubElement(activity, "intent-filter")
    _el(launcher, "action", name="android.intent.action.MAIN")
    _el(launcher, "category", name="android.intent.category.LAUNCHER")
    links = _el(activity, "intent-filter", autoVerify="true")
    _el(links, "action", name="android.intent.action.VIEW")
    _el(links, "category", name="android.intent.category.DEFAULT")
    _el(links, "category", name="android.intent.category.BROWSABLE")
    _el(links, "data", scheme="https", host=urlsplit(spec.start_url).hostname or "")
    _el(app, "activity", name=f"{HELPER}.FocusActivity")
    _el(
        app,
        "activity",
        name=f"{HELPER}.WebViewFallbackActivity",
        configChanges="orientation|screenSize",
    )
    if "notifications" in spec.permissions:
        # Lets the site's web notifications show as the app's own.
        service = _el(
            app, "service", name=f"{HELPER}.DelegationService", enabled="true", exported="true"
        )
        action = ET.SubElement(service, "intent-filter")
        _el(action, "action", name=f"{TRUSTED}.TRUSTED_WEB_ACTIVITY_SERVICE")
        _el(action, "category", name="android.intent.category.DEFAULT")
    return _xml(root)


def asset_statements(spec: TwaSpec) -> list[dict[str, object]]:
    """The app's side of the link: it may handle every URL of the site."""
    return [
        {
            "relation": ["delegate_permission/common.handle_all_urls"],
            "target": {"namespace": "web", "site": f"https://{spec.host}"},
        }
    ]


def assetlinks_json(spec: TwaSpec) -> bytes:
    """The site's side, to serve at https://<host>/.well-known/assetlinks.json."""
    fingerprints = list(spec.cert_fingerprints) or ["REPLACE_WITH_YOUR_SIGNING_KEY_SHA256"]
    statement = [
        {
            "relation": ["delegate_permission/common.handle_all_urls"],
            "target": {
                "namespace": "android_app",
                "package_name": spec.package_id,
                "sha256_cert_fingerprints": fingerprints,
            },
        }
    ]
    return orjson.dumps(statement, option=orjson.OPT_INDENT_2) + b"\n"


def _resources(values: dict[str, tuple[str, str]]) -> bytes:
    root = ET.Element("resources")
    for name, (kind, value) in values.items():
        ET.SubElement(root, kind, {"name": name}).text = value
    return _xml(root)


def project_files(spec: TwaSpec) -> dict[str, bytes]:
    """Every file of the project by path."""
    statements = orjson.dumps(asset_statements(spec)).decode()
    files: dict[str, bytes] = {
        "settings.gradle": _SETTINGS.format(name=gradle_string(spec.app_name)).encode(),
        "build.gradle": _ROOT_BUILD.format(agp=ANDROID_GRADLE_PLUGIN).encode(),
        "gradle.properties": b"android.useAndroidX=true\norg.gradle.jvmargs=-Xmx1536m\n",
        "gradle/wrapper/gradle-wrapper.properties": _WRAPPER.format(gradle=GRADLE_VERSION).encode(),
        "app/build.gradle": _APP_BUILD.format(
            package=gradle_string(spec.package_id),
            sdk=COMPILE_SDK,
            min_sdk=MIN_SDK,
            code=spec.code,
            version=gradle_string(spec.version),
            helper=gradle_string(BROWSER_HELPER),
        ).encode(),
        "app/proguard-rules.pro": b"# android-browser-helper ships its own keep rules.\n",
        "app/src/main/AndroidManifest.xml": android_manifest(spec),
        "app/src/main/res/values/strings.xml": _resources(
            {
                "appName": ("string", android_string(spec.app_name)),
                "launcherName": ("string", android_string(spec.launcher_name)),
                "launchUrl": ("string", android_string(spec.start_url)),
                "assetStatements": ("string", android_string(statements)),
            }
        ),
        "app/src/main/res/values/colors.xml": _resources(
            {
                "colorPrimary": ("color", spec.theme_color),
                "navigationColor": ("color", spec.navigation_color),
                "backgroundColor": ("color", spec.background_color),
            }
        ),
        "assetlinks.json": assetlinks_json(spec),
        "README.md": _README.format(host=spec.host, package=spec.package_id).encode(),
    }
    if spec.icon_png:
        files["app/src/main/res/mipmap-xxxhdpi/ic_launcher.png"] = spec.icon_png
    else:
        files["app/src/main/res/drawable/ic_launcher.xml"] = _default_icon(spec.theme_color)
    return files


def _default_icon(color: str) -> bytes:
    root = ET.Element(
        "vector",
        {
            _a("width"): "108dp",
            _a("height"): "108dp",
            _a("viewportWidth"): "108",
            _a("viewportHeight"): "108",
        },
    )
    ET.SubElement(
        root,
        "path",
        {_a("fillColor"): color, _a("pathData"): "M54,54m-44,0a44,44 0,1 1,88 0a44,44 0,1 1,-88 0"},
    )
    return _xml(root)


def project_zip(spec: TwaSpec) -> bytes:
    """The project as a zip, byte-identical for identical specs."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path, content in sorted(project_files(spec).items()):
            info = zipfile.ZipInfo(f"twa/{path}", date_time=_EPOCH)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, content)
    return buffer.getvalue()


_SETTINGS = """pluginManagement {{
    repositories {{
        google()
        mavenCentral()
        gradlePluginPortal()
    }}
}}
dependencyResolutionManagement {{
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {{
        google()
        mavenCentral()
    }}
}}
rootProject.name = {name}
include ':app'
"""

_ROOT_BUILD = """plugins {{
    id 'com.android.application' version '{agp}' apply false
}}
"""

_WRAPPER = """distributionBase=GRADLE_USER_HOME
distributionPath=wrapper/dists
distributionUrl=https\\://services.gradle.org/distributions/gradle-{gradle}-bin.zip
zipStoreBase=GRADLE_USER_HOME
zipStorePath=wrapper/dists
"""

_APP_BUILD = """plugins {{
    id 'com.android.application'
}}

android {{
    namespace {package}
    compileSdk {sdk}

    defaultConfig {{
        applicationId {package}
        minSdk {min_sdk}
        targetSdk {sdk}
        versionCode {code}
        versionName {version}
    }}

    buildTypes {{
        release {{
            minifyEnabled true
            proguardFiles getDefaultProguardFile('proguard-android-optimize.txt'),
                'proguard-rules.pro'
        }}
    }}

    compileOptions {{
        sourceCompatibility JavaVersion.VERSION_17
        targetCompatibility JavaVersion.VERSION_17
    }}
}}

dependencies {{
    implementation {helper}
}}
"""

_README = """# Android app for https://{host}

A Trusted Web Activity project generated by Hutch for package `{package}`.

1. Build: `gradle wrapper && ./gradlew assembleRelease` (JDK 17, Android SDK 34), then sign
   the APK (or `bundleRelease` for Google Play).
2. Put the SHA-256 fingerprint of your signing key into `assetlinks.json` and serve that file
   at https://{host}/.well-known/assetlinks.json. Until it is served, Android shows the site
   with a browser URL bar.
"""
