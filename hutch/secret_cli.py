"""`hutch secret add | list | delete | keys`: CI job secrets from the command line.

`hutch secret add FILE --developer alice --type ssh_key --name "deploy key"` seals FILE (`-`:
standard input) and prints the secret's summary, whose `id` manifests name under `secrets:`.
A `file` secret needs `--path` (where it goes in the job's home, e.g. `~/.netrc`); `--mode` is
octal (default 0600 for keys, 0644 for files). `list` shows the developer's secrets with the
id of the key each is sealed with; `keys` counts live secrets (and publishing SSH keys, sealed
the same way) per key id, across developers, and names those the configured keys cannot open
(rotation: base/secret_box.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def add_commands(command: Callable[[str, str], argparse.ArgumentParser]) -> None:
    secret = command("secret", "manage the secrets CI jobs receive").add_subparsers(
        dest="action", required=True
    )
    add = secret.add_parser("add", help="seal and store a secret; prints its id")
    add.add_argument("file", type=Path, help="the secret's content (- reads standard input)")
    add.add_argument("--developer", required=True)
    add.add_argument("--type", required=True, choices=["file", "ssh_key", "pgp_key"])
    add.add_argument("--name", required=True, help="a label shown in listings")
    add.add_argument("--path", help="file secrets: where in the job's home, e.g. ~/.netrc")
    add.add_argument("--mode", help="octal file mode (default 0600 for keys, 0644 for files)")
    listing = secret.add_parser("list", help="list a developer's secrets (never their content)")
    listing.add_argument("--developer", required=True)
    delete = secret.add_parser("delete", help="delete a secret by id")
    delete.add_argument("id")
    delete.add_argument("--developer", required=True)
    secret.add_parser(
        "keys", help="live secrets per key id, and which of them the configured keys cannot open"
    )


def _content(path: Path) -> bytes:
    """At most one byte over the limit: the command refuses what is larger."""
    from schemas.secrets import MAX_SECRET_BYTES

    if str(path) == "-":
        return sys.stdin.buffer.read(MAX_SECRET_BYTES + 1)
    with path.open("rb") as f:
        return f.read(MAX_SECRET_BYTES + 1)


async def run(runtime: Any, args: argparse.Namespace) -> dict[str, Any]:
    import asyncio

    from base.client_errors import NotFound
    from ingest import secret_commands as commands
    from state import identity_reads as q

    ctx = runtime.command_context
    box = runtime.secret_box
    if args.action == "add":
        try:
            data = _content(args.file)
        except OSError as exc:
            raise NotFound(f"cannot read {args.file}: {exc.strerror}", field="file") from None
        return await commands.add_secret(
            ctx, args.developer, args.name, args.type, data, args.path, args.mode
        )
    if args.action == "delete":
        return await commands.delete_secret(ctx, args.developer, args.id)
    if args.action == "list":
        found = await asyncio.to_thread(q.secrets_of, runtime.db, args.developer)
        return {"secrets": [{**s.summary(), "keyId": s.key_id} for s in found]}
    counts = await asyncio.to_thread(q.secrets_per_key, runtime.db)
    # Publishing SSH keys are sealed with the same keys: rotation must keep theirs too.
    ssh_counts = await asyncio.to_thread(q.secrets_per_key, runtime.db, "ssh_keys")
    return {
        "current": box.key_id,
        "older": list(box.key_ids[1:]),
        "inUse": counts,
        "sshKeysInUse": ssh_counts,
        "unreadable": sorted(k for k in {**counts, **ssh_counts} if k not in box.key_ids),
    }
