"""`hutch flag set | delete | list`: the flag commands from the command line.

`hutch flag set APP NAME --developer DEV` takes the definition as JSON (`--json '{...}'` or
`--file flag.json`, the body `PUT /api/apps/{app}/flags/{name}` takes), and the common fields
as options that win over it: `--enabled/--disabled`, `--rollout N`, `--description TEXT`.
`hutch flag set my-app dark_mode --developer alice --enabled --rollout 25` is a whole flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson


def add_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    flag = command("flag", "manage an app's feature flags").add_subparsers(
        dest="action", required=True
    )
    set_ = flag.add_parser("set", help="create or replace a flag definition")
    set_.add_argument("app")
    set_.add_argument("name")
    set_.add_argument("--developer", required=True)
    source = set_.add_mutually_exclusive_group()
    source.add_argument("--json", help="the definition as JSON")
    source.add_argument("--file", type=Path, help="a file holding the definition as JSON")
    state = set_.add_mutually_exclusive_group()
    state.add_argument("--enabled", dest="enabled", action="store_true", default=None)
    state.add_argument("--disabled", dest="enabled", action="store_false")
    set_.add_argument("--rollout", type=int, help="percentage of contexts that get the flag")
    set_.add_argument("--description")
    delete = flag.add_parser("delete", help="delete a flag definition")
    delete.add_argument("app")
    delete.add_argument("name")
    delete.add_argument("--developer", required=True)
    listing = flag.add_parser("list", help="list an app's flag definitions")
    listing.add_argument("app")
    listing.add_argument("--developer", required=True)


def definition(args: argparse.Namespace) -> object:
    """The definition the options describe: the JSON given, with the options on top."""
    from base.client_errors import Unprocessable

    text = args.file.read_text() if args.file is not None else args.json
    try:
        body: object = {} if text is None else orjson.loads(text)
    except (orjson.JSONDecodeError, UnicodeDecodeError) as exc:
        raise Unprocessable(f"the definition is not JSON: {exc}", code="invalid_flag") from None
    if not isinstance(body, dict):
        return body
    options = {"enabled": args.enabled, "rollout": args.rollout, "description": args.description}
    return {**body, **{k: v for k, v in options.items() if v is not None}}


async def run(runtime: Any, args: argparse.Namespace) -> dict[str, Any]:
    from ingest.flags import commands as flag_commands

    ctx = runtime.command_context
    if args.action == "set":
        created, result = await flag_commands.set_flag(
            ctx, args.developer, args.app, args.name, definition(args)
        )
        return {**result, "created": created}
    if args.action == "delete":
        return await flag_commands.delete_flag(ctx, args.developer, args.app, args.name)
    return await flag_commands.list_flags(ctx, args.developer, args.app)
