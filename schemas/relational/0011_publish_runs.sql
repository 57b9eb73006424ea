-- Publish runs (issue 17): a build's generated files committed to a git remote over SSH
-- (publish projection, `publish` topic). Times in microseconds since the epoch, UTC; lists as
-- JSON text.

CREATE TABLE publish_runs (
    id TEXT PRIMARY KEY,
    developer TEXT NOT NULL,
    app TEXT NOT NULL,
    version TEXT NOT NULL,
    remote TEXT NOT NULL,
    branch TEXT NOT NULL,
    ssh_key_id TEXT NOT NULL,
    files TEXT NOT NULL,
    known_hosts TEXT,
    author_name TEXT NOT NULL,
    author_email TEXT NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    commit_sha TEXT,
    message TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    started_at BIGINT,
    finished_at BIGINT
);

CREATE INDEX publish_runs_by_developer ON publish_runs (developer, status);
-- The runner resumes the unfinished runs when it starts.
CREATE INDEX publish_runs_by_status ON publish_runs (status, created_at);

CREATE TABLE publish_steps (
    run_id TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT NOT NULL,
    log TEXT NOT NULL,
    PRIMARY KEY (run_id, attempt, name)
);

-- Host keys trusted on first use, per developer and remote host: one developer's first
-- connection decides nothing for another's.
CREATE TABLE publish_known_hosts (
    developer TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    known_hosts TEXT NOT NULL,
    fingerprints TEXT NOT NULL,
    stored_at BIGINT NOT NULL,
    PRIMARY KEY (developer, host, port)
);
