//! The job queue in PostgreSQL: the shared statements (`crate::jobs`), with claims taking their
//! rows `FOR UPDATE SKIP LOCKED` so that runners side by side pass over each other's rows. Under
//! READ COMMITTED a row another claim committed meanwhile is re-checked against the lease
//! condition and left out.

use super::{PostgresStore, db_err};

crate::jobs::job_store!(PostgresStore, write: pool, read: pool, lock: " FOR UPDATE SKIP LOCKED");
