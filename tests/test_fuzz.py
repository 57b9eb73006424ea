"""A fuzz run over every endpoint of a live `hutch serve`: requests made from each operation of
schemas/openapi.yaml, then mutated (paths, query strings, headers, bodies, encodings), sent
over raw sockets so that nothing a client library would refuse is out of reach.

It fails on any 5xx, on any request not answered within 10 s, and on a server that dies or
logs an unhandled error. Bounded: HUTCH_FUZZ_SECONDS (default 60) of sending, seed
HUTCH_FUZZ_SEED (default 1). The status histogram is printed and kept beside the data
directory (`fuzz-figures.json`).
"""

from __future__ import annotations

import collections
import contextlib
import gzip
import json
import os
import random
import socket
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest

from query.openapi import load_document
from tests.support.admin import hutch
from tests.support.github_standin import GitHubStandIn
from tests.support.keyserver import keyserver_standin
from tests.support.processes import kill_tree
from tests.support.receivers import smtp_receiver
from tests.support.servers import Served, free_port
from tests.support.settings import make_settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SECONDS = float(os.environ.get("HUTCH_FUZZ_SECONDS", "60"))
SEED = int(os.environ.get("HUTCH_FUZZ_SEED", "1"))
HANG_S = 10.0
METHODS = ("get", "put", "post", "delete", "patch", "head")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def wire(self) -> bytes:
        target = self.path + ("?" + urlencode(self.query) if self.query else "")
        lines = [f"{self.method} {target} HTTP/1.1".encode("latin-1", "replace"), b"Host: fuzz"]
        names = {name.lower() for name, _ in self.headers}
        if b"content-length" not in names and b"transfer-encoding" not in names:
            lines.append(b"Content-Length: " + str(len(self.body)).encode())
        lines += [name + b": " + value for name, value in self.headers]
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body


def sample(schema: dict[str, Any], document: dict[str, Any], depth: int = 0) -> Any:
    """A small value of a JSON schema: the example, the first enum value, or one by type."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return sample(document["components"]["schemas"][name], document, depth + 1)
    if depth > 6:
        return None
    for key in ("example", "default", "const"):
        if key in schema:
            return schema[key]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf", "allOf"):
        if schema.get(key):
            return sample(schema[key][0], document, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {k: sample(v, document, depth + 1) for k, v in props.items()}
    if kind == "array":
        return [sample(schema.get("items", {}), document, depth + 1)]
    return {"integer": 1, "number": 1.5, "boolean": True, "string": "x", "null": None}.get(
        str(kind), "x"
    )


def path_values(path: str, creds: dict[str, str]) -> dict[str, str]:
    """What fills a path's parameters: the seeded things (a CI job, its lease, a secret...),
    so that requests get past the 404 of an unknown id to the code behind it."""
    values = {"app": "fz-app", "name": "fz_flag", "key": "fz_flag", "id": "fz-app",
              "traceId": "5b8efff798038103d269b633813fc60c", "token_id": creds["token_id"],
              "build_id": "00000000-0000-7000-8000-000000000000", "os": "android",
              "arch": "universal", "format": "apk", "uuid": creds.get("job_uuid", "x"),
              "tenant_id": creds.get("tenant_id", "x"),
              "secret_id": creds.get("secret_id", "x"), "version": "1.0.0",
              "fileName": "fz.apk",
              "run_id": creds.get("run_id", "00000000-0000-7000-8000-000000000000"),
              "key_id": creds.get("key_id", "00000000-0000-7000-8000-000000000000")}  # fmt: skip
    if path.startswith(("/api/jobs/", "/api/runner/")):
        values |= {"id": creds.get("job", "1"), "name": "build"}
    return values


def credentials(op: dict[str, Any], creds: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """The operation's own kind of bearer token (a provisioner's, or the developer's), and the
    app secret."""
    schemes = {name for requirement in op.get("security", []) for name in requirement}
    token = creds.get("provisioner", "") if "provisionerToken" in schemes else creds["token"]
    return [(b"Authorization", f"Bearer {token}".encode()), (b"X-Secret", creds["secret"].encode())]


def base_requests(document: dict[str, Any], creds: dict[str, str]) -> list[Request]:
    """One well-formed request per documented operation, with every credential it takes."""
    found = []
    for path, item in document["paths"].items():
        for method, op in item.items():
            if method not in METHODS:
                continue
            concrete = path
            for name, value in path_values(path, creds).items():
                concrete = concrete.replace("{" + name + "}", value)
            query = [("appName", "fz-app")]
            for parameter in op.get("parameters", []):
                if parameter.get("in") == "query" and parameter.get("required"):
                    value = parameter.get("example", sample(parameter["schema"], document))
                    value = creds.get(parameter["name"], value)  # the seeded lease
                    query.append((parameter["name"], str(value)))
            headers = credentials(op, creds)
            body = b""
            content = op.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                media = content["application/json"]
                value = media.get("example", sample(media.get("schema", {}), document))
                if isinstance(value, dict) and "lease_id" in value:
                    value["lease_id"] = creds.get("lease_id", "x")
                body = orjson.dumps(value)
                headers.append((b"Content-Type", b"application/json"))
            elif content:
                kind = next(iter(content))
                headers.append((b"Content-Type", kind.encode()))
                body = b"\x0a\x00"
            found.append(Request(method.upper(), concrete, query, headers, body))
    return found


# Mutations ------------------------------------------------------------------------------------

NASTY = ["%00", "%0d%0a", "%ff", "%c3%28", "..", "%2e%2e", "%2f", "%", "%zz", "\u00e9", "a" * 4000,
         "%ed%a0%80", "{app}", "*", "~", "%20", "'", '"', "<x>", "\\", "//"]  # fmt: skip
JSON_VALUES: list[Any] = [None, [], {}, "", -1, 0, 10**30, 1.5e308, True, "x" * 10000,
                          {"$ref": "#"}, [[[[[]]]]], "\u0000", "\ud800"]  # fmt: skip
CONTENT_TYPES = [b"application/json", b"text/plain", b"application/x-protobuf",
                 b"multipart/form-data; boundary=zz", b"application/json; charset=latin-1",
                 b"garbage", b"", b"image/png", b"application/xml"]  # fmt: skip


def mutate_path(r: Request, rng: random.Random) -> Request:
    parts = r.path.split("/")
    i = rng.randrange(1, len(parts))
    parts[i] = rng.choice([parts[i] + rng.choice(NASTY), rng.choice(NASTY), ""])
    return replace(r, path="/".join(parts).replace(" ", "%20"))


def mutate_query(r: Request, rng: random.Random) -> Request:
    names = ["appName", "limit", "cursor", "since", "until", "kind", "secret", "offset", "q",
             "name", "serviceName", "step", "bucket", "days", "version", "x"]  # fmt: skip
    value = rng.choice([*NASTY, "-1", "0", "99999999999999999999", "2026-13-45", "NaN", ""])
    return replace(r, query=[*r.query, (rng.choice(names), value)])


def mutate_headers(r: Request, rng: random.Random) -> Request:
    headers = list(r.headers)
    choice = rng.randrange(6)
    if choice == 0:
        headers = [(n, v) for n, v in headers if n != b"Content-Type"]
        headers.append((b"Content-Type", rng.choice(CONTENT_TYPES)))
    elif choice == 1:
        encoding = rng.choice([b"gzip", b"deflate", b"br", b"zstd", b"x-nope", b"gzip, gzip"])
        body = rng.choice([gzip.compress(r.body), zlib.compress(r.body), r.body, b"\x1f\x8b"])
        return replace(r, headers=[*headers, (b"Content-Encoding", encoding)], body=body)
    elif choice == 2:
        name = rng.choice([b"Authorization", b"X-Secret", b"If-None-Match", b"Accept"])
        value = rng.choice([b"Bearer \xe9\xff", b"caf\xc3\xa9", b"Bearer bh_" + b"0" * 64,
                            b"hs_", b"x" * 8000, b"Basic Zm9vOmJhcg=="])  # fmt: skip
        headers = [(n, v) for n, v in headers if n != name] + [(name, value)]
    elif choice == 3:
        headers = [(n, v) for n, v in headers if n not in (b"Authorization", b"X-Secret")]
    elif choice == 4:
        headers.append((b"Transfer-Encoding", b"chunked"))
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(r.body), r.body)
        return replace(r, headers=headers, body=rng.choice([chunked, chunked[:-3], b"zz\r\n"]))
    else:
        headers.append((b"Content-Length", str(max(0, len(r.body) - rng.randrange(1, 5))).encode()))
    return replace(r, headers=headers)


def mutate_body(r: Request, rng: random.Random) -> Request:
    body = bytearray(r.body or b"{}")
    choice = rng.randrange(6)
    if choice == 0 and body:
        for _ in range(rng.randrange(1, 8)):
            body[rng.randrange(len(body))] = rng.randrange(256)
    elif choice == 1:
        del body[rng.randrange(len(body) + 1) :]
    elif choice == 2:
        try:
            value = orjson.loads(bytes(body))
        except orjson.JSONDecodeError:
            value = {}
        return replace(r, body=json.dumps(swap(value, rng)).encode("utf-8", "surrogatepass"))
    elif choice == 3:
        depth = rng.choice([100, 1000, 100_000])
        return replace(r, body=b"[" * depth + b"]" * depth)
    elif choice == 4:
        return replace(r, body=rng.randbytes(rng.choice([1, 64, 4096])))
    else:
        return replace(r, body=bytes(body) + b"\xff\xfe" + bytes(body))
    return replace(r, body=bytes(body))


def swap(value: Any, rng: random.Random) -> Any:
    """The JSON value with one member (or itself) replaced by a value of another kind."""
    if isinstance(value, dict) and value and rng.random() < 0.8:
        key = rng.choice(list(value))
        return {**value, key: swap(value[key], rng)}
    if isinstance(value, list) and value and rng.random() < 0.8:
        i = rng.randrange(len(value))
        return [*value[:i], swap(value[i], rng), *value[i + 1 :]]
    return rng.choice(JSON_VALUES)


MUTATIONS: list[Callable[[Request, random.Random], Request]] = [
    mutate_path, mutate_query, mutate_headers, mutate_body,
]  # fmt: skip


def fuzzed(bases: list[Request], rng: random.Random) -> Iterator[Request]:
    while True:
        request = rng.choice(bases)
        for _ in range(rng.randrange(1, 4)):
            request = rng.choice(MUTATIONS)(request, rng)
        yield request


def send(port: int, request: Request) -> int:
    """The answer's status (0: the server closed without one). Raises TimeoutError."""
    with socket.create_connection(("127.0.0.1", port), timeout=HANG_S) as sock:
        deadline = time.monotonic() + HANG_S
        # The server may answer (413, 400) and close before reading all of it.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(request.wire())
        received = b""
        while b"\r\n" not in received:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        if time.monotonic() > deadline:
            raise TimeoutError(request)
    status_line = received.split(b"\r\n", 1)[0].split(b" ")
    return int(status_line[1]) if len(status_line) > 1 and status_line[1].isdigit() else 0


@pytest.fixture
def served(tmp_path: Path, github: GitHubStandIn) -> Iterator[Served]:
    # GitHub (the stand-in) and a mail server configured, as in production: sign-in, setup,
    # webhooks and tenant e-mail answer what they answer there, not 503 "not configured".
    # A keyserver (a stand-in holding no key): fetch-key answers 404, never 502.
    with smtp_receiver() as mail, keyserver_standin(tmp_path) as keyserver:
        settings = make_settings(
            tmp_path / "data",
            HUTCH_CLIENT_TIMEOUT="3",
            HUTCH_SMTP_URL=mail.url,
            **github.env,
            **keyserver.env,
        )
        served = Served(settings, free_port(), env={"HUTCH_CLIENT_TIMEOUT": "3"}, session=True)
        try:
            yield served
        finally:
            kill_tree(served.process.pid)


MANIFEST = "image: debian/bookworm\ntasks:\n  - build: echo hi\nartifacts:\n  - out/a.txt\n"


def seed_jobs(served: Served, token: str) -> dict[str, str]:
    """A CI job leased to a provisioner, its tenant, a secret: what the job, secret and
    runner operations' requests name."""
    code, provisioner = hutch(served.settings, "provisioner", "create", "fz-provisioner")
    assert code == 0, provisioner
    developer = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=served.url, timeout=30) as c:
        submitted = c.post("/api/jobs", headers=developer, json={"manifest": MANIFEST})
        assert submitted.status_code == 201, submitted.text
        job = c.get(f"/api/jobs/{submitted.json()['id']}", headers=developer).json()
        wanted = {"available_vcpus": "4", "cpu_architecture": "Amd64", "host": "fz-host"}
        leased = c.get(
            "/api/provisioner/dequeue",
            params=wanted,
            headers={"Authorization": f"Bearer {provisioner['token']}"},
        ).json()["new_job"]
        assert leased is not None
        secret = {"name": "fz", "type": "file", "path": "fz.txt", "data": "eA=="}
        added = c.post("/api/secrets", headers=developer, json=secret)
        assert added.status_code == 201, added.text
    return {
        "provisioner": provisioner["token"],
        "job": str(job["id"]),
        "job_uuid": job["uuid"],
        "tenant_id": job["tenant_id"],
        "lease_id": leased["lease_id"],
        "secret_id": added.json()["id"],
        "path": "out/a.txt",  # the artifact PUT's
    }


def test_no_request_breaks_the_server(served: Served, tmp_path: Path) -> None:
    settings = served.settings
    assert hutch(settings, "developer", "create", "fz-dev")[0] == 0
    code, app = hutch(settings, "app", "create", "fz-app", "--developer", "fz-dev")
    assert code == 0, app
    code, token = hutch(settings, "token", "create", "--developer", "fz-dev")
    assert code == 0, token
    creds = {"token": token["token"], "token_id": token["id"], "secret": app["secret"]}
    creds |= seed_jobs(served, token["token"])
    bases = base_requests(load_document(), creds)
    port = int(served.url.rsplit(":", 1)[1])
    rng = random.Random(SEED)
    statuses: collections.Counter[int] = collections.Counter()
    failures: list[str] = []
    deadline = time.monotonic() + SECONDS
    for request in fuzzed(bases, rng):
        if time.monotonic() > deadline or len(failures) >= 5:
            break
        try:
            status = send(port, request)
        except TimeoutError:
            failures.append(f"no answer within {HANG_S} s: {request.wire()[:300]!r}")
            continue
        statuses[status] += 1
        if status >= 500:
            failures.append(f"{status}: {request.wire()[:1500]!r}")
        if served.process.poll() is not None:
            failures.append(f"the server exited ({served.process.returncode})")
            break
    figures = {"requests": sum(statuses.values()), "operations": len(bases),
               "seconds": SECONDS, "seed": SEED,
               "statuses": {str(k): v for k, v in sorted(statuses.items())}}  # fmt: skip
    (tmp_path / "fuzz-figures.json").write_text(json.dumps(figures, indent=1))
    print("fuzz:", json.dumps(figures))
    log = served.log.read_text(errors="replace")
    unhandled = [line for line in log.splitlines() if "unhandled error" in line]
    errors = [line for line in log.splitlines() if '"level":"error"' in line][:3]
    assert not failures, (failures, errors)
    assert not unhandled, unhandled[:3]
    assert figures["requests"] > 100
    assert statuses[0] < figures["requests"] / 2, statuses  # most get a real answer


def test_the_requests_cover_every_operation() -> None:
    document = load_document()
    bases = base_requests(document, {"token": "t", "token_id": "i", "secret": "s"})
    paths: dict[str, Any] = document["paths"]  # type: ignore[assignment]
    operations = sum(1 for item in paths.values() for method in item if method in METHODS)
    assert len(bases) == operations > 40
    assert all("{" not in r.path or "key" in r.path for r in bases)
