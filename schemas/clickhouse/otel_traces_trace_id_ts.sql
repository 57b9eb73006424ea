-- Where a trace lies in time, for "find trace by id" queries: the exporter's
-- otel_traces_trace_id_ts with App added. The exporter fills it from otel_traces through a
-- materialized view; Hutch's otel_traces projection writes these rows itself (one per app,
-- trace and batch: first and last span start), so readers take min(Start) and max(End).
CREATE TABLE IF NOT EXISTS otel_traces_trace_id_ts
(
    App LowCardinality(String),
    TraceId String CODEC(ZSTD(1)),
    Start DateTime CODEC(Delta, ZSTD(1)),
    End DateTime CODEC(Delta, ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
PARTITION BY toDate(Start)
ORDER BY (App, TraceId, Start)
TTL toDateTime(Start) + toIntervalDay({retention_days})
SETTINGS index_granularity = 8192, ttl_only_drop_parts = 1, non_replicated_deduplication_window = 1000
