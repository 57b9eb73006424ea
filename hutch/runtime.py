"""What a running process holds: the backends it opened and the projectors it runs.

Adapters are created cheaply up front and started in `start()`, which each ASGI worker calls
from its lifespan startup, after gunicorn's fork; the analytics store is opened only by the
process that asked for it (chDB allows one per data directory), which owns the data directory
for as long (hutch/data_lock.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from base.github import GitHub
from base.keys import derive, secret_key
from base.prometheus import TALLY, flush_forever
from base.secret_box import SecretBox, box_from_settings
from base.settings import Settings, url_scheme
from hutch.data_lock import DataLock, acquire
from hutch.wiring import open_analytics, open_log, open_relational
from ingest.job_triggers import run_forever as run_triggers
from ingest.publish.runs_worker import run_forever as run_publish_runs
from projections.flag_evaluations import FlagEvaluationsProjection
from projections.interface import AnalyticsProjection
from projections.job_logs import JobLogsProjection
from projections.otel_logs import OtelLogsProjection
from projections.otel_metrics import OtelMetricsProjection
from projections.otel_traces import OtelTracesProjection
from projections.runner import AnalyticsRunner, ensure_tables, group_name
from projections.telemetry import TelemetryProjection
from state import identity_reads as q
from state.command_context import RELATIONAL, CommandContext
from state.flags.cache import FlagCache
from state.relational import RelationalProjection
from state.relational import run_forever as run_relational
from storage.analytics import Analytics
from storage.errors import StorageError
from storage.log import EventLog
from storage.objects import ObjectStore, open_object_store
from storage.relational import Relational
from web.auth import Authenticator
from web.redirects import allowed_origins
from web.worker_auth import ProvisionerAuth, WorkerAuth

log = logging.getLogger(__name__)

RETENTION_REFRESH_S = 5.0
GC_THRESHOLD = 50_000


async def supervise(
    start: Callable[[], Awaitable[None]], name: str, stop: asyncio.Event, pause_s: float = 1.0
) -> None:
    """Run a projector until `stop`; if it fails, log it and start it again.

    A CancelledError counts as a failure too unless this task itself is being cancelled: a
    library can let one escape from its own cancelled tasks (aiokafka's consumer stop did),
    and a projector that ended on it would otherwise stop for good, silently."""
    while not stop.is_set():
        try:
            await start()
        except (Exception, asyncio.CancelledError):
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise
            log.exception("projector failed; restarting", extra={"projector": name})
            await asyncio.sleep(pause_s)


def tune_gc() -> None:
    """Collect far less often than the default thresholds (700, 10, 10), and leave what
    start-up created out of collections for good.

    Projectors hold batches of hundreds of thousands of small objects: building one batch
    triggered hundreds of collections, and the full ones rescanned everything alive (reading
    a batch from the log ran at half speed). Ingest workers hold a few hundred requests
    waiting on the log's fsync: their objects outlive the young generation, and collections
    that rescanned the app's whole heap took a tenth of each worker (bench/ingest.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 50)


def claim_analytics(settings: Settings) -> DataLock | None:
    """Own the data directory if the analytics store is chDB (one process per directory):
    DataDirInUse if another process does."""
    if url_scheme(settings.analytics_url) != "chdb":
        return None
    return acquire(settings.data, wait_s=settings.start_wait_s)


OTLP_BATCH_RECORDS = 500
"""Most OTLP log records a projector takes at once: each is a whole export request (often
hundreds of spans, points or log records), so HUTCH_PROJECTOR_BATCH, counted in records,
would make batches of millions of rows. 500 requests of 100 spans: 50,000 rows, ~17 MB
encoded; fewer, larger inserts than with 200 (bench/otlp.py --batch 200: ~30% fewer
spans/s)."""


@dataclass
class Runtime:
    settings: Settings
    want_analytics: bool = False
    run_projectors: bool = False
    log: EventLog = field(init=False)
    db: Relational = field(init=False)
    auth: Authenticator = field(init=False)
    flags: FlagCache = field(init=False)
    analytics: Analytics | None = field(init=False, default=None)
    secret: bytes = field(init=False, repr=False)
    secret_box: SecretBox = field(init=False, repr=False)
    objects: ObjectStore = field(init=False)
    workers: WorkerAuth = field(init=False)
    provisioners: ProvisionerAuth = field(init=False)
    github: GitHub = field(init=False)
    _stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)
    _retention: dict[str, int] = field(init=False, default_factory=dict)
    _retention_at: float = field(init=False, default=0.0)
    _started: bool = field(init=False, default=False)
    _flusher: asyncio.Task[None] | None = field(init=False, default=None)
    _owner: DataLock | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        if self.want_analytics or self.run_projectors:
            self._owner = claim_analytics(self.settings)  # before anything is opened
        self.log = open_log(self.settings)
        self.db = open_relational(self.settings)
        self.secret = secret_key(self.settings)
        self.auth = Authenticator(
            self.db,
            csrf_key=derive(self.secret, "csrf"),
            origins=allowed_origins(self.settings),
        )
        self.flags = FlagCache(self.db)
        self.secret_box = box_from_settings(self.settings, self.secret)
        self.objects = open_object_store(
            self.settings.objects_url,
            public_url=self.settings.public_url,
            secret=derive(self.secret, "objects"),
        )
        self.workers = WorkerAuth(self.db)
        self.provisioners = ProvisionerAuth(self.db)
        self.github = GitHub(self.settings)  # no I/O until a call
        if self.want_analytics or self.run_projectors:
            try:
                self.analytics = open_analytics(self.settings)
            except BaseException:
                self.release()
                raise

    @property
    def command_context(self) -> CommandContext:
        return CommandContext(
            self.log,
            self.db,
            self.settings,
            self.objects,
            client_key=derive(self.secret, "download-clients"),
            upload_key=derive(self.secret, "upload-keys"),
            secret_box=self.secret_box,
        )

    @property
    def objects_served_here(self) -> bool:
        """Whether Hutch serves the object store's signed URLs itself (file://)."""
        return self.settings.objects_url.startswith("file:")

    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        self._stop = asyncio.Event()
        self._flusher = asyncio.create_task(flush_forever(), name="metrics-flush")
        await self.log.start()
        try:
            await self.objects.start()
        except StorageError:
            # Everything but uploads and downloads can work without it; those answer 503.
            log.exception("the object store is unavailable", extra={"url": "HUTCH_OBJECTS"})
        if self.analytics is not None:
            for projection in self.analytics_projections():
                await asyncio.to_thread(ensure_tables, self.analytics, projection)
        if self.run_projectors:
            tune_gc()
            self.start_projectors()

    def start_projectors(self) -> None:
        analytics = self.analytics
        assert analytics is not None
        for projection in self.analytics_projections():

            def runner(p: AnalyticsProjection = projection) -> Awaitable[None]:
                consumer = self.log.consumer(group_name(p), p.topics)
                return AnalyticsRunner(
                    p,
                    consumer,
                    analytics,
                    batch=self.batch_of(p),
                    linger_s=self.settings.projector_wait_ms / 1000,
                ).run(self._stop)

            self._spawn(runner, projection.name)
        relational = self.relational_projections()
        self._spawn(
            lambda: run_relational(self.log, self.db, relational, stop=self._stop), "relational"
        )
        self._spawn(
            lambda: run_triggers(self.log, self.db, self.settings, stop=self._stop), "job-triggers"
        )
        self._spawn(lambda: run_publish_runs(self.command_context, stop=self._stop), "publish-runs")

    def _spawn(self, start: Callable[[], Awaitable[None]], name: str) -> None:
        self._tasks.append(
            asyncio.create_task(supervise(start, name, self._stop), name=f"projector:{name}")
        )

    def analytics_projections(self) -> list[AnalyticsProjection]:
        # The otel_* tables keep the exporter's table-wide TTL, so they take the default
        # retention; an app's own retention applies to the tables that carry it per row.
        days = self.settings.retention_days
        return [
            TelemetryProjection(self.retention_of),
            OtelTracesProjection(days),
            OtelLogsProjection(days),
            OtelMetricsProjection(days),
            FlagEvaluationsProjection(self.retention_of),
            JobLogsProjection(days),
        ]

    def batch_of(self, projection: AnalyticsProjection) -> int:
        """Log records per projector batch for this projection."""
        if any(topic.startswith("otlp.") for topic in projection.topics):
            return min(self.settings.projector_batch, OTLP_BATCH_RECORDS)
        return self.settings.projector_batch

    def relational_projections(self) -> list[RelationalProjection]:
        return list(RELATIONAL)

    def retention_of(self, app: str) -> int:
        """An app's retention in days, from a copy of the apps table refreshed every few
        seconds (called by projector transforms, in a worker thread)."""
        now = time.monotonic()
        age = now - self._retention_at
        if age > RETENTION_REFRESH_S or (app not in self._retention and age > 0.5):
            self._retention = q.retention_days(self.db)
            self._retention_at = now
        return self._retention.get(app, self.settings.retention_days)

    def release(self) -> None:
        """Close the analytics store: chDB holds one data path per process at a time."""
        if self.analytics is not None:
            self.analytics.close()
            self.analytics = None
        if self._owner is not None:
            self._owner.release()
            self._owner = None

    async def close(self) -> None:
        if not self._started:
            return
        self._started = False
        self._stop.set()
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        TALLY.flush()
        for task in self._tasks:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        self._tasks.clear()
        await self.log.close()
        await self.objects.close()
        self.db.close()
