//! The job queue in SQLite: the shared statements (`crate::jobs`) on the writer, counts on the
//! reader. One writer means one claim at a time, so a claim needs no row locks.

use super::{SqliteStore, db_err};

crate::jobs::job_store!(SqliteStore, write: writer, read: reader, lock: "");
