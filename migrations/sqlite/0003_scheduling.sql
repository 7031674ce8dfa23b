CREATE TABLE doctor_schedules (
    doctor_id                   BLOB PRIMARY KEY NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
    time_zone                   TEXT NOT NULL,
    slot_minutes                INTEGER NOT NULL CHECK (slot_minutes BETWEEN 10 AND 120),
    min_notice_minutes          INTEGER NOT NULL CHECK (min_notice_minutes >= 0),
    booking_horizon_days        INTEGER NOT NULL CHECK (booking_horizon_days >= 1),
    cancellation_notice_minutes INTEGER NOT NULL CHECK (cancellation_notice_minutes >= 0),
    weekly                      TEXT NOT NULL, -- JSON [{weekday, start, end}]
    exceptions                  TEXT NOT NULL, -- JSON [{date, available, windows}]
    updated_at                  TEXT NOT NULL
);

CREATE TABLE appointments (
    id                  BLOB PRIMARY KEY NOT NULL,
    doctor_id           BLOB NOT NULL REFERENCES doctors (id),
    patient_id          BLOB NOT NULL REFERENCES users (id),
    starts_at           TEXT NOT NULL,
    ends_at             TEXT NOT NULL,
    status              TEXT NOT NULL CHECK (status IN ('PENDING_PAYMENT', 'CONFIRMED', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED', 'NO_SHOW')),
    reason              TEXT NOT NULL,
    fee_amount          INTEGER NOT NULL,
    fee_currency        TEXT NOT NULL,
    cancelled_by        TEXT CHECK (cancelled_by IN ('PATIENT', 'DOCTOR', 'ADMIN')),
    cancellation_reason TEXT,
    created_at          TEXT NOT NULL,
    confirmed_at        TEXT,
    started_at          TEXT,
    completed_at        TEXT,
    cancelled_at        TEXT,
    no_show_at          TEXT,
    updated_at          TEXT NOT NULL,
    CHECK (ends_at > starts_at)
);

-- The guarantee against double booking: one live appointment per doctor and start.
CREATE UNIQUE INDEX appointments_one_per_slot ON appointments (doctor_id, starts_at)
    WHERE status <> 'CANCELLED';
CREATE INDEX appointments_patient ON appointments (patient_id, starts_at, id);
CREATE INDEX appointments_doctor ON appointments (doctor_id, starts_at, id);

CREATE TABLE reviews (
    id             BLOB PRIMARY KEY NOT NULL,
    appointment_id BLOB NOT NULL UNIQUE REFERENCES appointments (id),
    doctor_id      BLOB NOT NULL REFERENCES doctors (id),
    patient_id     BLOB NOT NULL REFERENCES users (id),
    rating         INTEGER NOT NULL CHECK (rating BETWEEN 1 AND 5),
    comment        TEXT NOT NULL,
    created_at     TEXT NOT NULL
);

CREATE INDEX reviews_doctor ON reviews (doctor_id, created_at, id);
