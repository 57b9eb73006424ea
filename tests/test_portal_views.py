"""The portal's release-health and flag-impact pages in headless chromium against a real
Hutch: builds uploaded and downloaded, telemetry per version, flag evaluations; the pages
show the rates the API computes, mark the regressed version in words and colour, show
errors where they happen, pass axe-core, and are saved for the README's tour."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.admin import developer_with_app
from tests.support.browser import assert_clean, axe_check, screenshot
from tests.support.builds import direct_upload, json_of
from tests.support.servers import Server
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def sign_in(page: Page, server: Server, token: str, path: str) -> None:
    page.goto(f"{server.url}/portal{path}")
    expect(page).to_have_url(re.compile(r"/portal/sign-in"))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in with the token").click()
    expect(page).to_have_url(re.compile(f"/portal{re.escape(path)}"))


def post(c: httpx.Client, secret: str, path: str, body: Any) -> None:
    answer = c.post(path, json=body, headers={"X-Secret": secret})
    assert answer.status_code == 202, answer.text


@pytest.fixture(scope="module")
def tokens(server: Server) -> dict[str, str]:
    """Both tests' developers, made before the browser starts: the CLI runs an event loop of
    its own, which Playwright's sync API (running one in this thread) would refuse."""
    return {"rosa": rosa(server), "finn": finn(server)}


def rosa(server: Server) -> str:
    """rosa-app: 1.0.0 (4 downloads, 1 error, 1 warning), then 1.1.0 (2 downloads, 3
    errors)."""
    secret, token = developer_with_app(server.settings, "rosa", "rosa-app")
    with server.client() as c:
        for version, files in (("1.0.0", 4), ("1.1.0", 2)):
            for i in range(files):
                name = f"rosa-{version}-{i}.apk"
                json_of(direct_upload(c, token, "rosa-app", version, name, name.encode()), 201)
                answer = c.get(
                    f"/api/apps/rosa-app/versions/{version}/{name}",
                    headers={"X-Forwarded-For": f"192.0.2.{i + 1}"},
                )
                assert answer.status_code == 302
            time.sleep(0.01)
        errors = [{"kind": "error", "version": "1.0.0", "bits": {}}]
        post(c, secret, "/api/telemetry", [*errors, {"kind": "warning", "version": "1.0.0"}])
        post(c, secret, "/api/telemetry", [{"kind": "error", "version": "1.1.0"}] * 3)
        auth = {"Authorization": f"Bearer {token}"}

        def counted() -> int:
            body = c.get("/api/apps/rosa-app/release-health", headers=auth).json()
            return sum(v["errors"] + v["downloads"] for v in body["versions"])

        eventually(lambda: counted() == 10)
    return token


def test_release_health_marks_the_regressed_version(
    tokens: dict[str, str], browser_page: Page, server: Server
) -> None:
    page = browser_page
    sign_in(page, server, tokens["rosa"], "/release-health")
    expect(page.get_by_role("heading", name="Release health")).to_be_visible()
    versions = page.get_by_role("table", name="Versions of rosa-app, newest first")
    rows = versions.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td").nth(0)).to_have_text("1.1.0")
    expect(rows.nth(0)).to_contain_text("Regressed (vs 1.0.0)")
    expect(rows.nth(0).locator("td").nth(6)).to_have_text("1500.0")  # 3 errors / 2 downloads
    expect(rows.nth(1).locator("td").nth(1)).to_have_text("OK")
    expect(rows.nth(1).locator("td").nth(6)).to_have_text("250.0")
    colour = rows.nth(0).locator(".regressed").evaluate("n => getComputedStyle(n).color")
    assert colour == "rgb(164, 22, 26)"  # --danger
    expect(page.get_by_text("per thousand downloads")).to_be_visible()
    expect(page.locator("figure.chart canvas")).to_have_count(1)
    axe_check(page)
    screenshot(page, "release-health")
    assert_clean(page)


def finn(server: Server) -> str:
    """finn-app's flag `search`: u1 and u2 see `fast` (u1 then sends 2 errors, u2 2 infos),
    u3 sees `classic` (4 infos); u9, never exposed, sends 1 info."""
    secret, token = developer_with_app(server.settings, "finn", "finn-app")
    with server.client() as c:
        reports = [
            {"flagName": "search", "enabled": True, "variant": v, "context": {"userId": u}}
            for v, u in (("fast", "u1"), ("fast", "u2"), ("classic", "u3"))
        ]
        post(c, secret, "/v1/flags/eval", {"evaluations": reports})
        time.sleep(0.05)
        post(c, secret, "/api/telemetry", [{"kind": "error", "bits": {"userId": "u1"}}] * 2)
        post(c, secret, "/api/telemetry", [{"kind": "info", "bits": {"userId": "u2"}}] * 2)
        post(c, secret, "/api/telemetry", [{"kind": "info", "bits": {"userId": "u3"}}] * 4)
        post(c, secret, "/api/telemetry", [{"kind": "info", "bits": {"userId": "u9"}}])
        auth = {"Authorization": f"Bearer {token}"}

        def counted() -> tuple[int, int]:
            body = c.get("/api/flags/search/impact", headers=auth).json()
            after = sum(v["afterExposure"]["events"] for v in body["variants"])
            return body["notExposed"]["events"], after

        eventually(lambda: counted() == (1, 8))
    return token


def test_flag_impact_per_variant(
    tokens: dict[str, str], browser_page: Page, server: Server
) -> None:
    page = browser_page
    sign_in(page, server, tokens["finn"], "/flag-impact")
    expect(page.get_by_role("heading", name="Flag impact")).to_be_visible()
    page.get_by_label("Days").fill("500")
    page.get_by_label("Flag").fill("search")
    page.get_by_role("button", name="Show impact").click()
    error = page.locator(".field:has([name='since']) .error")
    expect(error).to_contain_text("at most 90 days")
    page.get_by_label("Days").fill("7")
    page.get_by_role("button", name="Show impact").click()
    rows = page.get_by_role("table", name="Impact of search per variant").locator("tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.nth(0).locator("td")).to_have_text(
        ["fast", "2", "2", "4", "2", "500.0 (worse than not exposed)", "1"]
    )
    expect(rows.nth(1).locator("td")).to_have_text(["classic", "1", "1", "4", "0", "0.0", "0"])
    expect(rows.nth(2).locator("td")).to_have_text(["not exposed", "—", "1", "1", "0", "0.0", "0"])
    axe_check(page)
    screenshot(page, "flag-impact")
    assert_clean(page)
