-- Publishing (issue 17): the SSH keys developers publish with, and each app's source
-- repository. Identity projection, `apps` topic (schemas/publish/ssh_keys.py,
-- schemas/publish/app_sources.py). The private key is only ever here sealed (`ciphertext`,
-- AES-GCM under the key `key_id` names: base/secret_box.py). Times in microseconds since the
-- epoch, UTC.

CREATE TABLE ssh_keys (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    label TEXT NOT NULL,
    key_type TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    public_key TEXT NOT NULL,
    ciphertext TEXT NOT NULL,
    key_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    deleted_at BIGINT
);

CREATE INDEX ssh_keys_by_owner ON ssh_keys (owner);

-- https://..., ssh://... or scp-like user@host:path, as the developer wrote it; NULL: none.
ALTER TABLE apps ADD COLUMN source_repository TEXT;
