-- Feature-flag evaluations reported by SDKs (POST /v1/flags/eval), one row per report.
-- ORDER BY (App, FlagName, Timestamp): stats read one flag of one app over a time range.
-- EventId and EventIndex (the report's place in its request) identify a row. Variant and
-- AppVersion are '' when the report has none; Known says whether the app defined the flag
-- when the report arrived (unknown flags point to stale clients). Context values are text,
-- written as JavaScript's String() would. Retention is per app, carried by each row.
CREATE TABLE IF NOT EXISTS flag_evaluations
(
    App LowCardinality(String),
    FlagName LowCardinality(String),
    Timestamp DateTime64(6, 'UTC') CODEC(Delta(8), ZSTD(1)),
    Enabled Bool,
    Variant LowCardinality(String),
    AppVersion LowCardinality(String),
    Known Bool,
    Context Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventId UUID,
    EventIndex UInt32,
    RetentionDays UInt16
)
ENGINE = MergeTree
PARTITION BY toDate(Timestamp)
ORDER BY (App, FlagName, Timestamp)
TTL toDateTime(Timestamp) + toIntervalDay(RetentionDays)
SETTINGS non_replicated_deduplication_window = 1000
