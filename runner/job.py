"""One job, from its dequeue to its last status: setup (image, workspace, secrets, sources),
each task in the sandbox, artifacts, and the reports that go with them.

Statuses as builds.sr.ht has them: `setup` is the first step; a task that fails ends the job
as failed and the tasks after it are skipped; `complete-build` ends it early with success; a
task stopped by the job's timeout ends it as timeout; a cancel asked for through the API (seen
in any report's answer) stops the running task and ends the job as cancelled. Artifacts are
collected after the last task of a job that succeeded; a missing one fails the job.

If the lease is lost (a 409: the job went to another host), everything stops at once and no
further report is made. If the runner itself is stopped, the job is abandoned unreported: its
lease lapses and Hutch requeues it (never lost).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from runner.artifacts import collect_artifacts
from runner.client import HutchRunnerClient, LeaseLost, LeaseState
from runner.images import ImageError, ImageSettings, prepare_image
from runner.log_shipper import LogShipper
from runner.process import LineSink, say
from runner.sandbox import run_task, task_environment, write_buildenv
from runner.secret_files import Secret, SecretError, place_secrets
from runner.sources import SourceError, clone_sources
from runner.workspace import WorkspaceError, WorkspaceSettings, job_filesystem
from schemas.jobs.job_manifest import Manifest, ManifestError, parse_manifest

SETUP = "setup"
ENDS = {"failed": "failed", "timeout": "timeout", "cancelled": "cancelled"}
"""A task's end -> the job's."""


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    server: str
    host: str
    images: ImageSettings
    workspace: WorkspaceSettings


class NotOffered(Exception):
    """The manifest asks for what this runner does not do; the message says what."""


def _offered(manifest: Manifest, setup: LineSink) -> None:
    """Refuse what would change the job's outcome if ignored (extra package repositories);
    say what is ignored that would not (`shell`: no SSH into jobs; `oauth`: no job tokens)."""
    if manifest.shell:
        say(setup, "[hutch] shell: true is ignored: this runner offers no SSH access to jobs")
    if manifest.oauth:
        say(setup, "[hutch] oauth is ignored: this runner issues no OAuth tokens to jobs")
    if manifest.repositories:
        raise NotOffered(
            "this runner adds no package repositories (repositories: "
            f"{', '.join(manifest.repositories)}); use packages of the image's Debian suite"
        )


def heartbeat_s(job: dict[str, Any]) -> float:
    """A third of the lease, so that two reports may be late before it lapses."""
    try:
        until = datetime.fromisoformat(str(job["lease_expires_at"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        return 10.0
    return max(0.2, (until.timestamp() - time.time()) / 3)


class JobRun:
    def __init__(self, client: HutchRunnerClient, job: dict[str, Any], config: RunnerConfig):
        self._client = client
        self._job = job
        self._config = config
        self.uuid = str(job["uuid"])
        self._lease = str(job["lease_id"])
        self.cancel = asyncio.Event()
        self.lost = asyncio.Event()
        self.logs = LogShipper(client, self.uuid, self._lease, self.lost)

    async def run(self) -> str | None:
        """Run the job and report its end; the end, or None if the lease was lost."""
        shipping = asyncio.create_task(self.logs.run())
        beating = asyncio.create_task(self._heartbeat())
        try:
            status = await self._steps()
            await self.logs.flush()
            await self._job_status(status)
            return status
        except LeaseLost:
            return None
        finally:
            for task in (beating, shipping):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, LeaseLost):
                    await task

    async def _heartbeat(self) -> None:
        every = heartbeat_s(self._job)
        while True:
            await asyncio.sleep(every)
            try:
                self._saw(await self._client.job_status(self.uuid, self._lease, "running"))
            except LeaseLost:
                self._lose()
                return

    def _saw(self, state: LeaseState) -> None:
        if state.cancel_requested:
            self.cancel.set()

    def _lose(self) -> None:
        self.lost.set()
        self.cancel.set()

    async def _job_status(self, status: str) -> None:
        if self.lost.is_set():
            raise LeaseLost("the lease was lost")
        try:
            await self._client.job_status(self.uuid, self._lease, status)
        except LeaseLost:
            self._lose()
            raise

    async def _task(self, name: str, status: str) -> None:
        if self.lost.is_set():
            raise LeaseLost("the lease was lost")
        try:
            self._saw(await self._client.task_status(self.uuid, self._lease, name, status))
        except LeaseLost:
            self._lose()
            raise

    async def _skip(self, names: list[str]) -> None:
        for name in names:
            await self._task(name, "skipped")

    async def _steps(self) -> str:
        job, setup = self._job, self.logs.sink(SETUP)
        names = [str(task["name"]) for task in job.get("tasks", [])]
        await self._task(SETUP, "running")
        say(setup, f"[hutch] job {job['id']} on {self._config.host}: image {job['image']}")
        deadline = time.monotonic() + float(job.get("timeout_s") or 3600)
        try:
            manifest = parse_manifest(str(job["manifest"]))
            _offered(manifest, setup)
            image = await prepare_image(
                str(job["image"]),
                settings=self._config.images,
                on_line=setup,
                arch=job.get("arch"),
                packages=manifest.packages,
                cancel=self.cancel,
            )
        except (ManifestError, ImageError, NotOffered) as exc:
            return await self._setup_failed(setup, str(exc), names)
        try:
            async with job_filesystem(self.uuid, image, self._config.workspace) as fs:
                try:
                    env = await self._prepare(fs, manifest, setup)
                except (SecretError, SourceError, ValueError) as exc:
                    return await self._setup_failed(setup, str(exc), names)
                await self._task(SETUP, "success")
                for index, task in enumerate(manifest.tasks):
                    if self.cancel.is_set():
                        await self._skip(names[index:])
                        return "cancelled"
                    await self._task(task.name, "running")
                    result = await run_task(
                        fs,
                        task.name,
                        task.script,
                        env=env,
                        on_line=self.logs.sink(task.name),
                        timeout_s=max(0.0, deadline - time.monotonic()),
                        job_deadline=deadline,
                        cancel=self.cancel,
                    )
                    if self.lost.is_set():
                        raise LeaseLost("the lease was lost")
                    await self._task(
                        task.name, "success" if result.status == "success" else "failed"
                    )
                    if result.status != "success":
                        await self._skip(names[index + 1 :])
                        return ENDS[result.status]
                    if result.complete_build:
                        await self._skip(names[index + 1 :])
                        break
                return await self._artifacts(fs.home, manifest, self.logs.sink(names[-1]))
        except WorkspaceError as exc:
            return await self._setup_failed(setup, str(exc), names)

    async def _prepare(self, fs: Any, manifest: Manifest, setup: LineSink) -> dict[str, str]:
        job = self._job
        secrets = [Secret.from_json(item) for item in job.get("secrets") or []]
        if secrets:
            say(setup, f"[hutch] placing {len(secrets)} secret(s)")
            await place_secrets(fs, secrets, on_line=setup, cancel=self.cancel)
        await clone_sources(
            fs, [s.text for s in manifest.sources], on_line=setup, cancel=self.cancel
        )
        job_url = f"{self._config.server.rstrip('/')}/api/jobs/{job['id']}"
        env = task_environment(
            manifest.environment,
            job_id=int(job["id"]),
            job_url=job_url,
            submitter=str(job["owner"]),
        )
        write_buildenv(fs, manifest.environment, env)
        return env

    async def _setup_failed(self, setup: LineSink, why: str, names: list[str]) -> str:
        say(setup, f"[hutch] setup failed: {why}")
        await self._task(SETUP, "failed")
        await self._skip(names)
        return "failed"

    async def _artifacts(self, home: Any, manifest: Manifest, log: LineSink) -> str:
        found = await asyncio.to_thread(collect_artifacts, home, manifest.artifacts)
        for line in found.refused:
            say(log, f"[hutch] {line}")
        for artifact in found.found:
            stored = await self._client.artifact(
                self.uuid, self._lease, artifact.path, artifact.file
            )
            say(
                log, f"[hutch] artifact {artifact.path}: {stored['size']} bytes, {stored['sha256']}"
            )
        return "failed" if found.refused else "success"
