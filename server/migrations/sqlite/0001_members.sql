-- Members who joined through the signup page, keyed by their Open Humans project member ID
-- (text: leading zeros matter).
CREATE TABLE members (
    project_member_id TEXT PRIMARY KEY NOT NULL,
    username TEXT,
    -- JSON list of the source id_labels the member granted, as exchange-member reports them.
    sources_shared TEXT NOT NULL DEFAULT '[]',
    -- OAuth2 tokens, AES-256-GCM encrypted (nonce followed by ciphertext), bound to the member ID.
    access_token BLOB,
    refresh_token BLOB,
    -- Unix seconds when the access token expires.
    token_expires_at BIGINT NOT NULL DEFAULT 0,
    -- Bumped by every token change: refreshes compare and swap on it, so two instances sharing
    -- the database never both spend the same refresh token.
    token_version BIGINT NOT NULL DEFAULT 0,
    -- A refresh in progress: who holds it and until when (unix seconds, 0 when free).
    refresh_lease_owner TEXT,
    refresh_lease_until BIGINT NOT NULL DEFAULT 0,
    -- 1 when Open Humans refused the tokens (invalid_grant, "Invalid token."): the member must
    -- authorize again.
    needs_reauth BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

-- Browser sessions (tower-sessions), shared by every instance.
CREATE TABLE sessions (
    id TEXT PRIMARY KEY NOT NULL,
    data BLOB NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
