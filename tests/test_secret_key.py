"""HUTCH_SECRET_KEY, or one key generated into the data directory and shared by processes."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from base.keys import derive, secret_key
from base.settings import SettingsError
from tests.support.settings import make_settings


def test_generated_once_private_and_reused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    key = secret_key(settings)
    path = tmp_path / "data" / "secret.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(key) == 64
    assert secret_key(settings) == key
    assert list(path.parent.iterdir()) == [path]  # no temporary files left


def test_concurrent_first_starts_agree(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    with ThreadPoolExecutor(max_workers=8) as pool:
        keys = set(pool.map(lambda _: secret_key(settings), range(16)))
    assert len(keys) == 1


def test_the_setting_wins_and_must_be_long_enough(tmp_path: Path) -> None:
    given = make_settings(tmp_path / "data", HUTCH_SECRET_KEY="s" * 32)
    assert secret_key(given) == b"s" * 32
    assert not (tmp_path / "data" / "secret.key").exists()
    with pytest.raises(SettingsError, match="at least 16"):
        secret_key(make_settings(tmp_path / "data", HUTCH_SECRET_KEY="short"))


def test_purposes_get_different_keys() -> None:
    assert derive(b"k" * 32, "objects") != derive(b"k" * 32, "download-clients")
