CREATE TABLE doctors (
    id                  BLOB PRIMARY KEY NOT NULL,
    user_id             BLOB NOT NULL UNIQUE REFERENCES users (id) ON DELETE CASCADE,
    specialization      TEXT NOT NULL,
    -- Lower-cased specialization, for case-insensitive filtering and grouping.
    specialization_key  TEXT NOT NULL,
    qualifications      TEXT NOT NULL, -- JSON array of strings
    experience_years    INTEGER NOT NULL CHECK (experience_years >= 0),
    fee_amount          INTEGER NOT NULL CHECK (fee_amount >= 0),
    fee_currency        TEXT NOT NULL,
    languages           TEXT NOT NULL, -- JSON array of strings, as entered
    licence_number      TEXT NOT NULL UNIQUE,
    bio                 TEXT NOT NULL,
    verification_status TEXT NOT NULL CHECK (verification_status IN ('PENDING', 'APPROVED', 'REJECTED')),
    rejection_reason    TEXT,
    rating_average      REAL NOT NULL DEFAULT 0 CHECK (rating_average >= 0 AND rating_average <= 5),
    rating_count        INTEGER NOT NULL DEFAULT 0 CHECK (rating_count >= 0),
    submitted_at        TEXT NOT NULL,
    reviewed_at         TEXT,
    approved_at         TEXT,
    created_at          TEXT NOT NULL,
    updated_at          TEXT NOT NULL
);

-- One index per search order (keyset pagination walks them), and the admin's queue.
CREATE INDEX doctors_by_rating ON doctors (verification_status, rating_average, id);
CREATE INDEX doctors_by_fee ON doctors (verification_status, fee_amount, id);
CREATE INDEX doctors_by_experience ON doctors (verification_status, experience_years, id);
CREATE INDEX doctors_by_approval ON doctors (verification_status, approved_at, id);
CREATE INDEX doctors_queue ON doctors (verification_status, submitted_at, id);
-- The same orders within one specialization, the most common filter.
CREATE INDEX doctors_specialization_by_rating ON doctors (specialization_key, verification_status, rating_average, id);
CREATE INDEX doctors_specialization_by_fee ON doctors (specialization_key, verification_status, fee_amount, id);
CREATE INDEX doctors_specialization_by_experience ON doctors (specialization_key, verification_status, experience_years, id);
CREATE INDEX doctors_specialization_by_approval ON doctors (specialization_key, verification_status, approved_at, id);

CREATE TABLE doctor_languages (
    doctor_id    BLOB NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
    language_key TEXT NOT NULL,
    PRIMARY KEY (language_key, doctor_id)
);

CREATE INDEX doctor_languages_doctor ON doctor_languages (doctor_id);

CREATE TABLE doctor_licences (
    doctor_id    BLOB PRIMARY KEY NOT NULL REFERENCES doctors (id) ON DELETE CASCADE,
    content      BLOB NOT NULL,
    content_type TEXT NOT NULL,
    size_bytes   INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    uploaded_at  TEXT NOT NULL
);
