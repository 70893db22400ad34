//! The PostgreSQL driver: the distributed store. Any number of gateways and workers share it; a
//! room's `last_seq` is incremented under the row's lock inside the transaction that inserts the
//! message, so seqs stay gapless under concurrent writers (a rolled-back insert rolls back its
//! increment too).

mod dialect;
mod jobs;
mod messages;

use parlor_domain::{Error, Result};
use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// The PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

/// How to connect.
#[derive(Clone, Debug)]
pub struct PostgresOptions {
    /// Most connections in the pool.
    pub max_connections: u32,
    /// Whether to apply the migrations on connect.
    pub migrate: bool,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self { max_connections: 16, migrate: true }
    }
}

impl PostgresStore {
    /// Connects to `url` and (unless told not to) applies the migrations. The pool reconnects on
    /// its own when the server comes back after a restart.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| Error::internal(format!("bad PostgreSQL URL: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(Duration::from_secs(5))
            .test_before_acquire(true)
            .connect_with(connect)
            .await
            .map_err(|e| Error::Unavailable(format!("cannot connect to PostgreSQL: {e}")))?;
        let store = Self { pool };
        if options.migrate {
            store.migrate().await?;
        }
        Ok(store)
    }

    /// Applies the migrations that are not applied yet.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| Error::internal(format!("cannot migrate the database: {e}")))
    }

    /// Reverts the newest migration (`parlor migrate down`).
    pub async fn migrate_down(&self) -> Result<()> {
        let applied = sqlx::query_scalar::<_, i64>(
            "SELECT version FROM _sqlx_migrations WHERE success ORDER BY version DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(db_err)?;
        let target = match applied {
            Some(v) => MIGRATOR.iter().map(|m| m.version).filter(|m| *m < v).max().unwrap_or(0),
            None => return Ok(()),
        };
        MIGRATOR
            .undo(&self.pool, target)
            .await
            .map_err(|e| Error::internal(format!("cannot revert the migration: {e}")))
    }

    /// Closes the pool, waiting for queries in flight.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

crate::sql::ports!(PostgresStore, writer: pool, reader: pool, db_err: db_err);

/// Maps a driver error to the domain's (`sql::db_error`), with PostgreSQL's own codes.
pub(crate) fn db_err(e: sqlx::Error) -> Error {
    crate::sql::db_error(e, |code, e| {
        // 22021: a bound text holds U+0000, which PostgreSQL's text cannot. Every stored text was
        // validated free of it, so such a key (an id from a path or a body) names nothing.
        if code == "22021" {
            return Some(Error::NotFound("no such resource".into()));
        }
        // Class 08 (connection), 53 (resources), 57P (operator intervention: shutdown, restart).
        if code.starts_with("08") || code.starts_with("53") || code.starts_with("57P") {
            tracing::warn!(error = %e, "database unavailable");
            return Some(Error::Unavailable("the database is unavailable".into()));
        }
        None
    })
}
