"""The bot challenge: GET /api/validate issues an ALTCHA challenge, POST /api/validate takes its
solution once. Challenges are solved with ALTCHA's own solver (the `altcha` library), as the
widget would; a replay is refused by another process too (a real `hutch ingest` beside the
test's server, on the same stores), and forged, expired, altered and wrong solutions are
refused with their own codes, recording nothing."""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from altcha import v1 as altcha

from base.keys import derive, secret_key
from tests.support.admin import log_ends
from tests.support.servers import Server, free_port, serve_in_thread
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

MAX_NUMBER = 20_000
TTL_S = 600
PATH = "/api/validate"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("validate") / "data"
    yield from serve_in_thread(
        data, HUTCH_CHALLENGE_MAX_NUMBER=str(MAX_NUMBER), HUTCH_CHALLENGE_TTL=str(TTL_S)
    )


@pytest.fixture(scope="module")
def other_process(server: Server) -> Iterator[str]:
    """`hutch ingest` (two gunicorn workers) in processes of their own, on the same stores."""
    port = free_port()
    env = {**os.environ, **server.settings.as_env(), "HUTCH_BIND": f"127.0.0.1:{port}",
           "HUTCH_WORKERS": "2"}  # fmt: skip
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log = server.settings.data.parent / "ingest.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "hutch", "ingest"], env=env, stdout=subprocess.DEVNULL,
        stderr=open(log, "ab"), start_new_session=True,  # noqa: SIM115
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        assert process.poll() is None, log.read_text()[-2000:]
        try:
            return httpx.get(f"{url}/api/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        eventually(up, timeout_s=60)
        yield url
    finally:
        os.killpg(process.pid, 15)
        process.wait(timeout=60)


def challenge(url: str) -> dict[str, Any]:
    got = httpx.get(url + PATH, timeout=30)
    assert got.status_code == 200, got.text
    assert got.headers["cache-control"] == "no-store"
    body: dict[str, Any] = got.json()
    return body


def solve(issued: dict[str, Any]) -> dict[str, Any]:
    """The payload the widget sends, found by ALTCHA's own solver."""
    solution = altcha.solve_challenge(
        issued["challenge"], issued["salt"], issued["algorithm"], issued["maxnumber"]
    )
    assert solution is not None
    return {
        "algorithm": issued["algorithm"],
        "challenge": issued["challenge"],
        "number": solution.number,
        "salt": issued["salt"],
        "signature": issued["signature"],
    }


def widget(payload: dict[str, Any]) -> dict[str, str]:
    return {"altcha": base64.b64encode(json.dumps(payload).encode()).decode()}


def post(url: str, body: Any) -> httpx.Response:
    return httpx.post(url + PATH, json=body, timeout=30)


def refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error.get("field")) == (code, "altcha"), error
    assert error["message"]


def redeemed_events(server: Server) -> int:
    return sum(log_ends(server.settings, "apps").values())


def test_a_challenge_is_altchas_with_an_expiry(server: Server) -> None:
    issued = challenge(server.url)
    assert set(issued) == {"algorithm", "challenge", "maxnumber", "salt", "signature"}
    assert (issued["algorithm"], issued["maxnumber"]) == ("SHA-256", MAX_NUMBER)
    expires = int(altcha.extract_params({**issued, "number": 0})["expires"][0])  # type: ignore[typeddict-item]
    assert abs(expires - (time.time() + TTL_S)) < 30
    assert challenge(server.url)["challenge"] != issued["challenge"]


def test_a_solution_is_verified_once(server: Server) -> None:
    payload = solve(challenge(server.url))
    got = post(server.url, widget(payload))
    assert (got.status_code, got.json()) == (200, {"verified": True}), got.text
    refused(post(server.url, widget(payload)), "already_redeemed")
    refused(post(server.url, payload), "already_redeemed")  # the same, as a JSON object


def test_the_payload_may_be_sent_as_a_json_object(server: Server) -> None:
    payload = solve(challenge(server.url))
    got = post(server.url, payload)
    assert (got.status_code, got.json()) == (200, {"verified": True}), got.text
    refused(post(server.url, widget(payload)), "already_redeemed")


def test_a_replay_is_refused_by_other_processes(server: Server, other_process: str) -> None:
    here = solve(challenge(server.url))
    assert post(server.url, widget(here)).status_code == 200
    for _ in range(4):  # two workers over there: each must refuse it
        refused(post(other_process, widget(here)), "already_redeemed")
    there = solve(challenge(other_process))  # issued by one process, checked by another
    assert post(other_process, widget(there)).status_code == 200
    refused(post(server.url, widget(there)), "already_redeemed")


def test_the_same_solution_sent_at_once_to_two_processes_is_accepted_once(
    server: Server, other_process: str
) -> None:
    for _ in range(5):
        payload = widget(solve(challenge(server.url)))
        targets = [server.url, other_process, server.url, other_process]
        with ThreadPoolExecutor(len(targets)) as pool:
            answers = list(pool.map(post, targets, [payload] * len(targets)))
        assert sorted(a.status_code for a in answers) == [200, 400, 400, 400], [
            a.text for a in answers
        ]


def test_a_forged_signature_is_refused(server: Server) -> None:
    issued = challenge(server.url)
    payload = solve(issued)
    forged = {**payload, "signature": "0" * 64}
    refused(post(server.url, widget(forged)), "bad_signature")
    # A challenge made and signed with another key, then solved: not this server's.
    options = altcha.ChallengeOptions(
        algorithm="SHA-256", max_number=1000, hmac_key=b"not the server's key",
        expires=datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5),
    )  # fmt: skip
    made = altcha.create_challenge(options)
    other = solve({**made.to_dict(), "maxnumber": made.max_number})
    refused(post(server.url, widget(other)), "bad_signature")
    # The genuine solution was not spent by the forgeries.
    assert post(server.url, widget(payload)).status_code == 200


def test_an_expired_challenge_is_refused(server: Server) -> None:
    # What this server issued (its own key) eleven minutes ago, with a ten-minute expiry.
    key = derive(secret_key(server.settings), "bot-challenge")
    options = altcha.ChallengeOptions(
        algorithm="SHA-256", max_number=1000, hmac_key=key,
        expires=datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1),
    )  # fmt: skip
    made = altcha.create_challenge(options)
    payload = solve({**made.to_dict(), "maxnumber": made.max_number})
    refused(post(server.url, widget(payload)), "expired")


def test_a_salt_altered_to_live_longer_is_refused(server: Server) -> None:
    payload = solve(challenge(server.url))
    nonce, _, _ = payload["salt"].partition("?")
    later = int(time.time()) + 10 * TTL_S
    altered = {**payload, "salt": f"{nonce}?expires={later}&"}
    refused(post(server.url, widget(altered)), "wrong_solution")


def test_a_wrong_number_is_refused_and_spends_nothing(server: Server) -> None:
    payload = solve(challenge(server.url))
    before = redeemed_events(server)
    for number in (payload["number"] + 1, 0 if payload["number"] else 1):
        refused(post(server.url, widget({**payload, "number": number})), "wrong_solution")
    assert redeemed_events(server) == before
    assert post(server.url, widget(payload)).status_code == 200
    assert redeemed_events(server) == before + 1


def test_another_algorithm_is_refused(server: Server) -> None:
    payload = solve(challenge(server.url))
    refused(post(server.url, widget({**payload, "algorithm": "SHA-1"})), "bad_algorithm")


@pytest.mark.parametrize(
    "body",
    [
        {"altcha": "%%% not base64 %%%"},
        {"altcha": base64.b64encode(b"[1, 2]").decode()},
        {"altcha": base64.b64encode(b"not json").decode()},
        {"altcha": 42},
        {"altcha": "A" * 5000},
        {"algorithm": "SHA-256"},
        {"algorithm": "SHA-256", "challenge": "a" * 64, "number": "12", "salt": "s",
         "signature": "b" * 64},
        {"algorithm": "SHA-256", "challenge": "a" * 64, "number": True, "salt": "s",
         "signature": "b" * 64},
        {"algorithm": "SHA-256", "challenge": "a" * 64, "number": -1, "salt": "s",
         "signature": "b" * 64},
        {"algorithm": "SHA-256", "challenge": "a" * 64, "number": 10**20, "salt": "s",
         "signature": "b" * 64},
        {"algorithm": "SHA-256", "challenge": "a" * 64, "number": 1, "salt": {"x": 1},
         "signature": "b" * 64},
        {},
    ],
)  # fmt: skip
def test_malformed_solutions_are_a_clear_400(server: Server, body: Any) -> None:
    refused(post(server.url, body), "malformed_solution")


def test_bodies_that_are_not_a_json_object(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        for content, code in ((b"{nope", "malformed_json"), (b"[]", "bad_body"),
                              (b"", "empty_body")):  # fmt: skip
            got = c.post(PATH, content=content, headers={"Content-Type": "application/json"})
            assert (got.status_code, got.json()["error"]["code"]) == (400, code), got.text
        got = c.post(PATH, content=b"x" * 20_000, headers={"Content-Type": "application/json"})
        assert got.status_code == 413, got.text
