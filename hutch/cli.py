"""The `hutch` command. Every option can also come from the environment (see --help)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson

from base.jsonlogs import configure_logging
from base.settings import OPTIONS, Settings, SettingsError
from hutch import flag_cli, secret_cli
from hutch.data_lock import DataDirInUse
from schemas.error_body import error_body

SETTINGS_HELP = "settings (environment variables; flags override them):\n" + "\n".join(
    f"  {opt.env:<22} {opt.help} (default: {opt.default})" for opt in OPTIONS.values()
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hutch",
        description="Hutch: event-sourced backend for app builds, telemetry and observability.",
        epilog=SETTINGS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", help="data directory (HUTCH_DATA)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=help_,
            description=help_,
            epilog=SETTINGS_HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    serve = command("serve", "run everything on this machine: ingest, projectors and queries")
    serve.add_argument("--bind", help="HOST:PORT to listen on (HUTCH_BIND, 127.0.0.1:8080)")
    serve.add_argument("--workers", help="ingest worker processes (HUTCH_WORKERS)")

    ingest = command("ingest", "run the ingest service (gunicorn with uvicorn workers)")
    ingest.add_argument("--bind", help="HOST:PORT to listen on (HUTCH_BIND)")
    ingest.add_argument("--workers", help="worker processes (HUTCH_WORKERS)")
    ingest.add_argument(
        "--forward", help="forward reads to this query service URL (HUTCH_QUERY_URL)"
    )

    query = command("query", "run the query service (owns the analytics store)")
    query.add_argument("--bind", help="HOST:PORT to listen on (HUTCH_BIND)")
    query.add_argument("--socket", type=Path, help="listen on this Unix socket instead")
    query.add_argument(
        "--projectors",
        action="store_true",
        help="also run the projectors here (needed with chDB: one process owns its data)",
    )

    command("project", "run the projectors: log -> analytics and relational stores")
    command("migrate", "apply pending relational migrations and create analytics tables")

    replay = command("replay", "drop a projection's tables and rebuild them from the log")
    replay.add_argument(
        "projection",
        help="telemetry | otel_traces | otel_logs | otel_metrics | flag_evaluations | "
        "job_logs | identity | flags | builds | jobs",
    )

    developer = command("developer", "manage developers").add_subparsers(
        dest="action", required=True
    )
    dev_create = developer.add_parser("create", help="create a developer")
    dev_create.add_argument("name")

    app = command("app", "manage apps").add_subparsers(dest="action", required=True)
    app_create = app.add_parser("create", help="create an app; prints its secret once")
    app_create.add_argument("name")
    app_create.add_argument("--developer", required=True)
    app_create.add_argument("--retention-days", type=int, help="analytics retention")
    app_rotate = app.add_parser(
        "rotate-secret",
        help="give an app a new secret (printed once); the old one stops after --grace",
    )
    app_rotate.add_argument("name")
    app_rotate.add_argument("--developer", required=True, help="the app's owner")
    app_rotate.add_argument(
        "--grace",
        type=_grace,
        default=0,
        help="how long the previous secret keeps working: seconds or 90s, 15m, 1h, 7d "
        "(at most 30d; default 0: it stops at once)",
    )
    app_end_grace = app.add_parser(
        "revoke-previous-secrets",
        help="stop an app's previous secrets now, ending a rotation's grace period early",
    )
    app_end_grace.add_argument("name")
    app_end_grace.add_argument("--developer", required=True, help="the app's owner")

    token = command("token", "manage API tokens").add_subparsers(dest="action", required=True)
    token_create = token.add_parser("create", help="create an API token; printed once")
    token_create.add_argument("--developer", required=True)
    token_create.add_argument("--name", default="default", help="a label for the token")
    token_create.add_argument("--expires", default="never", choices=["never", "1w", "2w", "1month"])
    token_create.add_argument(
        "--scopes",
        help="limit the token to these comma-separated scopes (jobs:read, jobs:write, "
        "secrets:read, secrets:write); without: a full-access token",
    )
    token_revoke = token.add_parser("revoke", help="revoke an API token by id")
    token_revoke.add_argument("id")
    token_revoke.add_argument("--developer", required=True)

    flag_cli.add_commands(command)
    secret_cli.add_commands(command)
    worker = command("worker", "manage builder worker tokens").add_subparsers(
        dest="action", required=True
    )
    worker_create = worker.add_parser("create", help="create a builder worker; prints its token")
    worker_create.add_argument("name", help="a label for the worker (e.g. its host)")
    worker_revoke = worker.add_parser("revoke", help="revoke a builder worker's token by id")
    worker_revoke.add_argument("id")

    provisioner = command(
        "provisioner", "manage CI provisioner tokens (hutch runner, Builtiful provisioners)"
    ).add_subparsers(dest="action", required=True)
    provisioner_create = provisioner.add_parser(
        "create", help="create a provisioner; prints its token (hp_…) once"
    )
    provisioner_create.add_argument("name", help="a label for the provisioner (e.g. its host)")
    provisioner_revoke = provisioner.add_parser("revoke", help="revoke a provisioner's token")
    provisioner_revoke.add_argument("id")

    from runner.main import add_arguments as runner_arguments

    runner_arguments(
        command(
            "runner",
            "run CI jobs (needs root): dequeue from Hutch, build the job's debian/<suite> image "
            "with debootstrap, run its tasks in bubblewrap, stream logs, upload artifacts",
        )
    )
    builder = command(
        "builder",
        "run a reference builder worker: claim queued Android web-app builds, package each "
        "as a Trusted Web Activity project zip, upload it and report the result",
    )
    builder.add_argument("--server", help="Hutch's base URL (default: HUTCH_PUBLIC_URL)")
    builder.add_argument(
        "--token", help="worker token from `hutch worker create` (HUTCH_WORKER_TOKEN)"
    )
    builder.add_argument(
        "--once", action="store_true", help="take at most one build, print its outcome, exit"
    )
    builder.add_argument("--poll", type=float, default=5.0, help="seconds between empty claims")
    builder.add_argument(
        "--ca-file", type=Path, help="extra CA certificates (PEM) to trust for web apps"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides = {
        key: str(value)
        for key in ("data", "bind", "workers")
        if (value := getattr(args, key, None)) is not None
    }
    try:
        settings = Settings.from_env(**overrides)
    except SettingsError as exc:
        print(
            orjson.dumps(error_body("bad_setting", str(exc))).decode(),
            file=sys.stderr,
        )
        return 2
    configure_logging(settings.log_level)
    try:
        return _run(args, settings)
    except DataDirInUse as exc:
        print(orjson.dumps(exc.body()).decode(), file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from hutch import processes

    match args.command:
        case "serve":
            return processes.serve(settings, prepare=lambda: migrate(settings))
        case "ingest":
            migrate(settings)
            processes.run_ingest(settings, args.forward or settings.query_url or None)
            return 0
        case "query":
            processes.run_query(settings, socket=args.socket, projectors=args.projectors)
            return 0
        case "project":
            processes.run_projectors(settings, prepare=lambda: migrate(settings))
            return 0
        case "migrate":
            return _admin(settings, lambda rt: _migrate_all(rt), analytics=True)
        case "replay":
            return _admin(settings, lambda rt: _replay(rt, args.projection), analytics=True)
        case "developer":
            return _admin(
                settings, lambda rt: _commands().create_developer(rt.command_context, args.name)
            )
        case "app" if args.action == "rotate-secret":
            return _admin(
                settings,
                lambda rt: _commands().rotate_secret(
                    rt.command_context, args.developer, args.name, args.grace
                ),
            )
        case "app" if args.action == "revoke-previous-secrets":
            return _admin(
                settings,
                lambda rt: _commands().revoke_previous_secrets(
                    rt.command_context, args.developer, args.name
                ),
            )
        case "app":
            return _admin(
                settings,
                lambda rt: _commands().create_app(
                    rt.command_context, args.name, args.developer, args.retention_days
                ),
            )
        case "token" if args.action == "create":
            return _admin(
                settings,
                lambda rt: _commands().create_token(
                    rt.command_context, args.developer, args.name, args.expires, args.scopes
                ),
            )
        case "token":
            return _admin(
                settings,
                lambda rt: _commands().revoke_token(rt.command_context, args.developer, args.id),
            )
        case "flag":
            return _admin(settings, lambda rt: flag_cli.run(rt, args))
        case "secret":
            return _admin(settings, lambda rt: secret_cli.run(rt, args))
        case "worker" if args.action == "create":
            return _admin(
                settings, lambda rt: _build_commands().create_worker(rt.command_context, args.name)
            )
        case "worker":
            return _admin(
                settings, lambda rt: _build_commands().revoke_worker(rt.command_context, args.id)
            )
        case "provisioner" if args.action == "create":
            return _admin(
                settings,
                lambda rt: _job_commands().create_provisioner(rt.command_context, args.name),
            )
        case "provisioner":
            return _admin(
                settings, lambda rt: _job_commands().revoke_provisioner(rt.command_context, args.id)
            )
        case "runner":
            from runner.main import run_runner

            return run_runner(settings, args)
        case "builder":
            from builder.main import run_builder

            return run_builder(settings, args)
    return 2


def _grace(text: str) -> int:
    from schemas.identity import grace_seconds

    try:
        return grace_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _commands() -> Any:
    from ingest import identity_commands

    return identity_commands


def _job_commands() -> Any:
    from ingest.jobs import commands

    return commands


def _build_commands() -> Any:
    from ingest import web_build_commands

    return web_build_commands


def migrate(settings: Settings) -> None:
    from hutch.wiring import open_relational

    db = open_relational(settings)
    try:
        db.migrate()
    finally:
        db.close()


async def _migrate_all(runtime: Any) -> dict[str, Any]:
    applied = await asyncio.to_thread(runtime.db.migrate)
    tables = [t for p in runtime.analytics_projections() for t in p.tables]
    return {"relational": applied, "analytics": tables}


async def _replay(runtime: Any, name: str) -> dict[str, Any]:
    from projections import runner
    from state import relational

    for projection in runtime.analytics_projections():
        if projection.name == name:
            rows = await runner.rebuild(
                runtime.log, runtime.analytics, projection, batch=runtime.batch_of(projection)
            )
            return {"replayed": name, "rows": rows}
    for rel in runtime.relational_projections():
        if rel.name == name:
            records = await relational.rebuild(runtime.log, runtime.db, rel)
            return {"replayed": name, "records": records}
    names = [p.name for p in runtime.analytics_projections()] + [
        p.name for p in runtime.relational_projections()
    ]
    from base.client_errors import NotFound

    raise NotFound(f"no projection named {name!r}; projections: {', '.join(names)}")


def _admin(
    settings: Settings,
    action: Callable[[Any], Awaitable[dict[str, Any]]],
    *,
    analytics: bool = False,
) -> int:
    """Run one command against the stores and print its JSON result (or error) on stdout."""
    from base.client_errors import HutchError
    from hutch.runtime import Runtime
    from storage.errors import StorageError

    async def run() -> dict[str, Any]:
        runtime = Runtime(settings, want_analytics=analytics)
        try:
            await asyncio.to_thread(runtime.db.migrate)
            await runtime.start()
            return await action(runtime)
        finally:
            await runtime.close()
            runtime.release()

    try:
        result = asyncio.run(run())
    except HutchError as exc:
        print(orjson.dumps(exc.body()).decode(), file=sys.stderr)
        return 1
    except StorageError as exc:
        message = str(exc)
        if "Cannot lock file" in message:
            message = (
                "the analytics store is in use by another Hutch process (chDB allows one "
                "process per data directory): stop `hutch serve` first"
            )
        body = error_body("unavailable", message)
        print(orjson.dumps(body).decode(), file=sys.stderr)
        return 1
    print(orjson.dumps(result).decode())
    return 0
