//! Message reads and the batch's transaction, for both drivers (see the module `sql`); the
//! statements inside a batch are the driver's `BatchDb`.

/// Defines the driver's `load` and `by_nonce` (one message, on any connection of `$conn`, so the
/// batch's transaction reads with them too) and implements `MessageStore`: batches on `$writer`,
/// reads on `$reader`.
macro_rules! message_store {
    ($store:ty, $conn:ty, writer: $writer:ident, reader: $reader:ident, db_err: $db_err:path) => {
        /// A message of a room, deleted or not.
        async fn load(
            conn: &mut $conn,
            room_id: &::parlor_domain::RoomId,
            id: &::parlor_domain::MessageId,
        ) -> ::parlor_domain::Result<Option<::parlor_domain::model::Message>> {
            let row = ::sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = $1 AND m.id = $2"
            ))
            .bind(room_id.as_str())
            .bind(id.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err($db_err)?;
            row.as_ref().map($crate::rows::message).transpose()
        }

        /// The message an author sent to a room under a nonce.
        async fn by_nonce(
            conn: &mut $conn,
            room_id: &::parlor_domain::RoomId,
            author_id: &::parlor_domain::UserId,
            nonce: &str,
        ) -> ::parlor_domain::Result<Option<::parlor_domain::model::Message>> {
            let row = ::sqlx::query(concat!(
                "SELECT ",
                message_cols!(),
                " FROM messages m JOIN users u ON u.id = m.author_id \
                 WHERE m.room_id = $1 AND m.author_id = $2 AND m.nonce = $3"
            ))
            .bind(room_id.as_str())
            .bind(author_id.as_str())
            .bind(nonce)
            .fetch_optional(&mut *conn)
            .await
            .map_err($db_err)?;
            row.as_ref().map($crate::rows::message).transpose()
        }

        const _: () = {
            use ::parlor_domain::model::Message;
            use ::parlor_domain::ports::{MessageStore, Page, Prepared};
            use ::parlor_domain::queue::Outcome;
            use ::parlor_domain::{MessageId, Result, RoomId, UserId};
            use $crate::rows;
            use $crate::sql::Dialect;

            #[::async_trait::async_trait]
            impl MessageStore for $store {
                async fn apply(&self, batch: &[Prepared]) -> Result<Vec<Outcome>> {
                    let mut tx = self.$writer.begin().await.map_err($db_err)?;
                    let outcomes = $crate::batch::apply_batch(&mut *tx, batch).await?;
                    tx.commit().await.map_err($db_err)?;
                    Ok(outcomes)
                }

                async fn message(&self, room_id: &RoomId, id: &MessageId) -> Result<Option<Message>> {
                    let mut conn = self.$reader.acquire().await.map_err($db_err)?;
                    load(&mut conn, room_id, id).await
                }

                async fn message_by_nonce(
                    &self,
                    room_id: &RoomId,
                    author_id: &UserId,
                    nonce: &str,
                ) -> Result<Option<Message>> {
                    let mut conn = self.$reader.acquire().await.map_err($db_err)?;
                    by_nonce(&mut conn, room_id, author_id, nonce).await
                }

                async fn history(
                    &self,
                    room_id: &RoomId,
                    page: Page,
                    limit: i64,
                ) -> Result<(Vec<Message>, bool)> {
                    let _timer = $crate::ReadTimer::start("history");
                    let fetch = limit + 1;
                    let query = match page {
                        Page::Latest => ::sqlx::query(concat!(
                            "SELECT ",
                            message_cols!(),
                            " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = $1 \
                             AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
                        ))
                        .bind(room_id.as_str())
                        .bind(i64::MAX),
                        Page::Before(seq) => ::sqlx::query(concat!(
                            "SELECT ",
                            message_cols!(),
                            " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = $1 \
                             AND m.seq < $2 ORDER BY m.seq DESC LIMIT $3"
                        ))
                        .bind(room_id.as_str())
                        .bind(seq),
                        Page::After(seq) => ::sqlx::query(concat!(
                            "SELECT ",
                            message_cols!(),
                            " FROM messages m JOIN users u ON u.id = m.author_id WHERE m.room_id = $1 \
                             AND m.seq > $2 ORDER BY m.seq ASC LIMIT $3"
                        ))
                        .bind(room_id.as_str())
                        .bind(seq),
                    };
                    let found = query.bind(fetch).fetch_all(&self.$reader).await.map_err($db_err)?;
                    let mut messages = found.iter().map(rows::message).collect::<Result<Vec<_>>>()?;
                    let has_more = messages.len() as i64 > limit;
                    messages.truncate(limit as usize);
                    if !matches!(page, Page::After(_)) {
                        messages.reverse();
                    }
                    Ok((messages, has_more))
                }

                async fn search(
                    &self,
                    user_id: &UserId,
                    query: &str,
                    room_id: Option<&RoomId>,
                    limit: i64,
                ) -> Result<Vec<Message>> {
                    let _timer = $crate::ReadTimer::start("search");
                    let Some(text) = <$store as Dialect>::text_query(query) else { return Ok(Vec::new()) };
                    let found = ::sqlx::query(<$store as Dialect>::SEARCH)
                        .bind(user_id.as_str())
                        .bind(text)
                        .bind(room_id.map(RoomId::as_str))
                        .bind(room_id.map(RoomId::as_str))
                        .bind(limit)
                        .fetch_all(&self.$reader)
                        .await
                        .map_err($db_err)?;
                    found.iter().map(rows::message).collect()
                }
            }
        };
    };
}
pub(crate) use message_store;

/// A driver's `impl BatchDb for <connection>`: its own statements (`own`, those whose dialects
/// differ) and the ones both dialects write alike (a reply looked up, a message loaded, edited,
/// emptied), given its error mapping and its message loader (`load`). One macro for the whole
/// impl because `async_trait` must see every method of it at once.
macro_rules! batch_db {
    ($conn:ty, db_err: $db_err:path, load: $load:path, { $($own:tt)* }) => {
        #[::async_trait::async_trait]
        impl $crate::batch::BatchDb for $conn {
        $($own)*
        async fn reply_exists(
            &mut self,
            room_id: &::parlor_domain::RoomId,
            id: &::parlor_domain::MessageId,
        ) -> ::parlor_domain::Result<bool> {
            let found = ::sqlx::query("SELECT 1 FROM messages WHERE room_id = $1 AND id = $2")
                .bind(room_id.as_str())
                .bind(id.as_str())
                .fetch_optional(&mut *self)
                .await
                .map_err($db_err)?;
            Ok(found.is_some())
        }

        async fn load_message(
            &mut self,
            room_id: &::parlor_domain::RoomId,
            id: &::parlor_domain::MessageId,
        ) -> ::parlor_domain::Result<Option<::parlor_domain::model::Message>> {
            $load(&mut *self, room_id, id).await
        }

        async fn set_body(
            &mut self,
            id: &::parlor_domain::MessageId,
            body: &str,
            html: &str,
            mentions: &str,
            at: ::parlor_domain::Timestamp,
        ) -> ::parlor_domain::Result<()> {
            ::sqlx::query("UPDATE messages SET body = $1, html = $2, mentions = $3, edited_at = $4 WHERE id = $5")
                .bind(body)
                .bind(html)
                .bind(mentions)
                .bind(at.millis())
                .bind(id.as_str())
                .execute(&mut *self)
                .await
                .map_err($db_err)?;
            Ok(())
        }

        async fn mark_deleted(
            &mut self,
            id: &::parlor_domain::MessageId,
            at: ::parlor_domain::Timestamp,
        ) -> ::parlor_domain::Result<()> {
            ::sqlx::query(
                "UPDATE messages SET body = '', html = '', mentions = '[]', deleted = $1, edited_at = $2 WHERE id = $3",
            )
            .bind(true)
            .bind(at.millis())
            .bind(id.as_str())
            .execute(&mut *self)
            .await
            .map_err($db_err)?;
            Ok(())
        }
        }
    };
}
pub(crate) use batch_db;
