"""schemathesis against a live `hutch serve`, with the OpenAPI document it serves.

A real `hutch serve` (ingest workers forwarding reads to the query process), a developer, two
apps, tokens, a builder worker and a provisioner made with the `hutch` CLI, a little data sent
over HTTP (a build, an icon, a flag, telemetry, a trace, CI jobs, a secret...) so that answers
have something in them; then
`st run` over every documented operation with every credential the document names, in
positive and negative modes, with these checks: no 5xx, every status, content type, header
and body as documented. Any failure fails the test with schemathesis' own account of it.

Bounded and repeatable: HUTCH_SCHEMATHESIS_EXAMPLES test cases per operation and phase
(default 20), seed HUTCH_SCHEMATHESIS_SEED, and the whole run must end within
HUTCH_SCHEMATHESIS_BUDGET_S (default 300 s; it takes about a minute here). Each request must
be answered within 10 s. The figures (operations, requests, statuses) are printed and kept
in the run's directory (`schemathesis-figures.json`).
"""

from __future__ import annotations

import collections
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import httpx
import pytest

from base.settings import Settings
from tests.support.admin import hutch
from tests.support.github_standin import GitHubStandIn
from tests.support.keyserver import keyserver_standin
from tests.support.processes import kill_tree
from tests.support.receivers import smtp_receiver
from tests.support.servers import Served, free_port
from tests.support.settings import make_settings
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("HUTCH_SCHEMATHESIS_EXAMPLES", "20"))
SEED = int(os.environ.get("HUTCH_SCHEMATHESIS_SEED", "13"))
BUDGET_S = float(os.environ.get("HUTCH_SCHEMATHESIS_BUDGET_S", "300"))
REQUEST_TIMEOUT_S = 10
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)
APP, SPARE_APP = "my-app", "spare-app"  # my-app: the document's examples name it
TRACE_ID, SPAN_ID = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
MANIFEST = """\
image: debian/bookworm
tasks:
  - build: |
      echo building
artifacts:
  - out/app.tar.gz
"""


def ok(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    assert response.status_code in (statuses or (200,)), response.text
    body: dict[str, Any] = response.json() if response.content else {}
    return body


def otlp_resource(kind: str, items: str, payload: list[dict[str, Any]]) -> dict[str, Any]:
    service = {"key": "service.name", "value": {"stringValue": "checkout"}}
    return {kind: [{"resource": {"attributes": [service]}, items: payload}]}


def seed(url: str, settings: Settings) -> dict[str, str]:
    """Credentials from the CLI and data over HTTP; returns what the run's config names."""
    assert hutch(settings, "developer", "create", "st-dev")[0] == 0
    code, app = hutch(settings, "app", "create", APP, "--developer", "st-dev")
    assert code == 0, app
    assert hutch(settings, "app", "create", SPARE_APP, "--developer", "st-dev")[0] == 0
    code, token = hutch(settings, "token", "create", "--developer", "st-dev", "--name", "st")
    assert code == 0, token
    code, spare = hutch(settings, "token", "create", "--developer", "st-dev", "--name", "spare")
    assert code == 0, spare
    code, worker = hutch(settings, "worker", "create", "st-worker")
    assert code == 0, worker
    code, provisioner = hutch(settings, "provisioner", "create", "st-provisioner")
    assert code == 0, provisioner
    bearer = {"Authorization": f"Bearer {token['token']}"}
    secret = {"X-Secret": app["secret"]}
    now = time.time_ns()
    with httpx.Client(base_url=url, timeout=30) as c:
        ok(
            c.post(
                "/api/upload",
                headers=bearer,
                data={"name": APP, "version": "1.0.0"},
                files={"file": ("app-release.apk", b"PK\x03\x04" + os.urandom(2048))},
            ),
            201,
        )
        icon = ok(c.put(f"/api/apps/{APP}/icon", headers=bearer, content=PNG))
        flag = {"enabled": True, "rollout": 50, "variants": [{"name": "blue", "weight": 1}]}
        ok(c.put(f"/api/apps/{APP}/flags/dark_mode", headers=bearer, json=flag), 201)
        event = {"kind": "info", "version": "1.0.0", "bits": {"event": "app_opened"}}
        ok(c.post("/api/telemetry", headers=secret, json=event), 202)
        report = {"evaluations": [{"flagName": "dark_mode", "enabled": True, "variant": "blue"}]}
        ok(c.post("/v1/flags/eval", headers=secret, json=report), 202)
        span = {
            "traceId": TRACE_ID,
            "spanId": SPAN_ID,
            "name": "GET /cart",
            "kind": 2,
            "startTimeUnixNano": str(now - 250_000_000),
            "endTimeUnixNano": str(now),
            "attributes": [{"key": "http.method", "value": {"stringValue": "GET"}}],
        }
        spans = otlp_resource("resourceSpans", "scopeSpans", [{"spans": [span]}])
        ok(c.post("/v1/traces", headers=secret, json=spans))
        record = {
            "timeUnixNano": str(now),
            "severityNumber": 17,
            "severityText": "ERROR",
            "body": {"stringValue": "checkout timed out"},
            "traceId": TRACE_ID,
            "spanId": SPAN_ID,
        }
        logs = otlp_resource("resourceLogs", "scopeLogs", [{"logRecords": [record]}])
        ok(c.post("/v1/logs", headers=secret, json=logs))
        point = {"timeUnixNano": str(now), "asDouble": 12.5}
        metric = {"name": "http.server.duration", "unit": "ms", "gauge": {"dataPoints": [point]}}
        metrics = otlp_resource("resourceMetrics", "scopeMetrics", [{"metrics": [metric]}])
        ok(c.post("/v1/metrics", headers=secret, json=metrics))
        web_build = {
            "url": "https://example.com/",
            "name": "Seeded",
            "bundleId": "com.example.seeded",
            "version": "1.0.0",
        }
        ok(c.post("/api/v1/builds", headers=bearer, json=web_build), 201)
        worker_bearer = {"Authorization": f"Bearer {worker['token']}"}
        claim = ok(
            c.post("/api/v1/worker/claim", headers=worker_bearer, json={"platform": "android"})
        )
        download = ok(c.get(f"/api/app/{APP}"))["downloadUrl"]
        presign = {"fileName": "app.apk", "name": APP, "version": "1.0.1"}
        upload = ok(c.post("/api/upload/presign", headers=bearer, json=presign))["uploadUrl"]
        eventually(
            lambda: c.get(f"/api/traces/{TRACE_ID}", headers=bearer).status_code == 200,
            timeout_s=60,
        )
        eventually(lambda: c.get("/api/metrics", headers=bearer).json()["metrics"], timeout_s=60)
        jobs = seed_jobs(c, bearer, {"Authorization": f"Bearer {provisioner['token']}"})
    return {
        **jobs,
        "provisioner": provisioner["token"],
        "token": token["token"],
        "secret": app["secret"],
        "worker": worker["token"],
        "spare_token_id": spare["id"],
        "icon_key": icon["iconUrl"].rsplit("/api/img/", 1)[1],
        "build_id": claim["build"]["id"],
        "claim_id": claim["claimId"],
        "download": download,
        "upload": upload,
    }


def seed_jobs(c: httpx.Client, bearer: dict[str, str], prov: dict[str, str]) -> dict[str, str]:
    """CI jobs for the job and runner operations to find: a pending one, one to cancel, one
    leased to the run's provisioner (its uuid and lease), a secret to delete."""
    pending = ok(
        c.post("/api/jobs", headers=bearer, json={"manifest": MANIFEST, "execute": False}), 201
    )
    spare = ok(
        c.post("/api/jobs", headers=bearer, json={"manifest": MANIFEST, "execute": False}), 201
    )
    ok(c.post("/api/jobs", headers=bearer, json={"manifest": MANIFEST}), 201)
    wanted = {"available_vcpus": "4", "cpu_architecture": "Amd64", "host": "st-host"}
    leased = ok(c.get("/api/provisioner/dequeue", headers=prov, params=wanted))["new_job"]
    assert leased is not None
    line = {"task": "build", "line": "building"}
    ok(c.post(f"/api/runner/jobs/{leased['uuid']}/logs", headers=prov,
              json={"lease_id": leased["lease_id"], "lines": [line]}))  # fmt: skip
    job = ok(c.get(f"/api/jobs/{pending['id']}", headers=bearer))
    secret = {"name": "spare", "type": "ssh_key", "data": "c2VjcmV0Cg=="}
    spare_secret = ok(c.post("/api/secrets", headers=bearer, json=secret), 201)
    return {
        "job": str(pending["id"]),
        "spare_job": str(spare["id"]),
        "tenant_id": job["tenant_id"],
        "leased_uuid": leased["uuid"],
        "lease_id": leased["lease_id"],
        "spare_secret_id": spare_secret["id"],
    }


def toml_table(values: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{json.dumps(k)} = {json.dumps(v)}" for k, v in values.items()) + " }"


def signed(url: str) -> dict[str, str]:
    """A signed /objects URL as the run's fixed parameters: its key and query."""
    parts = urlsplit(url)
    key = unquote(parts.path.removeprefix("/objects/"))
    return {"path.key": key, **{f"query.{k}": v for k, v in parse_qsl(parts.query)}}


def config(seeded: dict[str, str]) -> str:
    """schemathesis.toml: a credential for each security scheme (from the environment), and
    the identifiers of seeded data for the operations that need one to get past a 404."""
    auth = {
        "developerToken": "bearer = '${HUTCH_ST_TOKEN}'",
        "appSecretHeader": "api_key = '${HUTCH_ST_SECRET}'",
        "appSecretQuery": "api_key = '${HUTCH_ST_SECRET}'",
        "ofrepBearer": "bearer = '${HUTCH_ST_SECRET}'",
        "ofrepApiKey": "api_key = '${HUTCH_ST_SECRET}'",
        "workerToken": "bearer = '${HUTCH_ST_WORKER}'",
        "provisionerToken": "bearer = '${HUTCH_ST_PROVISIONER}'",
    }
    job, lease = {"path.id": seeded["job"]}, {"path.uuid": seeded["leased_uuid"]}
    fixed: list[tuple[str, str, dict[str, str]]] = [
        # Rotating my-app's secret would lock the run out of every secret route.
        ("/api/apps/{app}/secret", "POST", {"path.app": SPARE_APP}),
        ("/api/apps/{app}/secret/previous", "DELETE", {"path.app": SPARE_APP}),
        # Revoking the run's own token would turn the rest into 401s.
        ("/api/tokens/{token_id}", "DELETE", {"path.token_id": seeded["spare_token_id"]}),
        ("/api/img/{key}", "GET", {"path.key": seeded["icon_key"]}),
        ("/objects/{key}", "GET", signed(seeded["download"])),
        ("/objects/{key}", "PUT", signed(seeded["upload"])),
        (
            "/api/v1/worker/builds/{build_id}/status",
            "POST",
            {"path.build_id": seeded["build_id"], "body.claimId": seeded["claim_id"]},
        ),
        # CI jobs: the seeded ones, so that answers get past the 404 of an unknown job.
        *(
            ("/api/jobs/{id}" + tail, "GET", job)
            for tail in ("", "/manifest", "/log", "/deliveries")
        ),
        ("/api/jobs/{id}/tasks/{name}/log", "GET", {**job, "path.name": "build"}),
        ("/api/jobs/{id}/start", "POST", job),
        ("/api/jobs/{id}/cancel", "POST", {"path.id": seeded["spare_job"]}),
        ("/api/tenants/{tenant_id}/jobs", "GET", {"path.tenant_id": seeded["tenant_id"]}),
        ("/api/secrets/{secret_id}", "DELETE", {"path.secret_id": seeded["spare_secret_id"]}),
        *(
            (path, "POST", {**lease, "body.lease_id": seeded["lease_id"]})
            for path in ("/api/runner/jobs/{uuid}/status", "/api/runner/jobs/{uuid}/logs")
        ),
        (
            "/api/runner/jobs/{uuid}/tasks/{name}/status",
            "POST",
            {**lease, "path.name": "build", "body.lease_id": seeded["lease_id"]},
        ),
        (
            "/api/runner/jobs/{uuid}/artifacts",
            "PUT",
            {**lease, "query.lease_id": seeded["lease_id"], "query.path": "out/app.tar.gz"},
        ),
    ]
    hooks = Path(__file__).parent / "support" / "schemathesis_hooks.py"  # decodes protobuf answers
    lines = [f"hooks = {json.dumps(str(hooks))}\n"]
    lines += [f"[auth.openapi.{name}]\n{value}\n" for name, value in auth.items()]
    for path, method, parameters in fixed:
        lines.append(
            f"[[operations]]\ninclude-name = {json.dumps(f'{method} {path}')}\n"
            f"parameters = {toml_table(parameters)}\n"
        )
    return "\n".join(lines)


def figures(har: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    entries = har["log"]["entries"]
    statuses = collections.Counter(str(e["response"]["status"]) for e in entries)
    return {
        "operations": report["operations"]["tested"],
        "testCases": report["test_cases"]["generated"],
        "requests": len(entries),
        "statuses": dict(sorted(statuses.items())),
        "seconds": report["running_time"],
        "failures": report["failures"],
        "errors": report["errors"],
    }


@pytest.fixture
def served(tmp_path: Path, github: GitHubStandIn) -> Iterator[Served]:
    # SQL gives up well before the run's per-request limit, so a slow query is its 400.
    # GitHub (the stand-in) and a mail server configured, as in production: sign-in, setup,
    # webhooks (forged signatures: 401) and tenant e-mail answer what they answer there, not
    # 503 "not configured".
    # A keyserver (a stand-in holding no key): fetch-key answers 404, never 502.
    with smtp_receiver() as mail, keyserver_standin(tmp_path) as keyserver:
        settings = make_settings(
            tmp_path / "data",
            HUTCH_SQL_TIMEOUT="5",
            HUTCH_SMTP_URL=mail.url,
            **github.env,
            **keyserver.env,
        )
        running = Served(settings, free_port())  # its public URL follows its bind
        try:
            yield running
        finally:
            running.process.send_signal(signal.SIGINT)
            try:
                running.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                kill_tree(running.process.pid)
                running.process.wait()


@pytest.mark.integration
@pytest.mark.slow
def test_the_live_api_matches_its_openapi_document(served: Served, tmp_path: Path) -> None:
    seeded = seed(served.url, served.settings)
    document = httpx.get(f"{served.url}/api/openapi.json", timeout=30)
    assert document.status_code == 200, document.text
    # From a file: a run from the URL leaves out the operation serving the document itself.
    schema = tmp_path / "openapi.json"
    schema.write_bytes(document.content)
    operations = sum(
        method in ("get", "put", "post", "delete", "patch", "head")
        for item in document.json()["paths"].values()
        for method in item
    )
    (tmp_path / "schemathesis.toml").write_text(config(seeded))
    reports = tmp_path / "reports"
    command = [
        *(sys.executable, "-m", "schemathesis.cli", "--config-file", "schemathesis.toml"),
        *("run", str(schema), "--url", served.url),
        *("--checks", ",".join(CHECKS)),
        *("--phases", "examples,coverage,fuzzing"),
        *("--max-examples", str(EXAMPLES), "--seed", str(SEED)),
        *("--generation-database", "none", "--workers", "1"),
        *("--max-redirects", "0", "--request-timeout", str(REQUEST_TIMEOUT_S)),
        *("--report", "json,har", "--report-dir", str(reports)),
        *("--no-color", "--output-truncate", "false"),
    ]
    env = {
        **os.environ,
        "HUTCH_ST_TOKEN": seeded["token"],
        "HUTCH_ST_SECRET": seeded["secret"],
        "HUTCH_ST_WORKER": seeded["worker"],
        "HUTCH_ST_PROVISIONER": seeded["provisioner"],
    }
    try:
        run = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=BUDGET_S
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"schemathesis did not finish within {BUDGET_S:g}s: {str(exc.stdout)[-3000:]}")
    output = run.stdout + run.stderr
    (tmp_path / "schemathesis.log").write_text(output)
    hars, jsons = sorted(reports.glob("har-*.json")), sorted(reports.glob("json-*.json"))
    assert hars, output[-20000:]
    assert jsons, output[-20000:]
    found = figures(json.loads(hars[0].read_text()), json.loads(jsons[0].read_text()))
    (tmp_path / "schemathesis-figures.json").write_text(json.dumps(found, indent=2))
    print(f"schemathesis: {json.dumps(found)}")
    assert run.returncode == 0, output[-20000:]
    assert found["operations"] == operations, output[-5000:]
    assert not [status for status in found["statuses"] if status.startswith("5")]
    # The server is still up and answering after all that.
    assert httpx.get(f"{served.url}/api/health", timeout=10).status_code == 200
