-- Email verification. Accounts made before it count as verified: they were in use before
-- verification existed, and MEDILINK_REQUIRE_VERIFIED_EMAIL must not lock them out of booking
-- and calling without a word.
ALTER TABLE users ADD COLUMN email_verified_at TIMESTAMPTZ;
UPDATE users SET email_verified_at = created_at;

-- Password-reset and email-verification tokens, stored only as SHA-256 hashes. One per account
-- and purpose: a newer token replaces the older, and using one deletes it.
CREATE TABLE account_tokens (
    user_id    UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('PASSWORD_RESET', 'EMAIL_VERIFICATION')),
    token_hash TEXT NOT NULL UNIQUE,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (user_id, purpose)
);

-- Mail waiting to be sent. A worker claims a due row by moving next_attempt_at past its lease
-- and stamping lease_id; a sent row is deleted, a failed one waits for its next attempt.
CREATE TABLE outbox (
    id              UUID PRIMARY KEY,
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    subject         TEXT NOT NULL,
    text_body       TEXT NOT NULL,
    html_body       TEXT NOT NULL,
    created_at      TIMESTAMPTZ NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    lease_id        UUID,
    last_error      TEXT
);

CREATE INDEX outbox_due ON outbox (next_attempt_at);
