-- Every secret an app has had since rotation exists (app.secret_rotated.v1): the current one
-- (expires_at NULL, also in apps.secret_hash) and earlier ones, which work until expires_at
-- (a rotation's grace period) and then never again. Written by the identity projection
-- (projections/identity.py). Hashes as in 0001; times in microseconds since the epoch, UTC.

CREATE TABLE app_secrets (
    secret_hash TEXT PRIMARY KEY,
    app TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT
);

CREATE INDEX app_secrets_by_app ON app_secrets (app);

INSERT INTO app_secrets (secret_hash, app, created_at)
SELECT secret_hash, name, created_at FROM apps;
