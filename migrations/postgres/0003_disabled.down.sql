DROP INDEX sessions_by_revoked_at;
ALTER TABLE users DROP COLUMN disabled_at;
