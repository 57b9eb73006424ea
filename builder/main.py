"""`hutch builder`: settings and flags -> a running worker (builder/worker.py)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import sys

import orjson

from base.net_guard import parse_allowed_networks
from base.settings import Settings
from builder.webapp import FetchPolicy
from builder.worker import WorkerApiError, WorkerConfig, run
from schemas.error_body import error_body

TOKEN_ENV = "HUTCH_WORKER_TOKEN"  # noqa: S105 (the variable's name, not a token)


def _fail(code: str, message: str) -> int:
    print(orjson.dumps(error_body(code, message)).decode(), file=sys.stderr)
    return 1


def run_builder(settings: Settings, args: argparse.Namespace) -> int:
    token = args.token or os.environ.get(TOKEN_ENV, "")
    if not token:
        return _fail("missing_token", f"give --token or set {TOKEN_ENV} (`hutch worker create`)")
    try:
        allowed = parse_allowed_networks(settings.builder_allow_networks)
    except ValueError as exc:
        return _fail("bad_setting", str(exc))
    verify: ssl.SSLContext | bool = True
    if args.ca_file is not None:
        verify = ssl.create_default_context()
        try:
            verify.load_verify_locations(cafile=str(args.ca_file))
        except (OSError, ssl.SSLError) as exc:
            return _fail("bad_ca_file", f"{args.ca_file}: {exc}")
    config = WorkerConfig(
        server=args.server or settings.public_url,
        token=token,
        policy=FetchPolicy(allowed=allowed, verify=verify),
        poll_s=args.poll,
    )

    async def main() -> dict[str, object]:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if not args.once:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        return await run(config, once=args.once, stop=stop)

    try:
        outcome = asyncio.run(main())
    except WorkerApiError as exc:
        return _fail("worker_api", str(exc))
    print(orjson.dumps(outcome).decode())
    return 0
