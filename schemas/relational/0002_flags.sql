-- Feature flags (projections/flags.py): each app's current definitions, and per app where in
-- the log its last flag change is, which GET /v1/flags turns into an ETag. `definition` is the
-- canonical JSON of schemas/flags.py `flag_to_json`. Times are microseconds since the epoch.

CREATE TABLE flags (
    app TEXT NOT NULL,
    name TEXT NOT NULL,
    definition TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    updated_by TEXT NOT NULL,
    PRIMARY KEY (app, name)
);

CREATE TABLE flag_versions (
    app TEXT PRIMARY KEY,
    log_partition INTEGER NOT NULL,
    log_offset BIGINT NOT NULL,
    changed_at BIGINT NOT NULL
);
