"""Chunk plumbing shared by the adapters: one async view of any chunk source, counted,
hashed and cut off at the byte limit, regrouped into parts of a fixed size."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Iterator

from storage.errors import TooLarge
from storage.objects.protocol import Chunks

_DONE = object()


async def aiter_chunks(chunks: Chunks) -> AsyncIterator[bytes]:
    """Iterate async sources directly; pull sync ones in a worker thread (they may block)."""
    if hasattr(chunks, "__aiter__"):
        async for chunk in chunks:
            yield chunk
        return
    iterator: Iterator[bytes] = iter(chunks)
    while True:
        chunk = await asyncio.to_thread(next, iterator, _DONE)
        if chunk is _DONE:
            return
        assert isinstance(chunk, bytes | bytearray | memoryview)
        yield bytes(chunk)


class Meter:
    """Counts and hashes bytes as they pass; raises TooLarge past the limit."""

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must be >= 0")
        self.max_bytes = max_bytes
        self.size = 0
        self._hash = hashlib.sha256()

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(self.max_bytes)
        self._hash.update(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()


async def metered_parts(chunks: Chunks, meter: Meter, part_size: int) -> AsyncIterator[bytes]:
    """Regroup chunks into parts of exactly `part_size` bytes (the last may be shorter).

    Each chunk is metered before it is buffered, so at most one part plus one chunk is held
    in memory, and the limit is enforced before a byte past it is passed on.
    """
    buffer = bytearray()
    async for chunk in aiter_chunks(chunks):
        if not chunk:
            continue
        meter.add(chunk)
        buffer += chunk
        while len(buffer) >= part_size:
            yield bytes(buffer[:part_size])
            del buffer[:part_size]
    if buffer:
        yield bytes(buffer)
