//! Sessions and refresh tokens, for both drivers (see the module `sql`).

/// Implements `SessionStore` for a driver: `$writer` runs the writes (and the rotation, which
/// reads inside its write transaction), `$reader` the reads.
macro_rules! session_store {
    ($store:ty, writer: $writer:ident, reader: $reader:ident, db_err: $db_err:path) => {
        const _: () = {
            use $crate::rows;
            use ::parlor_domain::model::SessionRecord;
            use ::parlor_domain::ports::{Rotation, SessionStore};
            use ::parlor_domain::{Result, SessionId, Timestamp, UserId};
            use ::sqlx::Row;

            #[::async_trait::async_trait]
            impl SessionStore for $store {
                async fn create_session(
                    &self,
                    s: SessionRecord,
                    refresh_hash: &str,
                    refresh_expires_at: Timestamp,
                ) -> Result<()> {
                    let mut tx = self.$writer.begin().await.map_err($db_err)?;
                    ::sqlx::query(
                        "INSERT INTO sessions (id, user_id, created_at, last_seen_at, user_agent) \
                         VALUES ($1, $2, $3, $4, $5)",
                    )
                    .bind(s.id.as_str())
                    .bind(s.user_id.as_str())
                    .bind(s.created_at.millis())
                    .bind(s.last_seen_at.millis())
                    .bind(&s.user_agent)
                    .execute(&mut *tx)
                    .await
                    .map_err($db_err)?;
                    ::sqlx::query(
                        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
                    )
                    .bind(refresh_hash)
                    .bind(s.id.as_str())
                    .bind(refresh_expires_at.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err($db_err)?;
                    tx.commit().await.map_err($db_err)
                }

                async fn session(&self, id: &SessionId) -> Result<Option<SessionRecord>> {
                    let row = ::sqlx::query(
                        "SELECT id, user_id, created_at, last_seen_at, user_agent, revoked_at FROM sessions \
                         WHERE id = $1",
                    )
                    .bind(id.as_str())
                    .fetch_optional(&self.$reader)
                    .await
                    .map_err($db_err)?;
                    row.as_ref().map(rows::session).transpose()
                }

                async fn active_sessions(&self, user_id: &UserId) -> Result<Vec<SessionRecord>> {
                    let found = ::sqlx::query(
                        "SELECT id, user_id, created_at, last_seen_at, user_agent, revoked_at FROM sessions \
                         WHERE user_id = $1 AND revoked_at IS NULL ORDER BY created_at DESC",
                    )
                    .bind(user_id.as_str())
                    .fetch_all(&self.$reader)
                    .await
                    .map_err($db_err)?;
                    found.iter().map(rows::session).collect()
                }

                async fn rotate_refresh(
                    &self,
                    old_hash: &str,
                    new_hash: &str,
                    now: Timestamp,
                    new_expires_at: Timestamp,
                ) -> Result<Rotation> {
                    let mut tx = self.$writer.begin().await.map_err($db_err)?;
                    let row = ::sqlx::query(
                        "SELECT t.session_id, t.expires_at, t.spent_at, s.user_id, s.revoked_at \
                         FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.token_hash = $1",
                    )
                    .bind(old_hash)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err($db_err)?;
                    let Some(row) = row else { return Ok(Rotation::Invalid) };
                    let session_id: String = row.try_get("session_id").map_err($db_err)?;
                    let user_id: String = row.try_get("user_id").map_err($db_err)?;
                    let expires_at: i64 = row.try_get("expires_at").map_err($db_err)?;
                    let spent_at: Option<i64> = row.try_get("spent_at").map_err($db_err)?;
                    let revoked_at: Option<i64> = row.try_get("revoked_at").map_err($db_err)?;
                    if revoked_at.is_some() {
                        return Ok(Rotation::Invalid);
                    }
                    if spent_at.is_some() {
                        ::sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                            .bind(now.millis())
                            .bind(&session_id)
                            .execute(&mut *tx)
                            .await
                            .map_err($db_err)?;
                        tx.commit().await.map_err($db_err)?;
                        return Ok(Rotation::Reused { session_id: session_id.into(), user_id: user_id.into() });
                    }
                    if expires_at <= now.millis() {
                        return Ok(Rotation::Invalid);
                    }
                    ::sqlx::query("UPDATE refresh_tokens SET spent_at = $1 WHERE token_hash = $2")
                        .bind(now.millis())
                        .bind(old_hash)
                        .execute(&mut *tx)
                        .await
                        .map_err($db_err)?;
                    ::sqlx::query(
                        "INSERT INTO refresh_tokens (token_hash, session_id, expires_at) VALUES ($1, $2, $3)",
                    )
                    .bind(new_hash)
                    .bind(&session_id)
                    .bind(new_expires_at.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err($db_err)?;
                    ::sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2")
                        .bind(now.millis())
                        .bind(&session_id)
                        .execute(&mut *tx)
                        .await
                        .map_err($db_err)?;
                    tx.commit().await.map_err($db_err)?;
                    Ok(Rotation::Rotated { session_id: session_id.into(), user_id: user_id.into() })
                }

                async fn touch_session(&self, id: &SessionId, now: Timestamp) -> Result<()> {
                    // A statement that changes nothing writes nothing (in SQLite: no WAL frame,
                    // no fsync).
                    ::sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $3")
                        .bind(now.millis())
                        .bind(id.as_str())
                        .bind(now.millis() - ::parlor_domain::ports::TOUCH_EVERY_MS)
                        .execute(&self.$writer)
                        .await
                        .map_err($db_err)?;
                    Ok(())
                }

                async fn revoke_session(&self, id: &SessionId, now: Timestamp) -> Result<bool> {
                    let done =
                        ::sqlx::query("UPDATE sessions SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                            .bind(now.millis())
                            .bind(id.as_str())
                            .execute(&self.$writer)
                            .await
                            .map_err($db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn revoke_user_sessions(
                    &self,
                    user_id: &UserId,
                    except: Option<&SessionId>,
                    now: Timestamp,
                ) -> Result<Vec<SessionId>> {
                    // IS DISTINCT FROM: a null `except` keeps no session (SQLite reads it since 3.39).
                    let ended = ::sqlx::query(
                        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL \
                         AND id IS DISTINCT FROM $3 RETURNING id",
                    )
                    .bind(now.millis())
                    .bind(user_id.as_str())
                    .bind(except.map(SessionId::as_str))
                    .fetch_all(&self.$writer)
                    .await
                    .map_err($db_err)?;
                    ended
                        .iter()
                        .map(|r| r.try_get::<String, _>("id").map(SessionId::from).map_err($db_err))
                        .collect()
                }

                async fn sessions_ended_since(&self, since: Timestamp, limit: i64) -> Result<Vec<SessionRecord>> {
                    let found = ::sqlx::query(
                        "SELECT id, user_id, created_at, last_seen_at, user_agent, revoked_at FROM sessions \
                         WHERE revoked_at >= $1 ORDER BY revoked_at LIMIT $2",
                    )
                    .bind(since.millis())
                    .bind(limit)
                    .fetch_all(&self.$reader)
                    .await
                    .map_err($db_err)?;
                    found.iter().map(rows::session).collect()
                }
            }
        };
    };
}
pub(crate) use session_store;
