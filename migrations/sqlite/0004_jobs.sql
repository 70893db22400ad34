-- The durable job queue (crates/jobs, docs/jobs.md). A job is pending until it is done (then the
-- row is deleted) or given up (kept as 'failed' with its last error). A pending job is held while
-- `locked_until` is in the future; `lease_token` names the claim that holds it, and every later
-- write about the job (renew, finish, retry, fail, release) must present it.
CREATE TABLE jobs (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    payload      TEXT NOT NULL,
    dedupe_key   TEXT,
    group_key    TEXT,
    due_at       INTEGER NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    locked_until INTEGER,
    lease_token  TEXT,
    last_error   TEXT,
    state        TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'failed')),
    created_at   INTEGER NOT NULL
);
CREATE INDEX jobs_due ON jobs (name, state, due_at);
CREATE INDEX jobs_by_group ON jobs (name, group_key, state) WHERE group_key IS NOT NULL;
CREATE INDEX jobs_by_lease ON jobs (lease_token) WHERE lease_token IS NOT NULL;
-- A pending job with the same name and dedupe key makes an enqueue a no-op.
CREATE UNIQUE INDEX jobs_dedupe ON jobs (name, dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL;

-- The unread-message e-mails still pending move over; their leases are dropped (a notifier of
-- the previous release cannot finish them: its table is gone).
INSERT INTO jobs (name, payload, dedupe_key, group_key, due_at, attempts, max_attempts, created_at)
SELECT 'unread_email',
       json_object('recipient', recipient_id, 'room', room_id, 'message', message_id),
       recipient_id || ':' || message_id, recipient_id, next_attempt_at, attempts, 8, created_at
FROM notification_jobs WHERE state = 'pending'
ON CONFLICT (name, dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING;
DROP TABLE notification_jobs;
