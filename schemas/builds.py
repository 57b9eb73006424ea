"""Builds and uploads: platforms, formats, architectures, versions, bundle ids, statuses.

Pure data and validation for the upload API (`/api/upload`, `/api/apps/{name}/latest/...`)
and the build API (`/api/v1/builds`). Validators raise ValueError with a message fit for the
client; nothing here does I/O.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal, get_args

import semver

OS = Literal["android", "ios", "linux", "windows", "macos"]
BuildPlatform = Literal["android", "ios"]  # what POST /api/v1/builds can produce
BuildStatus = Literal["queued", "building", "success", "failed"]

MAX_UPLOAD_BYTES: Final = 200 * 1024 * 1024
UPLOAD_URL_EXPIRES_S: Final = 300
MAX_FILE_NAME_BYTES: Final = 200

# --- statuses ----------------------------------------------------------------------------

TRANSITIONS: Final[dict[BuildStatus, frozenset[BuildStatus]]] = {
    "queued": frozenset({"building", "failed"}),  # failed: refused or cancelled before start
    "building": frozenset({"success", "failed"}),
    "success": frozenset(),
    "failed": frozenset(),
}
TERMINAL: Final = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def can_move(current: BuildStatus, new: BuildStatus) -> bool:
    """Whether a build may go from `current` to `new`: forward only, never out of a result."""
    return new in TRANSITIONS[current]


# --- platforms, formats, architectures -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class DetectedPlatform:
    os: OS
    format: str  # canonical format: apk, aab, ipa, appimage, deb, rpm, flatpak, tar.gz, ...


# Longest suffixes first, so `.tar.gz` wins over `.gz`. Matched case-insensitively.
_SUFFIXES: Final[tuple[tuple[str, OS, str], ...]] = (
    (".tar.gz", "linux", "tar.gz"),
    (".tgz", "linux", "tar.gz"),
    (".appimage", "linux", "appimage"),
    (".flatpakref", "linux", "flatpak"),
    (".flatpak", "linux", "flatpak"),
    (".deb", "linux", "deb"),
    (".rpm", "linux", "rpm"),
    (".snap", "linux", "snap"),
    (".apk", "android", "apk"),
    (".aab", "android", "aab"),
    (".ipa", "ios", "ipa"),
    (".exe", "windows", "exe"),
    (".msi", "windows", "msi"),
    (".msix", "windows", "msix"),
    (".dmg", "macos", "dmg"),
    (".pkg", "macos", "pkg"),
)

FORMAT_ALIASES: Final[dict[str, str]] = {
    **{fmt: fmt for _, _, fmt in _SUFFIXES},
    "tgz": "tar.gz",
    "targz": "tar.gz",
    "tar": "tar.gz",
    "flatpakref": "flatpak",
    "app-image": "appimage",
    "zip": "zip",
}

OS_ALIASES: Final[dict[str, OS]] = {
    **{name: name for name in get_args(OS)},
    "mac": "macos",
    "macosx": "macos",
    "osx": "macos",
    "darwin": "macos",
    "win": "windows",
    "win32": "windows",
    "win64": "windows",
}

_ARCH_TOKENS: Final[dict[str, str]] = {
    "x86_64": "x86_64",
    "amd64": "x86_64",
    "x64": "x86_64",
    "win64": "x86_64",
    "aarch64": "arm64",
    "arm64": "arm64",
    "arm64-v8a": "arm64",
    "armeabi-v7a": "armv7",
    "armv7": "armv7",
    "armv7l": "armv7",
    "armhf": "armv7",
    "i386": "x86",
    "i686": "x86",
    "x86": "x86",
    "win32": "x86",
    "universal": "universal",
    "noarch": "universal",
    "all": "universal",
}
# Android names its ABIs differently; builds for Android are filed under these names.
_ANDROID_ABI: Final[dict[str, str]] = {"arm64": "arm64-v8a", "armv7": "armeabi-v7a"}
_ARCH_IN_NAME: Final = re.compile(
    r"(?<![a-z0-9])("
    + "|".join(sorted(map(re.escape, _ARCH_TOKENS), key=len, reverse=True))
    + r")(?![a-z0-9])"
)


def detect_platform(file_name: str) -> DetectedPlatform | None:
    """OS and format from the file's extension; None when the extension says neither."""
    lower = file_name.lower()
    for suffix, os_name, fmt in _SUFFIXES:
        if lower.endswith(suffix) and len(lower) > len(suffix):
            return DetectedPlatform(os_name, fmt)
    return None


def normalize_os(value: str) -> OS:
    try:
        return OS_ALIASES[value.strip().lower()]
    except KeyError:
        raise ValueError(f"unknown os {value!r}; use one of {', '.join(get_args(OS))}") from None


def normalize_format(value: str) -> str:
    """The canonical format for a `/latest/{os}/{arch}/{format}` path segment."""
    try:
        return FORMAT_ALIASES[value.strip().lower().lstrip(".")]
    except KeyError:
        raise ValueError(f"unknown format {value!r}") from None


def normalize_architecture(value: str, os_name: str | None = None) -> str:
    """x86_64, x86, arm64, armv7 or universal; Android ABIs (arm64-v8a...) for android."""
    try:
        arch = _ARCH_TOKENS[value.strip().lower().replace("_", "-").replace("x86-64", "x86_64")]
    except KeyError:
        raise ValueError(f"unknown architecture {value!r}") from None
    return _ANDROID_ABI.get(arch, arch) if os_name == "android" else arch


def detect_architecture(file_name: str, os_name: str | None = None) -> str | None:
    """The architecture named in a file name (`app_1.0_amd64.deb`, `app-arm64-v8a.apk`)."""
    match = _ARCH_IN_NAME.search(file_name.lower())
    return normalize_architecture(match.group(1), os_name) if match else None


# --- file names and storage keys -----------------------------------------------------------

_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._+@=,~()-]+")


def validate_file_name(name: str) -> str:
    """A client-given file name, NFC-normalised; ValueError if it could name another path."""
    if not isinstance(name, str):
        raise ValueError("fileName must be a string")
    name = unicodedata.normalize("NFC", name)
    if not name.strip():
        raise ValueError("fileName is empty")
    if len(name.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        raise ValueError(f"fileName is longer than {MAX_FILE_NAME_BYTES} bytes")
    if "/" in name or "\\" in name:
        raise ValueError("fileName must be a bare name, without directories")
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        raise ValueError("fileName contains control characters")
    if name != name.strip() or name.startswith((".", "-")):
        raise ValueError("fileName must not start with '.', '-' or a space")
    return name


def key_segment(text: str) -> str:
    """`text` made into one object-key segment (letters, digits and ._+@=,~()- only)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    segment = _KEY_UNSAFE.sub("_", ascii_text).strip("._-") or "_"
    return segment[:120]


def artifact_key(app: str, version: str, upload_id: str, file_name: str) -> str:
    """Where an uploaded build lives in the object store: apps/<app>/<version>/<id>/<file>,
    with an id of its own per upload (ingest/upload_commands.py), since objects are written
    once and one upload must never land on another's key."""
    segments = (app, version, upload_id, file_name)
    return "/".join(("apps", *map(key_segment, segments)))


# --- versions --------------------------------------------------------------------------------


def parse_semver(text: str) -> semver.Version:
    """A Semantic Versioning 2.0.0 version (`1.2.0`, `2.0.0-rc.1+build.5`); no `v` prefix."""
    if not isinstance(text, str) or len(text) > 128:
        raise ValueError("version must be a semver string such as 1.2.0")
    try:
        return semver.Version.parse(text)
    except ValueError:
        raise ValueError(f"{text!r} is not a semantic version such as 1.2.0") from None


def is_newer(candidate: str, previous: str) -> bool:
    """Strictly higher by semver precedence (prereleases below releases, build ignored)."""
    return parse_semver(candidate).compare(parse_semver(previous)) > 0


def version_code(text: str) -> int:
    """Android's integer versionCode for a semver, increasing with every release.

    major·10⁷ + minor·10⁴ + patch·10 + 9 for a release, + 0 for a prerelease, so a release
    outranks its prereleases; prereleases of one version share a code. Fits Android's ceiling
    (2 100 000 000) for major ≤ 209, minor ≤ 999, patch ≤ 999; ValueError beyond.
    """
    v = parse_semver(text)
    if v.major > 209 or v.minor > 999 or v.patch > 999:
        raise ValueError(
            f"{text} cannot map to an Android versionCode (major <= 209, minor and patch <= 999)"
        )
    return v.major * 10_000_000 + v.minor * 10_000 + v.patch * 10 + (0 if v.prerelease else 9)


# --- bundle ids ------------------------------------------------------------------------------

_JAVA_KEYWORDS: Final = frozenset(
    {
        "abstract",
        "assert",
        "boolean",
        "break",
        "byte",
        "case",
        "catch",
        "char",
        "class",
        "const",
        "continue",
        "default",
        "do",
        "double",
        "else",
        "enum",
        "extends",
        "false",
        "final",
        "finally",
        "float",
        "for",
        "goto",
        "if",
        "implements",
        "import",
        "instanceof",
        "int",
        "interface",
        "long",
        "native",
        "new",
        "null",
        "package",
        "private",
        "protected",
        "public",
        "return",
        "short",
        "static",
        "strictfp",
        "super",
        "switch",
        "synchronized",
        "this",
        "throw",
        "throws",
        "transient",
        "true",
        "try",
        "void",
        "volatile",
        "while",
    }
)
_ANDROID_SEGMENT: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_IOS_SEGMENT: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")


def validate_bundle_id(value: str, platform: BuildPlatform = "android") -> str:
    """Reverse domain notation: `com.example.app`, at least two segments.

    Android package names: each segment starts with a letter, then letters, digits and `_`,
    and is not a Java keyword. iOS bundle ids: letters, digits and `-`.
    """
    if not isinstance(value, str) or not value:
        raise ValueError("bundleId is required, e.g. com.example.myapp")
    if len(value) > 155:
        raise ValueError("bundleId is longer than 155 characters")
    segments = value.split(".")
    if len(segments) < 2:
        raise ValueError("bundleId needs at least two dot-separated segments (com.example)")
    pattern = _ANDROID_SEGMENT if platform == "android" else _IOS_SEGMENT
    for segment in segments:
        if not pattern.fullmatch(segment):
            rule = (
                "start with a letter and contain only letters, digits and '_'"
                if platform == "android"
                else "contain only letters, digits and '-'"
            )
            raise ValueError(f"bundleId segment {segment!r} must {rule}")
        if platform == "android" and segment in _JAVA_KEYWORDS:
            raise ValueError(f"bundleId segment {segment!r} is a Java keyword")
    return value


IMAGE_PREFIX = "img/"
"""Object keys of app icons and other images (served at /api/img/{key})."""


def image_url(public_url: str, object_key: str) -> str:
    return f"{public_url.rstrip('/')}/api/img/{object_key.removeprefix(IMAGE_PREFIX)}"
