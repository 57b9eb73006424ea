"""`hutch builder`: the reference builder worker, a client of Hutch's worker API.

It loops: claim the oldest queued Android build -> report `building` -> fetch the web app's
page, manifest and icon through the SSRF guard -> generate the Trusted Web Activity project
zip (builder/webapp.py) -> PUT it to the claim's upload URL -> report `success`; or
report `failed` with the reason. While it works it renews its lease with `building` reports,
so a long build is not requeued, and a worker that dies is (by the server, when the lease
runs out).

It produces the TWA *project* (Gradle files, AndroidManifest.xml, icons, Digital Asset Links
statement), not a signed APK: `./gradlew assembleRelease` with an Android SDK builds that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from builder.webapp import BuildFailed, FetchPolicy, build_android_project

log = logging.getLogger(__name__)

TIMEOUT_S = 60.0
MIN_HEARTBEAT_S = 1.0


class WorkerApiError(Exception):
    """Hutch refused a worker call (its error body is in the message), or was unreachable."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    server: str
    token: str
    platform: str = "android"
    policy: FetchPolicy = field(default_factory=FetchPolicy)
    poll_s: float = 5.0
    server_verify: ssl.SSLContext | bool = True
    """TLS verification for Hutch and the upload URLs (not for the web apps: see policy)."""


class WorkerClient:
    """The worker API: claim, report; and the artifact upload to a signed URL."""

    def __init__(self, config: WorkerConfig) -> None:
        self._http = httpx.AsyncClient(
            base_url=config.server.rstrip("/"),
            headers={"Authorization": f"Bearer {config.token}"},
            timeout=TIMEOUT_S,
            verify=config.server_verify,
        )
        # Signed upload URLs carry their own authority: no bearer token goes to them.
        self._uploads = httpx.AsyncClient(timeout=TIMEOUT_S, verify=config.server_verify)
        self._platform = config.platform

    async def close(self) -> None:
        await self._http.aclose()
        await self._uploads.aclose()

    async def _call(self, path: str, body: dict[str, Any]) -> httpx.Response:
        try:
            answer = await self._http.post(path, json=body)
        except httpx.HTTPError as exc:
            raise WorkerApiError(f"cannot reach Hutch: {exc}") from None
        if answer.status_code >= 400:
            raise WorkerApiError(f"{path}: HTTP {answer.status_code} {answer.text[:500]}")
        return answer

    async def claim(self) -> dict[str, Any] | None:
        answer = await self._call("/api/v1/worker/claim", {"platform": self._platform})
        return None if answer.status_code == 204 else dict(answer.json())

    async def report(
        self, build_id: str, claim_id: str, status: str, error: str | None = None
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"claimId": claim_id, "status": status}
        if error is not None:
            body["error"] = error
        answer = await self._call(f"/api/v1/worker/builds/{build_id}/status", body)
        return dict(answer.json())

    async def upload(self, upload: dict[str, Any], data: bytes) -> None:
        try:
            answer = await self._uploads.put(
                upload["url"], content=data, headers={"Content-Type": "application/zip"}
            )
        except httpx.HTTPError as exc:
            raise WorkerApiError(f"uploading the artifact failed: {exc}") from None
        if answer.status_code >= 300:
            raise WorkerApiError(f"uploading the artifact: HTTP {answer.status_code}")


def _seconds_until(iso: str) -> float:
    until = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return (until - datetime.now(until.tzinfo)).total_seconds()


async def _heartbeat(client: WorkerClient, build_id: str, claim_id: str, every_s: float) -> None:
    """Renew the lease until cancelled; a lost lease is logged (the report will say so)."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await client.report(build_id, claim_id, "building")
        except WorkerApiError as exc:
            log.warning("lease renewal failed", extra={"build": build_id, "error": str(exc)})


async def work_one(client: WorkerClient, config: WorkerConfig) -> dict[str, Any] | None:
    """Claim one build and see it through; its outcome, or None when the queue is empty."""
    claimed = await client.claim()
    if claimed is None:
        return None
    build, claim_id = claimed["build"], claimed["claimId"]
    build_id = build["id"]
    log.info("building", extra={"build": build_id, "url": build["url"]})
    state = await client.report(build_id, claim_id, "building")
    upload = state.get("upload") or claimed["upload"]
    every_s = max(MIN_HEARTBEAT_S, _seconds_until(state["leaseExpiresAt"]) / 3)
    renew = asyncio.create_task(_heartbeat(client, build_id, claim_id, every_s))
    error: str | None = None
    data = b""
    try:
        data = await build_android_project(
            build["url"],
            name=build["name"],
            bundle_id=build["bundleId"],
            version=build["version"],
            permissions=build["permissions"],
            policy=config.policy,
        )
    except BuildFailed as exc:
        error = str(exc)
    except Exception as exc:  # anything else is this builder's fault: say so, and go on
        log.exception("builder error", extra={"build": build_id})
        error = f"internal builder error: {type(exc).__name__}: {exc}"
    finally:
        renew.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await renew
    if error is not None:
        await client.report(build_id, claim_id, "failed", error)
        log.info("build failed", extra={"build": build_id, "error": error})
        return {"build": build_id, "status": "failed", "error": error}
    await client.upload(upload, data)
    await client.report(build_id, claim_id, "success")
    log.info("build succeeded", extra={"build": build_id, "bytes": len(data)})
    return {"build": build_id, "status": "success", "size": len(data)}


async def run(
    config: WorkerConfig, *, once: bool, stop: asyncio.Event | None = None
) -> dict[str, Any]:
    """Work builds until `stop` is set; with `once`, at most one, and return its outcome."""
    stop = stop or asyncio.Event()
    client = WorkerClient(config)
    try:
        while not stop.is_set():
            try:
                outcome = await work_one(client, config)
            except WorkerApiError as exc:
                if once:
                    raise
                log.warning("worker API call failed", extra={"error": str(exc)})
                outcome = None
            if once:
                return outcome or {"build": None}
            if outcome is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), config.poll_s)
        return {"stopped": True}
    finally:
        await client.close()
