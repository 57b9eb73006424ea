"""The app secrets' store: `hutch replay identity` rebuilds the same secrets and grace ends
from the log, and migration 0005 carries every existing app's secret over."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from base.settings import Settings
from hutch.wiring import open_relational
from schemas.envelope import now_micros
from state import identity_reads as q
from storage.relational import Relational
from storage.relational.migrations import migration_files, statements
from tests.support.admin import hutch
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration


def _live(settings: Settings, secrets: list[str]) -> list[bool]:
    """Which of these secrets would authenticate now, read from the store."""
    db = open_relational(settings)
    try:
        found = [q.app_by_secret_hash(db, hashlib.sha256(s.encode()).hexdigest()) for s in secrets]
    finally:
        db.close()
    now = now_micros()
    return [f is not None and f.app.name == "remy-app" and f.live(now) for f in found]


def _secrets_state(settings: Settings) -> list[tuple[object, ...]]:
    db = open_relational(settings)
    try:
        rows = db.fetchall(
            "SELECT s.secret_hash, s.app, s.created_at, s.expires_at, a.secret_hash "
            "FROM app_secrets s JOIN apps a ON a.name = s.app ORDER BY s.secret_hash"
        )
    finally:
        db.close()
    return [tuple(r) for r in rows]


@pytest.mark.integration
def test_replay_rebuilds_the_same_secrets(tmp_path: Path) -> None:
    data = make_settings(tmp_path / "data")
    hutch(data, "developer", "create", "remy")
    secrets = [hutch(data, "app", "create", "remy-app", "--developer", "remy")[1]["secret"]]
    for grace in ("1h", "2h", "0", "30m"):
        code, rotated = hutch(
            data, "app", "rotate-secret", "remy-app", "--developer", "remy", "--grace", grace
        )
        assert code == 0, rotated
        secrets.append(rotated["secret"])
    hutch(data, "app", "create", "remy-other", "--developer", "remy")
    before = _secrets_state(data)
    assert len(before) == 6
    # The "0" rotation ended the three before it; the "30m" one left its predecessor 30 min.
    assert _live(data, secrets) == [False, False, False, True, True]
    code, replayed = hutch(data, "replay", "identity")
    assert (code, replayed["replayed"]) == (0, "identity")
    assert _secrets_state(data) == before
    assert _live(data, secrets) == [False, False, False, True, True]
    code, ended = hutch(data, "app", "revoke-previous-secrets", "remy-app", "--developer", "remy")
    assert (code, ended["previousSecretsRevoked"]) == (0, 1)
    before = _secrets_state(data)
    hutch(data, "replay", "identity")
    assert _secrets_state(data) == before
    assert _live(data, secrets) == [False, False, False, False, True]


@pytest.fixture
def db(settings: Settings) -> Iterator[Relational]:
    store = open_relational(settings)
    yield store
    store.close()


def test_apps_created_before_the_migration_keep_their_secret(db: Relational) -> None:
    """0005 copies each app's secret into app_secrets, so an upgrade locks no app out."""
    files = migration_files(db.dialect)
    with db.transaction() as tx:
        for _name, sql in [f for f in files if f[0] < "0005_app_secrets"]:
            for statement in statements(sql):
                tx.execute(statement.rstrip(";"))
        tx.execute("CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at BIGINT)")
        for name, _ in files:
            if name < "0005_app_secrets":
                tx.execute("INSERT INTO schema_migrations VALUES (:n, 0)", {"n": name})
        tx.execute(
            "INSERT INTO apps (name, developer, secret_hash, retention_days, created_at) "
            "VALUES ('old-app', 'old-dev', :h, 30, 1)",
            {"h": hashlib.sha256(b"hs_old").hexdigest()},
        )
    assert "0005_app_secrets" in db.migrate()
    found = q.app_by_secret_hash(db, hashlib.sha256(b"hs_old").hexdigest())
    assert found is not None
    assert (found.app.name, found.expires_at) == ("old-app", None)
