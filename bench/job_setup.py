"""What the CI job benches share: a relational store of the run's own (a fresh SQLite file, or
a fresh schema of a PostgreSQL database, dropped afterwards), and `job.submitted.v1` events
made in bulk, as POST /api/jobs would append them."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from schemas.envelope import Envelope, new_envelope, uuid7
from schemas.jobs.events import JobSubmitted, encode

POSTGRES_ENV = ("HUTCH_BENCH_POSTGRES", "HUTCH_TEST_POSTGRES")
"""Where `--store postgres` finds its server (`eval "$(bash ops/services.sh env)"` sets the
second)."""

MANIFEST = "image: debian/bookworm\ntasks:\n  - build: make\n  - test: make check\n"


def postgres_url() -> str:
    for name in POSTGRES_ENV:
        if os.environ.get(name):
            return os.environ[name]
    raise SystemExit(
        "--store postgres needs a server: set HUTCH_BENCH_POSTGRES or "
        'run `eval "$(bash ops/services.sh env)"` (HUTCH_TEST_POSTGRES)'
    )


@contextlib.contextmanager
def relational_url(store: str, tmp: Path) -> Iterator[str]:
    """HUTCH_DB for a run: a new SQLite file in `tmp`, or a new PostgreSQL schema (dropped
    when the block ends, so runs do not pile up)."""
    if store == "sqlite":
        yield f"sqlite:///{tmp}/hutch.db"
        return
    from storage.relational.postgres import PostgresRelational

    server = postgres_url()
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = PostgresRelational(server, pool_size=1)
    try:
        with admin.transaction() as tx:
            tx.execute(f'CREATE SCHEMA "{schema}"')
        parts = urlsplit(server)
        query = [*parse_qsl(parts.query), ("options", f"-c search_path={schema}")]
        yield urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))
    finally:
        with admin.transaction() as tx:
            tx.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


def submitted(number: int, tenant: str, owner: str, *, execute: bool = True) -> Envelope:
    """A job as `POST /api/jobs` appends it (ingest/jobs/commands.py `submit`)."""
    job_uuid = uuid7()
    job = JobSubmitted(
        uuid=job_uuid,
        number=number,
        tenant_id=tenant,
        owner=owner,
        manifest=MANIFEST,
        image="debian/bookworm",
        tasks=("build", "test"),
        note=None,
        tags=("bench",),
        read_access=(owner, "*"),
        write_access=(owner,),
        execute=execute,
        secrets=False,
        vcpus=1,
        cpu_architecture="Amd64",
        timeout_s=3600,
    )
    return new_envelope("job.submitted.v1", encode(job), key=job_uuid)
