"""The flag projections: evaluation reports to ClickHouse rows (pure), and definitions to the
relational tables, rebuilt the same by replay."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from projections.flag_evaluations import TABLE, transform
from schemas.envelope import new_envelope
from schemas.flags.events import FlagDefined, FlagEvaluations, encode
from storage.analytics.chdb import ChdbAnalytics
from storage.log import Record
from tests.support.admin import hutch
from tests.support.settings import make_settings

pytestmark = pytest.mark.integration


def record(offset: int, type_: str, payload: bytes, app: str = "app-1") -> Record:
    envelope = new_envelope(type_, payload, key=app, app=app)  # type: ignore[arg-type]
    return Record("flags", 0, offset, envelope)


def test_each_report_becomes_a_row() -> None:
    reports = FlagEvaluations(
        "app-1",
        [
            {"flagName": "a", "enabled": True, "variant": "blue", "context": {"appVersion": "2.1"}},
            {
                "flagName": "ghost",
                "enabled": False,
                "context": {"version": "1.0", "beta": True, "n": 12.0, "user": "u"},
            },
        ],
        unknown=["ghost"],
    )
    definition = FlagDefined("app-1", {"name": "a", "enabled": True}, "dev")
    records = [
        record(0, "flag.defined.v1", encode(definition)),
        record(1, "flag.evaluations.v1", encode(reports)),
        record(2, "flag.evaluations.v1", b"{not json"),
    ]
    rows = transform(records, lambda app: 7)[TABLE]
    assert rows["App"] == ["app-1", "app-1"]
    assert rows["FlagName"] == ["a", "ghost"]
    assert rows["Enabled"] == [True, False]
    assert rows["Variant"] == ["blue", ""]
    assert rows["AppVersion"] == ["2.1", "1.0"]
    assert rows["Known"] == [True, False]
    assert rows["Context"][1] == {"version": "1.0", "beta": "true", "n": "12", "user": "u"}
    assert rows["EventId"] == [records[1].envelope.id] * 2
    assert rows["EventIndex"] == [0, 1]
    assert rows["RetentionDays"] == [7, 7]
    assert transform(records[:1], lambda app: 7) == {}


def test_rows_load_into_the_table(tmp_path: Path) -> None:
    from projections.flag_evaluations import FlagEvaluationsProjection
    from projections.runner import ensure_tables, write_rows

    projection = FlagEvaluationsProjection(lambda app: 30)
    analytics = ChdbAnalytics(tmp_path / "clickhouse")
    try:
        ensure_tables(analytics, projection)
        payload = FlagEvaluations(
            "app-1", [{"flagName": "a", "enabled": True, "context": {"k": "v"}}]
        )
        chunk = [record(0, "flag.evaluations.v1", encode(payload))]
        assert write_rows(analytics, projection, chunk, projection.transform(chunk)) == 1
        write_rows(analytics, projection, chunk, projection.transform(chunk))  # deduplicated
        rows = analytics.query(
            f"SELECT App, FlagName, Enabled, Variant, Context['k'], Known FROM {TABLE}"
        ).rows
    finally:
        analytics.close()
    assert rows == [["app-1", "a", True, "", "v", True]]


def test_replay_rebuilds_the_definitions(tmp_path: Path) -> None:
    data = make_settings(tmp_path / "data")
    hutch(data, "developer", "create", "ivy")
    hutch(data, "app", "create", "ivy-app", "--developer", "ivy")
    for args in (["--enabled"], ["--disabled", "--rollout", "10"]):
        assert hutch(data, "flag", "set", "ivy-app", "one", "--developer", "ivy", *args)[0] == 0
    hutch(data, "flag", "set", "ivy-app", "two", "--developer", "ivy", "--enabled")
    hutch(data, "flag", "delete", "ivy-app", "two", "--developer", "ivy")
    before = hutch(data, "flag", "list", "ivy-app", "--developer", "ivy")[1]
    code, answer = hutch(data, "replay", "flags")
    assert (code, answer) == (0, {"replayed": "flags", "records": 4})
    after = hutch(data, "flag", "list", "ivy-app", "--developer", "ivy")[1]
    assert after == before
    assert [f["flag"]["name"] for f in after["flags"]] == ["one"]
    assert orjson.dumps(after["flags"][0]["flag"]["rollout"]) == b"10"
