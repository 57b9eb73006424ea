"""What build and upload commands need: the stores, the settings, keys and a clock.

Commands follow the identity pattern (ingest/identity_commands.py): under the command lock,
catch the projections up, validate against that state, append, catch up again, so the answer
and the next request see the write.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from hutch.settings import Settings
from ingest.errors import (
    ConflictError,
    HutchError,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
)
from projections.builds import BuildsProjection
from projections.identity import IdentityProjection
from projections.relational import catch_up
from schemas.envelope import now_micros
from storage import errors as storage_errors
from storage.log import EventLog
from storage.objects import ObjectStore
from storage.relational import Relational

BUILDS = BuildsProjection()
IDENTITY = IdentityProjection()


@dataclass(frozen=True, slots=True)
class BuildContext:
    log: EventLog
    db: Relational
    settings: Settings
    objects: ObjectStore
    client_key: bytes = field(repr=False)
    """Keys the hash that identifies a downloading client (hutch/keys.py)."""
    upload_key: bytes = field(repr=False)
    """Keys the MAC that binds an upload's object key to its developer (upload_commands)."""
    clock: Callable[[], int] = now_micros
    """Microseconds since the epoch; tests pass their own to move leases on."""

    @contextlib.asynccontextmanager
    async def command_lock(self, name: str) -> AsyncIterator[None]:
        """The store's cross-process command lock (one waiter per process at a time: see
        storage/relational/turns.py)."""
        async with self.db.command_lock(name):
            yield

    async def catch_up(self) -> None:
        await catch_up(self.log, self.db, IDENTITY)
        await catch_up(self.log, self.db, BUILDS)


def object_error(exc: storage_errors.StorageError, field: str, limit: int) -> HutchError:
    """The client's view of an object-store refusal that is about its request."""
    if isinstance(exc, storage_errors.TooLarge):
        return PayloadTooLarge(
            f"the file is larger than the {limit}-byte limit; nothing was stored",
            field=field,
            code="too_large",
        )
    if isinstance(exc, storage_errors.InvalidKey):
        return Unprocessable(
            f"{field} is not a valid object key: {exc}", field=field, code="bad_key"
        )
    if isinstance(exc, storage_errors.NotFound):
        return NotFound(f"nothing was uploaded under {field}", field=field, code="no_upload")
    if isinstance(exc, storage_errors.AlreadyExists):
        return ConflictError(
            f"something is already stored under this {field}'s key and objects are written "
            "once; nothing was stored",
            field=field,
            code="object_exists",
        )
    if isinstance(exc, storage_errors.NoSpace):
        return InsufficientStorage(
            "the object store's disk is full; nothing was stored", field=field
        )
    raise exc
