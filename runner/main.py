"""`hutch runner`: take CI jobs from Hutch and run them, one at a time, until stopped.

Needs root (debootstrap, loop devices, overlays; each job's processes run as an unprivileged
uid inside bubblewrap: runner/sandbox.py). At start it removes what a runner that died here
left behind (mounts, workspaces), so give each runner on a machine its own work directory.
SIGTERM or SIGINT stops it: the job it runs is abandoned, its lease lapses, and Hutch hands it
to another runner (HUTCH_JOB_LEASE).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path

import orjson

from base.settings import Settings
from runner.client import HutchRunnerClient, RunnerApiError
from runner.images import ImageSettings, default_images_dir, host_arch
from runner.job import JobRun, RunnerConfig
from runner.workspace import WorkspaceSettings, default_disk_dir, sweep_stale
from schemas.error_body import error_body

TOKEN_ENV = "HUTCH_PROVISIONER_TOKEN"  # noqa: S105 (the variable's name, not a token)
ARCHITECTURES = {"amd64": "Amd64", "arm64": "Arm64"}
GIB = 1 << 30

log = logging.getLogger(__name__)


def add_arguments(runner: argparse.ArgumentParser) -> None:
    runner.add_argument("--server", help="Hutch's base URL (default: HUTCH_PUBLIC_URL)")
    runner.add_argument(
        "--token", help=f"provisioner token from `hutch provisioner create` ({TOKEN_ENV})"
    )
    runner.add_argument(
        "--once", action="store_true", help="run at most one job, print its end, exit"
    )
    runner.add_argument("--poll", type=float, default=5.0, help="seconds between empty dequeues")
    runner.add_argument(
        "--vcpus", type=int, default=os.cpu_count() or 1, help="vCPUs offered (default: all)"
    )
    runner.add_argument("--host", default=socket.gethostname(), help="this host's name")
    runner.add_argument(
        "--images",
        type=Path,
        default=Path(os.environ.get("HUTCH_RUNNER_IMAGES") or default_images_dir()),
        help="image cache (HUTCH_RUNNER_IMAGES; default ~/.cache/hutch/images)",
    )
    runner.add_argument(
        "--work-dir",
        type=Path,
        default=Path(os.environ.get("HUTCH_RUNNER_WORK") or default_disk_dir()),
        help="job workspaces' disk files (HUTCH_RUNNER_WORK; default ~/.cache/hutch/workspaces)",
    )
    runner.add_argument(
        "--run-dir",
        type=Path,
        default=Path("/run/hutch-runner"),
        help="where each job's root and workspace are mounted (default /run/hutch-runner)",
    )
    runner.add_argument(
        "--workspace-gib", type=float, default=10.0, help="each job's workspace size (GiB)"
    )
    runner.add_argument(
        "--uid", type=int, default=65534, help="host uid (and gid) jobs run as; never 0"
    )


def _fail(code: str, message: str) -> int:
    print(orjson.dumps(error_body(code, message)).decode(), file=sys.stderr)
    return 1


def run_runner(settings: Settings, args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        return _fail(
            "missing_token", f"give --token or set {TOKEN_ENV} (`hutch provisioner create`)"
        )
    if os.geteuid() != 0:
        return _fail("not_root", "the runner needs root (debootstrap, loop mounts, overlays)")
    if args.uid == 0:
        return _fail("bad_setting", "--uid must not be 0: jobs never run as root")
    architecture = ARCHITECTURES.get(host_arch())
    if architecture is None:
        return _fail("bad_host", f"this machine's architecture {host_arch()} is not offered")
    config = RunnerConfig(
        server=args.server or settings.public_url,
        host=args.host,
        images=ImageSettings(args.images),
        workspace=WorkspaceSettings(
            disk_dir=args.work_dir,
            run_dir=args.run_dir,
            size_bytes=int(args.workspace_gib * GIB),
            uid=args.uid,
            gid=args.uid,
        ),
    )
    return asyncio.run(_serve(config, token, args, architecture))


async def _serve(
    config: RunnerConfig, token: str, args: argparse.Namespace, architecture: str
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    left = await asyncio.to_thread(sweep_stale, config.workspace)
    if left:
        log.warning("removed what earlier jobs left", extra={"jobs": left})
    client = HutchRunnerClient(config.server, token)
    try:
        while not stop.is_set():
            try:
                job = await client.dequeue(args.vcpus, architecture, config.host)
            except RunnerApiError as exc:
                return _fail("dequeue_refused", str(exc))
            if job is None:
                if args.once:
                    print(orjson.dumps({"job": None}).decode())
                    return 0
                await _wait(stop, args.poll)
                continue
            status = await _run(JobRun(client, job, config), stop)
            print(orjson.dumps({"job": job["id"], "uuid": job["uuid"], "status": status}).decode())
            sys.stdout.flush()
            if args.once:
                return 0
        return 0
    finally:
        await client.close()


async def _run(job: JobRun, stop: asyncio.Event) -> str | None:
    """The job's end; None if it was lost or abandoned because the runner stops."""
    running = asyncio.create_task(job.run())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if running.done():
        return running.result()
    log.warning("stopping: the job is abandoned; its lease will lapse", extra={"job": job.uuid})
    job.lost.set()  # no further report: the job goes back to the queue
    job.cancel.set()
    await running
    return None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
