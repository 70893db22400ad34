//! What PostgreSQL says its own way: `GREATEST`/`LEAST`, a list bound as an array, and full-text
//! search through the `tsvector` column `messages.search`.

use super::PostgresStore;
use crate::rows;
use crate::sql::Dialect;
use parlor_domain::Result;

impl Dialect for PostgresStore {
    const MARK_READ: &'static str = "UPDATE memberships SET last_read_seq = GREATEST(last_read_seq, \
         LEAST($1, (SELECT last_seq FROM rooms WHERE id = $2))) \
         WHERE room_id = $3 AND user_id = $4 RETURNING last_read_seq";

    const USERS_BY_KEYS: &'static str = "SELECT id, username, display_name, created_at FROM users \
         WHERE username_key = ANY($1)";

    type TextList = Vec<String>;

    fn text_list(items: Vec<String>) -> Result<Vec<String>> {
        Ok(items)
    }

    // `$3::text`: a null alone says no type.
    const SEARCH: &'static str = concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages m JOIN users u ON u.id = m.author_id \
         JOIN memberships mb ON mb.room_id = m.room_id AND mb.user_id = $1 \
         WHERE m.search @@ to_tsquery('simple', $2) AND NOT m.deleted \
         AND ($3::text IS NULL OR m.room_id = $4) \
         ORDER BY m.created_at DESC, m.pk DESC LIMIT $5"
    );

    fn text_query(q: &str) -> Option<String> {
        ts_query(q)
    }
}

/// Turns the user's words into a `tsquery`: each word a prefix, all of them required. The words
/// hold only letters and digits, so no operator can be injected.
fn ts_query(q: &str) -> Option<String> {
    let words: Vec<String> =
        rows::search_words(q).iter().map(|w| format!("{}:*", w.to_lowercase())).collect();
    (!words.is_empty()).then(|| words.join(" & "))
}
