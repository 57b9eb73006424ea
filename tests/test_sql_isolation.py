"""POST /api/sql against the adversarial corpus (tests/support/sql_corpus.py): an attacker
with a token of their own, a victim whose rows carry markers in every queryable table.

Every answer and every error text must be free of the victim's markers, and the queries that
should work must bring back the attacker's own rows: a scope that answered nothing at all
would fail here.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    ExponentialHistogram,
    ExponentialHistogramDataPoint,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    NumberDataPoint,
    Sum,
    Summary,
    SummaryDataPoint,
)

from query.sql_scope import BY_TENANT, TABLES
from state import identity_reads as qi
from tests.support.admin import developer_with_app
from tests.support.job_events import append, log_batch, submitted
from tests.support.otlp_builders import kv, logs, metrics, span, traces
from tests.support.responses import error_of
from tests.support.servers import Server
from tests.support.sql_corpus import Case, Expect, corpus
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

PROTOBUF = "application/x-protobuf"
CASES = corpus(TABLES)


def marker(who: str) -> str:
    return f"{who}{uuid.uuid4().hex}"


def seed_job_log(server: Server, developer: str, tenant: str, number: int, token: str) -> None:
    """One line of a job of the developer's tenant in job_logs, showing `token`, through the
    events the job commands and the runner API append."""
    uuid, job = submitted(number, tenant, developer, read=())
    append(server.settings, [job, log_batch(uuid, number, tenant, 0, [("build", token)])])


def seed(server: Server, secret: str, token: str, trace_id: bytes) -> None:
    """One row of the app in every queryable table of apps' rows, each showing `token`."""
    now = time.time_ns()
    headers = {"X-Secret": secret}
    with server.client(**headers) as c:
        event = {"kind": "info", "version": "1.0.0", "bits": {"note": token}}
        assert c.post("/api/telemetry", json=[event]).status_code == 202
        report = {"flagName": "f", "enabled": True, "context": {"note": token}}
        assert c.post("/v1/flags/eval", json={"evaluations": [report]}).status_code == 202
        request = traces(
            span(1, name=token, trace_id=trace_id, start_time_unix_nano=now,
                 end_time_unix_nano=now + 1000),
            service=f"svc-{token}",
        )  # fmt: skip
        send(c, "/v1/traces", request.SerializeToString())
        record = LogRecord(time_unix_nano=now, body=kv("b", token).value, trace_id=trace_id)
        send(c, "/v1/logs", logs(record, service=f"svc-{token}").SerializeToString())
        number = NumberDataPoint(time_unix_nano=now, as_double=1.0)
        items = [
            Metric(name=f"g_{token}", gauge=Gauge(data_points=[number])),
            Metric(name=f"s_{token}", sum=Sum(data_points=[number], aggregation_temporality=2)),
            Metric(
                name=f"h_{token}",
                histogram=Histogram(
                    data_points=[HistogramDataPoint(time_unix_nano=now, count=1, sum=1.0,
                                                    bucket_counts=[1])],
                    aggregation_temporality=2,
                ),
            ),
            Metric(
                name=f"e_{token}",
                exponential_histogram=ExponentialHistogram(
                    data_points=[ExponentialHistogramDataPoint(time_unix_nano=now, count=1,
                                                               sum=1.0, zero_count=1)],
                    aggregation_temporality=2,
                ),
            ),
            Metric(
                name=f"q_{token}",
                summary=Summary(
                    data_points=[SummaryDataPoint(time_unix_nano=now, count=1, sum=1.0)]
                ),
            ),
        ]  # fmt: skip
        send(c, "/v1/metrics", metrics(*items, service=f"svc-{token}").SerializeToString())


def send(client: httpx.Client, path: str, body: bytes) -> None:
    answer = client.post(path, content=body, headers={"Content-Type": PROTOBUF})
    assert answer.status_code == 200, answer.text


def ask(server: Server, token: str, text: str, own: str = "") -> httpx.Response:
    params = {"p": "telemetry_events", "own": own}
    with server.client(Authorization=f"Bearer {token}") as c:
        return c.post("/api/sql", json={"sql": text, "params": params})


def owners(app: str, tenant: str) -> dict[str, str]:
    """Per queryable table, the value of its owner column on the developer's rows."""
    return {table: tenant if table in BY_TENANT else app for table in TABLES}


@pytest.fixture(scope="module")
def world(server: Server) -> dict[str, Any]:
    data = server.settings
    attacker_secret, attacker = developer_with_app(data, "mallory", "mallory-app")
    victim_secret, victim = developer_with_app(data, "victor", "victor-app")
    mine, theirs = marker("zqm"), marker("zqv")
    my_trace, their_trace = uuid.uuid4().bytes, uuid.uuid4().bytes
    seed(server, attacker_secret, mine, my_trace)
    seed(server, victim_secret, theirs, their_trace)
    tenants = {}
    for number, (name, token) in enumerate((("mallory", mine), ("victor", theirs)), start=1):
        tenant = qi.personal_tenant(server.runtime.db, name)  # type: ignore[attr-defined]
        assert tenant is not None
        tenants[name] = tenant.id
        seed_job_log(server, name, tenant.id, number, token)
    own, victims = (
        owners("mallory-app", tenants["mallory"]),
        owners("victor-app", tenants["victor"]),
    )
    analytics = server.runtime.analytics  # type: ignore[attr-defined]
    secret_mark = marker("zqs")
    analytics.execute(
        "CREATE TABLE IF NOT EXISTS secret_table (app String, s String) "
        "ENGINE = MergeTree ORDER BY app"
    )
    analytics.insert("secret_table", {"app": ["victor-app"], "s": [secret_mark]})

    def everywhere(token: str, owned: dict[str, str]) -> bool:
        for table, column in TABLES.items():
            text = f"SELECT count() FROM {table} WHERE {column} = '{owned[table]}'"
            answer = ask(server, token, text)
            if answer.status_code != 200 or answer.json()["rows"] != [["1"]]:
                return False
        return True

    eventually(lambda: everywhere(attacker, own) and everywhere(victim, victims))
    return {
        "attacker": attacker,
        "victim": victim,
        "own": own,
        "victims": victims,
        "mine": ["mallory-app", tenants["mallory"], mine, my_trace.hex()],
        "theirs": [theirs, "victor-app", tenants["victor"], their_trace.hex(), secret_mark],
    }


def test_the_corpus_is_large_and_varied() -> None:
    assert len(CASES) >= 200
    assert {case.expect for case in CASES} == set(Expect)


def test_the_victim_sees_their_markers_in_every_table(
    server: Server, world: dict[str, Any]
) -> None:
    """The markers are there to be found: the other tests' 'never seen' are not vacuous."""
    for table in TABLES:
        answer = ask(server, world["victim"], f"SELECT * FROM {table}")
        assert answer.status_code == 200, answer.text
        assert world["victims"][table] in answer.text
        shown = world["theirs"][0] in answer.text or world["theirs"][3] in answer.text
        assert shown, (table, answer.text)


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.sql[:80])
def test_the_attacker_never_sees_the_victims_rows(
    server: Server, world: dict[str, Any], case: Case
) -> None:
    answer = ask(server, world["attacker"], case.sql, world["own"].get(case.table or "", ""))
    for leaked in world["theirs"]:
        assert leaked not in answer.text, (case.sql, answer.text)
    assert answer.status_code in (200, 400), answer.text
    if case.expect is Expect.OWN:
        assert answer.status_code == 200, answer.text
        assert any(own in answer.text for own in world["mine"]), answer.text
    elif case.expect is Expect.EMPTY:
        assert answer.status_code == 200, answer.text
        assert answer.json()["rows"] in ([], [["0"]]), answer.text
    elif case.expect is Expect.REFUSED:
        assert answer.status_code == 400, answer.text
        assert (error_of(answer)["code"], error_of(answer)["field"]) == ("sql_refused", "sql")
    elif case.expect is Expect.FAILS:
        assert answer.status_code == 400, answer.text
        assert error_of(answer)["code"] in ("sql_refused", "sql_error"), answer.text
