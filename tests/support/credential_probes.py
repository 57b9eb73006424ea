"""Test helpers: try an app secret on every route that takes one, and a developer token on
every identity command, answering what each route said (status and error code)."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
from google.rpc import error_details_pb2, status_pb2

PROTOBUF = "application/x-protobuf"
JSON = "application/json"

Probe = tuple[int, str | None]
"""An answer's status and, for a refusal, its error code (Hutch's `error.code`, or the
OTLP Status's ErrorInfo reason)."""


def _code(answer: httpx.Response) -> str | None:
    if answer.status_code < 400:
        return None
    kind = answer.headers.get("content-type", "")
    if kind.startswith(PROTOBUF):
        status = status_pb2.Status.FromString(answer.content)
        info = error_details_pb2.ErrorInfo()
        status.details[0].Unpack(info)
        return str(info.reason)
    body = answer.json()
    if "error" in body:
        return str(body["error"]["code"])
    return str(body["details"][0]["reason"])  # OTLP/JSON Status


SECRET_ROUTES: dict[str, Callable[[httpx.Client, str, str], httpx.Response]] = {
    "telemetry": lambda c, s, app: c.post(
        "/api/telemetry", headers={"X-Secret": s}, json={"kind": "info", "bits": {"probe": 1}}
    ),
    "otlp traces (protobuf)": lambda c, s, app: c.post(
        "/v1/traces", headers={"X-Secret": s, "Content-Type": PROTOBUF}, content=b""
    ),
    "otlp metrics (json)": lambda c, s, app: c.post(
        "/v1/metrics", headers={"X-Secret": s, "Content-Type": JSON}, content=b"{}"
    ),
    "otlp logs (secret in the query)": lambda c, s, app: c.post(
        "/v1/logs",
        params={"secret": s},
        headers={"Content-Type": JSON},
        content=b'{"resourceLogs": []}',
    ),
    "flag evaluations": lambda c, s, app: c.post(
        "/v1/flags/eval", headers={"X-Secret": s}, json={"evaluations": []}
    ),
    "flag definitions": lambda c, s, app: c.get(
        "/v1/flags", params={"appName": app}, headers={"X-Secret": s}
    ),
    "ofrep bulk": lambda c, s, app: c.post(
        "/ofrep/v1/evaluate/flags", headers={"Authorization": f"Bearer {s}"}, json={}
    ),
}


def secret_answers(url: str, secret: str, app: str) -> dict[str, Probe]:
    """Each secret route's answer to `secret`, each on a connection of its own (so that
    under `hutch serve` they spread over the ingest workers)."""
    answers: dict[str, Probe] = {}
    for name, call in SECRET_ROUTES.items():
        with httpx.Client(base_url=url, timeout=30) as c:
            answer = call(c, secret, app)
        answers[name] = (answer.status_code, _code(answer))
    return answers


def accepted(answers: dict[str, Probe]) -> bool:
    return all(status < 300 for status, _ in answers.values())


def refused(answers: dict[str, Probe], code: str) -> bool:
    return all(answer == (401, code) for answer in answers.values())


def token_status(url: str, token: str) -> dict[str, object]:
    """What `/api/auth/status` says of a token, on a connection of its own."""
    answer = httpx.get(url + "/api/auth/status", headers={"Authorization": f"Bearer {token}"})
    return dict(answer.json())


def refusals_after(
    probe: Callable[[], bool], bound_s: float, watch_s: float
) -> list[tuple[float, bool]]:
    """Call `probe` (True: the credential was accepted) for `watch_s` seconds; each call's
    start time (seconds from now) and result, for a check of the staleness bound."""
    start = time.monotonic()
    seen: list[tuple[float, bool]] = []
    while (at := time.monotonic() - start) < watch_s:
        seen.append((at, probe()))
        time.sleep(0.02)
    assert any(at > bound_s for at, _ in seen), "no probe after the bound: the machine is slow"
    return seen
