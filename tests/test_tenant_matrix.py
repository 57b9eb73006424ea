"""The tenant-isolation matrix: every operation of schemas/openapi.yaml, called by one
developer (ivo) with his own token and secret against the other's (vera's) apps, tokens,
flags, builds, traces, CI jobs (private: `access:read` only her), her tenant, secrets and
ids. Each must refuse, or answer only ivo's rows: no answer ever shows one of vera's markers,
and afterwards everything of vera's is as it was. Machine credentials stay in their lane: a
provisioner token is refused by developer routes, a developer token by the provisioners' and
runners' routes, and a provisioner that does not hold a job's lease cannot report on it.

A new operation without a row here fails `test_every_operation_has_a_row`.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Gauge, Metric, NumberDataPoint

from query.openapi import load_document
from tests.support.admin import developer_with_app, hutch
from tests.support.builds import direct_upload
from tests.support.github_standin import GitHubStandIn
from tests.support.keyserver import keyserver_standin
from tests.support.otlp_builders import kv, logs, metrics, span, traces
from tests.support.servers import Server, serve_in_thread
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

REFUSED = frozenset({401, 403, 404})
PROTOBUF = {"Content-Type": "application/x-protobuf"}


@dataclass
class World:
    """What both developers have; `theirs` are the strings that must never reach ivo."""

    ivo_token: str
    ivo_secret: str
    vera_token: str
    vera_secret: str
    vera_token_id: str
    trace_id: str
    build_key: str
    web_build: str
    worker: str
    marker: str
    vera_job: str = ""
    """A private pending job of vera's (its number)."""
    vera_leased: str = ""
    """A private job of vera's, leased to `holder` (its uuid) under `lease_id`."""
    lease_id: str = ""
    vera_tenant: str = ""
    vera_secret_id: str = ""
    vera_ssh_key_id: str = ""
    """Vera's publishing SSH key (labelled with the marker); her app's source repository
    names the marker too."""
    vera_publish_run: str = ""
    """A publish run of vera's (its remote names the marker)."""
    vera_installation: str = ""
    """The GitHub App installation on vera's organisation (in the stand-in)."""
    holder: str = ""
    """The provisioner token holding vera_leased's lease."""
    provisioner: str = ""
    """Another provisioner's token: ivo's go at the runners' side."""
    theirs: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    credential: str = "token"
    """token (ivo's bearer), secret (ivo's X-Secret), ofrep (Bearer secret), provisioner
    (another provisioner's bearer) or none."""
    params: dict[str, str] = field(default_factory=dict)
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    files: dict[str, Any] | None = None
    data: dict[str, str] | None = None
    allowed: frozenset[int] = REFUSED
    """Statuses that mean 'refused'; any 2xx must then show nothing of vera's."""
    ok: bool = False
    """A 2xx is the expected answer (ivo's own rows), not a refusal."""


def otlp_trace(world_marker: str, trace_id: bytes) -> bytes:
    now = time.time_ns()
    request = traces(
        span(1, name=world_marker, trace_id=trace_id, start_time_unix_nano=now,
             end_time_unix_nano=now + 1000),
        service=f"svc-{world_marker}",
    )  # fmt: skip
    return request.SerializeToString()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, github: GitHubStandIn) -> Iterator[Server]:
    """A server with GitHub configured (the stand-in): its sign-in, setup and webhook routes
    answer as in production, not 503; and a keyserver (a stand-in holding no key)."""
    with keyserver_standin(tmp_path_factory.mktemp("keyserver")) as keyserver:
        data = tmp_path_factory.mktemp("matrix") / "data"
        yield from serve_in_thread(data, **github.env, **keyserver.env)


@pytest.fixture(scope="module")
def world(server: Server, github: GitHubStandIn) -> World:
    settings = server.settings
    ivo_secret, ivo_token = developer_with_app(settings, "ivo", "ivo-app")
    vera_secret, vera_token = developer_with_app(settings, "vera", "vera-app")
    marker = f"zqvera{uuid.uuid4().hex}"
    trace_id = uuid.uuid4().bytes
    now = time.time_ns()
    with server.client(Authorization=f"Bearer {vera_token}") as c:
        tokens = c.get("/api/tokens").json()["tokens"]
        flag = {"enabled": True, "rollout": 100, "description": marker}
        assert c.put("/api/apps/vera-app/flags/vera_flag", json=flag).status_code in (200, 201)
        build = direct_upload(c, vera_token, "vera-app", "1.0.0", "vera.apk", marker.encode())
        assert build.status_code == 201, build.text
        web = c.post(
            "/api/v1/builds",
            json={"url": "https://example.com/", "name": marker[:20], "bundleId": "com.vera.app",
                  "version": "1.0.0", "permissions": []},
        )  # fmt: skip
        assert web.status_code == 201, web.text
    with server.client(**{"X-Secret": vera_secret}) as c:
        event = {"kind": "error", "version": "1.0.0", "bits": {"note": marker}}
        assert c.post("/api/telemetry", json=event).status_code == 202
        evaluation = {"flagName": "vera_flag", "enabled": True, "context": {"note": marker}}
        assert c.post("/v1/flags/eval", json={"evaluations": [evaluation]}).status_code == 202
        assert (
            c.post("/v1/traces", content=otlp_trace(marker, trace_id), headers=PROTOBUF).status_code
            == 200
        )
        record = LogRecord(time_unix_nano=now, body=kv("b", marker).value)
        body = logs(record, service=f"svc-{marker}").SerializeToString()
        assert c.post("/v1/logs", content=body, headers=PROTOBUF).status_code == 200
        metric = Metric(name=f"m_{marker}", gauge=Gauge(data_points=[NumberDataPoint(
            time_unix_nano=now, as_double=1.0)]))  # fmt: skip
        body = metrics(metric, service=f"svc-{marker}").SerializeToString()
        assert c.post("/v1/metrics", content=body, headers=PROTOBUF).status_code == 200
    code, worker = hutch(settings, "worker", "create", "matrix-worker")
    assert code == 0, worker
    jobs = vera_jobs(server, vera_token, marker)
    world = World(
        ivo_token=ivo_token,
        ivo_secret=ivo_secret,
        vera_token=vera_token,
        vera_secret=vera_secret,
        vera_token_id=str(tokens[0]["id"]),
        trace_id=trace_id.hex(),
        build_key=str(build.json()["s3Key"]),
        web_build=str(web.json()["id"]),
        worker=str(worker["token"]),
        marker=marker,
        vera_job=jobs["vera_job"],
        vera_leased=jobs["vera_leased"],
        lease_id=jobs["lease_id"],
        vera_tenant=jobs["vera_tenant"],
        vera_secret_id=jobs["vera_secret_id"],
        holder=jobs["holder"],
        provisioner=jobs["provisioner"],
        vera_installation=str(github.install(github.add_org("vera-org").login)),
    )
    world.theirs = [
        marker, "vera-app", vera_token, vera_secret, world.vera_token_id, world.trace_id,
        world.web_build, marker[:20], "vera_flag", world.vera_leased, world.lease_id,
        world.vera_tenant, world.vera_secret_id, world.holder,
    ]  # fmt: skip
    world.vera_ssh_key_id = vera_publishing(server, vera_token, marker)
    world.theirs.append(world.vera_ssh_key_id)
    world.vera_publish_run = vera_publish_run(server, vera_token, world)
    world.theirs.append(world.vera_publish_run)
    eventually(lambda: stored(server, world), timeout_s=30)
    return world


def vera_publishing(server: Server, vera_token: str, marker: str) -> str:
    """Vera's publishing SSH key and her app's source repository, each holding the marker."""
    with server.client(Authorization=f"Bearer {vera_token}") as c:
        added = c.post("/api/publish/ssh-keys", json={"label": marker, "generate": True})
        assert added.status_code == 201, added.text
        source = {"sourceRepository": f"https://example.com/{marker}.git"}
        assert c.patch("/api/apps/vera-app", json=source).status_code == 200
    return str(added.json()["id"])


def vera_publish_run(server: Server, vera_token: str, world: World) -> str:
    """A publish run of vera's metadata.yml (her build is an APK) to a remote naming the
    marker; it never reaches it (no DNS here), which changes nothing for the matrix."""
    run = {
        "app": "vera-app",
        "remote": f"aur@example.com:{world.marker}.git",
        "sshKeyId": world.vera_ssh_key_id,
        "files": ["metadata.yml"],
    }
    with server.client(Authorization=f"Bearer {vera_token}") as c:
        started = c.post("/api/publish/publish", json=run)
    assert started.status_code == 202, started.text
    return str(started.json()["runId"])


def vera_jobs(server: Server, vera_token: str, marker: str) -> dict[str, str]:
    """Vera's CI things: a secret, a private pending job naming it, a private job leased to a
    provisioner with a line of log; each holds the marker."""
    settings = server.settings
    code, holder = hutch(settings, "provisioner", "create", "matrix-holder")
    assert code == 0, holder
    code, other = hutch(settings, "provisioner", "create", "matrix-other")
    assert code == 0, other
    with server.client(Authorization=f"Bearer {vera_token}") as c:
        secret = {"name": marker, "type": "ssh_key", "data": "c2VjcmV0Cg=="}
        added = c.post("/api/secrets", json=secret)
        assert added.status_code == 201, added.text
        secret_id = str(added.json()["id"])
        manifest = (
            f"image: debian/bookworm\nsecrets:\n  - {secret_id}\nenvironment:\n  NOTE: {marker}\n"
            f"tasks:\n  - build: echo {marker}\nartifacts:\n  - out/{marker}.txt\n"
        )
        private = {"manifest": manifest, "note": marker, "tags": [marker], "access:read": []}
        pending = c.post("/api/jobs", json={**private, "execute": False})
        assert pending.status_code == 201, pending.text
        queued = c.post("/api/jobs", json=private)
        assert queued.status_code == 201, queued.text
        number = str(pending.json()["id"])
        tenant = str(c.get(f"/api/jobs/{number}").json()["tenant_id"])
    wanted = {"available_vcpus": "1", "cpu_architecture": "Amd64", "host": "matrix-host"}
    with server.client(Authorization=f"Bearer {holder['token']}") as c:
        leased = c.get("/api/provisioner/dequeue", params=wanted).json()["new_job"]
        assert leased is not None
        assert leased["id"] == queued.json()["id"], leased
        lines = [{"task": "build", "line": marker}, {"task": "setup", "line": marker}]
        logged = c.post(
            f"/api/runner/jobs/{leased['uuid']}/logs",
            json={"lease_id": leased["lease_id"], "lines": lines},
        )
        assert logged.status_code == 200, logged.text
    return {
        "vera_job": number,
        "vera_leased": str(leased["uuid"]),
        "lease_id": str(leased["lease_id"]),
        "vera_tenant": tenant,
        "vera_secret_id": secret_id,
        "holder": str(holder["token"]),
        "provisioner": str(other["token"]),
    }


def stored(server: Server, world: World) -> bool:
    """Every row of vera's is queryable (by vera): the matrix's 'never seen' is not vacuous."""
    with server.client(Authorization=f"Bearer {world.vera_token}") as c:
        checks = [
            c.get("/api/telemetry").text,
            c.get(f"/api/traces/{world.trace_id}").text,
            c.get("/api/logs").text,
            c.get("/api/metrics").text,
            c.post("/api/sql", json={"sql": "SELECT * FROM flag_evaluations"}).text,
        ]
    return all(world.marker in text for text in checks)


def rows(world: World) -> dict[str, list[Call]]:
    """operationId -> the calls ivo makes at vera's things with it."""
    v, t, b = "vera-app", world.vera_token_id, world.web_build
    flag = {"enabled": False, "rollout": 0}
    app_name = {"appName": v}
    secret_json = {"Content-Type": "application/json"}
    key = {"fingerprint": "0" * 40}
    vera_cookies = {"Cookie": f"dev-id=vera; session-token=bs_{'0' * 64}"}
    return {
        "getOpenapiDocument": [Call("GET", "/api/openapi.json", "none", ok=True)],
        "getHealth": [Call("GET", "/api/health", "none", ok=True)],
        "getMetrics": [Call("GET", "/metrics", "none", ok=True)],
        **{
            f"{m.lower()}AuthStatus": [
                Call(m, "/api/auth/status", "token", ok=True),
                Call(m, "/api/auth/status", "secret", params=app_name, ok=True),
            ]
            for m in ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
        },
        # Sign-in: a callback without this browser's state is refused; a logout ends only the
        # sender's own session (none here: vera's cookie names are not vera's session).
        "signInWithGitHub": [
            Call("GET", "/api/auth/github/login", "none", ok=True),
            Call(
                "GET",
                "/api/auth/github/login",
                params={"redirect_uri": "https://evil.example"},
                allowed=frozenset({400}),
            ),
        ],
        "gitHubSignInCallback": [
            Call(
                "GET",
                "/api/auth/github/callback",
                "none",
                params={"code": "x", "state": "y"},
                allowed=frozenset({400}),
            ),
        ],
        **{
            op: [
                Call(method, path, ok=True),
                Call(method, path, "none", headers=vera_cookies, ok=True),
            ]
            for op, method, path in (
                ("logout", "GET", "/api/auth/logout"),
                ("logoutWithPost", "POST", "/api/auth/logout"),
                ("logoutSession", "POST", "/api/logout"),
            )
        },
        "getCurrentUser": [
            Call("GET", "/api/user", ok=True),
            Call("GET", "/api/user", "none", headers=vera_cookies, allowed=frozenset({401})),
        ],
        "listApps": [Call("GET", "/api/apps", ok=True)],
        "createApp": [Call("POST", "/api/apps", json={"name": v}, allowed=frozenset({403, 409}))],
        "updateApp": [
            Call("PATCH", f"/api/apps/{v}", json={"retentionDays": 1}),
            Call("PATCH", f"/api/apps/{v}", json={"sourceRepository": "https://example.org/x.git"}),
        ],
        "rotateAppSecret": [Call("POST", f"/api/apps/{v}/secret", json={})],
        "revokePreviousAppSecrets": [Call("DELETE", f"/api/apps/{v}/secret/previous")],
        "listTokens": [Call("GET", "/api/tokens", ok=True)],
        "createToken": [Call("POST", "/api/tokens", json={"name": "x"}, ok=True)],
        "revokeToken": [Call("DELETE", f"/api/tokens/{t}")],
        "sendTelemetry": [
            Call(
                "POST",
                "/api/telemetry",
                "secret",
                params=app_name,
                json={"kind": "info", "version": "1.0.0", "bits": {}},
            ),
        ],
        "listTelemetry": [
            Call("GET", "/api/telemetry", params=app_name, allowed=frozenset({403, 404}), ok=True),
            Call("GET", "/api/telemetry", ok=True),
        ],
        **{
            op: [Call("POST", path, "secret", params=app_name, content=b"", headers=PROTOBUF)]
            for op, path in (
                ("exportTraces", "/v1/traces"),
                ("exportMetrics", "/v1/metrics"),
                ("exportLogs", "/v1/logs"),
            )
        },
        "searchTraces": [
            Call("GET", "/api/traces", params=app_name, ok=True),
            Call("GET", "/api/traces", ok=True),
        ],
        "getTrace": [Call("GET", f"/api/traces/{world.trace_id}", ok=True)],
        "listLogs": [
            Call("GET", "/api/logs", params={**app_name, "q": world.marker}, ok=True),
            Call("GET", "/api/logs", ok=True),
        ],
        "queryMetrics": [
            Call("GET", "/api/metrics", params={"name": f"m_{world.marker}"}, ok=True),
            Call("GET", "/api/metrics", params=app_name, ok=True),
        ],
        "listFlags": [Call("GET", f"/api/apps/{v}/flags")],
        "getFlag": [Call("GET", f"/api/apps/{v}/flags/vera_flag")],
        "setFlag": [Call("PUT", f"/api/apps/{v}/flags/vera_flag", json=flag)],
        "deleteFlag": [Call("DELETE", f"/api/apps/{v}/flags/vera_flag")],
        "getFlagStats": [
            Call("GET", "/api/flags/vera_flag/stats", params=app_name, ok=True),
            Call("GET", "/api/flags/vera_flag/stats", ok=True),
        ],
        "getFlagImpact": [
            Call("GET", "/api/flags/vera_flag/impact", params=app_name, ok=True),
            Call("GET", "/api/flags/vera_flag/impact", ok=True),
        ],
        "getFlagDefinitions": [Call("GET", "/v1/flags", "secret", params=app_name)],
        "reportFlagEvaluations": [
            Call(
                "POST",
                "/v1/flags/eval",
                "secret",
                params=app_name,
                json={"evaluations": [{"flagName": "vera_flag", "enabled": False}]},
            ),
        ],
        "ofrepEvaluateFlag": [
            Call(
                "POST",
                "/ofrep/v1/evaluate/flags/vera_flag",
                "ofrep",
                params=app_name,
                json={"context": {"targetingKey": "k"}},
                headers=secret_json,
            ),
            Call(
                "POST",
                "/ofrep/v1/evaluate/flags/vera_flag",
                "ofrep",
                json={"context": {"targetingKey": "k"}},
                headers=secret_json,
            ),
        ],
        "ofrepEvaluateFlags": [
            Call(
                "POST",
                "/ofrep/v1/evaluate/flags",
                "ofrep",
                params=app_name,
                json={"context": {"targetingKey": "k"}},
            ),
            Call(
                "POST",
                "/ofrep/v1/evaluate/flags",
                "ofrep",
                json={"context": {"targetingKey": "k"}},
                ok=True,
            ),
        ],
        "runSql": [
            Call("POST", "/api/sql", json={"sql": "SELECT * FROM telemetry_events"}, ok=True),
        ],
        "presignUpload": [
            Call(
                "POST",
                "/api/upload/presign",
                json={"name": v, "version": "9.0.0", "fileName": "x.apk"},
            ),
        ],
        "uploadBuild": [
            Call(
                "POST",
                "/api/upload",
                data={"name": v, "version": "9.0.0"},
                files={"file": ("x.apk", b"x", "application/octet-stream")},
            ),
            Call(
                "POST",
                "/api/upload",
                json={
                    "name": v,
                    "version": "1.0.0",
                    "fileName": "vera.apk",
                    "s3Key": world.build_key,
                },
                allowed=frozenset({403, 404, 422}),
            ),
        ],
        # Public by design (BuildHut): an app's latest build, its download and its images
        # are for anyone the developer shares the app with; nothing private is in them.
        "getAppInfo": [Call("GET", f"/api/app/{v}", "none", ok=True, allowed=frozenset())],
        "downloadLatest": [
            Call("GET", f"/api/apps/{v}/latest", "none", ok=True, allowed=frozenset({302})),
        ],
        "downloadLatestForPlatform": [
            Call(
                "GET",
                f"/api/apps/{v}/latest/android/universal/apk",
                "none",
                ok=True,
                allowed=frozenset({302, 404}),
            ),
        ],
        "downloadBuildVersion": [
            Call(
                "GET",
                f"/api/apps/{v}/versions/1.0.0/vera.apk",
                "none",
                ok=True,
                allowed=frozenset({302}),
            ),
            Call(
                "GET", f"/api/apps/{v}/versions/1.0.0/vera.apk", ok=True, allowed=frozenset({302})
            ),
        ],
        # Her builds' package files are hers to generate (ingest/publish/generate_api.py).
        "generatePublishFiles": [
            Call("POST", "/api/publish/generate", json={"app": v}),
            Call("POST", "/api/publish/generate", json={"app": v, "version": "1.0.0"}),
        ],
        "getImage": [Call("GET", "/api/img/nothing-here.png", "none", allowed=frozenset({404}))],
        # Utilities: a public key is anyone's to fetch, by a developer (the stand-in has none);
        # the bot challenge is public, and a solution that is not one is refused.
        "fetchPgpKey": [
            Call("POST", "/api/pgp/fetch-key", cred, json=key, allowed=frozenset({status}))
            for cred, status in (("token", 404), ("none", 401), ("provisioner", 401))
        ],
        "getBotChallenge": [Call("GET", "/api/validate", "none", ok=True)],
        "verifyBotChallenge": [
            Call("POST", "/api/validate", cred, json={"altcha": "eA=="}, allowed=frozenset({400}))
            for cred in ("none", "token")
        ],
        "listAppBuilds": [Call("GET", f"/api/apps/{v}/builds")],
        "getReleaseHealth": [
            Call("GET", f"/api/apps/{v}/release-health"),
            Call("GET", f"/api/apps/{v}/release-health", params={"days": "90"}),
        ],
        "setAppIcon": [
            Call(
                "PUT",
                f"/api/apps/{v}/icon",
                content=b"\x89PNG\r\n\x1a\n",
                headers={"Content-Type": "image/png"},
            ),
        ],
        # Signed URLs: without vera's signature, her objects can be neither read nor written.
        "getSignedObject": [Call("GET", f"/objects/{world.build_key}", "none")],
        "putSignedObject": [Call("PUT", f"/objects/{world.build_key}", "none", content=b"x")],
        "createWebBuild": [
            Call(
                "POST",
                "/api/v1/builds",
                ok=True,
                allowed=frozenset({409}),
                json={
                    "url": "https://example.com/",
                    "name": "Mine",
                    "bundleId": "com.vera.app",
                    "version": "9.0.0",
                },
            ),
        ],
        "listWebBuilds": [Call("GET", "/api/v1/builds", ok=True)],
        "getWebBuild": [Call("GET", f"/api/v1/builds/{b}")],
        # Workers are Hutch's own infrastructure: a developer's credentials are not a worker's.
        "claimWebBuild": [
            Call("POST", "/api/v1/worker/claim", json={"platform": "android"}),
            Call("POST", "/api/v1/worker/claim", "secret", json={"platform": "android"}),
        ],
        "reportWebBuildStatus": [
            Call(
                "POST", f"/api/v1/worker/builds/{b}/status", json={"status": "failed", "error": "x"}
            ),
        ],
        **job_rows(world),
    }


def job_rows(world: World) -> dict[str, list[Call]]:
    """CI jobs, secrets, tenants, provisioners and runners: ivo at vera's private jobs (404 as
    if they did not exist), her tenant and secrets; provisioner tokens at developer routes and
    developer tokens at the machines' routes; a provisioner at a job another one holds."""
    j, u, lease = world.vera_job, world.vera_leased, {"lease_id": world.lease_id}
    manifest = f"image: debian/bookworm\nsecrets:\n  - {world.vera_secret_id}\ntasks:\n  - a: x\n"
    wanted = {"available_vcpus": "64", "cpu_architecture": "Amd64", "host": "ivo-host"}
    running = {**lease, "status": "failed"}
    artifact = {**lease, "path": f"out/{world.marker}.txt"}
    line = {**lease, "lines": [{"task": "build", "line": "ivo was here"}]}
    no_provisioner = frozenset({401})

    def publish_as(app: str) -> dict[str, Any]:
        """ivo publishing with vera's key (his app, or hers)."""
        remote = "aur@example.com:ivo.git"
        return {"app": app, "remote": remote, "sshKeyId": world.vera_ssh_key_id}

    runner_calls = {
        "reportJobStatus": ("POST", f"/api/runner/jobs/{u}/status", running),
        "reportTaskStatus": ("POST", f"/api/runner/jobs/{u}/tasks/build/status", running),
        "appendJobLog": ("POST", f"/api/runner/jobs/{u}/logs", line),
    }
    return {
        "submitJob": [
            # vera's secret in ivo's manifest: never handed to his job
            Call("POST", "/api/jobs", json={"manifest": manifest}, allowed=frozenset({422})),
            Call(
                "POST",
                "/api/jobs",
                "provisioner",
                json={"manifest": manifest},
                allowed=no_provisioner,
            ),
        ],
        "listJobs": [
            Call("GET", "/api/jobs", ok=True),
            Call("GET", "/api/jobs", "provisioner", allowed=no_provisioner),
        ],
        **{
            op: [
                Call("GET", f"/api/jobs/{j}{tail}"),
                Call("GET", f"/api/jobs/{j}{tail}", "none", allowed=frozenset({404})),
                Call("GET", f"/api/jobs/{j}{tail}", "provisioner", allowed=no_provisioner),
            ]
            for op, tail in (
                ("getJob", ""),
                ("getJobManifest", "/manifest"),
                ("getJobSetupLog", "/log"),
                ("getJobTaskLog", "/tasks/build/log"),
                ("listJobDeliveries", "/deliveries"),
            )
        },
        **{
            op: [
                Call("POST", f"/api/jobs/{j}/{action}", allowed=frozenset({404})),
                Call("POST", f"/api/jobs/{j}/{action}", "provisioner", allowed=no_provisioner),
            ]
            for op, action in (("startJob", "start"), ("cancelJob", "cancel"))
        },
        "listTenantJobs": [
            Call("GET", f"/api/tenants/{world.vera_tenant}/jobs", allowed=frozenset({404})),
            Call(
                "GET",
                f"/api/tenants/{world.vera_tenant}/jobs",
                "provisioner",
                allowed=no_provisioner,
            ),
        ],
        # Tenants: vera's is a 404 to ivo; the listing is his own; a link that is not one
        # is refused whoever follows it; the setup handler needs a GitHub App (none here).
        "listTenants": [
            Call("GET", "/api/tenants", ok=True),
            Call("GET", "/api/tenants", "provisioner", allowed=no_provisioner),
        ],
        "getTenantEmail": [
            Call("GET", f"/api/tenants/{world.vera_tenant}/email", allowed=frozenset({404})),
        ],
        **{
            op: [
                Call(
                    method,
                    f"/api/tenants/{world.vera_tenant}/email",
                    json={"email": "ivo@example.org"},
                    allowed=frozenset({404}),
                ),
                Call(
                    method,
                    f"/api/tenants/{world.vera_tenant}/email",
                    "none",
                    json={"email": "ivo@example.org"},
                    allowed=frozenset({401}),
                ),
            ]
            for op, method in (("updateTenantEmail", "PUT"), ("updateTenantEmailWithPost", "POST"))
        },
        "verifyTenantEmail": [
            Call(
                "GET",
                f"/api/tenants/{world.vera_tenant}/email/verify",
                "none",
                params={"jwt": "eyJhbGciOiJub25lIn0.e30."},
                allowed=frozenset({400}),
            ),
        ],
        "gitHubAppSetup": [
            Call(
                "GET",
                "/api/auth/github/setup",
                params={"installation_id": world.vera_installation},
                allowed=frozenset({403}),  # ivo is no member of vera's organisation
            ),
            Call(
                "GET",
                "/api/auth/github/setup",
                params={"installation_id": "1"},
                allowed=frozenset({404}),  # GitHub (the stand-in) knows none
            ),
            Call(
                "GET",
                "/api/auth/github/setup",
                "none",
                params={"installation_id": "1"},
                allowed=frozenset({401}),
            ),
        ],
        # Only GitHub's signature opens the webhook: a developer's token is not one, whatever
        # tenant's installation the body names (refused before the body is read).
        "receiveGitHubWebhook": [
            Call(
                "POST",
                "/api/github/webhook",
                cred,
                json={"zen": world.marker, "installation": {"id": 1}},
                headers={"X-GitHub-Event": event, "X-GitHub-Delivery": str(uuid.uuid4())},
                allowed=frozenset({401}),
            )
            for cred in ("token", "none")
            for event in ("ping", "push")
        ],
        "addSecret": [
            Call(
                "POST",
                "/api/secrets",
                json={"name": "mine", "type": "pgp_key", "data": "eA=="},
                ok=True,
            ),
            Call(
                "POST",
                "/api/secrets",
                "provisioner",
                json={"name": "mine", "type": "pgp_key", "data": "eA=="},
                allowed=no_provisioner,
            ),
        ],
        "listSecrets": [
            Call("GET", "/api/secrets", ok=True),
            Call("GET", "/api/secrets", "provisioner", allowed=no_provisioner),
        ],
        "deleteSecret": [
            Call("DELETE", f"/api/secrets/{world.vera_secret_id}", allowed=frozenset({404})),
            Call(
                "DELETE",
                f"/api/secrets/{world.vera_secret_id}",
                "provisioner",
                allowed=no_provisioner,
            ),
        ],
        "listSshKeys": [
            Call("GET", "/api/publish/ssh-keys", ok=True),
            Call("GET", "/api/publish/ssh-keys", "provisioner", allowed=no_provisioner),
        ],
        "addSshKey": [
            Call(
                "POST", "/api/publish/ssh-keys", json={"label": "mine", "generate": True}, ok=True
            ),
            Call(
                "POST",
                "/api/publish/ssh-keys",
                "provisioner",
                json={"label": "mine", "generate": True},
                allowed=no_provisioner,
            ),
        ],
        "deleteSshKey": [
            Call(
                "DELETE",
                f"/api/publish/ssh-keys/{world.vera_ssh_key_id}",
                allowed=frozenset({404}),
            ),
            Call(
                "DELETE",
                f"/api/publish/ssh-keys/{world.vera_ssh_key_id}",
                "provisioner",
                allowed=no_provisioner,
            ),
        ],
        "listBranches": [
            Call("GET", "/api/branches", params={"app": "vera-app"}, allowed=frozenset({403})),
            # ivo's own app has no source: his use of vera's key never gets as far as opening it
            Call(
                "GET",
                "/api/branches",
                params={"app": "ivo-app", "sshKeyId": world.vera_ssh_key_id},
                allowed=frozenset({409}),
            ),
        ],
        # Her key, her app and her run stay hers (ingest/publish/runs.py).
        "publishRun": [
            Call("POST", "/api/publish/publish", json=publish_as("vera-app")),
            Call("POST", "/api/publish/publish", json=publish_as("ivo-app")),
            Call(
                "POST",
                "/api/publish/publish",
                "provisioner",
                json=publish_as("vera-app"),
                allowed=no_provisioner,
            ),
        ],
        "getPublishRun": [
            Call("GET", f"/api/publish/status/{world.vera_publish_run}"),
            Call(
                "GET",
                f"/api/publish/status/{world.vera_publish_run}",
                "provisioner",
                allowed=no_provisioner,
            ),
        ],
        "dequeueJob": [
            Call("GET", "/api/provisioner/dequeue", params=wanted, allowed=frozenset({403})),
            Call(
                "GET", "/api/provisioner/dequeue", "secret", params=wanted, allowed=no_provisioner
            ),
        ],
        **{
            op: [
                Call(method, path, json=body, allowed=frozenset({403})),
                Call(method, path, "provisioner", json=body, allowed=frozenset({409})),
            ]
            for op, (method, path, body) in runner_calls.items()
        },
        "uploadJobArtifact": [
            Call(
                "PUT",
                f"/api/runner/jobs/{u}/artifacts",
                params=artifact,
                content=b"x",
                allowed=frozenset({403}),
            ),
            Call(
                "PUT",
                f"/api/runner/jobs/{u}/artifacts",
                "provisioner",
                params=artifact,
                content=b"x",
                allowed=frozenset({409}),
            ),
        ],
    }


def operation_ids() -> set[str]:
    document: Any = load_document()
    return {
        op["operationId"]
        for item in document["paths"].values()
        for method, op in item.items()
        if method in ("get", "put", "post", "delete", "patch", "head")
    }


def send(server: Server, world: World, call: Call) -> httpx.Response:
    headers = dict(call.headers)
    if call.credential == "token":
        headers["Authorization"] = f"Bearer {world.ivo_token}"
    elif call.credential == "secret":
        headers["X-Secret"] = world.ivo_secret
    elif call.credential == "ofrep":
        headers["Authorization"] = f"Bearer {world.ivo_secret}"
    elif call.credential == "provisioner":
        headers["Authorization"] = f"Bearer {world.provisioner}"
    with server.client() as c:
        return c.request(
            call.method,
            call.path,
            params=call.params,
            json=call.json,
            content=call.content,
            headers=headers,
            files=call.files,
            data=call.data,
        )


def test_every_operation_has_a_row(server: Server, world: World) -> None:
    assert set(rows(world)) == operation_ids()


CASES: list[tuple[str, int]] = [
    (op, i)
    for op, calls in rows(World("", "", "", "", "", "", "", "", "", "")).items()
    for i in range(len(calls))
]


@pytest.mark.parametrize(("operation", "index"), CASES)
def test_another_developers_things_stay_theirs(
    server: Server, world: World, operation: str, index: int
) -> None:
    call = rows(world)[operation][index]
    answer = send(server, world, call)
    assert answer.status_code < 500, answer.text
    sent = f"{call.path} {call.params} {call.json} {call.data}"  # echoing these tells nothing
    for leaked in (m for m in world.theirs if m not in sent):
        assert leaked not in answer.text, (operation, leaked, answer.text[:500])
        assert all(leaked not in v for v in answer.headers.values()), (operation, leaked)
    refused = answer.status_code in call.allowed or (
        operation.startswith(("export", "getFlagDefinitions")) and answer.status_code == 401
    )
    assert refused or (call.ok and answer.status_code < 400), (
        operation, answer.status_code, answer.text[:300],
    )  # fmt: skip


def test_vera_keeps_everything(server: Server, world: World) -> None:
    """After ivo's attempts (the matrix runs first in this module): vera's token, secret,
    flag, builds and retention are untouched."""
    check: Callable[[httpx.Response], Any] = lambda r: (r.status_code, r.json())  # noqa: E731
    with server.client(Authorization=f"Bearer {world.vera_token}") as c:
        assert c.get("/api/auth/status").status_code == 200
        status, flag = check(c.get("/api/apps/vera-app/flags/vera_flag"))
        assert (status, flag["flag"]["enabled"], flag["flag"]["rollout"]) == (200, True, 100)
        status, builds = check(c.get("/api/apps/vera-app/builds"))
        assert status == 200
        assert world.build_key in str(builds), builds
        assert "9.0.0" not in str(builds)
        apps = c.get("/api/apps").json()["apps"]
        assert [a.get("retentionDays") for a in apps if a["name"] == "vera-app"] != [1]
        # ivo's build under the same (public) bundle id stays his: vera's versions go on.
        mine = {"url": "https://example.com/", "name": "Vera", "bundleId": "com.vera.app",
                "version": "1.1.0", "permissions": []}  # fmt: skip
        assert c.post("/api/v1/builds", json=mine).status_code == 201
    with server.client(**{"X-Secret": world.vera_secret}) as c:
        event = {"kind": "info", "version": "1.0.0", "bits": {}}
        assert c.post("/api/telemetry", json=event).status_code == 202
    with server.client(Authorization=f"Bearer {world.vera_token}") as c:
        job = c.get(f"/api/jobs/{world.vera_job}").json()
        assert (job["status"], job["note"]) == ("pending", world.marker), job
        secrets = c.get("/api/secrets").json()["secrets"]
        assert world.vera_secret_id in [s["id"] for s in secrets]
        run = c.get(f"/api/publish/status/{world.vera_publish_run}").json()
        assert (run["app"], run["files"]) == ("vera-app", ["metadata.yml"]), run
        assert world.marker in run["remote"]
        keys = c.get("/api/publish/ssh-keys").json()["sshKeys"]
        assert [k["id"] for k in keys] == [world.vera_ssh_key_id]
        sources = [a["sourceRepository"] for a in c.get("/api/apps").json()["apps"]]
        assert sources == [f"https://example.com/{world.marker}.git"]
        assert c.get(f"/api/tenants/{world.vera_tenant}/jobs").json()["total_count"] == 2
        assert c.get(f"/api/tenants/{world.vera_tenant}/email").json() == {"email": None}
    # Her leased job is still held by its provisioner, its log and tasks as it left them.
    with server.client(Authorization=f"Bearer {world.holder}") as c:
        lease = {"lease_id": world.lease_id, "status": "running"}
        held = c.post(f"/api/runner/jobs/{world.vera_leased}/status", json=lease)
        assert held.status_code == 200, held.text
        assert held.json()["status"] == "running"
