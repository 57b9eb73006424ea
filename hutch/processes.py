"""Running the parts: gunicorn for ingest, uvicorn for the query service, projectors alone,
and `hutch serve`, which supervises them all on one machine.

`hutch serve` owns its data directory (hutch/data_lock.py) before it touches anything in it,
and hands the lock to its children, which die with it: killed outright, it leaves nothing
running that a new start would have to fight over (chDB's files, the port, the socket).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from base.settings import Settings
from hutch.data_lock import DataLock, acquire
from hutch.runtime import Runtime, claim_analytics
from web.client_timeouts import BodyDeadline, pace_of, paced_protocol

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1


def run_ingest(settings: Settings, forward_to: str | None) -> None:
    """The gunicorn master: it never imports the app; each worker does, after the fork."""
    from gunicorn.app.base import BaseApplication

    from hutch import gunicorn_conf

    os.environ.update(settings.as_env())
    if forward_to:
        os.environ["HUTCH_QUERY_URL"] = forward_to

    class IngestServer(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for name in dir(gunicorn_conf):
                if name in self.cfg.settings and not name.startswith("_"):
                    self.cfg.set(name, getattr(gunicorn_conf, name))
            self.cfg.set("bind", settings.bind)
            self.cfg.set("workers", settings.workers)

        def load(self) -> Any:
            from hutch.ingest_asgi import app

            return BodyDeadline(app, pace_of(settings))

    IngestServer().run()


def run_query(settings: Settings, *, socket: Path | None, projectors: bool) -> None:
    """The query service in this one process (it owns chDB), with the projectors if asked."""
    import uvicorn

    from hutch.apps import query_app

    runtime = Runtime(settings, want_analytics=True, run_projectors=projectors)  # owns chDB
    pace = pace_of(settings)
    app = BodyDeadline(query_app(runtime), pace)
    common: dict[str, Any] = {"http": paced_protocol(pace), "log_config": None, "access_log": False}
    if socket is not None:
        socket.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            socket.unlink()
        config = uvicorn.Config(app, uds=str(socket), **common)
    else:
        host, _, port = settings.bind.rpartition(":")
        config = uvicorn.Config(app, host=host or "127.0.0.1", port=int(port), **common)
    try:
        uvicorn.Server(config).run()
    finally:
        runtime.release()


def run_projectors(settings: Settings, prepare: Callable[[], None]) -> None:
    """Projectors only, until SIGINT or SIGTERM; `prepare` (migrations) runs once the data
    directory is owned, if it must be (chDB)."""

    async def main() -> None:
        runtime = Runtime(settings, run_projectors=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await runtime.start()
        log.info("projectors running")
        await stop.wait()
        await runtime.close()
        runtime.release()

    owner = claim_analytics(settings)
    try:
        prepare()
        asyncio.run(main())
    finally:
        if owner is not None:
            owner.release()


def serve(settings: Settings, prepare: Callable[[], None]) -> int:
    """Everything on one machine: the query process (chDB owner, projectors, reads) on a Unix
    socket, and gunicorn ingest workers on the public bind that forward reads to it.

    The data directory is owned first (DataDirInUse if another process has it); `prepare`
    (migrations) runs only then."""
    try:
        lock = acquire(settings.data, wait_s=settings.start_wait_s)
    except KeyboardInterrupt:  # Ctrl-C while waiting for a previous owner to exit
        log.info("stopped before starting")
        return 130
    try:
        prepare()
        return _supervise(settings, lock)
    finally:
        lock.release()


def _supervise(settings: Settings, lock: DataLock) -> int:
    run_dir = settings.data / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    metrics_dir = run_dir / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir()
    socket = run_dir / "query.sock"
    with contextlib.suppress(FileNotFoundError):
        socket.unlink()
    env = {
        **os.environ,
        **settings.as_env(),
        **lock.child_env(),
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
    }
    hutch = [sys.executable, "-m", "hutch"]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    query = _child([*hutch, "query", "--socket", str(socket), "--projectors"], env, lock)
    children = [query]
    try:
        if not _wait_for_socket(socket, query, timeout_s=60, stopping=lambda: stopping):
            if stopping:
                return 0
            log.error("the query process did not start; see its log above")
            return 1
        ingest = _child([*hutch, "ingest", "--forward", f"unix://{socket}"], env, lock)
        children.insert(0, ingest)
        log.info("hutch serving", extra={"bind": settings.bind, "data": str(settings.data)})
        while not stopping:
            if any(child.poll() is not None for child in children):
                log.error("a Hutch process exited; stopping the others")
                return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop_all(children)


def die_with_parent(parent: int) -> None:
    """Have the kernel SIGKILL this process when its parent dies (Linux): a supervisor
    killed outright takes its children with it, before anything can be started again.
    SIGKILL, not SIGTERM: a child shutting down gracefully would hold the data directory
    (and chDB) for seconds after its supervisor is gone. A supervisor stopped normally
    stops its children first, in order."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request above took effect
        os.kill(os.getpid(), signal.SIGKILL)


def _child(argv: list[str], env: dict[str, str], lock: DataLock) -> subprocess.Popen[bytes]:
    """A child in its own session (Ctrl-C reaches only the supervisor, which stops children
    in order) that dies with the supervisor and holds the data directory's lock with it."""
    parent = os.getpid()
    return subprocess.Popen(
        argv,
        env=env,
        start_new_session=True,
        pass_fds=(lock.fd,),
        preexec_fn=lambda: die_with_parent(parent),
    )


def _wait_for_socket(
    socket: Path,
    process: subprocess.Popen[bytes],
    timeout_s: float,
    stopping: Callable[[], bool],
) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not stopping():
        if process.poll() is not None:
            return False
        if socket.exists():
            return True
        time.sleep(0.1)
    return False


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    """Ingest first (no new writes), then the query process (projectors finish their batch)."""
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
