"""The web portal (portal/): how Hutch serves it, and its pages in a real browser.

Serving, without a browser: the shell for any page path, the portal's files with cache
headers, the CSP on the shell, nothing outside portal/static (no `..`, no symlink out).

In headless chromium against a real Hutch with the GitHub stand-in: sign in with GitHub,
create an app (its secret shown once) and change its retention, create and revoke a token,
sign in with a pasted token, run a SQL query over telemetry sent with the app's secret, see
errors where they happen, sign out. axe-core checks every page; each is saved as a
screenshot for the README's tour (docs/portal/)."""

from __future__ import annotations

import re
import struct
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import falcon.testing
import httpx
import pytest
from playwright.sync_api import Page, expect

from portal.serve import CSP, Portal
from tests.support.admin import developer_with_app
from tests.support.browser import assert_clean, axe_check, screenshot
from tests.support.github_standin import GitHubStandIn
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually
from web.factory import new_app

# --- serving -------------------------------------------------------------------------------


async def _nothing() -> None:
    return None


def client(root: Path | None = None) -> falcon.testing.TestClient:
    portal = Portal(root) if root else Portal()
    routes = [("/portal", portal), ("/portal/{path:path}", portal)]
    return falcon.testing.TestClient(new_app(routes, start=_nothing, stop=_nothing))


@pytest.mark.parametrize("path", ["/portal", "/portal/apps", "/portal/traces/0af7651916cd43dd"])
def test_every_page_path_gets_the_shell_under_a_strict_csp(path: str) -> None:
    answer = client().simulate_get(path)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert '<script type="module" src="/portal/app.js"></script>' in answer.text
    csp = answer.headers["content-security-policy"]
    assert csp == CSP
    assert "default-src 'self'" in csp
    assert "connect-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert "unsafe-eval" not in csp
    assert answer.headers["cache-control"] == "no-cache"
    assert answer.headers["x-content-type-options"] == "nosniff"


def test_the_portal_files_are_served_with_cache_headers_and_an_etag() -> None:
    c = client()
    for path, kind in [
        ("/portal/app.js", "text/javascript"),
        ("/portal/portal.css", "text/css"),
        ("/portal/pages/apps.js", "text/javascript"),
        ("/portal/vendor/uPlot.esm.js", "text/javascript"),
    ]:
        answer = c.simulate_get(path)
        assert answer.status_code == 200, path
        assert answer.headers["content-type"].startswith(kind), path
        assert answer.headers["cache-control"] == "public, max-age=3600"
        etag = answer.headers["etag"]
        again = c.simulate_get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304, path
        assert again.content == b""
    assert "export async function api(" in c.simulate_get("/portal/app.js").text


def test_nothing_outside_the_static_files_is_served(tmp_path: Path) -> None:
    root = tmp_path / "static"
    root.mkdir()
    (root / "index.html").write_text("<!doctype html><title>shell</title>")
    (root / "app.js").write_text("export {};")
    (tmp_path / "secret.txt").write_text("not for the web")
    (root / "linked.txt").symlink_to(tmp_path / "secret.txt")
    c = client(root)
    for path in [
        "/portal/../secret.txt",
        "/portal/%2e%2e/secret.txt",
        "/portal/pages/../../secret.txt",
        "/portal/./app.js",
        "/portal//etc/passwd",
        "/portal/linked.txt",
        "/portal/missing.js",
        "/portal/..%5csecret.txt",
    ]:
        answer = c.simulate_get(path)
        assert answer.status_code == 404, (path, answer.status_code)
        assert answer.json["error"]["code"] == "not_found", path
        assert "not for the web" not in answer.text
    assert c.simulate_get("/portal/app.js").text == "export {};"


# --- in the browser ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, github: GitHubStandIn) -> Iterator[Server]:
    github.reset()
    yield from serve_in_thread(tmp_path_factory.mktemp("portal") / "data", **github.env)


def sign_in_with_github(page: Page, server: Server, github: GitHubStandIn, login: str) -> None:
    github.add_user(login, name=f"{login} Tester", email=f"{login}@example.org")
    github.sign_in(login)
    page.goto(f"{server.url}/portal")
    expect(page).to_have_url(re.compile(r"/portal/sign-in$"))
    expect(page.get_by_role("heading", name="Sign in to Hutch")).to_be_visible()
    page.get_by_role("link", name="Sign in with GitHub").click()
    expect(page).to_have_url(f"{server.url}/portal/apps")
    expect(page.locator(".who")).to_contain_text(login.lower())


def tiny_png() -> bytes:
    """A real 1x1 PNG, which a browser decodes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x80\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


# The text that reaches past 320px, for a failure to name.
OVERFLOWING = """() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const range = document.createRange();
    range.selectNodeContents(node);
    if (range.getBoundingClientRect().right > 320) found.push(node.textContent.slice(0, 60));
  }
  return found;
}"""


def field_error(page: Page, name: str, form: str = "form") -> str:
    """The error shown beside the control named `name`."""
    box = page.locator(f"{form} .field:has([name='{name}'])")
    expect(box.locator(".error")).to_be_visible()
    expect(box.locator(f"[name='{name}']")).to_have_attribute("aria-invalid", "true")
    return box.locator(".error").inner_text()


@pytest.mark.integration
@pytest.mark.slow
def test_sign_in_with_github_and_manage_apps(
    browser_page: Page, server: Server, github: GitHubStandIn
) -> None:
    page = browser_page
    page.goto(f"{server.url}/portal/apps")
    expect(page).to_have_url(re.compile(r"/portal/sign-in\?next="))
    axe_check(page)
    screenshot(page, "sign-in")
    sign_in_with_github(page, server, github, "Ada")
    expect(page.get_by_role("heading", name="Your apps (0)")).to_be_visible()

    # A value Hutch refuses is shown beside its field; nothing is created.
    page.get_by_label("Name", exact=True).fill("demo")
    page.get_by_label("Retention (days)").fill("0")
    page.get_by_role("button", name="Create app").click()
    assert "retention" in field_error(page, "retentionDays").lower()
    expect(page.get_by_role("heading", name="Your apps (0)")).to_be_visible()

    page.get_by_label("Retention (days)").fill("30")
    page.get_by_role("button", name="Create app").click()
    expect(page.get_by_role("heading", name="App “demo” created")).to_be_visible()
    secret = page.locator("#new-secret").inner_text()
    assert len(secret) >= 16
    expect(page.get_by_role("button", name="Copy secret")).to_be_visible()
    expect(page.get_by_role("heading", name="Your apps (1)")).to_be_visible()
    axe_check(page)
    screenshot(page, "apps")

    # The secret works (it is the app's), and is never shown again.
    with httpx.Client(base_url=server.url, timeout=30) as c:
        sent = c.post("/api/telemetry", headers={"X-Secret": secret}, json={"kind": "info"})
        assert sent.status_code == 202, sent.text
    page.reload()
    expect(page.get_by_role("heading", name="Your apps (1)")).to_be_visible()
    assert secret not in page.content()

    # The retention is changed in the table; a bad one is refused in place.
    retention = page.get_by_label("Retention of demo in days")
    retention.fill("99999")
    page.get_by_role("button", name="Save").click()
    assert field_error(page, "retentionDays", "td form")
    retention.fill("90")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Saved: 90 days.")).to_be_visible()
    page.reload()
    expect(page.get_by_label("Retention of demo in days")).to_have_value("90")

    # The icon: a file that is no image is refused in place; a PNG is stored and shown.
    icon = page.get_by_label("Icon of demo")
    icon.set_input_files(files=[{"name": "x.png", "mimeType": "image/png", "buffer": b"hi"}])
    assert field_error(page, "icon", "td form")
    icon.set_input_files(files=[{"name": "i.png", "mimeType": "image/png", "buffer": tiny_png()}])
    shown = page.get_by_role("img", name="demo's icon")
    expect(shown).to_be_visible()
    assert shown.evaluate("(img) => img.complete && img.naturalWidth") == 1
    assert_clean(page)


@pytest.mark.integration
@pytest.mark.slow
def test_create_and_revoke_a_token(
    browser_page: Page, server: Server, github: GitHubStandIn
) -> None:
    page = browser_page
    sign_in_with_github(page, server, github, "Grace")
    page.get_by_role("link", name="Tokens").click()
    expect(page).to_have_url(f"{server.url}/portal/tokens")
    expect(page.get_by_role("heading", name="Your tokens (0 of 5)")).to_be_visible()
    expect(page.get_by_text("at most 5 at a time")).to_be_visible()

    page.get_by_label("Name").fill("   ")  # blank: Hutch wants 1 to 64 characters
    page.get_by_role("button", name="Create token").click()
    assert "name" in field_error(page, "name")

    page.get_by_label("Name").fill("laptop")
    page.get_by_label("Expires").select_option("1w")
    page.get_by_label("Read jobs (jobs:read)").check()
    page.get_by_role("button", name="Create token").click()
    expect(page.get_by_role("heading", name="Token “laptop” created")).to_be_visible()
    token = page.locator("#new-token").inner_text()
    row = page.get_by_role("row").filter(has_text="laptop")
    expect(row).to_contain_text("jobs:read")
    expect(page.get_by_role("heading", name="Your tokens (1 of 5)")).to_be_visible()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        auth = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/jobs", headers=auth).status_code == 200  # within its scope
        assert c.get("/api/tokens", headers=auth).status_code == 403  # beyond it
        axe_check(page)
        screenshot(page, "tokens")

        page.once("dialog", lambda dialog: dialog.accept())
        page.get_by_role("button", name="Revoke laptop").click()
        expect(page.get_by_role("heading", name="Your tokens (0 of 5)")).to_be_visible()
        assert c.get("/api/jobs", headers=auth).status_code == 401

    # At the limit, Hutch's refusal is shown on the form, and nothing is created.
    for i in range(5):
        page.get_by_label("Name").fill(f"t{i}")
        page.get_by_role("button", name="Create token").click()
        expect(page.get_by_role("heading", name=f"Your tokens ({i + 1} of 5)")).to_be_visible()
    page.get_by_label("Name").fill("sixth")
    page.get_by_role("button", name="Create token").click()
    refusal = page.locator("form .error[data-code='token_limit']")
    expect(refusal).to_contain_text("revoke one first")
    expect(page.get_by_role("heading", name="Your tokens (5 of 5)")).to_be_visible()
    assert_clean(page)


@pytest.mark.integration
@pytest.mark.slow
def test_paste_a_token_run_sql_and_sign_out(browser_page: Page, server: Server) -> None:
    # In a thread of its own: Playwright's sync API holds this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        made = pool.submit(developer_with_app, server.settings, "lin", "lin-app")
        secret, token = made.result()
    with httpx.Client(base_url=server.url, timeout=30) as c:
        events = [{"kind": "error", "version": "2.0.0", "bits": {"n": i}} for i in range(3)]
        assert (
            c.post("/api/telemetry", headers={"X-Secret": secret}, json=events).status_code == 202
        )
        auth = {"Authorization": f"Bearer {token}"}
        count = "SELECT count() FROM telemetry_events WHERE kind = 'error'"

        def projected() -> bool:
            return c.post("/api/sql", headers=auth, json={"sql": count}).json()["rows"] == [["3"]]

        eventually(projected, 30)

    page = browser_page
    page.goto(f"{server.url}/portal/sql")
    expect(page).to_have_url(re.compile(r"/portal/sign-in"))
    page.get_by_label("API token").fill("hutch_not-a-real-token")
    page.get_by_role("button", name="Sign in with the token").click()
    assert "does not sign in" in field_error(page, "token")
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in with the token").click()
    expect(page).to_have_url(f"{server.url}/portal/sql")  # back where sign-in was asked
    expect(page.locator(".who")).to_contain_text("lin")

    query = page.get_by_label("Query")
    query.fill(
        "SELECT kind, version, count() AS n FROM telemetry_events"
        " WHERE version = {v:String} GROUP BY kind, version"
    )
    page.get_by_label("Parameters (JSON)").fill('{"v": "2.0.0"}')
    page.get_by_role("button", name="Run query").click()
    result = page.locator("table")
    expect(result.locator("thead")).to_contain_text("kind")
    expect(result.locator("tbody tr")).to_have_count(1)
    expect(result.locator("tbody td")).to_have_text(["error", "2.0.0", "3"])
    expect(page.get_by_text("1 row(s) in")).to_be_visible()
    axe_check(page)
    screenshot(page, "sql")

    # A query ClickHouse refuses: the error is under the query, the old result gone.
    query.fill("SELECT nope FROM telemetry_events")
    page.get_by_role("button", name="Run query").click()
    message = field_error(page, "sql")
    assert "nope" in message or "Unknown" in message, message
    expect(page.locator("table")).to_have_count(0)
    page.get_by_label("Parameters (JSON)").fill("[1, 2")
    page.get_by_role("button", name="Run query").click()
    assert "JSON object" in field_error(page, "params")

    # Sign out forgets the pasted token: a reload asks to sign in again.
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/portal/sign-in$"))
    page.goto(f"{server.url}/portal/apps")
    expect(page).to_have_url(re.compile(r"/portal/sign-in\?next="))
    assert page.evaluate("() => sessionStorage.getItem('hutch.token')") is None
    assert_clean(page)


@pytest.mark.integration
@pytest.mark.slow
def test_sign_out_ends_the_cookie_session(
    browser_page: Page, server: Server, github: GitHubStandIn
) -> None:
    page = browser_page
    sign_in_with_github(page, server, github, "Alan")
    # 320px wide: everything wraps or scrolls inside its box, never the page sideways.
    page.set_viewport_size({"width": 320, "height": 640})
    for path in ("/portal/apps", "/portal/tokens", "/portal/sql"):
        page.goto(f"{server.url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        wide = page.evaluate(OVERFLOWING)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 320, (path, wide)
    page.set_viewport_size({"width": 1280, "height": 800})
    cookies = {c["name"] for c in page.context.cookies()}
    assert "session-token" in cookies
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(re.compile(r"/portal/sign-in$"))
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.cookies.update({k["name"]: k["value"] for k in page.context.cookies()})
        assert c.get("/api/auth/status").json()["authenticated"] is False
    page.goto(f"{server.url}/portal/tokens")
    expect(page).to_have_url(re.compile(r"/portal/sign-in\?next=%2Fportal%2Ftokens$"))
    page.goto(f"{server.url}/portal/nowhere")
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    axe_check(page)
    assert_clean(page)


@pytest.mark.integration
def test_the_accessibility_check_fails_on_a_serious_violation(browser_page: Page) -> None:
    """axe_check can fail: an unlabelled field and an image without alt text are refused."""
    browser_page.set_content(
        '<html lang="en"><title>t</title><main><input type="text"><img src="x.png"></main></html>'
    )
    with pytest.raises(AssertionError, match=r"image-alt|label"):
        axe_check(browser_page)
