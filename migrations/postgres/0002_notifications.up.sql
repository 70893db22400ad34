-- Unread-message e-mails: one job per (recipient, message), written in the transaction that
-- stores the message (an outbox).
CREATE TABLE notification_jobs (
    id              BIGSERIAL PRIMARY KEY,
    recipient_id    TEXT NOT NULL REFERENCES users (id),
    room_id         TEXT NOT NULL REFERENCES rooms (id),
    message_id      TEXT NOT NULL,
    seq             BIGINT NOT NULL,
    due_at          BIGINT NOT NULL,
    state           TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'dropped', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    locked_until    BIGINT,
    created_at      BIGINT NOT NULL
);
CREATE INDEX notification_jobs_due ON notification_jobs (state, next_attempt_at);
CREATE INDEX notification_jobs_by_recipient ON notification_jobs (recipient_id, state);
