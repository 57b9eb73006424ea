"""A real browser for the portal's tests: Debian's chromium driven by Playwright (never a
browser Playwright downloads), headless; axe-core's accessibility check on a page; the
screenshots the README's tour shows (docs/portal/<name>.png).

Each page records what went wrong in it (uncaught errors, console errors such as a CSP
violation, failed requests for the portal's own files): `assert_clean(page)` fails on any.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.support.services import unavailable

ROOT = Path(__file__).resolve().parents[2]
AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SCREENSHOTS = Path(
    os.environ.get("HUTCH_PORTAL_SCREENSHOTS")
    or Path(tempfile.gettempdir()) / "hutch-portal-screenshots"
)
"""Where each page's screenshot goes: the test output (a temporary folder) by default, and
docs/portal/ for the README's tour with `make portal-screenshots`, so a test run leaves the
repository unchanged."""
CHROMIUM = os.environ.get("HUTCH_TEST_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERIOUS = ("serious", "critical")


@contextmanager
def launch() -> Iterator[Browser]:
    """Chromium, headless, in a fresh profile; skipped (failed under CI=true) without one."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        unavailable(f"no chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def new_page(browser: Browser) -> Iterator[Page]:
    """A page in a context of its own (no cookies or storage shared between tests)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
    context.set_default_timeout(10_000)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda exc: problems.append(f"uncaught: {exc}"))
    page.on("console", lambda msg: _console(problems, msg))
    page.on(
        "requestfailed",
        lambda req: (
            problems.append(f"request failed: {req.url} {req.failure}")
            if "/portal/" in req.url
            else None
        ),
    )
    page.problems = problems  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()


def _console(problems: list[str], message: ConsoleMessage) -> None:
    # A failed API call (4xx shown in place) is logged by the browser as a console error
    # naming the resource; only the page's own errors count.
    if message.type == "error" and "Failed to load resource" not in message.text:
        problems.append(f"console: {message.text}")


def assert_clean(page: Page) -> None:
    """No uncaught error, console error (a CSP violation is one) or failed portal file."""
    problems: list[str] = page.problems  # type: ignore[attr-defined]
    assert not problems, problems


def axe_check(page: Page) -> list[dict[str, Any]]:
    """axe-core on the page as it is; fails on a violation of impact serious or critical.
    Injected through the DevTools protocol, which the page's CSP does not govern (the page
    itself may load nothing inline). Answers the lesser violations, for a test to print."""
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;undefined")
    result: dict[str, Any] = page.evaluate(
        "async () => await window.axe.run(document, {resultTypes: ['violations']})"
    )
    violations: list[dict[str, Any]] = result["violations"]
    serious = [v for v in violations if v.get("impact") in SERIOUS]
    assert not serious, "\n".join(_describe(v) for v in serious)
    return [v for v in violations if v not in serious]


def _describe(violation: dict[str, Any]) -> str:
    targets = [n.get("target") for n in violation.get("nodes", [])][:5]
    return f"{violation['impact']}: {violation['id']}: {violation['help']} at {targets}"


def screenshot(page: Page, name: str) -> Path:
    """The page as a PNG in SCREENSHOTS/<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
