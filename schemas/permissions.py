"""The native permissions a build may request (`permissions` of POST /api/v1/builds).

Each name is what a client sends; each maps to the Android manifest permissions it adds
(with the highest SDK level it applies to, where newer Android replaced it) and to the iOS
Info.plist usage-description key it needs. Unknown names are refused, not ignored, so a
typo never ships an app without the permission its author expected.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AndroidPermission:
    name: str
    max_sdk: int | None = None  # android:maxSdkVersion: not requested on newer systems


@dataclass(frozen=True, slots=True)
class Permission:
    name: str
    description: str
    android: tuple[AndroidPermission, ...]
    ios_usage_key: str | None  # Info.plist key whose text iOS shows when asking


def _a(*names: str, max_sdk: int | None = None) -> tuple[AndroidPermission, ...]:
    return tuple(AndroidPermission(f"android.permission.{n}", max_sdk) for n in names)


PERMISSIONS: dict[str, Permission] = {
    p.name: p
    for p in (
        Permission("camera", "take photos and video", _a("CAMERA"), "NSCameraUsageDescription"),
        Permission(
            "gps",
            "precise and approximate location",
            _a("ACCESS_FINE_LOCATION", "ACCESS_COARSE_LOCATION"),
            "NSLocationWhenInUseUsageDescription",
        ),
        Permission(
            "notifications",
            "show notifications (Android 13+ asks; the web app's pushes are delegated)",
            _a("POST_NOTIFICATIONS"),
            None,  # iOS asks at run time, no plist key
        ),
        Permission(
            "microphone", "record audio", _a("RECORD_AUDIO"), "NSMicrophoneUsageDescription"
        ),
        Permission(
            "contacts", "read the address book", _a("READ_CONTACTS"), "NSContactsUsageDescription"
        ),
        Permission(
            "calendar",
            "read and add calendar events",
            _a("READ_CALENDAR", "WRITE_CALENDAR"),
            "NSCalendarsUsageDescription",
        ),
        Permission(
            "storage",
            "read shared files and photos (Android 12 and older; newer uses pickers)",
            _a("READ_EXTERNAL_STORAGE", max_sdk=32),
            "NSPhotoLibraryUsageDescription",
        ),
        Permission(
            "bluetooth",
            "find and connect to Bluetooth devices",
            _a("BLUETOOTH", "BLUETOOTH_ADMIN", max_sdk=30)
            + _a("BLUETOOTH_SCAN", "BLUETOOTH_CONNECT"),
            "NSBluetoothAlwaysUsageDescription",
        ),
        Permission("vibrate", "vibrate the device", _a("VIBRATE"), None),
        Permission("nfc", "read NFC tags", _a("NFC"), "NFCReaderUsageDescription"),
        Permission(
            "biometric",
            "fingerprint / face unlock",
            _a("USE_BIOMETRIC"),
            "NSFaceIDUsageDescription",
        ),
        Permission("wake_lock", "keep the screen on", _a("WAKE_LOCK"), None),
    )
}

# Other names clients use for the same thing.
ALIASES: dict[str, str] = {
    "location": "gps",
    "geolocation": "gps",
    "push": "notifications",
    "push_notifications": "notifications",
    "audio": "microphone",
    "photos": "storage",
    "files": "storage",
    "vibration": "vibrate",
}


def normalize_permissions(values: Iterable[object]) -> tuple[str, ...]:
    """Canonical names, sorted and without duplicates; ValueError naming every unknown."""
    names: set[str] = set()
    unknown: list[str] = []
    for value in values:
        if not isinstance(value, str):
            unknown.append(repr(value))
            continue
        key = value.strip().lower().replace("-", "_")
        key = ALIASES.get(key, key)
        if key in PERMISSIONS:
            names.add(key)
        else:
            unknown.append(value)
    if unknown:
        known = ", ".join(sorted(PERMISSIONS))
        raise ValueError(f"unknown permission(s) {', '.join(unknown)}; known: {known}")
    return tuple(sorted(names))


def android_permissions(names: Iterable[str]) -> tuple[AndroidPermission, ...]:
    """The manifest entries for canonical permission names, each once, in a stable order."""
    seen: dict[str, AndroidPermission] = {}
    for name in sorted(set(names)):
        for permission in PERMISSIONS[name].android:
            seen.setdefault(permission.name, permission)
    return tuple(seen[n] for n in sorted(seen))
