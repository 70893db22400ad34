//! Accounts, for both drivers (see the module `sql`).

/// Implements `UserStore` for a driver: `$writer` runs the writes and `$reader` the reads.
macro_rules! user_store {
    ($store:ty, writer: $writer:ident, reader: $reader:ident, db_err: $db_err:path) => {
        const _: () = {
            use ::parlor_domain::model::{OwnUser, User, UserRecord};
            use ::parlor_domain::ports::{NewUser, ProfilePatch, UserStore};
            use ::parlor_domain::{Error, Result, Timestamp, UserId};
            use $crate::rows::{self, like_escape};
            use $crate::sql::Dialect;

            #[::async_trait::async_trait]
            impl UserStore for $store {
                async fn create_user(&self, user: NewUser) -> Result<UserRecord> {
                    let result = ::sqlx::query(
                        "INSERT INTO users (id, username, username_key, display_name, email, password_hash, \
                         phrase_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                    )
                    .bind(user.id.as_str())
                    .bind(&user.username)
                    .bind(user.username.to_lowercase())
                    .bind(&user.display_name)
                    .bind(&user.email)
                    .bind(&user.password_hash)
                    .bind(&user.phrase_hash)
                    .bind(user.created_at.millis())
                    .execute(&self.$writer)
                    .await;
                    match result.map_err($db_err) {
                        Err(Error::Conflict(_)) => return Err(Error::Conflict("username is taken".into())),
                        other => other?,
                    };
                    self.user_by_id(&user.id)
                        .await?
                        .ok_or_else(|| Error::internal("user vanished after insert"))
                }

                async fn user_by_id(&self, id: &UserId) -> Result<Option<UserRecord>> {
                    let row = ::sqlx::query(concat!("SELECT ", user_cols!(), " FROM users WHERE id = $1"))
                        .bind(id.as_str())
                        .fetch_optional(&self.$reader)
                        .await
                        .map_err($db_err)?;
                    row.as_ref().map(rows::user_record).transpose()
                }

                async fn user_by_username(&self, username: &str) -> Result<Option<UserRecord>> {
                    if username.contains('\0') {
                        // No username holds NUL, and PostgreSQL cannot compare with one.
                        return Ok(None);
                    }
                    let row = ::sqlx::query(concat!(
                        "SELECT ",
                        user_cols!(),
                        " FROM users WHERE username_key = $1"
                    ))
                    .bind(username.to_lowercase())
                    .fetch_optional(&self.$reader)
                    .await
                    .map_err($db_err)?;
                    row.as_ref().map(rows::user_record).transpose()
                }

                async fn users_by_usernames(&self, usernames: &[String]) -> Result<Vec<User>> {
                    if usernames.is_empty() {
                        return Ok(Vec::new());
                    }
                    let keys: Vec<String> = usernames.iter().map(|u| u.to_lowercase()).collect();
                    let found = ::sqlx::query(<$store as Dialect>::USERS_BY_KEYS)
                        .bind(<$store as Dialect>::text_list(keys)?)
                        .fetch_all(&self.$reader)
                        .await
                        .map_err($db_err)?;
                    found.iter().map(rows::user).collect()
                }

                async fn search_users(&self, prefix: &str, limit: i64) -> Result<Vec<User>> {
                    if prefix.contains('\0') {
                        return Ok(Vec::new()); // no username holds NUL
                    }
                    let found = ::sqlx::query(
                        "SELECT id, username, display_name, created_at FROM users \
                         WHERE username_key LIKE $1 ESCAPE '\\' ORDER BY username_key LIMIT $2",
                    )
                    .bind(format!("{}%", like_escape(&prefix.to_lowercase())))
                    .bind(limit)
                    .fetch_all(&self.$reader)
                    .await
                    .map_err($db_err)?;
                    found.iter().map(rows::user).collect()
                }

                async fn update_profile(&self, id: &UserId, patch: ProfilePatch) -> Result<OwnUser> {
                    let (set_email, email) = match patch.email {
                        Some(e) => (true, e),
                        None => (false, None),
                    };
                    // Booleans bind as BOOLEAN in PostgreSQL and as INTEGER 0/1 in SQLite.
                    ::sqlx::query(
                        "UPDATE users SET display_name = COALESCE($1, display_name), \
                         email = CASE WHEN $2 THEN $3 ELSE email END, \
                         email_notifications = COALESCE($4, email_notifications) WHERE id = $5",
                    )
                    .bind(patch.display_name)
                    .bind(set_email)
                    .bind(email)
                    .bind(patch.email_notifications)
                    .bind(id.as_str())
                    .execute(&self.$writer)
                    .await
                    .map_err($db_err)?;
                    let record =
                        self.user_by_id(id).await?.ok_or_else(|| Error::NotFound("user not found".into()))?;
                    Ok(record.own())
                }

                async fn set_password_hash(&self, id: &UserId, hash: &str) -> Result<()> {
                    ::sqlx::query("UPDATE users SET password_hash = $1 WHERE id = $2")
                        .bind(hash)
                        .bind(id.as_str())
                        .execute(&self.$writer)
                        .await
                        .map_err($db_err)?;
                    Ok(())
                }

                async fn set_credentials(
                    &self,
                    id: &UserId,
                    password_hash: &str,
                    phrase_hash: &str,
                ) -> Result<()> {
                    ::sqlx::query("UPDATE users SET password_hash = $1, phrase_hash = $2 WHERE id = $3")
                        .bind(password_hash)
                        .bind(phrase_hash)
                        .bind(id.as_str())
                        .execute(&self.$writer)
                        .await
                        .map_err($db_err)?;
                    Ok(())
                }

                async fn set_disabled(
                    &self,
                    id: &UserId,
                    at: Option<Timestamp>,
                ) -> Result<Option<UserRecord>> {
                    let sql = match at {
                        Some(_) => "UPDATE users SET disabled_at = COALESCE(disabled_at, $1) WHERE id = $2",
                        None => "UPDATE users SET disabled_at = NULL WHERE id = $1",
                    };
                    let mut query = ::sqlx::query(sql);
                    if let Some(at) = at {
                        query = query.bind(at.millis());
                    }
                    query.bind(id.as_str()).execute(&self.$writer).await.map_err($db_err)?;
                    self.user_by_id(id).await
                }

                async fn set_last_seen(&self, id: &UserId, at: Timestamp) -> Result<()> {
                    ::sqlx::query("UPDATE users SET last_seen_at = $1 WHERE id = $2")
                        .bind(at.millis())
                        .bind(id.as_str())
                        .execute(&self.$writer)
                        .await
                        .map_err($db_err)?;
                    Ok(())
                }
            }
        };
    };
}
pub(crate) use user_store;
