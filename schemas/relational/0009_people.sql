-- People (issue 16): developers' GitHub accounts, browser sessions, tenants' GitHub App
-- installations, repositories and e-mail, and the GitHub webhook deliveries received.
-- Identity projection, `apps` topic (schemas/people.py). Times in microseconds since the
-- epoch, UTC.

CREATE TABLE github_accounts (
    github_id BIGINT PRIMARY KEY,
    developer TEXT NOT NULL UNIQUE,
    login TEXT NOT NULL,
    name TEXT,
    email TEXT,
    avatar_url TEXT,
    linked_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- The session-token cookie's SHA-256; the token is 256 random bits, so a slow hash adds
-- nothing (as for API tokens).
CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    developer TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);

CREATE INDEX sessions_by_developer ON sessions (developer);

CREATE TABLE tenant_installations (
    installation_id BIGINT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    account_login TEXT NOT NULL,
    account_id BIGINT NOT NULL,
    account_type TEXT NOT NULL,
    repository_selection TEXT NOT NULL,
    avatar_url TEXT,
    linked_at BIGINT NOT NULL,
    removed_at BIGINT
);

CREATE INDEX tenant_installations_by_tenant ON tenant_installations (tenant_id);
CREATE INDEX tenant_installations_by_account ON tenant_installations (account_id);

CREATE TABLE tenant_repositories (
    installation_id BIGINT NOT NULL,
    repository_id BIGINT NOT NULL,
    full_name TEXT NOT NULL,
    PRIMARY KEY (installation_id, repository_id)
);

ALTER TABLE tenants ADD COLUMN email TEXT;

-- Each verification link mailed: followed once (used_at), and every other link of the
-- tenant is used up when one is followed.
CREATE TABLE tenant_email_links (
    jti TEXT PRIMARY KEY,
    tenant_id TEXT NOT NULL,
    email TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);

CREATE INDEX tenant_email_links_by_tenant ON tenant_email_links (tenant_id);

CREATE TABLE github_deliveries (
    delivery_id TEXT PRIMARY KEY,
    event TEXT NOT NULL,
    action TEXT,
    installation_id BIGINT,
    received_at BIGINT NOT NULL
);
