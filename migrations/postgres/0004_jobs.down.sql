-- Back to the notification outbox of 0002: the pending unread-message e-mails move back (their
-- seq read from the message), every other job is lost with the table.
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

INSERT INTO notification_jobs (recipient_id, room_id, message_id, seq, due_at, attempts, next_attempt_at, created_at)
SELECT p.recipient, p.room, p.message, m.seq, j.due_at, j.attempts::integer, j.due_at, j.created_at
FROM jobs j
CROSS JOIN LATERAL (SELECT j.payload::jsonb ->> 'recipient' AS recipient, j.payload::jsonb ->> 'room' AS room,
                           j.payload::jsonb ->> 'message' AS message) p
JOIN messages m ON m.id = p.message
JOIN users u ON u.id = p.recipient
WHERE j.name = 'unread_email' AND j.state = 'pending';
DROP TABLE jobs;
