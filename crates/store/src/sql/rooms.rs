//! Rooms, memberships and read markers, for both drivers (see the module `sql`).

/// Implements `RoomStore` for a driver: `$writer` runs the writes and reads a room back after
/// writing it (so the answer holds the write), `$reader` runs the other reads.
macro_rules! room_store {
    ($store:ty, writer: $writer:ident, reader: $reader:ident, db_err: $db_err:path) => {
        const _: () = {
            use $crate::rows::{self, like_escape};
            use $crate::sql::Dialect;
            use ::parlor_domain::model::{Member, Role, Room, Visibility};
            use ::parlor_domain::ports::{NewRoom, RoomAccess, RoomStore};
            use ::parlor_domain::{Error, Result, RoomId, Timestamp, UserId};
            use ::sqlx::Row;

            impl $store {
                async fn room_by_id(&self, room_id: &RoomId) -> Result<Option<Room>> {
                    let row = ::sqlx::query(concat!("SELECT ", room_cols!(), " FROM rooms r WHERE r.id = $1"))
                        .bind(room_id.as_str())
                        .fetch_optional(&self.$writer)
                        .await
                        .map_err($db_err)?;
                    row.as_ref().map(rows::room).transpose()
                }
            }

            #[::async_trait::async_trait]
            impl RoomStore for $store {
                async fn create_room(&self, room: NewRoom) -> Result<Room> {
                    let mut tx = self.$writer.begin().await.map_err($db_err)?;
                    ::sqlx::query(
                        "INSERT INTO rooms (id, kind, name, name_key, topic, visibility, owner_id, created_at, \
                         member_count) VALUES ($1, 'group', $2, $3, $4, $5, $6, $7, 1)",
                    )
                    .bind(room.id.as_str())
                    .bind(&room.name)
                    .bind(room.name.to_lowercase())
                    .bind(&room.topic)
                    .bind(match room.visibility {
                        Visibility::Public => "public",
                        Visibility::Private => "private",
                    })
                    .bind(room.owner_id.as_str())
                    .bind(room.created_at.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err($db_err)?;
                    ::sqlx::query(
                        "INSERT INTO memberships (room_id, user_id, role, joined_at) VALUES ($1, $2, 'owner', $3)",
                    )
                    .bind(room.id.as_str())
                    .bind(room.owner_id.as_str())
                    .bind(room.created_at.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err($db_err)?;
                    tx.commit().await.map_err($db_err)?;
                    self.room_by_id(&room.id).await?.ok_or_else(|| Error::internal("room vanished after insert"))
                }

                async fn direct_room(&self, a: &UserId, b: &UserId, now: Timestamp) -> Result<(Room, bool)> {
                    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
                    let key = format!("{lo}:{hi}");
                    let mut tx = self.$writer.begin().await.map_err($db_err)?;
                    let existing = ::sqlx::query("SELECT id FROM rooms WHERE direct_key = $1")
                        .bind(&key)
                        .fetch_optional(&mut *tx)
                        .await
                        .map_err($db_err)?;
                    let (room_id, created) = match existing {
                        Some(row) => (RoomId::from(row.try_get::<String, _>("id").map_err($db_err)?), false),
                        None => {
                            let id = RoomId::generate();
                            ::sqlx::query(
                                "INSERT INTO rooms (id, kind, visibility, created_at, member_count, direct_key) \
                                 VALUES ($1, 'direct', 'private', $2, 2, $3)",
                            )
                            .bind(id.as_str())
                            .bind(now.millis())
                            .bind(&key)
                            .execute(&mut *tx)
                            .await
                            .map_err($db_err)?;
                            for user in [lo, hi] {
                                ::sqlx::query(
                                    "INSERT INTO memberships (room_id, user_id, role, joined_at) \
                                     VALUES ($1, $2, 'member', $3)",
                                )
                                .bind(id.as_str())
                                .bind(user.as_str())
                                .bind(now.millis())
                                .execute(&mut *tx)
                                .await
                                .map_err($db_err)?;
                            }
                            (id, true)
                        }
                    };
                    tx.commit().await.map_err($db_err)?;
                    let room =
                        self.room_by_id(&room_id).await?.ok_or_else(|| Error::internal("direct room vanished"))?;
                    Ok((room, created))
                }

                async fn room_access(&self, room_id: &RoomId, user_id: &UserId) -> Result<Option<RoomAccess>> {
                    let row = ::sqlx::query(concat!(
                        "SELECT ",
                        room_cols!(),
                        ", m.role, m.last_read_seq AS member_read FROM rooms r \
                         LEFT JOIN memberships m ON m.room_id = r.id AND m.user_id = $1 WHERE r.id = $2"
                    ))
                    .bind(user_id.as_str())
                    .bind(room_id.as_str())
                    .fetch_optional(&self.$reader)
                    .await
                    .map_err($db_err)?;
                    let Some(row) = row else { return Ok(None) };
                    let role = row.try_get::<Option<String>, _>("role").map_err($db_err)?;
                    Ok(Some(RoomAccess {
                        room: rows::room(&row)?,
                        role: role.as_deref().map(rows::role).transpose()?,
                        last_read_seq: row.try_get("member_read").map_err($db_err)?,
                    }))
                }

                async fn user_rooms(&self, user_id: &UserId) -> Result<Vec<Room>> {
                    let _timer = $crate::ReadTimer::start("user_rooms");
                    // `NOT x.deleted`: a BOOLEAN in PostgreSQL, INTEGER 0/1 in SQLite.
                    let found = ::sqlx::query(concat!(
                        "SELECT ",
                        room_cols!(),
                        ", m.last_read_seq, (SELECT COUNT(*) FROM messages x WHERE x.room_id = r.id \
                         AND x.seq > m.last_read_seq AND x.author_id <> m.user_id AND NOT x.deleted) AS unread_count \
                         FROM memberships m JOIN rooms r ON r.id = m.room_id WHERE m.user_id = $1 ORDER BY r.id"
                    ))
                    .bind(user_id.as_str())
                    .fetch_all(&self.$reader)
                    .await
                    .map_err($db_err)?;
                    found.iter().map(rows::own_room).collect()
                }

                async fn user_room_ids(&self, user_id: &UserId) -> Result<Vec<RoomId>> {
                    let found = ::sqlx::query("SELECT room_id FROM memberships WHERE user_id = $1")
                        .bind(user_id.as_str())
                        .fetch_all(&self.$reader)
                        .await
                        .map_err($db_err)?;
                    found
                        .iter()
                        .map(|r| r.try_get::<String, _>("room_id").map(RoomId::from).map_err($db_err))
                        .collect()
                }

                async fn public_rooms(&self, query: &str, limit: i64) -> Result<Vec<Room>> {
                    if query.contains('\0') {
                        return Ok(Vec::new()); // no room name holds NUL
                    }
                    let found = ::sqlx::query(concat!(
                        "SELECT ",
                        room_cols!(),
                        " FROM rooms r WHERE r.visibility = 'public' AND r.kind = 'group' \
                         AND r.name_key LIKE $1 ESCAPE '\\' ORDER BY r.member_count DESC, r.name_key LIMIT $2"
                    ))
                    .bind(format!("%{}%", like_escape(&query.trim().to_lowercase())))
                    .bind(limit)
                    .fetch_all(&self.$reader)
                    .await
                    .map_err($db_err)?;
                    found.iter().map(rows::room).collect()
                }

                async fn update_room(
                    &self,
                    room_id: &RoomId,
                    name: Option<String>,
                    topic: Option<Option<String>>,
                ) -> Result<Room> {
                    let name_key = name.as_ref().map(|n| n.to_lowercase());
                    let (set_topic, topic) = match topic {
                        Some(t) => (true, t),
                        None => (false, None),
                    };
                    ::sqlx::query(
                        "UPDATE rooms SET name = COALESCE($1, name), name_key = COALESCE($2, name_key), \
                         topic = CASE WHEN $3 THEN $4 ELSE topic END WHERE id = $5",
                    )
                    .bind(name)
                    .bind(name_key)
                    .bind(set_topic)
                    .bind(topic)
                    .bind(room_id.as_str())
                    .execute(&self.$writer)
                    .await
                    .map_err($db_err)?;
                    self.room_by_id(room_id).await?.ok_or_else(|| Error::NotFound("room not found".into()))
                }

                async fn members(&self, room_id: &RoomId) -> Result<Vec<Member>> {
                    let found = ::sqlx::query(
                        "SELECT m.role, m.joined_at, u.id AS u_id, u.username AS u_username, \
                         u.display_name AS u_display_name, u.created_at AS u_created_at \
                         FROM memberships m JOIN users u ON u.id = m.user_id WHERE m.room_id = $1 \
                         ORDER BY CASE m.role WHEN 'owner' THEN 0 WHEN 'admin' THEN 1 ELSE 2 END, u.username_key",
                    )
                    .bind(room_id.as_str())
                    .fetch_all(&self.$reader)
                    .await
                    .map_err($db_err)?;
                    found.iter().map(rows::member).collect()
                }

                async fn add_member(&self, room_id: &RoomId, user_id: &UserId, role: Role, now: Timestamp) -> Result<()> {
                    let mut tx = self.$writer.begin().await.map_err($db_err)?;
                    let inserted = ::sqlx::query(
                        "INSERT INTO memberships (room_id, user_id, role, joined_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (room_id, user_id) DO NOTHING",
                    )
                    .bind(room_id.as_str())
                    .bind(user_id.as_str())
                    .bind(role.as_str())
                    .bind(now.millis())
                    .execute(&mut *tx)
                    .await
                    .map_err($db_err)?;
                    if inserted.rows_affected() == 0 {
                        return Err(Error::Conflict("already a member".into()));
                    }
                    ::sqlx::query("UPDATE rooms SET member_count = member_count + 1 WHERE id = $1")
                        .bind(room_id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err($db_err)?;
                    tx.commit().await.map_err($db_err)
                }

                async fn remove_member(&self, room_id: &RoomId, user_id: &UserId) -> Result<bool> {
                    let mut tx = self.$writer.begin().await.map_err($db_err)?;
                    let removed = ::sqlx::query("DELETE FROM memberships WHERE room_id = $1 AND user_id = $2")
                        .bind(room_id.as_str())
                        .bind(user_id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err($db_err)?;
                    if removed.rows_affected() == 0 {
                        return Ok(false);
                    }
                    ::sqlx::query("UPDATE rooms SET member_count = member_count - 1 WHERE id = $1")
                        .bind(room_id.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err($db_err)?;
                    tx.commit().await.map_err($db_err)?;
                    Ok(true)
                }

                async fn mark_read(&self, room_id: &RoomId, user_id: &UserId, seq: i64) -> Result<i64> {
                    let row = ::sqlx::query(<$store as Dialect>::MARK_READ)
                        .bind(seq)
                        .bind(room_id.as_str())
                        .bind(room_id.as_str())
                        .bind(user_id.as_str())
                        .fetch_optional(&self.$writer)
                        .await
                        .map_err($db_err)?;
                    match row {
                        Some(row) => row.try_get("last_read_seq").map_err($db_err),
                        None => Err(Error::NotFound("room not found".into())),
                    }
                }
            }
        };
    };
}
pub(crate) use room_store;
