-- A doctor's Stripe Connect account and what Stripe last said it can do.
ALTER TABLE doctors ADD COLUMN stripe_account_id TEXT;
ALTER TABLE doctors ADD COLUMN charges_enabled BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE doctors ADD COLUMN payouts_enabled BOOLEAN NOT NULL DEFAULT false;
CREATE UNIQUE INDEX doctors_stripe_account ON doctors (stripe_account_id);

-- Until when a booking that waits for payment holds its slot; NULL when no payment was asked.
ALTER TABLE appointments ADD COLUMN payment_due_at TIMESTAMPTZ;
CREATE INDEX appointments_payment_due ON appointments (payment_due_at)
    WHERE status = 'PENDING_PAYMENT';

CREATE TABLE payments (
    id                  UUID PRIMARY KEY,
    appointment_id      UUID NOT NULL UNIQUE REFERENCES appointments (id),
    status              TEXT NOT NULL CHECK (status IN ('UNPAID', 'PAID', 'REFUND_PENDING', 'REFUNDED', 'FAILED')),
    amount              BIGINT NOT NULL CHECK (amount > 0),
    currency            TEXT NOT NULL,
    platform_fee        BIGINT NOT NULL CHECK (platform_fee >= 0 AND platform_fee <= amount),
    destination_account TEXT NOT NULL,
    checkout_session_id TEXT UNIQUE,
    checkout_url        TEXT,
    expires_at          TIMESTAMPTZ NOT NULL,
    payment_intent_id   TEXT,
    refund_id           TEXT,
    note                TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    paid_at             TIMESTAMPTZ,
    refunded_at         TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL
);

CREATE INDEX payments_created ON payments (created_at, id);
CREATE INDEX payments_intent ON payments (payment_intent_id);

-- Each Stripe event takes effect once, however often it is delivered.
CREATE TABLE stripe_events (
    id                  TEXT PRIMARY KEY NOT NULL,
    type                TEXT NOT NULL,
    received_at         TIMESTAMPTZ NOT NULL
);
