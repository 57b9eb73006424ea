"""The one command context: what every command needs (the stores, settings, keys, a clock)
and the one way commands run.

    async with ctx.command(f"app:{name}", IDENTITY):   # the store's command lock, then the
        ...validate against the caught-up state...     # projections it names caught up
        await ctx.append("apps", [envelope], IDENTITY)  # append, then catch up again

Under the lock nothing else changes the aggregate; the state read after catching up is the
log's; the catch-up after appending makes the answer (and the next request) see the write.
The identity, flag, upload, icon and web-build commands (ingest/) and the CLI all run so.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from base.client_errors import (
    ConflictError,
    HutchError,
    InsufficientStorage,
    NotFound,
    PayloadTooLarge,
    Unprocessable,
)
from base.secret_box import SecretBox
from base.settings import Settings
from schemas.envelope import Envelope, now_micros
from schemas.events import Topic
from state.builds import BuildsProjection
from state.challenge_redemptions import ChallengeRedemptionsProjection
from state.flags.projection import FlagsProjection
from state.identity import IdentityProjection
from state.jobs.projection import JobsProjection
from state.publish.projection import PublishProjection
from state.relational import RelationalProjection, catch_up
from storage import errors as storage_errors
from storage.log import EventLog
from storage.objects import ObjectStore
from storage.relational import Relational

IDENTITY = IdentityProjection()
FLAGS = FlagsProjection()
BUILDS = BuildsProjection()
JOBS = JobsProjection()
CHALLENGES = ChallengeRedemptionsProjection()
PUBLISH = PublishProjection()
"""The relational projections, one instance each: the projector runs these, commands catch
them up."""
RELATIONAL: tuple[RelationalProjection, ...] = (IDENTITY, FLAGS, BUILDS, JOBS, PUBLISH, CHALLENGES)


@dataclass(frozen=True, slots=True)
class CommandContext:
    log: EventLog
    db: Relational
    settings: Settings
    objects: ObjectStore
    client_key: bytes = field(repr=False)
    """Keys the hash that identifies a downloading client (base/keys.py)."""
    upload_key: bytes = field(repr=False)
    """Keys the MAC that binds an upload's object key to its developer (upload_commands)."""
    secret_box: SecretBox = field(repr=False)
    """Seals and opens the secrets CI jobs are handed (base/secret_box.py)."""
    clock: Callable[[], int] = now_micros
    """Microseconds since the epoch; tests pass their own to move leases on."""

    @contextlib.asynccontextmanager
    async def command(self, lock: str, *projections: RelationalProjection) -> AsyncIterator[None]:
        """Hold the store's cross-process command lock `lock` (one waiter per process at a
        time: storage/relational/turns.py) with `projections` caught up."""
        async with self.db.command_lock(lock):
            await self.catch_up(*projections)
            yield

    async def catch_up(self, *projections: RelationalProjection) -> None:
        for projection in projections:
            await catch_up(self.log, self.db, projection)

    async def append(
        self, topic: Topic, envelopes: Sequence[Envelope], *projections: RelationalProjection
    ) -> None:
        """Append, then catch `projections` up so the answer sees the write."""
        await self.log.append(topic, list(envelopes))
        await self.catch_up(*projections)


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
