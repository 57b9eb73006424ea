"""The embedded event log: one SQLite database (WAL), one append-only table per topic.

Durability: `append` returns once the records' WAL frames are fsynced to disk.
Throughput comes from group commit in two stages. First every append made during one turn of
an event loop is committed in one transaction (`synchronous=NORMAL`: SQLite writes the WAL
frames but does not fsync), holding the write lock only for that; a syncer thread then
fsyncs the WAL once for every batch committed meanwhile, and only then acknowledges them.
The fsync (milliseconds) runs outside the write lock, so the next batch — or another
process's — commits while this one syncs, and one fsync covers them all. (A checkpoint
fsyncs the WAL before copying it into the database, so frames it moved are durable too.)
The loop commits a turn's appends itself when they are small and the write lock is free at
once: a hand-off to a thread would cost more than the insert, as the thread must win the GIL
back from the busy loop at every SQLite call. Otherwise (a large OTLP request, or another
writer holding the lock) a writer thread commits them, so the loop never waits.
Several processes may append at once: writers serialise on an flock before `BEGIN IMMEDIATE`
(the kernel wakes a waiter at once, where SQLite's busy handler would sleep and retry).
Offsets are per topic, from 0, assigned inside the write lock, so they grow without gaps in
commit order and a reader never sees a later offset before an earlier one.
SQLite topics have one partition (0).
Besides records, a consumer can take a span as JSON lines that SQLite writes itself
(`poll_json`): for projections whose transform runs in the analytics engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import functools
import logging
import os
import queue
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import orjson

from schemas.envelope import Envelope
from schemas.events import TOPICS, Topic
from storage.errors import Backpressure, Unavailable
from storage.log.protocol import JsonBatch, Position, Record, Span

log = logging.getLogger(__name__)
_T = TypeVar("_T")

PARTITION = 0
MAX_PENDING = 200_000
MAX_PENDING_BYTES = 256 * 1024 * 1024
"""Envelopes, and payload bytes, waiting for the writer beyond which appends are refused
(backpressure: an OTLP export request alone may weigh 20 MiB)."""
MAX_BATCH = 20_000
INLINE_MAX_BYTES = 1024 * 1024
"""Most payload bytes an event loop commits itself in one turn; a larger batch goes to the
writer thread, as inserting it would hold up every other request the loop serves."""
SWITCH_INTERVAL_S = 0.002
WATCHDOG_S = 0.25


def _table(topic: Topic) -> str:
    return "records_" + topic.replace(".", "_")


_SCHEMA = [
    *(
        f"""CREATE TABLE IF NOT EXISTS {_table(t)} (
            log_offset INTEGER PRIMARY KEY,
            id TEXT NOT NULL,
            type TEXT NOT NULL,
            key TEXT NOT NULL,
            app TEXT,
            received_at INTEGER NOT NULL,
            content_type TEXT NOT NULL,
            payload BLOB NOT NULL
        )"""
        for t in TOPICS
    ),
    """CREATE TABLE IF NOT EXISTS group_offsets (
        grp TEXT NOT NULL,
        topic TEXT NOT NULL,
        partition INTEGER NOT NULL,
        next_offset INTEGER NOT NULL,
        through INTEGER,
        PRIMARY KEY (grp, topic, partition)
    )""",
]

_COLUMNS = "log_offset, id, type, key, app, received_at, content_type, payload"

# A span of records as JSON lines, written by SQLite's JSON functions in C. The payload is
# embedded as the JSON it holds (json() keeps the text of numbers and strings as stored).
# The lines need not be in offset order: min and max give the span.
_JSON_LINES = """
SELECT CAST(group_concat(json_object(
           'offset', log_offset, 'id', id, 'type', type, 'app', app,
           'received_at', received_at, 'payload', {payload}), ' ') AS BLOB),
       min(log_offset), max(log_offset), count(*), json_group_array(DISTINCT app)
FROM (SELECT * FROM {table} WHERE log_offset >= ? ORDER BY log_offset LIMIT ?)
"""
# Payloads are JSON nearly always (ingest writes them with orjson), and json() alone fails the
# whole statement on one that is not; checking each first costs a third of the read. So a
# span is read unchecked first, and again with the check (null for a non-JSON payload) only
# when that fails.
_PAYLOAD = "json(CAST(payload AS TEXT))"
_CHECKED_PAYLOAD = f"CASE WHEN json_valid(CAST(payload AS TEXT)) THEN {_PAYLOAD} END"


def _connect(path: Path, synchronous: str = "FULL") -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    # WAL mode is stored in the database, so only its first connection switches it. Asking
    # again for a switch takes a lock SQLite will not wait for: "database is locked" whenever
    # another process is writing at that moment.
    (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
    if mode != "wal":
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


@dataclass(slots=True, eq=False)
class _Pending:
    topic: Topic
    envelopes: Sequence[Envelope]
    size: int
    """Payload bytes."""
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[Position]]
    deadline: float
    abandoned: bool = False


@dataclass(slots=True)
class _Outcome:
    item: _Pending
    positions: list[Position] | None = None
    error: Exception | None = None


class _FileLock:
    """An exclusive flock on a file beside the database, shared by every process.

    flock excludes open file descriptions, not threads: each thread that writes opens its
    own (`SQLiteLog._lock`), or two threads of one process would both hold it at once.
    """

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def acquire(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)


class SQLiteLog:
    def __init__(self, path: Path, *, append_timeout_s: float = 5.0) -> None:
        self.path = path
        self.append_timeout_s = append_timeout_s
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._pending = 0
        self._pending_bytes = 0
        self._pending_lock = threading.Lock()
        self._writer: threading.Thread | None = None
        self._syncer: threading.Thread | None = None
        self._committed: queue.SimpleQueue[list[_Outcome] | None] = queue.SimpleQueue()
        self._lock_path = path.with_name(path.name + ".lock")
        self._local = threading.local()
        """Per thread: its reader and writer connections, its descriptor on the lock file."""
        self._opened: list[sqlite3.Connection | _FileLock] = []
        self._started = False
        self._turns: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
        """Appends made during the current turn of each event loop, committed together."""
        self._waiting: dict[asyncio.AbstractEventLoop, set[_Pending]] = {}
        self._watchdogs: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        if self._started:
            return
        await asyncio.to_thread(self._start_sync)

    def _start_sync(self) -> None:
        # The writer thread gives up the GIL at every SQLite step and fsync; a busy event
        # loop keeps it for the whole switch interval (5 ms) before handing it back. A shorter
        # interval lets each group commit through sooner; much shorter (0.5 ms) costs more in
        # hand-offs than it saves (measured with bench/ingest.py).
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock().held():  # one process at a time switches to WAL, creates tables
                conn = _connect(self.path)
                try:
                    for statement in _SCHEMA:
                        conn.execute(statement)
                finally:
                    conn.close()
            _fsync(self.path.parent)  # the database and WAL files' directory entries
        except (sqlite3.Error, OSError) as exc:
            raise Unavailable(f"event log at {self.path} cannot be opened: {exc}") from exc
        self._writer = threading.Thread(target=self._write_loop, name="log-writer", daemon=True)
        self._syncer = threading.Thread(target=self._sync_loop, name="log-syncer", daemon=True)
        self._writer.start()
        self._syncer.start()
        self._started = True

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self._queue.put(None)
        if self._writer is not None:
            await asyncio.to_thread(self._writer.join)
        self._committed.put(None)
        if self._syncer is not None:
            await asyncio.to_thread(self._syncer.join)
        for task in self._watchdogs.values():
            task.cancel()
        self._watchdogs.clear()
        self._waiting.clear()
        for opened in self._opened:
            opened.close()
        self._opened.clear()
        self._local = threading.local()

    def _lock(self) -> _FileLock:
        """This thread's own descriptor on the write lock file."""
        lock: _FileLock | None = getattr(self._local, "lock", None)
        if lock is None:
            lock = self._local.lock = _FileLock(self._lock_path)
            self._opened.append(lock)
        return lock

    def _writer_conn(self) -> sqlite3.Connection:
        """This thread's connection for appends; the syncer thread does their fsync."""
        conn: sqlite3.Connection | None = getattr(self._local, "writer", None)
        if conn is None:
            conn = self._local.writer = _connect(self.path, synchronous="NORMAL")
            self._opened.append(conn)
        return conn

    # -- appending -------------------------------------------------------------------------

    async def append(self, topic: Topic, envelopes: Sequence[Envelope]) -> list[Position]:
        if not envelopes:
            return []
        if not self._started:
            raise Unavailable("event log is not started")
        size = sum(len(e.payload) for e in envelopes)
        with self._pending_lock:
            if (
                self._pending + len(envelopes) > MAX_PENDING
                or self._pending_bytes + size > MAX_PENDING_BYTES
            ):
                raise Backpressure("too many appends waiting for the event log")
            self._pending += len(envelopes)
            self._pending_bytes += size
        loop = asyncio.get_running_loop()
        item = _Pending(
            topic,
            envelopes,
            size,
            loop,
            loop.create_future(),
            loop.time() + self.append_timeout_s,
        )
        self._watch(item)
        turn = self._turns.get(loop)
        if turn is None:
            turn = self._turns[loop] = []
            loop.call_soon(self._commit_turn, loop)
        turn.append(item)
        return await item.future

    def _commit_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit the appends made during one turn of `loop`: right here when they are small
        and the write lock is free, else on the writer thread."""
        batch = self._turns.pop(loop, [])
        if not self._started:  # closed during this turn
            self._unpend(batch)
            _resolve([_Outcome(item, error=Unavailable("event log is closed")) for item in batch])
            return
        small = sum(item.size for item in batch) <= INLINE_MAX_BYTES
        if not (small and self._write_batch(batch, wait=False)):
            for item in batch:
                self._queue.put(item)

    def _watch(self, item: _Pending) -> None:
        """Track the item for the watchdog, which fails it (Unavailable) past its deadline.

        One watchdog per event loop, rather than a timer per append: the hot path then
        costs a set insertion instead of a timer handle scheduled and cancelled.
        """
        waiting = self._waiting.setdefault(item.loop, set())
        waiting.add(item)
        if item.loop not in self._watchdogs:
            self._watchdogs[item.loop] = item.loop.create_task(self._watchdog(waiting))

    async def _watchdog(self, waiting: set[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        while self._started or waiting:
            await asyncio.sleep(WATCHDOG_S)
            now = loop.time()
            for item in [i for i in waiting if i.future.done() or i.deadline <= now]:
                waiting.discard(item)
                if not item.future.done():
                    # The writer skips abandoned items it has not started writing; one it has
                    # already written stays written (a retry then adds a copy with a new id).
                    item.abandoned = True
                    item.future.set_exception(
                        Unavailable("event log did not confirm the write in time")
                    )

    def _write_loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch, stop = _take_waiting(self._queue, first, _envelopes, MAX_BATCH)
            self._write_batch(batch)
            if stop:
                return

    def _write_batch(self, batch: list[_Pending], *, wait: bool = True) -> bool:
        """Commit the batch in one transaction and pass it to the syncer. Without `wait`,
        gives up (False, nothing done) when another writer holds the lock."""
        lock = self._lock()
        outcomes: list[_Outcome] = []
        try:
            if wait:
                lock.acquire()
            elif not lock.try_acquire():
                return False
            try:
                # Checked once the lock is ours: waiting for it is where a write gets stuck.
                outcomes = [_Outcome(item) for item in batch if not item.abandoned]
                conn = self._writer_conn()
                conn.execute("BEGIN IMMEDIATE")
                try:
                    by_topic: dict[Topic, list[_Outcome]] = {}
                    for outcome in outcomes:
                        by_topic.setdefault(outcome.item.topic, []).append(outcome)
                    for topic, pending in by_topic.items():
                        _insert(conn, topic, pending)
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
            finally:
                lock.release()
        except (sqlite3.Error, OSError) as exc:
            log.error("event log write failed", extra={"error": str(exc)})
            error = Unavailable(f"event log write failed: {exc}")
            if not outcomes:  # the lock itself failed: answer now, not at the deadline
                outcomes = [_Outcome(item) for item in batch if not item.abandoned]
            for outcome in outcomes:
                outcome.positions = None
                outcome.error = error
        self._unpend(batch)
        self._committed.put(outcomes)
        return True

    def _unpend(self, batch: list[_Pending]) -> None:
        with self._pending_lock:
            self._pending -= sum(len(item.envelopes) for item in batch)
            self._pending_bytes -= sum(item.size for item in batch)

    def _sync_loop(self) -> None:
        """Make committed batches durable with one fsync for all of them, then answer."""
        wal = self.path.with_name(self.path.name + "-wal")
        while True:
            first = self._committed.get()
            if first is None:
                return
            batches, stop = _take_waiting(self._committed, first, len, sys.maxsize)
            outcomes = [outcome for batch in batches for outcome in batch]
            if any(o.error is None for o in outcomes):
                try:
                    _fsync(wal if wal.exists() else self.path)
                except OSError as exc:
                    log.error("event log fsync failed", extra={"error": str(exc)})
                    for outcome in outcomes:
                        if outcome.error is None:
                            outcome.positions = None
                            outcome.error = Unavailable(f"event log sync failed: {exc}")
            _answer(outcomes)
            if stop:
                return

    # -- reading ---------------------------------------------------------------------------

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "reader", None)
        if conn is None:
            conn = self._local.reader = _connect(self.path)
            self._opened.append(conn)
        return conn

    async def partitions(self, topic: Topic) -> list[int]:
        return [PARTITION]

    async def end_offset(self, topic: Topic, partition: int) -> int:
        return await asyncio.to_thread(self._end_offset_sync, topic)

    def _end_offset_sync(self, topic: Topic) -> int:
        try:
            return _end_offset(self._reader(), topic)
        except sqlite3.Error as exc:
            raise Unavailable(f"event log read failed: {exc}") from exc

    async def read(self, topic: Topic, partition: int, offset: int, limit: int) -> list[Record]:
        if partition != PARTITION:
            return []
        return await asyncio.to_thread(self.read_sync, topic, offset, limit)

    def read_sync(self, topic: Topic, offset: int, limit: int) -> list[Record]:
        try:
            rows = (
                self._reader()
                .execute(
                    f"SELECT {_COLUMNS} FROM {_table(topic)} "
                    "WHERE log_offset >= ? ORDER BY log_offset LIMIT ?",
                    (offset, limit),
                )
                .fetchall()
            )
        except sqlite3.Error as exc:
            raise Unavailable(f"event log read failed: {exc}") from exc
        return [_record(topic, row) for row in rows]

    def read_json_sync(self, topic: Topic, offset: int, limit: int) -> JsonBatch | None:
        """Up to `limit` records at offsets >= `offset` as one JsonBatch (None if none)."""
        try:
            reader = self._reader()
            for payload in (_PAYLOAD, _CHECKED_PAYLOAD):
                sql = _JSON_LINES.format(table=_table(topic), payload=payload)
                try:
                    lines, first, last, count, apps = reader.execute(
                        sql, (offset, limit)
                    ).fetchone()
                    break
                except sqlite3.OperationalError as exc:
                    if payload is _CHECKED_PAYLOAD or "JSON" not in str(exc):
                        raise
        except sqlite3.Error as exc:
            raise Unavailable(f"event log read failed: {exc}") from exc
        if not count:
            return None
        names = [app for app in orjson.loads(apps) if isinstance(app, str)]
        return JsonBatch(Span(topic, PARTITION, first, last), count, names, lines)

    # -- consumer groups -------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[Topic]) -> SQLiteConsumer:
        return SQLiteConsumer(self, group, tuple(topics))

    async def set_committed(self, group: str, positions: Sequence[Position]) -> None:
        await asyncio.to_thread(self._set_offsets, group, positions, None)

    def committed_sync(self, group: str, topic: Topic) -> tuple[int, int | None]:
        """The group's next offset in `topic`, and how far a begun batch reaches (or None)."""
        row = (
            self._reader()
            .execute(
                "SELECT next_offset, through FROM group_offsets "
                "WHERE grp = ? AND topic = ? AND partition = ?",
                (group, topic, PARTITION),
            )
            .fetchone()
        )
        return (0, None) if row is None else (int(row[0]), row[1])

    def _set_offsets(
        self, group: str, positions: Sequence[Position], through: dict[Topic, int] | None
    ) -> None:
        """Upsert committed offsets (positions: next offset to read) or begun-batch marks."""
        try:
            conn = self._reader()
            with self._lock().held():
                conn.execute("BEGIN IMMEDIATE")
                try:
                    if through is None:
                        conn.executemany(
                            "INSERT INTO group_offsets (grp, topic, partition, next_offset) "
                            "VALUES (?, ?, ?, ?) ON CONFLICT (grp, topic, partition) "
                            "DO UPDATE SET next_offset = excluded.next_offset, through = NULL",
                            [(group, p.topic, p.partition, p.offset) for p in positions],
                        )
                    else:
                        conn.executemany(
                            "INSERT INTO group_offsets "
                            "(grp, topic, partition, next_offset, through) "
                            "VALUES (?, ?, ?, 0, ?) ON CONFLICT (grp, topic, partition) "
                            "DO UPDATE SET through = excluded.through",
                            [(group, topic, PARTITION, last) for topic, last in through.items()],
                        )
                    conn.execute("COMMIT")
                except BaseException:
                    _rollback(conn)
                    raise
        except (sqlite3.Error, OSError) as exc:
            raise Unavailable(f"event log offset commit failed: {exc}") from exc


INSERT_CHUNK = 512
"""Most rows per INSERT statement (8 parameters each; SQLite allows 32766)."""


def _insert(conn: sqlite3.Connection, topic: Topic, pending: list[_Outcome]) -> None:
    """Insert every waiting envelope of one topic with multi-row INSERTs.

    A few statements per batch rather than one per row: each SQLite step releases and
    re-takes the GIL, and a writer thread that must win the GIL back from a busy event loop
    once per row crawls. Statement sizes are powers of two, so a handful of prepared
    statements serve every batch size.
    """
    offset = _end_offset(conn, topic)
    params: list[object] = []
    for outcome in pending:
        envelopes = outcome.item.envelopes
        outcome.positions = [Position(topic, PARTITION, offset + i) for i in range(len(envelopes))]
        for e in envelopes:
            params += (offset, e.id, e.type, e.key, e.app, e.received_at, e.content_type, e.payload)
            offset += 1
    width = 8
    start, remaining = 0, len(params) // width
    while remaining:
        rows = min(INSERT_CHUNK, 1 << (remaining.bit_length() - 1))
        conn.execute(_insert_sql(topic, rows), params[start : start + rows * width])
        start += rows * width
        remaining -= rows


@functools.cache
def _insert_sql(topic: Topic, rows: int) -> str:
    values = ",".join(["(?,?,?,?,?,?,?,?)"] * rows)
    return f"INSERT INTO {_table(topic)} ({_COLUMNS}) VALUES {values}"


def _take_waiting(
    source: queue.SimpleQueue[_T | None], first: _T, weight: Callable[[_T], int], limit: int
) -> tuple[list[_T], bool]:
    """`first` and what else already waits in `source`, until the weights reach `limit`;
    and whether the stop signal (None) was taken meanwhile."""
    taken, total = [first], weight(first)
    while total < limit:
        try:
            item = source.get_nowait()
        except queue.Empty:
            break
        if item is None:
            return taken, True
        taken.append(item)
        total += weight(item)
    return taken, False


def _envelopes(item: _Pending) -> int:
    return len(item.envelopes)


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back the open transaction, if SQLite has not already: on some errors (a full
    disk, for one) it rolls back by itself, and a ROLLBACK then fails with "no transaction is
    active", hiding the error that matters."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as exc:  # the error being raised says more than this one
        log.warning("event log rollback failed", extra={"error": str(exc)})


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _answer(outcomes: list[_Outcome]) -> None:
    """Resolve the appends' futures, one hand-off per event loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome.item.loop, []).append(outcome)
    for loop, done in by_loop.items():
        with contextlib.suppress(RuntimeError):  # loop closed: nobody is waiting
            loop.call_soon_threadsafe(_resolve, done)


def _end_offset(conn: sqlite3.Connection, topic: Topic) -> int:
    (last,) = conn.execute(f"SELECT max(log_offset) FROM {_table(topic)}").fetchone()
    return 0 if last is None else int(last) + 1


def _record(topic: Topic, row: tuple[Any, ...]) -> Record:
    # The columns hold exactly what append wrote (TEXT, INTEGER, BLOB): no conversion needed.
    return Record(topic, PARTITION, row[0], Envelope(*row[1:]))


def _resolve(outcomes: list[_Outcome]) -> None:
    for outcome in outcomes:
        future = outcome.item.future
        if future.done():
            continue
        if outcome.error is not None:
            future.set_exception(outcome.error)
        else:
            assert outcome.positions is not None
            future.set_result(outcome.positions)


@dataclass(slots=True)
class _Cursor:
    next_offset: int
    through: int | None = None


@dataclass(slots=True)
class SQLiteConsumer:
    """A group member. SQLite topics have one partition, so a group has one active member:
    a second one waits in `start` until the first closes (a hot standby)."""

    log: SQLiteLog
    group: str
    topics: tuple[Topic, ...]
    poll_interval_s: float = 0.02
    _cursors: dict[Topic, _Cursor] = field(default_factory=dict)
    _member_lock: _FileLock | None = None
    _turn: int = 0

    async def start(self) -> None:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in self.group)
        lock = _FileLock(self.log.path.with_name(f"{self.log.path.name}.group.{safe}.lock"))
        # Another member is active: stand by until it leaves (an flock has no event to await).
        while not lock.try_acquire():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        self._member_lock = lock
        for topic in self.topics:
            next_offset, through = await asyncio.to_thread(
                self.log.committed_sync, self.group, topic
            )
            if through is not None and through < next_offset:
                through = None  # the begun batch was committed after all
            self._cursors[topic] = _Cursor(next_offset, through)

    async def poll(self, max_records: int, timeout_s: float) -> list[Record]:
        def read(topic: Topic, offset: int, limit: int) -> tuple[list[Record], int, int] | None:
            got = self.log.read_sync(topic, offset, limit)
            return (got, len(got), got[-1].offset) if got else None

        def take() -> list[Record]:
            return [r for records in self._take(max_records, read) for r in records]

        return await self._wait_for(take, timeout_s)

    async def poll_json(self, max_records: int, timeout_s: float) -> list[JsonBatch]:
        def read(topic: Topic, offset: int, limit: int) -> tuple[JsonBatch, int, int] | None:
            batch = self.log.read_json_sync(topic, offset, limit)
            return None if batch is None else (batch, batch.records, batch.span.last)

        return await self._wait_for(lambda: self._take(max_records, read), timeout_s)

    async def _wait_for(self, take: Callable[[], list[_T]], timeout_s: float) -> list[_T]:
        """`take()` (in a thread) until it gives something or `timeout_s` has passed."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            items = await asyncio.to_thread(take)
            if items or asyncio.get_running_loop().time() >= deadline:
                return items
            await asyncio.sleep(self.poll_interval_s)

    def _take(
        self, max_records: int, read: Callable[[Topic, int, int], tuple[_T, int, int] | None]
    ) -> list[_T]:
        """What `read(topic, offset, limit) -> (item, records in it, last offset) | None`
        gives for each topic in turn, from the cursors on, up to `max_records` records in
        all; advances the cursors."""
        # Topics take turns being read first, so a busy one cannot starve the others.
        order = self.topics[self._turn :] + self.topics[: self._turn]
        self._turn = (self._turn + 1) % max(len(self.topics), 1)
        items: list[_T] = []
        taken = 0
        for topic in order:
            room = max_records - taken
            if room <= 0:
                break
            cursor = self._cursors[topic]
            if cursor.through is not None:  # replay a begun batch exactly
                room = min(room, cursor.through - cursor.next_offset + 1)
            if room <= 0:
                continue
            got = read(topic, cursor.next_offset, room)
            if got is None:
                continue
            item, count, last = got
            cursor.next_offset = last + 1
            if cursor.through is not None and cursor.next_offset > cursor.through:
                cursor.through = None
            items.append(item)
            taken += count
        return items

    async def begin(self, spans: Sequence[Span]) -> None:
        through = {s.topic: s.last for s in spans}
        await asyncio.to_thread(self.log._set_offsets, self.group, [], through)

    async def commit(self, spans: Sequence[Span]) -> None:
        last: dict[Topic, int] = {}
        for s in spans:
            last[s.topic] = max(s.last, last.get(s.topic, -1))
        positions = [Position(t, PARTITION, o + 1) for t, o in last.items()]
        await asyncio.to_thread(self.log._set_offsets, self.group, positions, None)

    async def lag(self) -> int:
        total = 0
        for topic in self.topics:
            end = await self.log.end_offset(topic, PARTITION)
            committed, _ = await asyncio.to_thread(self.log.committed_sync, self.group, topic)
            total += max(end - committed, 0)
        return total

    async def close(self) -> None:
        if self._member_lock is not None:
            self._member_lock.close()  # closing the descriptor releases the flock
            self._member_lock = None
