-- parlor's embedded schema. Times are milliseconds since the Unix epoch (UTC).

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    username            TEXT NOT NULL,
    username_key        TEXT NOT NULL UNIQUE,   -- lower-cased: usernames are unique case-insensitively
    display_name        TEXT NOT NULL,
    email               TEXT,
    email_notifications INTEGER NOT NULL DEFAULT 1,
    password_hash       TEXT NOT NULL,
    phrase_hash         TEXT NOT NULL,
    created_at          INTEGER NOT NULL,
    last_seen_at        INTEGER
);

CREATE TABLE sessions (
    id           TEXT PRIMARY KEY,
    user_id      TEXT NOT NULL REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    user_agent   TEXT,
    revoked_at   INTEGER
);
CREATE INDEX sessions_by_user ON sessions (user_id);

-- Refresh tokens are stored as SHA-256 hashes. A spent token stays, so presenting it again is
-- recognised as theft and ends its session.
CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id),
    expires_at INTEGER NOT NULL,
    spent_at   INTEGER
);
CREATE INDEX refresh_tokens_by_session ON refresh_tokens (session_id);

CREATE TABLE rooms (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('group', 'direct')),
    name         TEXT,
    name_key     TEXT,                          -- lower-cased name, for the directory search
    topic        TEXT,
    visibility   TEXT NOT NULL CHECK (visibility IN ('public', 'private')),
    owner_id     TEXT REFERENCES users (id),
    created_at   INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL DEFAULT 0,    -- the seq of the room's newest message
    member_count INTEGER NOT NULL DEFAULT 0,
    direct_key   TEXT UNIQUE                    -- "<smaller user id>:<larger user id>" for direct rooms
);
CREATE INDEX rooms_directory ON rooms (visibility, kind, name_key);

CREATE TABLE memberships (
    room_id       TEXT NOT NULL REFERENCES rooms (id),
    user_id       TEXT NOT NULL REFERENCES users (id),
    role          TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'member')),
    joined_at     INTEGER NOT NULL,
    last_read_seq INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (room_id, user_id)
);
CREATE INDEX memberships_by_user ON memberships (user_id);

CREATE TABLE messages (
    pk         INTEGER PRIMARY KEY,             -- the rowid, for the full-text index
    id         TEXT NOT NULL UNIQUE,
    room_id    TEXT NOT NULL REFERENCES rooms (id),
    seq        INTEGER NOT NULL,
    author_id  TEXT NOT NULL REFERENCES users (id),
    body       TEXT NOT NULL,
    html       TEXT NOT NULL,
    mentions   TEXT NOT NULL DEFAULT '[]',      -- JSON array of user ids
    reply_to   TEXT,
    nonce      TEXT,
    created_at INTEGER NOT NULL,
    edited_at  INTEGER,
    deleted    INTEGER NOT NULL DEFAULT 0,
    UNIQUE (room_id, seq)
);
CREATE UNIQUE INDEX messages_by_nonce ON messages (room_id, author_id, nonce) WHERE nonce IS NOT NULL;

CREATE VIRTUAL TABLE messages_fts USING fts5 (
    body,
    content = 'messages',
    content_rowid = 'pk',
    tokenize = 'unicode61 remove_diacritics 2'
);

CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts (rowid, body) VALUES (new.pk, new.body);
END;

CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.pk, old.body);
END;

CREATE TRIGGER messages_fts_update AFTER UPDATE OF body ON messages BEGIN
    INSERT INTO messages_fts (messages_fts, rowid, body) VALUES ('delete', old.pk, old.body);
    INSERT INTO messages_fts (rowid, body) VALUES (new.pk, new.body);
END;
