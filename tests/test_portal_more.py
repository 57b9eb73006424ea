"""The portal's builds, jobs and flags pages in headless chromium against a real Hutch: a
build uploaded and downloaded shows with its daily count and its platform's latest link, a
queued web-app build with its status; a CI job's live log follows lines a runner posts, and
the job is cancelled from the page; a flag is edited in place (a bad rollout shown next to its
field, a good one saved) and its exposures charted after evaluations. axe-core checks every
page; each is saved for the README's tour."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.support.admin import developer_with_app, hutch
from tests.support.browser import assert_clean, axe_check, screenshot
from tests.support.builds import direct_upload, json_of
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@dataclass(frozen=True)
class Seeded:
    secret: str
    token: str
    provisioner: str
    """A runner host's token: the test leases jobs and posts their log as a runner would."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    yield from serve_in_thread(tmp_path_factory.mktemp("more") / "data")


@pytest.fixture(scope="module")
def seeded(server: Server) -> Seeded:
    """lena with lena-app. In a thread of its own: the CLI runs an event loop, which
    Playwright's sync API (holding one in this thread) would refuse."""
    with ThreadPoolExecutor(1) as pool:
        secret, token = pool.submit(
            developer_with_app, server.settings, "lena", "lena-app"
        ).result()
        code, made = pool.submit(hutch, server.settings, "provisioner", "create", "host-1").result()
    assert code == 0, made
    return Seeded(secret, token, str(made["token"]))


def auth(seeded: Seeded) -> dict[str, str]:
    return {"Authorization": f"Bearer {seeded.token}"}


def sign_in(page: Page, server: Server, token: str, path: str) -> None:
    page.goto(f"{server.url}/portal{path}")
    expect(page).to_have_url(re.compile(r"/portal/sign-in"))
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in with the token").click()
    expect(page.locator(".who")).to_contain_text("lena")


def test_builds_page(browser_page: Page, server: Server, seeded: Seeded) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for version, name in (("1.0.0", "lena-arm64-v8a.apk"), ("1.1.0", "lena-x86_64.AppImage")):
            json_of(direct_upload(c, seeded.token, "lena-app", version, name, name.encode()), 201)
        for i in range(3):  # three clients: three counted downloads of 1.1.0
            answer = c.get(
                "/api/apps/lena-app/latest/linux/x86_64/appimage",
                headers={"X-Forwarded-For": f"192.0.2.{i + 1}"},
            )
            assert answer.status_code == 302, answer.text
        queued = c.post(
            "/api/v1/builds",
            headers=auth(seeded),
            json={
                "url": "https://example.com/",
                "name": "Lena Web",
                "bundleId": "com.example.lena",
                "version": "1.0.0",
            },
        )
        assert queued.status_code == 201, queued.text

        def counted() -> int:
            body = c.get("/api/apps/lena-app/builds", headers=auth(seeded)).json()
            return sum(b["downloads"] for b in body["builds"])

        eventually(lambda: counted() == 3)

    page = browser_page
    sign_in(page, server, seeded.token, "/builds")
    expect(page.get_by_role("heading", name="Builds", exact=True)).to_be_visible()
    versions = page.get_by_role("table", name="Versions of lena-app, newest first")
    rows = versions.locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0).locator("td").nth(0)).to_have_text("1.1.0")
    expect(rows.nth(0).locator("td").nth(2)).to_have_text("3")
    expect(rows.nth(0)).to_contain_text("lena-x86_64.AppImage (linux/x86_64/appimage")
    expect(rows.nth(1).locator("td").nth(2)).to_have_text("0")
    caption = page.locator("figure.chart figcaption")
    expect(caption).to_contain_text("1.0.0 0, 1.1.0 3 (3 in all)")
    expect(page.locator("figure.chart canvas")).to_have_count(1)
    latest = page.get_by_role("link", name="Latest linux/x86_64/appimage")
    expect(latest).to_have_attribute("href", "/api/apps/lena-app/latest/linux/x86_64/appimage")
    expect(page.get_by_role("link", name="Latest android/arm64-v8a/apk")).to_be_visible()
    web = page.get_by_role("table", name="Web-app builds, newest first")
    expect(web.locator("tbody tr")).to_have_count(1)
    expect(web.locator("tbody tr")).to_contain_text("Lena Web")
    expect(web.locator(".status")).to_have_text(re.compile(r"queued|building|running"))
    axe_check(page)
    screenshot(page, "builds")
    assert_clean(page)


def evaluations(server: Server, secret: str, reports: list[dict[str, Any]]) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        answer = c.post(
            "/v1/flags/eval", headers={"X-Secret": secret}, json={"evaluations": reports}
        )
        assert answer.status_code == 202, answer.text


def test_flags_page(browser_page: Page, server: Server, seeded: Seeded) -> None:
    page = browser_page
    sign_in(page, server, seeded.token, "/flags?app=lena-app")
    expect(page.get_by_text("lena-app has no flags yet.")).to_be_visible()

    # Created in the page.
    page.get_by_label("Name").fill("checkout")
    page.get_by_label("Enabled").check()
    page.get_by_label("Rollout (%)").fill("40")
    page.get_by_label("Variants (JSON)").fill(
        '[{"name": "blue", "weight": 1}, {"name": "green", "weight": 1}]'
    )
    page.get_by_role("button", name="Create flag").click()
    flags = page.locator("table.flags tbody tr")
    expect(flags).to_have_count(1)
    expect(flags).to_contain_text("40%")
    expect(page.get_by_role("heading", name="Edit checkout")).to_be_visible()

    # A bad rollout: Hutch's error next to the rollout field, nothing saved.
    page.get_by_label("Rollout (%)").fill("150")
    page.get_by_role("button", name="Save flag").click()
    rollout = page.get_by_label("Rollout (%)")
    expect(rollout).to_have_attribute("aria-invalid", "true")
    error = page.locator(".field:has(input[name=rollout]) .error")
    expect(error).to_contain_text("must be an integer from 0 to 100")
    # A bad variant: shown next to the variants, with the path Hutch named.
    page.get_by_label("Rollout (%)").fill("75")
    page.get_by_label("Variants (JSON)").fill('[{"name": "blue", "weight": -1}]')
    page.get_by_role("button", name="Save flag").click()
    expect(page.locator(".field:has(textarea[name=variants]) .error")).to_contain_text(
        "variants[0].weight"
    )
    expect(rollout).not_to_have_attribute("aria-invalid", "true")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        stored = c.get("/api/apps/lena-app/flags/checkout", headers=auth(seeded)).json()
    assert stored["flag"]["rollout"] == 40

    # A good one is saved.
    page.get_by_label("Variants (JSON)").fill(
        '[{"name": "blue", "weight": 1}, {"name": "green", "weight": 3}]'
    )
    page.get_by_role("button", name="Save flag").click()
    expect(page.get_by_role("status")).to_contain_text("Saved checkout")
    expect(flags).to_contain_text("75%")
    with httpx.Client(base_url=server.url, timeout=30) as c:
        stored = c.get("/api/apps/lena-app/flags/checkout", headers=auth(seeded)).json()
    assert stored["flag"]["rollout"] == 75
    assert [v["weight"] for v in stored["flag"]["variants"]] == [1, 3]

    # Exposures: evaluations reported with the app secret, then charted.
    reports = [
        {"flagName": "checkout", "enabled": True, "variant": v, "context": {"userId": f"u{i}"}}
        for i, v in enumerate(["blue", "green", "green", "green"])
    ] + [{"flagName": "checkout", "enabled": False, "context": {"userId": "u9"}}]
    evaluations(server, seeded.secret, reports)
    with httpx.Client(base_url=server.url, timeout=30) as c:

        def exposed() -> int:
            body = c.get(
                "/api/flags/checkout/stats", headers=auth(seeded), params={"appName": "lena-app"}
            ).json()
            return int(body["total"]["exposures"])

        eventually(lambda: exposed() == 5)
    page.reload()
    page.get_by_role("button", name="checkout").click()
    expect(page.locator(".exposure-total")).to_contain_text("5 exposures from")
    expect(page.locator(".exposure-total")).to_contain_text(
        "4 enabled, 1 disabled; blue 1, green 3"
    )
    expect(page.locator("figure.chart canvas")).to_have_count(1)
    axe_check(page)
    screenshot(page, "flags")
    assert_clean(page)


MANIFEST = """\
image: debian/bookworm
tasks:
  - build: |
      make
  - test: |
      make check
"""


class Runner:
    """What a runner host says to Hutch about the one job it leased (docs/jobs.md)."""

    def __init__(self, server: Server, provisioner: str) -> None:
        self.client = httpx.Client(
            base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {provisioner}"}
        )
        params = {"available_vcpus": "4", "cpu_architecture": "Amd64", "host": "h1"}
        answer = self.client.get("/api/provisioner/dequeue", params=params)
        assert answer.status_code == 200, answer.text
        self.job = answer.json()["new_job"]
        assert self.job is not None
        self.sent = 0
        """Lines sent so far: the next batch's `first` (lines are numbered across the job)."""

    def status(self, status: str) -> dict[str, Any]:
        answer = self.client.post(
            f"/api/runner/jobs/{self.job['uuid']}/status",
            json={"lease_id": self.job["lease_id"], "status": status},
        )
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    def log(self, task: str, *lines: str) -> None:
        answer = self.client.post(
            f"/api/runner/jobs/{self.job['uuid']}/logs",
            json={
                "lease_id": self.job["lease_id"],
                "first": self.sent,
                "lines": [{"task": task, "line": line} for line in lines],
            },
        )
        assert answer.status_code == 200, answer.text
        self.sent += len(lines)


def test_jobs_pages(browser_page: Page, server: Server, seeded: Seeded) -> None:
    with httpx.Client(base_url=server.url, timeout=30, headers=auth(seeded)) as c:
        numbers = []
        for note in ("first", "second", "third"):
            answer = c.post(
                "/api/jobs", json={"manifest": MANIFEST, "note": note, "execute": False}
            )
            assert answer.status_code == 201, answer.text
            numbers.append(answer.json()["id"])
    first, second, third = numbers

    page = browser_page
    sign_in(page, server, seeded.token, "/jobs")
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    jobs = page.get_by_role("table", name="Jobs, newest first (3 in all)")
    expect(jobs.locator("tbody tr")).to_have_count(3)
    expect(jobs.locator("tbody tr td:first-child")).to_have_text([f"#{n}" for n in numbers[::-1]])
    expect(jobs.locator("tbody tr").first).to_contain_text("build: pending, test: pending")
    axe_check(page)
    screenshot(page, "jobs")

    # The newest is cancelled from its page while pending.
    jobs.get_by_role("link", name=f"#{third}").click()
    expect(page.get_by_role("heading", name=f"Job #{third}")).to_be_visible()
    page.get_by_role("button", name="Cancel job").click()
    expect(page.locator(".job-status")).to_have_text("cancelled")
    expect(page.get_by_role("button", name="Cancel job")).to_be_disabled()
    with httpx.Client(base_url=server.url, timeout=30, headers=auth(seeded)) as c:
        assert c.get(f"/api/jobs/{third}").json()["status"] == "cancelled"

    # The second is started from its page, leased by a "runner", and its log followed.
    page.goto(f"{server.url}/portal/jobs/{second}")
    expect(page.locator(".manifest-text")).to_have_text(MANIFEST)
    expect(page.locator(".job-status")).to_have_text("pending")
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".job-status")).to_have_text("queued")
    runner = Runner(server, seeded.provisioner)
    assert runner.job["id"] == second
    runner.status("running")
    runner.log("setup", "pulling debian/bookworm")
    runner.log("build", "make", "cc -o app main.c")
    expect(page.locator(".job-status")).to_have_text("running", timeout=15_000)
    build = page.get_by_role("log", name="Log of build")
    expect(build).to_have_text("make\ncc -o app main.c\n", timeout=15_000)
    expect(page.get_by_role("log", name="Log of setup")).to_have_text("pulling debian/bookworm\n")
    runner.log("build", "linked app")
    expect(build).to_have_text("make\ncc -o app main.c\nlinked app\n", timeout=15_000)
    expect(page.get_by_text("Following the log while the job is running")).to_be_visible()
    axe_check(page)
    screenshot(page, "job")

    # Cancelled while running: the runner hears of it and reports it; the page shows the end.
    page.get_by_role("button", name="Cancel job").click()
    assert runner.status("running")["cancel_requested"] is True
    runner.log("build", "stopping")
    runner.status("cancelled")
    expect(page.locator(".job-status")).to_have_text("cancelled", timeout=15_000)
    expect(page.get_by_text("The job ended (cancelled)")).to_be_visible()
    expect(build).to_have_text("make\ncc -o app main.c\nlinked app\nstopping\n", timeout=15_000)

    # Pages of two by the API's cursors: the first job, untouched, on the older page.
    page.goto(f"{server.url}/portal/jobs?limit=2")
    listed = page.locator("table.jobs tbody tr")
    expect(listed.locator("td:first-child")).to_have_text([f"#{third}", f"#{second}"])
    expect(listed.locator(".status")).to_have_text(["cancelled", "cancelled"])
    expect(page.get_by_role("button", name="Newer")).to_be_disabled()
    page.get_by_role("button", name="Older").click()
    expect(listed.locator("td:first-child")).to_have_text([f"#{first}"])
    expect(listed.locator(".status")).to_have_text(["pending"])
    expect(page.get_by_role("button", name="Older")).to_be_disabled()
    page.get_by_role("button", name="Newer").click()
    expect(listed.locator("td:first-child")).to_have_text([f"#{third}", f"#{second}"])
    assert_clean(page)
