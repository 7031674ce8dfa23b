CREATE TABLE doctor_schedules (
    doctor_id                   UUID PRIMARY KEY REFERENCES doctors (id) ON DELETE CASCADE,
    time_zone                   TEXT NOT NULL,
    slot_minutes                BIGINT NOT NULL CHECK (slot_minutes BETWEEN 10 AND 120),
    min_notice_minutes          BIGINT NOT NULL CHECK (min_notice_minutes >= 0),
    booking_horizon_days        BIGINT NOT NULL CHECK (booking_horizon_days >= 1),
    cancellation_notice_minutes BIGINT NOT NULL CHECK (cancellation_notice_minutes >= 0),
    weekly                      TEXT NOT NULL, -- JSON [{weekday, start, end}]
    exceptions                  TEXT NOT NULL, -- JSON [{date, available, windows}]
    updated_at                  TIMESTAMPTZ NOT NULL
);

CREATE TABLE appointments (
    id                  UUID PRIMARY KEY,
    doctor_id           UUID NOT NULL REFERENCES doctors (id),
    patient_id          UUID NOT NULL REFERENCES users (id),
    starts_at           TIMESTAMPTZ NOT NULL,
    ends_at             TIMESTAMPTZ NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'CONFIRMED', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED', 'NO_SHOW')),
    reason              TEXT NOT NULL,
    fee_amount          BIGINT NOT NULL,
    fee_currency        TEXT NOT NULL,
    cancelled_by        TEXT CHECK (cancelled_by IN ('PATIENT', 'DOCTOR', 'ADMIN')),
    cancellation_reason TEXT,
    created_at          TIMESTAMPTZ NOT NULL,
    confirmed_at        TIMESTAMPTZ,
    started_at          TIMESTAMPTZ,
    completed_at        TIMESTAMPTZ,
    cancelled_at        TIMESTAMPTZ,
    no_show_at          TIMESTAMPTZ,
    updated_at          TIMESTAMPTZ NOT NULL,
    CHECK (ends_at > starts_at)
);

-- The guarantee against double booking: one live appointment per doctor and start.
CREATE UNIQUE INDEX appointments_one_per_slot ON appointments (doctor_id, starts_at)
    WHERE status <> 'CANCELLED';
CREATE INDEX appointments_patient ON appointments (patient_id, starts_at, id);
CREATE INDEX appointments_doctor ON appointments (doctor_id, starts_at, id);

CREATE TABLE reviews (
    id             UUID PRIMARY KEY,
    appointment_id UUID NOT NULL UNIQUE REFERENCES appointments (id),
    doctor_id      UUID NOT NULL REFERENCES doctors (id),
    patient_id     UUID NOT NULL REFERENCES users (id),
    rating         BIGINT NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment        TEXT NOT NULL,
    created_at     TIMESTAMPTZ NOT NULL
);

CREATE INDEX reviews_doctor ON reviews (doctor_id, created_at, id);
