"""The runner's side of the runner protocol (docs/jobs.md), over HTTP with a provisioner token:
dequeue a job, report its statuses (each report renews the lease and says whether a cancel was
asked for), ship log lines in batches, upload artifacts.

A 409 on any report means the lease is no longer this runner's (it lapsed and the job went
elsewhere, or the job ended): `LeaseLost`, and the runner stops the job at once. Network
errors and 5xx are retried a few times with backoff; a 4xx is a bug on one side and raised.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

RETRIES = 5
BACKOFF_S = 0.5
CHUNK = 1 << 20


class RunnerApiError(Exception):
    """Hutch refused a call; the message is its error's."""


class LeaseLost(RunnerApiError):
    """The job is no longer this runner's to report on."""


@dataclass(frozen=True, slots=True)
class LeaseState:
    cancel_requested: bool
    lease_expires_at: str | None


def _message(answer: httpx.Response) -> str:
    try:
        body = answer.json()
    except ValueError:
        return f"HTTP {answer.status_code}"
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error.get("code"))
    return f"HTTP {answer.status_code}"


class HutchRunnerClient:
    def __init__(self, server: str, token: str, *, timeout_s: float = 30.0) -> None:
        self._http = httpx.AsyncClient(
            base_url=server.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
        )

    async def close(self) -> None:
        await self._http.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str] | None = None,
        stream: Callable[[], AsyncIterator[bytes]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        sent = dict(headers or {})
        if json is not None:
            sent["Content-Type"] = "application/json"
        for attempt in range(RETRIES):
            # a fresh body each attempt: a stream is read once
            content = orjson.dumps(json) if json is not None else stream() if stream else None
            try:
                answer = await self._http.request(
                    method, path, content=content, params=params, headers=sent
                )
            except httpx.TransportError:
                if attempt == RETRIES - 1:
                    raise
            else:
                if answer.status_code < 500 or attempt == RETRIES - 1:
                    break
            await asyncio.sleep(BACKOFF_S * 2**attempt)
        if answer.status_code == 409:
            raise LeaseLost(_message(answer))
        if answer.status_code >= 400:
            raise RunnerApiError(f"{method} {path}: {_message(answer)}")
        body = answer.json()
        assert isinstance(body, dict)
        return body

    async def dequeue(self, vcpus: int, architecture: str, host: str) -> dict[str, Any] | None:
        params = {"available_vcpus": str(vcpus), "cpu_architecture": architecture, "host": host}
        answer = await self._call("GET", "/api/provisioner/dequeue", params=params)
        job = answer.get("new_job")
        return job if isinstance(job, dict) else None

    async def job_status(self, uuid: str, lease_id: str, status: str) -> LeaseState:
        body = {"lease_id": lease_id, "status": status}
        answer = await self._call("POST", f"/api/runner/jobs/{uuid}/status", json=body)
        return LeaseState(bool(answer.get("cancel_requested")), answer.get("lease_expires_at"))

    async def task_status(self, uuid: str, lease_id: str, task: str, status: str) -> LeaseState:
        body = {"lease_id": lease_id, "status": status}
        path = f"/api/runner/jobs/{uuid}/tasks/{task}/status"
        answer = await self._call("POST", path, json=body)
        return LeaseState(bool(answer.get("cancel_requested")), answer.get("lease_expires_at"))

    async def logs(
        self, uuid: str, lease_id: str, first: int, lines: Sequence[Mapping[str, object]]
    ) -> None:
        body = {"lease_id": lease_id, "first": first, "lines": lines}
        await self._call("POST", f"/api/runner/jobs/{uuid}/logs", json=body)

    async def artifact(self, uuid: str, lease_id: str, path: str, file: Path) -> dict[str, Any]:
        size = (await asyncio.to_thread(file.stat)).st_size

        async def chunks() -> AsyncIterator[bytes]:
            with file.open("rb") as f:
                while block := await asyncio.to_thread(f.read, CHUNK):
                    yield block

        return await self._call(
            "PUT",
            f"/api/runner/jobs/{uuid}/artifacts",
            params={"lease_id": lease_id, "path": path},
            stream=chunks,
            headers={"Content-Length": str(size), "Content-Type": "application/octet-stream"},
        )
