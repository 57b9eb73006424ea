-- App telemetry events (POST /api/telemetry), newest first per app.
-- ORDER BY (app, received_at, id): listings read one app's newest rows in key order and stop
-- after a page; the id makes the order total, so a cursor (received_at, id) is exact.
-- Retention is per app: each row carries its app's retention at projection time.
CREATE TABLE IF NOT EXISTS telemetry_events
(
    app LowCardinality(String),
    received_at DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    id UUID,
    kind Enum8('error' = 1, 'warning' = 2, 'info' = 3, 'trace' = 4, 'debug' = 5),
    version LowCardinality(String),
    bits String CODEC(ZSTD(1)),
    retention_days UInt16,
    INDEX idx_version version TYPE set(256) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toDate(received_at)
ORDER BY (app, received_at, id)
TTL toDateTime(received_at) + toIntervalDay(retention_days)
SETTINGS non_replicated_deduplication_window = 1000, index_granularity = 2048
