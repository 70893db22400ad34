-- parlor's PostgreSQL schema. Times are milliseconds since the Unix epoch (UTC), as in SQLite, so
-- both drivers read and write the same values.

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    username            TEXT NOT NULL,
    username_key        TEXT NOT NULL UNIQUE,   -- lower-cased: usernames are unique case-insensitively
    display_name        TEXT NOT NULL,
    email               TEXT,
    email_notifications BOOLEAN NOT NULL DEFAULT TRUE,
    password_hash       TEXT NOT NULL,
    phrase_hash         TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    last_seen_at        BIGINT
);
CREATE INDEX users_by_prefix ON users (username_key text_pattern_ops);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    user_agent   TEXT,
    revoked_at   BIGINT
);
CREATE INDEX sessions_by_user ON sessions (user_id);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    expires_at BIGINT NOT NULL,
    spent_at   BIGINT
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE rooms (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('group', 'direct')),
    name         TEXT,
    name_key     TEXT,
    topic        TEXT,
    visibility   TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    owner_id     TEXT REFERENCES users (id),
    created_at   BIGINT NOT NULL,
    last_seq     BIGINT NOT NULL DEFAULT 0,
    member_count BIGINT NOT NULL DEFAULT 0,
    direct_key   TEXT UNIQUE
);
CREATE INDEX rooms_directory ON rooms (visibility, kind, name_key);

CREATE TABLE memberships (
    room_id       TEXT NOT NULL REFERENCES rooms (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at     BIGINT NOT NULL,
    last_read_seq BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE messages (
    pk         BIGSERIAL PRIMARY KEY,
    id         TEXT NOT NULL UNIQUE,
    room_id    TEXT NOT NULL REFERENCES rooms (id),
    seq        BIGINT NOT NULL,
    author_id  TEXT NOT NULL REFERENCES users (id),
    body       TEXT NOT NULL,
    html       TEXT NOT NULL,
    mentions   TEXT NOT NULL DEFAULT '[]',
    reply_to   TEXT,
    nonce      TEXT,
    created_at BIGINT NOT NULL,
    edited_at  BIGINT,
    deleted    BOOLEAN NOT NULL DEFAULT FALSE,
    search     TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
    UNIQUE (room_id, seq)
);
CREATE UNIQUE INDEX messages_by_nonce ON messages (room_id, author_id, nonce) WHERE nonce IS NOT NULL;
CREATE INDEX messages_search ON messages USING GIN (search);
