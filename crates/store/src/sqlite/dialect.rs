//! What SQLite says its own way: `MAX`/`MIN` of two values, a list bound as a JSON array, and
//! full-text search through the FTS5 table `messages_fts`.

use super::SqliteStore;
use crate::rows;
use crate::sql::Dialect;
use parlor_domain::{Error, Result};

impl Dialect for SqliteStore {
    const MARK_READ: &'static str = "UPDATE memberships SET last_read_seq = MAX(last_read_seq, \
         MIN($1, (SELECT last_seq FROM rooms WHERE id = $2))) \
         WHERE room_id = $3 AND user_id = $4 RETURNING last_read_seq";

    const USERS_BY_KEYS: &'static str = "SELECT id, username, display_name, created_at FROM users \
         WHERE username_key IN (SELECT value FROM json_each($1))";

    /// SQLite binds no arrays: the list goes as a JSON text.
    type TextList = String;

    fn text_list(items: Vec<String>) -> Result<String> {
        serde_json::to_string(&items).map_err(Error::internal)
    }

    const SEARCH: &'static str = concat!(
        "SELECT ",
        message_cols!(),
        " FROM messages_fts f JOIN messages m ON m.pk = f.rowid JOIN users u ON u.id = m.author_id \
         JOIN memberships mb ON mb.room_id = m.room_id AND mb.user_id = $1 \
         WHERE messages_fts MATCH $2 AND m.deleted = 0 AND ($3 IS NULL OR m.room_id = $4) \
         ORDER BY m.created_at DESC, m.pk DESC LIMIT $5"
    );

    fn text_query(q: &str) -> Option<String> {
        fts_query(q)
    }
}

/// Turns the user's words into an FTS5 query: each word quoted (so no operator can be injected)
/// and matched as a prefix, all of them required.
fn fts_query(q: &str) -> Option<String> {
    let words: Vec<String> = rows::search_words(q).iter().map(|w| format!("\"{w}\"*")).collect();
    (!words.is_empty()).then(|| words.join(" "))
}

#[cfg(test)]
mod tests {
    use super::fts_query;

    #[test]
    fn search_words_cannot_inject_fts_operators() {
        assert_eq!(fts_query("hello world").as_deref(), Some("\"hello\"* \"world\"*"));
        assert_eq!(fts_query("\" OR * NEAR(").as_deref(), Some("\"OR\"* \"NEAR\"*"));
        assert_eq!(fts_query("  ,,, "), None);
    }
}
