-- Builds: uploaded app builds with their download counts (BuildHut distribution), app icons,
-- web-app builds run by builder workers, and those workers. All written by the `builds`
-- projection (projections/builds.py). Times are microseconds since the Unix epoch, UTC.

CREATE TABLE app_builds (
    id TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    developer TEXT NOT NULL,
    version TEXT NOT NULL,
    file_name TEXT NOT NULL,
    object_key TEXT NOT NULL UNIQUE,
    os TEXT NOT NULL,
    architecture TEXT NOT NULL,
    format TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    content_type TEXT NOT NULL,
    uploaded_at BIGINT NOT NULL,
    downloads BIGINT NOT NULL DEFAULT 0
);

CREATE INDEX app_builds_latest ON app_builds (app, uploaded_at, id);

CREATE INDEX app_builds_platform ON app_builds (app, os, format, uploaded_at);

CREATE TABLE app_build_downloads (
    build_id TEXT NOT NULL,
    day TEXT NOT NULL,
    downloads BIGINT NOT NULL,
    PRIMARY KEY (build_id, day)
);

-- The last counted download per client and build: the 30-second debounce.
CREATE TABLE download_clients (
    build_id TEXT NOT NULL,
    client TEXT NOT NULL,
    counted_at BIGINT NOT NULL,
    PRIMARY KEY (build_id, client)
);

CREATE INDEX download_clients_age ON download_clients (counted_at);

CREATE TABLE app_icons (
    app TEXT PRIMARY KEY,
    object_key TEXT NOT NULL,
    content_type TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE web_builds (
    id TEXT PRIMARY KEY,
    developer TEXT NOT NULL,
    url TEXT NOT NULL,
    name TEXT NOT NULL,
    bundle_id TEXT NOT NULL,
    version TEXT NOT NULL,
    permissions TEXT NOT NULL,
    platform TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    completed_at BIGINT,
    error TEXT,
    attempt INTEGER NOT NULL DEFAULT 0,
    claim_id TEXT,
    worker TEXT,
    lease_until BIGINT,
    artifact_key TEXT,
    artifact_size BIGINT,
    artifact_sha256 TEXT
);

CREATE INDEX web_builds_by_developer ON web_builds (developer, created_at, id);

CREATE INDEX web_builds_queue ON web_builds (platform, status, created_at);

CREATE INDEX web_builds_by_bundle ON web_builds (developer, bundle_id, platform);

CREATE TABLE builder_workers (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    prefix TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
