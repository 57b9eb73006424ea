"""The web-app build queue at the command level, with a clock the test moves: leases that run
out are requeued (as events), late reports from a lapsed worker are refused, a build whose
workers keep vanishing is failed, and concurrent claims never share a build."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from base.client_errors import ConflictError
from hutch.runtime import Runtime
from ingest import web_build_commands as commands
from state import web_builds_reads as q
from state.command_context import CommandContext
from tests.support.settings import make_settings
from web.worker_auth import Worker

pytestmark = pytest.mark.integration

LEASE_S = 60
SECOND = 1_000_000
T0 = 1_800_000_000 * SECOND


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * SECOND)


@pytest.fixture
async def runtime(tmp_path: Path) -> AsyncIterator[Runtime]:
    rt = Runtime(make_settings(tmp_path / "data", HUTCH_BUILD_LEASE=str(LEASE_S)))
    await asyncio.to_thread(rt.db.migrate)
    await rt.start()
    yield rt
    await rt.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def ctx(runtime: Runtime, clock: Clock) -> CommandContext:
    return dataclasses.replace(runtime.command_context, clock=clock)


A, B, C = (Worker(f"w-{n}", n) for n in "abc")


async def _create(ctx: CommandContext, version: str = "1.0.0", platform: str = "android") -> str:
    body = {
        "url": "https://example.com/",
        "name": "Example",
        "bundleId": "com.example.queue",
        "version": version,
        "platform": platform,
    }
    return str((await commands.create_build(ctx, "dev", body))["id"])


async def _types(runtime: Runtime, build_id: str) -> list[str]:
    """The build's event types in log order (one key stays in one partition)."""
    types = []
    for partition in await runtime.log.partitions("builds"):
        records = await runtime.log.read("builds", partition, 0, 1000)
        types += [r.envelope.type for r in records if r.envelope.key == build_id]
    return types


async def test_a_lapsed_lease_is_requeued_and_the_old_worker_loses_it(
    runtime: Runtime, ctx: CommandContext, clock: Clock
) -> None:
    build_id = await _create(ctx)
    first = await commands.claim(ctx, A, "android")
    assert first is not None
    assert first["build"]["attempt"] == 1
    await commands.report(ctx, A, build_id, {"claimId": first["claimId"], "status": "building"})

    clock.advance(LEASE_S - 1)
    assert await commands.claim(ctx, B, "android") is None  # still A's
    clock.advance(2)
    build = q.web_build(runtime.db, build_id)
    assert build is not None
    assert build.status == "building"
    assert build.visible_status(clock()) == "queued"  # clients see it waiting again

    second = await commands.claim(ctx, B, "android")
    assert second is not None
    assert second["build"]["id"] == build_id
    assert second["build"]["attempt"] == 2
    assert second["claimId"] != first["claimId"]
    assert second["upload"]["s3Key"].startswith(f"uploads/web-builds/{build_id}/2/")
    assert await _types(runtime, build_id) == [
        "build.created.v1",
        "build.claimed.v1",
        "build.status_changed.v1",
        "build.requeued.v1",
        "build.claimed.v1",
    ]
    for status in ("building", "success"):
        with pytest.raises(ConflictError) as refused:
            await commands.report(ctx, A, build_id, {"claimId": first["claimId"], "status": status})
        assert refused.value.code == "lease_lost"
    failed = {"claimId": first["claimId"], "status": "failed", "error": "late"}
    with pytest.raises(ConflictError):
        await commands.report(ctx, A, build_id, failed)
    now = q.web_build(runtime.db, build_id)
    assert now is not None
    assert (now.status, now.worker, now.attempt) == ("building", B.id, 2)


async def test_reports_renew_the_lease(runtime: Runtime, ctx: CommandContext, clock: Clock) -> None:
    build_id = await _create(ctx)
    held = await commands.claim(ctx, A, "android")
    assert held is not None
    for _ in range(5):  # five leases' worth of time, renewed along the way
        clock.advance(LEASE_S * 0.9)
        answer = await commands.report(
            ctx, A, build_id, {"claimId": held["claimId"], "status": "building"}
        )
        assert answer["status"] == "building"
        assert await commands.claim(ctx, B, "android") is None
    assert "build.requeued.v1" not in await _types(runtime, build_id)


async def test_a_build_whose_workers_keep_vanishing_fails(
    runtime: Runtime, ctx: CommandContext, clock: Clock
) -> None:
    build_id = await _create(ctx)
    for attempt in range(1, commands.MAX_ATTEMPTS + 1):
        held = await commands.claim(ctx, A, "android")
        assert held is not None
        assert held["build"]["attempt"] == attempt
        clock.advance(LEASE_S + 1)
    assert await commands.claim(ctx, A, "android") is None
    build = q.web_build(runtime.db, build_id)
    assert build is not None
    assert build.status == "failed"
    assert build.error is not None
    assert "stopped responding 3 times" in build.error
    assert build.completed_at == clock()


async def test_concurrent_claims_never_share_a_build(ctx: CommandContext) -> None:
    made = {await _create(ctx, version=f"1.0.{i}") for i in range(5)}
    workers = [Worker(f"w-{i}", f"racer {i}") for i in range(12)]
    claims = await asyncio.gather(*(commands.claim(ctx, w, "android") for w in workers))
    got = [c["build"]["id"] for c in claims if c is not None]
    assert sorted(got) == sorted(made)
    assert claims.count(None) == 7


async def test_claims_are_per_platform_and_oldest_first(ctx: CommandContext, clock: Clock) -> None:
    ios = await _create(ctx, platform="ios")
    clock.advance(1)
    older = await _create(ctx, version="2.0.0")
    clock.advance(1)
    newer = await _create(ctx, version="3.0.0")
    assert (await commands.claim(ctx, A, "android") or {})["build"]["id"] == older
    assert (await commands.claim(ctx, A, "android") or {})["build"]["id"] == newer
    assert await commands.claim(ctx, A, "android") is None
    assert (await commands.claim(ctx, A, "ios") or {})["build"]["id"] == ios


async def test_failed_versions_can_be_built_again(ctx: CommandContext) -> None:
    """A failed build did not use its version: the same version may be queued again."""
    build_id = await _create(ctx, version="4.0.0")
    held = await commands.claim(ctx, C, "android")
    assert held is not None
    failed = {"claimId": held["claimId"], "status": "failed", "error": "network"}
    await commands.report(ctx, C, build_id, failed)
    again = await _create(ctx, version="4.0.0")
    assert again != build_id
    with pytest.raises(ConflictError):
        await _create(ctx, version="4.0.0")


def test_replay_rebuilds_the_builds_tables(tmp_path: Path) -> None:
    from tests.support.admin import hutch
    from tests.support.settings import make_settings

    data = make_settings(tmp_path / "data")
    code, worker = hutch(data, "worker", "create", "box")
    assert code == 0
    assert hutch(data, "worker", "revoke", worker["worker"]) == (0, {"revoked": worker["worker"]})
    code, replayed = hutch(data, "replay", "builds")
    assert (code, replayed) == (0, {"replayed": "builds", "records": 2})
    # Still known (and still revoked) after the rebuild:
    assert hutch(data, "worker", "revoke", worker["worker"])[0] == 0
    code, missing = hutch(data, "worker", "revoke", "no-such-worker")
    assert (code, missing["error"]["code"]) == (1, "not_found")
