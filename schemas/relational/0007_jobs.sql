-- CI jobs (docs/jobs.md): tenants and their members, token scopes and secrets (identity
-- projection, `apps` topic); jobs, their tasks, artifacts, trigger deliveries and the
-- provisioners that run them (jobs projection, `jobs` topic). Times in microseconds since the
-- epoch, UTC; lists as JSON text.

ALTER TABLE tokens ADD COLUMN scopes TEXT;

CREATE TABLE tenants (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    owner TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE tenant_members (
    tenant_id TEXT NOT NULL,
    developer TEXT NOT NULL,
    role TEXT NOT NULL,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, developer)
);

CREATE INDEX tenant_members_by_developer ON tenant_members (developer);

CREATE TABLE secrets (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    path TEXT,
    mode INTEGER NOT NULL,
    ciphertext TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);

CREATE INDEX secrets_by_owner ON secrets (owner);

CREATE TABLE jobs (
    uuid TEXT PRIMARY KEY,
    number BIGINT NOT NULL UNIQUE,
    tenant_id TEXT NOT NULL,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    manifest TEXT NOT NULL,
    image TEXT NOT NULL,
    note TEXT,
    tags TEXT NOT NULL,
    read_access TEXT NOT NULL,
    write_access TEXT NOT NULL,
    execute INTEGER NOT NULL,
    use_secrets INTEGER NOT NULL,
    vcpus INTEGER NOT NULL,
    cpu_architecture TEXT NOT NULL,
    timeout_s INTEGER NOT NULL,
    triggers TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    queued_at BIGINT,
    started_at BIGINT,
    finished_at BIGINT,
    lease_id TEXT,
    provisioner TEXT,
    host TEXT,
    lease_until BIGINT,
    attempt INTEGER NOT NULL,
    cancel_requested INTEGER NOT NULL,
    log_lines BIGINT NOT NULL
);

CREATE INDEX jobs_by_tenant ON jobs (tenant_id, uuid);
CREATE INDEX jobs_by_owner ON jobs (owner, number);
CREATE INDEX jobs_queue ON jobs (status, cpu_architecture, vcpus, number);

CREATE TABLE job_tasks (
    job_uuid TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT,
    PRIMARY KEY (job_uuid, position)
);

CREATE TABLE job_artifacts (
    job_uuid TEXT NOT NULL,
    path TEXT NOT NULL,
    object_key TEXT NOT NULL,
    size BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (job_uuid, path)
);

CREATE TABLE job_trigger_deliveries (
    job_uuid TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,
    at BIGINT NOT NULL,
    PRIMARY KEY (job_uuid, action, target, attempt)
);

CREATE TABLE provisioners (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
