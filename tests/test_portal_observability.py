"""The portal's observability pages in headless chromium against a real Hutch: telemetry
sent with an app secret is found in the explorer (older pages by scrolling, filtered by
kind, its bits unfolded and searched, the histogram drawn, the live tail picking up a new
event); an OTLP trace is found by the trace search and opened as a waterfall whose spans
nest under their parents and open from the keyboard; logs are found by severity and body
text; a metric is drawn as one chart per series. axe-core checks every page; each is saved
for the README's tour (docs/portal/)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from playwright.sync_api import Page, expect

from tests.support.admin import developer_with_app
from tests.support.browser import assert_clean, axe_check, screenshot
from tests.support.otlp_builders import TRACE_ID, kv, logs, metrics, span, traces
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROTOBUF = {"Content-Type": "application/x-protobuf"}
EVENTS = 130
"""More than the explorer's page of 100, so the rest comes by scrolling to the end."""
NOW = time.time_ns() - 30 * 10**9
ROOT, QUERY, RENDER = (n.to_bytes(8, "big") for n in (1, 2, 3))


@dataclass(frozen=True)
class Seeded:
    secret: str
    token: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_in_thread(tmp_path_factory.mktemp("observe") / "data")


@pytest.fixture(scope="module")
def seeded(server: Server) -> Seeded:
    """An app with telemetry, one three-span trace, two logs and a gauge, all projected."""
    # In a thread of its own: Playwright's sync API holds this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        secret, token = pool.submit(developer_with_app, server.settings, "kim", "kim-app").result()
    app = {"X-Secret": secret}
    events = [
        {
            "kind": ("error", "info", "debug")[i % 3],
            "version": f"1.0.{i % 2}",
            "bits": {"n": i, "screen": "checkout" if i % 10 == 0 else "home"},
        }
        for i in range(EVENTS)
    ]
    trace = traces(
        span(
            1,
            name="GET /cart",
            start_time_unix_nano=NOW,
            end_time_unix_nano=NOW + 250_000_000,
            attributes=[kv("http.method", "GET")],
        ),
        span(
            2,
            name="SELECT cart",
            parent_span_id=ROOT,
            kind=Span.SPAN_KIND_CLIENT,
            start_time_unix_nano=NOW + 10_000_000,
            end_time_unix_nano=NOW + 120_000_000,
            attributes=[kv("db.system", "sqlite")],
            events=[Span.Event(time_unix_nano=NOW + 50_000_000, name="rows read")],
        ),
        span(
            3,
            name="render",
            parent_span_id=ROOT,
            start_time_unix_nano=NOW + 130_000_000,
            end_time_unix_nano=NOW + 240_000_000,
            attributes=[kv("template", "cart.html")],
            status=Status(code=Status.STATUS_CODE_ERROR, message="template missing"),
        ),
    )
    records = logs(
        LogRecord(
            time_unix_nano=NOW,
            severity_number=SeverityNumber.SEVERITY_NUMBER_ERROR,
            severity_text="ERROR",
            body=kv("b", "payment gateway timed out").value,
            trace_id=TRACE_ID,
            span_id=RENDER,
            attributes=[kv("gateway", "acme")],
        ),
        LogRecord(
            time_unix_nano=NOW,
            severity_number=SeverityNumber.SEVERITY_NUMBER_INFO,
            severity_text="INFO",
            body=kv("b", "invoice sent").value,
        ),
    )
    points = [
        NumberDataPoint(
            time_unix_nano=NOW - k * 60 * 10**9,
            as_double=float(10 + k),
            attributes=[kv("region", "eu" if k % 2 else "us")],
        )
        for k in range(10)
    ]
    gauge = metrics(Metric(name="queue.depth", unit="{item}", gauge=Gauge(data_points=points)))
    with httpx.Client(base_url=server.url, timeout=30) as c:
        sent = c.post("/api/telemetry", headers=app, json=events)
        assert sent.status_code == 202, sent.text
        for path, body in [("/v1/traces", trace), ("/v1/logs", records), ("/v1/metrics", gauge)]:
            answer = c.post(path, headers={**app, **PROTOBUF}, content=body.SerializeToString())
            assert answer.status_code == 200, answer.text
        auth = {"Authorization": f"Bearer {token}"}

        def projected() -> bool:
            telemetry = c.get("/api/telemetry", headers=auth, params={"limit": 1000})
            found = c.get(f"/api/traces/{TRACE_ID.hex()}", headers=auth)
            logged = c.get("/api/logs", headers=auth)
            listed = c.get("/api/metrics", headers=auth)
            return (
                len(telemetry.json()["events"]) == EVENTS
                and found.status_code == 200
                and found.json()["spanCount"] == 3
                and len(logged.json()["logs"]) == 2
                and [m["name"] for m in listed.json()["metrics"]] == ["queue.depth"]
            )

        eventually(projected, 30)
    return Seeded(secret, token)


def sign_in(page: Page, server: Server, token: str, path: str) -> None:
    """Open `path` in the portal, signing in on the way by pasting the token."""
    page.goto(f"{server.url}/portal{path}")
    expect(page).to_have_url(re.compile(r"/portal/sign-in"))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in with the token").click()
    expect(page.locator(".who")).to_contain_text("kim")


def rows(page: Page) -> Any:
    return page.locator("table.events tbody tr:visible")


def test_telemetry_explorer(browser_page: Page, server: Server, seeded: Seeded) -> None:
    page = browser_page
    sign_in(page, server, seeded.token, "/telemetry")
    expect(page.get_by_role("heading", name="Telemetry", exact=True)).to_be_visible()

    # Newest first (as the API lists them), a page of 100; the rest when the end of the
    # list scrolls into view.
    with httpx.Client(base_url=server.url, timeout=30) as c:
        auth = {"Authorization": f"Bearer {seeded.token}"}
        listed = c.get("/api/telemetry", headers=auth, params={"limit": 1000}).json()["events"]
    expect(page.get_by_text("100 events loaded.")).to_be_visible()
    page.get_by_role("button", name="Load older").scroll_into_view_if_needed()
    expect(page.get_by_text(f"{EVENTS} events loaded.")).to_be_visible()
    expect(page.get_by_text("End of the results.")).to_be_visible()
    shown = [row.get_attribute("data-id") for row in rows(page).all()]
    assert shown == [e["id"] for e in listed]

    # The histogram counts every kind in the range.
    errors = len([i for i in range(EVENTS) if i % 3 == 0])
    caption = page.locator("figure.chart figcaption")
    expect(caption).to_contain_text(f"error {errors}")
    expect(caption).to_contain_text(f"info {len(range(1, EVENTS, 3))}")
    expect(page.locator("figure.chart canvas")).to_have_count(1)

    # Filtered by kind (the API's filter): only errors, the histogram too.
    page.get_by_label("error", exact=True).check()
    page.get_by_role("button", name="Apply filters").click()
    expect(page.get_by_text(f"{errors} events loaded.")).to_be_visible()
    expect(rows(page).locator(".kind")).to_have_text(["error"] * errors)
    expect(caption).to_have_text(re.compile(rf"by kind: error {errors}$"))
    assert "kind=error" in page.url

    # bits unfold; the search over what is loaded keeps the rows that mention the text.
    first = rows(page).first.locator("details")
    first.locator("summary").click()
    expect(first.locator("pre")).to_contain_text('"screen": "')
    page.get_by_label("Search loaded events").fill("checkout")
    checkout = [i for i in range(0, EVENTS, 3) if i % 10 == 0]
    expect(rows(page)).to_have_count(len(checkout))
    expect(page.get_by_text(f"{len(checkout)} of {errors} loaded events match")).to_be_visible()
    for row in rows(page).all():
        expect(row.locator("details pre")).to_be_visible()  # unfolded, the match in sight
        expect(row.locator("details pre")).to_contain_text('"screen": "checkout"')
    axe_check(page)
    page.get_by_label("Search loaded events").fill("")
    screenshot(page, "telemetry")

    # The live tail: a new error sent with the app's secret shows up on top by itself.
    page.get_by_role("button", name="Live tail").click()
    expect(page.get_by_role("button", name="Live tail: on")).to_have_attribute(
        "aria-pressed", "true"
    )
    with httpx.Client(base_url=server.url, timeout=30) as c:
        sent = c.post(
            "/api/telemetry",
            headers={"X-Secret": seeded.secret},
            json={"kind": "error", "version": "2.0.0", "bits": {"tail": "followed"}},
        )
        assert sent.status_code == 202
    expect(rows(page).first.locator("details")).to_contain_text('"tail":"followed"', timeout=20_000)
    expect(page.get_by_text("1 new event.")).to_be_attached()
    expect(page.get_by_text(f"{errors + 1} events loaded.")).to_be_visible()
    assert_clean(page)


def test_trace_search_and_waterfall(browser_page: Page, server: Server, seeded: Seeded) -> None:
    page = browser_page
    sign_in(page, server, seeded.token, "/traces")
    page.get_by_label("Service").fill("checkout")
    page.get_by_label("Status").select_option("Error")
    page.get_by_label("Min duration").fill("100ms")
    page.get_by_role("button", name="Search").click()
    found = page.locator("table.traces tbody tr")
    expect(found).to_have_count(1)
    expect(found).to_contain_text("GET /cart")
    expect(found).to_contain_text("250 ms")
    axe_check(page)
    screenshot(page, "traces")

    # Too long a minimum: nothing; a bad duration: Hutch's error next to its field.
    page.get_by_label("Min duration").fill("1s")
    page.get_by_role("button", name="Search").click()
    expect(found).to_have_count(0)
    page.get_by_label("Min duration").fill("soon")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_label("Min duration")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("form .field .error")).to_contain_text("minDuration")
    page.get_by_label("Min duration").fill("")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name="GET /cart").click()

    expect(page).to_have_url(f"{server.url}/portal/traces/{TRACE_ID.hex()}")
    expect(page.get_by_role("heading", name=f"Trace {TRACE_ID.hex()}")).to_be_visible()
    spans = page.locator("ol.waterfall > li > button.wf-row")
    expect(spans).to_have_count(3)
    # Nested under the root in start order; bars sized by duration on the trace's axis.
    assert [b.get_attribute("data-depth") for b in spans.all()] == ["0", "1", "1"]
    expect(spans.locator(".wf-name")).to_have_text(["GET /cart", "SELECT cart", "render"])
    widths = [b.locator(".wf-bar").bounding_box() for b in spans.all()]
    assert all(w is not None for w in widths)
    root, query, render = (w for w in widths if w is not None)
    assert root["width"] == pytest.approx(query["width"] * 250 / 110, rel=0.05)
    assert render["x"] > query["x"] + query["width"]  # render starts after the query ends

    # A span opens from the keyboard: its status, attributes and events.
    spans.nth(2).focus()
    page.keyboard.press("Enter")
    expect(spans.nth(2)).to_have_attribute("aria-expanded", "true")
    details = page.locator(".wf-details:visible")
    expect(details).to_contain_text("template missing")
    expect(details.locator("dl.attrs").first).to_contain_text("template")
    expect(details.locator("dl.attrs").first).to_contain_text("cart.html")
    spans.nth(1).click()
    expect(page.locator(".wf-details:visible")).to_have_count(2)
    expect(page.locator(".wf-details:visible").first).to_contain_text("rows read")
    axe_check(page)
    screenshot(page, "trace")
    assert_clean(page)


def test_logs_by_severity_and_text(browser_page: Page, server: Server, seeded: Seeded) -> None:
    page = browser_page
    sign_in(page, server, seeded.token, "/logs")
    table = page.locator("table.logs tbody tr")
    expect(table).to_have_count(2)
    page.get_by_label("Severity").select_option("warn")
    page.get_by_label("Text in the body").fill("GATEWAY")
    page.get_by_role("button", name="Search").click()
    expect(table).to_have_count(1)
    expect(table).to_contain_text("payment gateway timed out")
    expect(table.locator(".kind")).to_have_text("ERROR")
    assert "minSeverity=warn" in page.url
    axe_check(page)
    screenshot(page, "logs")
    table.get_by_role("link", name=f"Trace {TRACE_ID.hex()[:8]}…").click()
    expect(page.locator("ol.waterfall > li")).to_have_count(3)
    assert_clean(page)


def test_metrics_one_chart_per_series(browser_page: Page, server: Server, seeded: Seeded) -> None:
    page = browser_page
    sign_in(page, server, seeded.token, "/metrics")
    expect(page.get_by_label("Metric", exact=True)).to_have_value('["queue.depth","gauge"]')
    figures = page.locator("figure.chart")
    expect(figures).to_have_count(1)
    expect(figures.locator("canvas")).to_have_count(1)
    page.get_by_label("Aggregation").select_option("max")
    page.get_by_label("Split by attribute").fill("region")
    page.get_by_role("button", name="Show").click()
    expect(figures).to_have_count(2)
    expect(figures.locator("figcaption")).to_contain_text(
        ["queue.depth · region=eu", "queue.depth · region=us"]
    )
    expect(figures.locator("canvas")).to_have_count(2)
    eu = figures.filter(has_text="region=eu")
    eu.get_by_text("The points as a table").click()
    expect(eu.locator("details tbody tr")).to_have_count(5)
    expect(eu.locator("details tbody td.num")).to_contain_text(
        ["19", "17", "15", "13", "11"]
    )  # oldest first
    axe_check(page)
    screenshot(page, "metrics")
    assert_clean(page)
