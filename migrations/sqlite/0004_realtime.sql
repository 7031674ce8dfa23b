CREATE TABLE calls (
    id             BLOB PRIMARY KEY NOT NULL,
    doctor_id      BLOB NOT NULL REFERENCES doctors (id),
    doctor_user_id BLOB NOT NULL REFERENCES users (id),
    patient_id     BLOB NOT NULL REFERENCES users (id),
    caller_id      BLOB NOT NULL REFERENCES users (id),
    callee_id      BLOB NOT NULL REFERENCES users (id),
    appointment_id BLOB REFERENCES appointments (id),
    status         TEXT NOT NULL CHECK (status IN ('RINGING', 'ACTIVE', 'ENDED')),
    end_reason     TEXT CHECK (end_reason IN ('DECLINED', 'CANCELLED', 'MISSED', 'HANGUP', 'DROPPED')),
    created_at     TEXT NOT NULL,
    answered_at    TEXT,
    ended_at       TEXT
);

-- One live call per doctor and per patient: of two callers racing, the database lets one in.
CREATE UNIQUE INDEX calls_one_live_per_doctor ON calls (doctor_id) WHERE status <> 'ENDED';
CREATE UNIQUE INDEX calls_one_live_per_patient ON calls (patient_id) WHERE status <> 'ENDED';
CREATE INDEX calls_by_caller ON calls (caller_id, created_at, id);
CREATE INDEX calls_by_callee ON calls (callee_id, created_at, id);

CREATE TABLE chat_messages (
    id         BLOB PRIMARY KEY NOT NULL,
    channel    TEXT NOT NULL,
    sender_id  BLOB NOT NULL REFERENCES users (id),
    body       TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE INDEX chat_messages_by_channel ON chat_messages (channel, created_at, id);
