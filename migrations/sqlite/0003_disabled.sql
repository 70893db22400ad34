-- Accounts an administrator disabled (`parlor user disable`): no sign-in, refresh or recovery
-- until `parlor user enable`. Their messages and memberships stay.
ALTER TABLE users ADD COLUMN disabled_at INTEGER;
-- Gateways look up sessions ended since their last look (by a command in another process, such
-- as `parlor user disable`) to close those sessions' WebSockets.
CREATE INDEX sessions_by_revoked_at ON sessions (revoked_at) WHERE revoked_at IS NOT NULL;
