-- Email verification. Accounts made before it count as verified: they were in use before
-- verification existed, and MEDILINK_REQUIRE_VERIFIED_EMAIL must not lock them out of booking
-- and calling without a word.
ALTER TABLE users ADD COLUMN email_verified_at TEXT;
UPDATE users SET email_verified_at = created_at;

-- Password-reset and email-verification tokens, stored only as SHA-256 hashes. One per account
-- and purpose: a newer token replaces the older, and using one deletes it.
CREATE TABLE account_tokens (
    user_id    BLOB NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('PASSWORD_RESET', 'EMAIL_VERIFICATION')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    PRIMARY KEY (user_id, purpose)
);

-- Mail waiting to be sent. A worker claims a due row by moving next_attempt_at past its lease
-- and stamping lease_id; a sent row is deleted, a failed one waits for its next attempt.
CREATE TABLE outbox (
    id              BLOB PRIMARY KEY NOT NULL,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    created_at      TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_id        BLOB,
    last_error      TEXT
);

CREATE INDEX outbox_due ON outbox (next_attempt_at);
