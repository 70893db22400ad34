//! Fresh stores for tests (the `testing` feature): SQLite in a temporary directory, or a
//! PostgreSQL database of its own on the server `PARLOR_TEST_POSTGRES_URL` names (the machine's
//! by default), created migrated and dropped when the test ends, even by a panic.

use crate::{PostgresOptions, PostgresStore, SqliteStore};
use parlor_domain::ports::{JobStore, NewUser, Store};
use parlor_domain::{Timestamp, UserId};
use sqlx::Connection;
use std::sync::Arc;

/// A store under test, and what to remove when done.
pub struct TestStore {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL server's admin URL and the test database's name.
    pg: Option<(String, String)>,
}

impl TestStore {
    /// SQLite in a fresh temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(&dir.path().join("test.db")).await.expect("SQLite opens");
        Self { store: Arc::new(store), _dir: Some(dir), pg: None }
    }

    /// A fresh, migrated PostgreSQL database; fails saying how to get a server when none answers.
    pub async fn postgres() -> Self {
        let admin = std::env::var("PARLOR_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!(
                "PostgreSQL is not reachable at {admin} ({e}). Start it (`bash .ci/services.sh`, see the \
                 README) or set PARLOR_TEST_POSTGRES_URL."
            )
        });
        let name = format!("parlor_test_{}", UserId::generate().to_string().replace('-', ""));
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        conn.close().await.ok();
        let url = with_database(&admin, &name);
        let store = PostgresStore::connect(&url, PostgresOptions { max_connections: 8, migrate: true })
            .await
            .expect("PostgreSQL store connects and migrates");
        Self { store: Arc::new(store), _dir: None, pg: Some((admin, name)) }
    }

    /// The store as the job port.
    pub fn jobs(&self) -> Arc<dyn JobStore> {
        self.store.clone()
    }

    /// Ends the test's use of the store (the database is dropped).
    pub async fn drop_db(self) {
        drop(self);
    }
}

/// The test database is dropped even when the test panics.
impl Drop for TestStore {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else { return };
        // Drop runs inside the test's runtime; the cleanup gets a runtime of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await;
                }
            });
        })
        .join();
    }
}

/// `url` with its database replaced by `db` (the query string kept).
pub fn with_database(url: &str, db: &str) -> String {
    match url.rfind('/') {
        Some(i) if url[..i].contains("://") && url[i..].len() > 1 || url.ends_with('/') => {
            let base = &url[..i];
            let query = url[i..].find('?').map(|q| &url[i + q..]).unwrap_or("");
            format!("{base}/{db}{query}")
        }
        _ => format!("{url}/{db}"),
    }
}

/// Creates a user named `name` straight in the store (no password worth the name).
pub async fn user(store: &Arc<dyn Store>, name: &str) -> UserId {
    let id = UserId::generate();
    store
        .create_user(NewUser {
            id: id.clone(),
            username: name.into(),
            display_name: name.into(),
            email: None,
            password_hash: "h".into(),
            phrase_hash: "p".into(),
            created_at: Timestamp::now(),
        })
        .await
        .expect("create a user");
    id
}
