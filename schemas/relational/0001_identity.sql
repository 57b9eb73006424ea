-- Identity: developers own apps (ingest secrets) and API tokens. Secrets and tokens are
-- stored as SHA-256 hex digests; they are 256-bit random values, so a slow hash adds nothing.
-- Times are microseconds since the Unix epoch, UTC.

CREATE TABLE projection_positions (
    projection TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (projection, topic, partition)
);

CREATE TABLE developers (
    name TEXT PRIMARY KEY,
    created_at BIGINT NOT NULL
);

CREATE TABLE apps (
    name TEXT PRIMARY KEY,
    developer TEXT NOT NULL,
    secret_hash TEXT NOT NULL UNIQUE,
    retention_days INTEGER NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX apps_by_developer ON apps (developer);

CREATE TABLE tokens (
    id TEXT PRIMARY KEY,
    developer TEXT NOT NULL,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT,
    revoked_at BIGINT
);

CREATE INDEX tokens_by_developer ON tokens (developer);
