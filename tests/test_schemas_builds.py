"""Build and upload vocabulary: detection, aliases, versions, bundle ids, permissions."""

from __future__ import annotations

import itertools

import pytest

from schemas.builds import (
    TERMINAL,
    DetectedPlatform,
    artifact_key,
    can_move,
    detect_architecture,
    detect_platform,
    is_newer,
    normalize_architecture,
    normalize_format,
    normalize_os,
    parse_semver,
    validate_bundle_id,
    validate_file_name,
    version_code,
)
from schemas.permissions import PERMISSIONS, android_permissions, normalize_permissions
from storage.objects.names import validate_key


@pytest.mark.parametrize(
    ("name", "os_name", "fmt"),
    [
        ("app-release.apk", "android", "apk"),
        ("bundle.AAB", "android", "aab"),
        ("MyApp.ipa", "ios", "ipa"),
        ("Hutch-1.0.0-x86_64.AppImage", "linux", "appimage"),
        ("hutch_1.0.0_amd64.deb", "linux", "deb"),
        ("hutch-1.0.0-1.x86_64.rpm", "linux", "rpm"),
        ("org.example.Hutch.flatpak", "linux", "flatpak"),
        ("hutch-1.0.0-linux.tar.gz", "linux", "tar.gz"),
        ("hutch.tgz", "linux", "tar.gz"),
        ("Hutch Setup 1.0.0.exe", "windows", "exe"),
        ("hutch.msi", "windows", "msi"),
        ("Hutch-1.0.0-universal.dmg", "macos", "dmg"),
        ("hutch.pkg", "macos", "pkg"),
    ],
)
def test_detect_platform(name: str, os_name: str, fmt: str) -> None:
    assert detect_platform(name) == DetectedPlatform(os_name, fmt)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["source.zip", "notes.txt", "apk", ".apk", "archive.gz"])
def test_detect_platform_unknown(name: str) -> None:
    assert detect_platform(name) is None


@pytest.mark.parametrize(
    ("name", "os_name", "arch"),
    [
        ("Hutch-1.0.0-x86_64.AppImage", None, "x86_64"),
        ("hutch_1.0.0_amd64.deb", None, "x86_64"),
        ("hutch-1.0.0.aarch64.rpm", None, "arm64"),
        ("app-arm64-v8a-release.apk", "android", "arm64-v8a"),
        ("app-armeabi-v7a-release.apk", "android", "armeabi-v7a"),
        ("app-arm64.apk", "android", "arm64-v8a"),
        ("Hutch-universal.dmg", "macos", "universal"),
        ("hutch_1.0_armhf.deb", None, "armv7"),
        ("hutch-1.0-i686.rpm", None, "x86"),
        ("hutch-win64.exe", "windows", "x86_64"),
        ("app-release.apk", "android", None),
        ("myx86_64thing.bin", None, None),  # inside a word is not an architecture
    ],
)
def test_detect_architecture(name: str, os_name: str | None, arch: str | None) -> None:
    assert detect_architecture(name, os_name) == arch


def test_normalize_route_segments() -> None:
    assert normalize_format("AppImage") == "appimage"
    assert normalize_format("tgz") == "tar.gz"
    assert normalize_format("flatpakref") == "flatpak"
    assert normalize_os("Darwin") == "macos"
    assert normalize_architecture("amd64") == "x86_64"
    assert normalize_architecture("aarch64", "android") == "arm64-v8a"
    assert normalize_architecture("arm64-v8a", "linux") == "arm64"
    with pytest.raises(ValueError, match="unknown format"):
        normalize_format("exe2")
    with pytest.raises(ValueError, match="unknown os"):
        normalize_os("beos")
    with pytest.raises(ValueError, match="unknown architecture"):
        normalize_architecture("sparc")


@pytest.mark.parametrize("name", ["app.apk", "Hutch Setup 1.0.exe", "Ünïcode-app.deb"])
def test_file_name_accepted(name: str) -> None:
    assert validate_file_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "../app.apk",
        "dir/app.apk",
        "dir\\app.apk",
        "app\x00.apk",
        ".htaccess",
        "-rf.apk",
        "a\u202eknp.exe",
        "app.apk\n",
        " app.apk",
        "x" * 201,
    ],
)
def test_file_name_refused(name: str) -> None:
    with pytest.raises(ValueError, match="fileName"):
        validate_file_name(name)


def test_artifact_key_is_a_valid_object_key() -> None:
    key = artifact_key("My App", "1.0.0-rc.1+build.5", "0a1b-2c3d", "Hutch Setup (x64).exe")
    assert key == "apps/My_App/1.0.0-rc.1+build.5/0a1b-2c3d/Hutch_Setup_(x64).exe"
    assert validate_key(key) == key
    for hostile in ("..", "../../etc", ".hidden", "é/ü", "\x00"):
        assert validate_key(artifact_key(hostile, hostile, hostile, hostile))


def test_semver_precedence() -> None:
    chain = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.10.0",
    ]
    for lower, higher in itertools.pairwise(chain):
        assert is_newer(higher, lower)
        assert not is_newer(lower, higher)
    assert not is_newer("1.0.0+build.2", "1.0.0+build.1")  # build metadata has no precedence
    assert not is_newer("1.2.0", "1.2.0")


@pytest.mark.parametrize("text", ["v1.0.0", "1.0", "1", "01.0.0", "1.0.0-", "", "1.0.0 "])
def test_semver_refused(text: str) -> None:
    with pytest.raises(ValueError, match="semantic version"):
        parse_semver(text)


def test_version_code_increases_with_precedence() -> None:
    chain = [
        "0.0.1",
        "0.1.0",
        "0.9.999",
        "1.0.0-beta.3",
        "1.0.0",
        "1.0.1",
        "1.999.999",
        "2.0.0",
        "209.999.999",
    ]
    codes = [version_code(v) for v in chain]
    assert codes == sorted(codes)
    assert len(set(codes)) == len(codes)
    assert version_code("1.2.3") == 10_020_039
    assert codes[-1] <= 2_100_000_000
    with pytest.raises(ValueError, match="versionCode"):
        version_code("210.0.0")
    with pytest.raises(ValueError, match="versionCode"):
        version_code("1.1000.0")


@pytest.mark.parametrize("value", ["com.example.myapp", "io.hutch.App_2", "a.b"])
def test_bundle_id_accepted(value: str) -> None:
    assert validate_bundle_id(value) == value


@pytest.mark.parametrize(
    "value",
    [
        "myapp",
        "com..app",
        ".com.app",
        "com.app.",
        "com.1app",
        "com.my-app",
        "com.example.new",
        "com._x",
        "com.ex ample",
        "com.exämple",
        "",
    ],
)
def test_bundle_id_refused_for_android(value: str) -> None:
    with pytest.raises(ValueError, match="bundleId"):
        validate_bundle_id(value)


def test_ios_bundle_ids_allow_hyphens() -> None:
    assert validate_bundle_id("com.my-company.app", "ios") == "com.my-company.app"
    with pytest.raises(ValueError, match="bundleId"):
        validate_bundle_id("com.my_company.app", "ios")


def test_status_transitions() -> None:
    assert can_move("queued", "building")
    assert can_move("building", "success")
    assert can_move("building", "failed")
    assert can_move("queued", "failed")
    assert not can_move("queued", "success")
    assert not can_move("success", "building")
    assert not can_move("failed", "queued")
    assert not can_move("building", "building")
    assert frozenset({"success", "failed"}) == TERMINAL


def test_permissions_vocabulary() -> None:
    assert normalize_permissions(["GPS", "camera", "location", "camera"]) == ("camera", "gps")
    assert normalize_permissions([]) == ()
    with pytest.raises(ValueError, match="teleport") as info:
        normalize_permissions(["camera", "teleport", "x-ray"])
    assert "x-ray" in str(info.value)
    manifest = {p.name: p.max_sdk for p in android_permissions(["gps", "storage", "camera"])}
    assert manifest == {
        "android.permission.ACCESS_COARSE_LOCATION": None,
        "android.permission.ACCESS_FINE_LOCATION": None,
        "android.permission.CAMERA": None,
        "android.permission.READ_EXTERNAL_STORAGE": 32,
    }
    for permission in PERMISSIONS.values():
        assert permission.description
        assert all(a.name.startswith("android.permission.") for a in permission.android)
