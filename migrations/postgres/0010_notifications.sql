-- Every notification, kept for its user's inbox until the retention sweep removes it.
CREATE TABLE notifications (
    id             UUID PRIMARY KEY,
    user_id        UUID NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    message        TEXT NOT NULL,
    appointment_id UUID,
    created_at     TIMESTAMPTZ NOT NULL,
    read_at        TIMESTAMPTZ
);

-- The inbox, newest first, and its unread part (the count and `unreadOnly`).
CREATE INDEX notifications_by_user ON notifications (user_id, created_at, id);
CREATE INDEX notifications_unread ON notifications (user_id, created_at, id) WHERE read_at IS NULL;
-- The retention sweep.
CREATE INDEX notifications_by_age ON notifications (created_at);

-- Reminders handled (sent, or skipped because the appointment was booked or moved inside the
-- offset): one row per appointment and offset, for the start time it was handled at. The row is
-- the claim: the instance that inserts it, or moves it to the appointment's new start, sends the
-- reminder, in the same transaction as the reminder's notifications.
CREATE TABLE appointment_reminders (
    appointment_id UUID NOT NULL REFERENCES appointments (id) ON DELETE CASCADE,
    offset_secs    BIGINT NOT NULL,
    starts_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (appointment_id, offset_secs)
);

CREATE INDEX appointment_reminders_by_start ON appointment_reminders (starts_at);

-- The reminder sweep's range: confirmed appointments by start.
CREATE INDEX appointments_confirmed_by_start ON appointments (starts_at) WHERE status = 'CONFIRMED';
