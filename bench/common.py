"""Shared bench plumbing: start/stop servers, run wrk, wait for ports."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


@contextlib.contextmanager
def process(
    argv: list[str], env: dict[str, str] | None = None, log: Path | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    out = open(log, "ab") if log else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=out,
        stderr=out,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def hutch_serve(env: dict[str, str], port: int, tmp: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`hutch serve` with these settings, its log in `tmp/serve.log`, once it listens."""
    with process(
        [sys.executable, "-m", "hutch", "serve"], env, log=Path(tmp) / "serve.log"
    ) as proc:
        wait_port(port)
        yield proc


def wrk(
    url: str,
    script: Path,
    *,
    seconds: int,
    connections: int,
    threads: int = 1,
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    """Run wrk; requests/s, latency percentiles (ms) and non-2xx counts."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    out = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--latency",
            "-s",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **(env or {})},
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    requests = float(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out)
        if m:
            value = float(m.group(1)) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            lat[f"p{pct}_ms"] = value
    return {
        "rps": rps,
        "requests": requests,
        "non2xx": float(non2xx.group(1)) if non2xx else 0.0,
        **lat,
    }


def cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by a process and its living descendants: on a
    machine whose cores are all busy, CPU per request is steadier than requests/s."""
    ticks = 0
    pids = [root]
    while pids:
        pid = pids.pop()
        with contextlib.suppress(OSError):
            stat = Path(f"/proc/{pid}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)"
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
            for task in Path(f"/proc/{pid}/task").iterdir():
                pids += [int(child) for child in (task / "children").read_text().split()]
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk_with_cpu(root: int, url: str, script: Path, **options: Any) -> dict[str, float]:
    """wrk's figures plus the server's CPU microseconds per request (root: its process)."""
    before = cpu_seconds(root)
    result = wrk(url, script, **options)
    used = cpu_seconds(root) - before
    result["server_cpu_us_per_request"] = round(used / max(result["requests"], 1) * 1e6, 1)
    return result


def load_parser(doc: str, *, seconds: int, connections: int) -> argparse.ArgumentParser:
    """A load bench's arguments: the wrk load, the gunicorn workers, the rounds."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=seconds, help="of wrk, per server")
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server")
    parser.add_argument("--rounds", type=int, default=2, help="each figure is their median")
    return parser


def hutch_env(tmp: Path, port: int, workers: int) -> dict[str, str]:
    """The settings of a Hutch server under load: a fresh data directory in `tmp`."""
    return {
        "HUTCH_DATA": str(tmp / "data"),
        "HUTCH_BIND": f"127.0.0.1:{port}",
        "HUTCH_WORKERS": str(workers),
        "HUTCH_LOG_LEVEL": "WARNING",
    }


def load_server(
    argv: list[str],
    env: dict[str, str],
    port: int,
    script: Path,
    *,
    seconds: int,
    connections: int,
    load_env: dict[str, str] | None = None,
    log: Path | None = None,
    path: str = "/api/telemetry",
) -> dict[str, float]:
    """Start a server (`argv`, listening on `port`), warm it with 2 s of wrk, then measure
    `seconds` of wrk with the server's CPU per request."""
    with process(argv, env, log=log) as server:
        wait_port(port)
        url = f"http://127.0.0.1:{port}{path}"
        wrk(url, script, seconds=2, connections=connections, env=load_env)
        return wrk_with_cpu(
            server.pid, url, script, seconds=seconds, connections=connections, env=load_env
        )


def load_hutch_ingest(
    script: Path,
    *,
    workers: int,
    seconds: int,
    connections: int,
    log_url: str | None = None,
    load_env: dict[str, str] | None = None,
    path: str = "/api/telemetry",
) -> dict[str, float]:
    """`hutch ingest` on a fresh data directory (and fresh topics, given a Kafka `log_url`),
    under load_server's wrk load; the script gets a real app secret in HUTCH_BENCH_SECRET."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="hutch-bench-") as tmp:
        env = hutch_env(Path(tmp), port, workers)
        if log_url:
            env["HUTCH_LOG"] = fresh_topics(log_url)
        return load_server(
            [PYTHON, "-m", "hutch", "ingest"],
            env,
            port,
            script,
            seconds=seconds,
            connections=connections,
            load_env={**(load_env or {}), "HUTCH_BENCH_SECRET": bench_app_secret(env)},
            log=Path(tmp) / "ingest.log",
            path=path,
        )


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(pct / 100 * len(ordered)) - 1))
    return ordered[index]


def hutch_cli(env: dict[str, str], *args: str) -> Any:
    """Run a `hutch` command with these settings; the JSON it printed."""
    done = subprocess.run(
        [PYTHON, "-m", "hutch", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def bench_app_secret(env: dict[str, str]) -> str:
    """A developer `bench` with an app `bench-app`; the app's secret."""
    hutch_cli(env, "developer", "create", "bench")
    return str(hutch_cli(env, "app", "create", "bench-app", "--developer", "bench")["secret"])


def fresh_topics(log_url: str) -> str:
    """The log URL with a topic prefix of its own, as each run's data directory is fresh."""
    separator = "&" if "?" in log_url else "?"
    return f"{log_url}{separator}prefix=bench{uuid.uuid4().hex[:8]}."


async def run_until(
    run: Callable[[asyncio.Event], Awaitable[None]],
    done: Callable[[], Awaitable[bool]],
    every_s: float,
) -> float:
    """Seconds from starting `run` (a projector's run(stop)) until `done()`, checked every
    `every_s`; then stops it. Raises if it ends first."""
    stop = asyncio.Event()
    started = time.perf_counter()
    task = asyncio.ensure_future(run(stop))
    while not await done():
        if task.done():
            task.result()
            raise RuntimeError("the projector stopped before it caught up")
        await asyncio.sleep(every_s)
    elapsed = time.perf_counter() - started
    stop.set()
    await task
    return elapsed
