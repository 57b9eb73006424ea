"""The layout docs/architecture.md describes: one name per thing, every package saying what it
holds. (The layers themselves are import-linter's contracts, run by `make lint`.)"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "hutch",
    "builder",
    "runner",
    "ingest",
    "query",
    "projections",
    "web",
    "state",
    "base",
    "storage",
    "schemas",
)

SAME_THING = {
    "telemetry": "app telemetry events: their schema, ingest, projection and reads",
    "otel_traces": "the otel_traces table: its projection and its reads",
    "otel_logs": "the otel_logs table: its projection and its reads",
    "otel_metrics": "the otel_metrics_* tables: their projection and their reads",
    "identity": "developers, apps and tokens: the events' payloads and their projection",
    "people": "GitHub accounts, sessions, tenants' installations and e-mail: payloads, projection",
    "identity_api": "the identity routes: their writes and their reads",
    "secrets_api": "the CI job secrets routes: their writes and their reads",
    "ssh_keys": "publishing SSH keys: their payloads, commands, projection and reads",
    "ssh_keys_api": "the publishing SSH key routes: their writes and their reads",
    "runs": "publish runs: their payloads and their commands",
    "runs_api": "the publish run routes: their writes and their reads",
    "tenants_api": "the tenant routes (listing, setup, e-mail): their writes and their reads",
    "builds": "uploaded builds: their data definitions and their projection",
    "web_builds": "web-app builds: their write routes and their projection",
    "api": "an aggregate's routes (flags/api, jobs/api): their writes and their reads",
    "commands": "an aggregate's commands (flags/commands, jobs/commands)",
    "projection": "an aggregate's relational projection (flags/projection, jobs/projection)",
    "reads": "an aggregate's relational reads (flags/reads, jobs/reads)",
    "evaluations": "flag evaluation reports (flags/evaluations): their schema and their ingest",
    "events": "event payloads: the envelope's types, and an aggregate's (flags/events, jobs/events)",
    "main": "a client program's entry: `hutch builder` (builder/main), `hutch runner` (runner/main)",
    "protocol": "a store's interface, one per store in storage/",
    "sqlite": "the SQLite adapter of a store (the log, the relational store)",
}
"""Module names used in more than one place, each for one thing along the data path."""


def modules() -> dict[str, list[str]]:
    """Module name -> where it is (package/path), over every package of the layout."""
    found: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name != "__init__.py":
                found[path.stem].append(str(path.relative_to(ROOT)))
    return found


def test_a_module_name_means_one_thing() -> None:
    reused = {name: places for name, places in modules().items() if len(places) > 1}
    unexplained = {name: places for name, places in reused.items() if name not in SAME_THING}
    assert not unexplained, (
        "module names reused for different things (rename one, or add the name to "
        f"SAME_THING if it is the same thing along the data path): {unexplained}"
    )
    stale = sorted(set(SAME_THING) - set(reused))
    assert not stale, f"SAME_THING lists names no longer reused: {stale}"


def test_every_package_says_what_it_holds() -> None:
    for package in PACKAGES:
        for init in (ROOT / package).rglob("__init__.py"):
            doc = ast.get_docstring(ast.parse(init.read_text()))
            assert doc, f"{init.relative_to(ROOT)} has no docstring saying what it holds"


def test_the_architecture_document_names_every_package() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    for package in PACKAGES:
        assert f"`{package}/`" in text, f"docs/architecture.md does not describe {package}/"
