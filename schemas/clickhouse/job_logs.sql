-- CI job log lines (`job.log.v1` on the `jobs` topic), one row per line.
-- ORDER BY (Tenant, JobUuid, Seq): a job's log is one range of the key, read in line order;
-- SQL scopes the table by Tenant. Seq numbers a line within its job (the runner's numbering,
-- all tasks and the setup step together); Task is `setup` for the setup log.
-- A runner that retries a batch sends the same lines under the same Seq again: merges keep
-- one row per (Tenant, JobUuid, Seq) (ReplacingMergeTree); until they have, the log routes
-- take one row per Seq (`LIMIT 1 BY Seq`) and POST /api/sql reads the table FINAL. Jobs
-- have no app: retention is table-wide, as for the otel_* tables.
CREATE TABLE IF NOT EXISTS job_logs
(
    Tenant LowCardinality(String),
    JobNumber UInt64 CODEC(ZSTD(1)),
    JobUuid String CODEC(ZSTD(1)),
    Task LowCardinality(String),
    Seq UInt64 CODEC(Delta(8), ZSTD(1)),
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    Line String CODEC(ZSTD(1))
)
ENGINE = ReplacingMergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (Tenant, JobUuid, Seq)
TTL toDateTime(Timestamp) + toIntervalDay({retention_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000
