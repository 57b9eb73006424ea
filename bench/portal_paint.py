"""First paint of the portal's telemetry explorer, in Debian's headless chromium, against
`hutch serve` over a large telemetry table (issue 18: "first paint of the explorer < 1 s").

The events (50 apps, 30 days, five kinds) are written straight into the telemetry table by
chDB before the server starts; the developer owns three of the apps. Each round opens
/portal/telemetry in a fresh browser context (empty cache, the token pasted in session
storage, as the sign-in page leaves it) and reads, from the page's own clock
(performance.now(), from the start of the navigation):

- `fcp`: the Paint Timing API's first-contentful-paint (the shell's first text);
- `rows`: when the first page of events is in the table (the explorer's useful paint), read
  by a MutationObserver inside the page, so no browser round trip is counted;
- `histogram`: when the histogram's chart is drawn (its SQL over the range done).

    .venv/bin/python -m bench.portal_paint [--events 1000000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from bench.common import free_port, hutch_serve, percentile
from bench.telemetry_set import bench_developer, fill

CHROMIUM = "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Runs before the portal's scripts: stamps when the table gets its first row and when the
# histogram's canvas appears, on the page's clock.
PROBE = """
sessionStorage.setItem('hutch.token', %s);
window.__paint = {};
new MutationObserver(() => {
  if (!window.__paint.rows && document.querySelector('table.events tbody tr'))
    window.__paint.rows = performance.now();
  if (!window.__paint.histogram && document.querySelector('figure.chart canvas'))
    window.__paint.histogram = performance.now();
}).observe(document, {childList: true, subtree: true});
"""

READ = """() => ({
  fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
  rows: window.__paint.rows ?? null,
  histogram: window.__paint.histogram ?? null,
})"""


def load(data: Path, events: int) -> None:
    analytics = fill(data, events)
    analytics.close()


def rounds(url: str, token: str, count: int) -> list[dict[str, float]]:
    measured = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            for _ in range(count + 1):  # the first round warms the server, not counted
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                context.add_init_script(PROBE % json.dumps(token))
                page = context.new_page()
                page.goto(f"{url}/portal/telemetry")
                page.wait_for_selector("table.events tbody tr")
                page.wait_for_selector("figure.chart canvas, figure.chart p", timeout=30_000)
                measured.append(page.evaluate(READ))
                context.close()
        finally:
            browser.close()
    return measured[1:]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "median_ms": round(statistics.median(values), 1),
        "p90_ms": round(percentile(values, 90), 1),
        "max_ms": round(max(values), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        env = {
            "HUTCH_DATA": str(data),
            "HUTCH_BIND": f"127.0.0.1:{port}",
            "HUTCH_LOG_LEVEL": "WARNING",
        }
        token = bench_developer(env)
        started = time.perf_counter()
        load(data, args.events)
        load_s = time.perf_counter() - started
        url = f"http://127.0.0.1:{port}"
        with hutch_serve(env, port, Path(tmp)):
            for _ in range(30):
                try:
                    if httpx.get(f"{url}/api/health", timeout=5).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(1)
            measured = rounds(url, token, args.rounds)
    result: dict[str, Any] = {
        "events": args.events,
        "load_s": round(load_s, 1),
        "rounds": len(measured),
    }
    for key in ("fcp", "rows", "histogram"):
        result[key] = summary([float(m[key]) for m in measured if m[key] is not None])
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
