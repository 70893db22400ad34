//! The job queue's SQL and its `JobStore` implementation, written once for both drivers. The
//! statements are the same in both dialects but for one clause: PostgreSQL claims rows `FOR
//! UPDATE SKIP LOCKED`, so runners claiming side by side pass over each other's rows instead of
//! queueing behind them; SQLite has one writer, so a claim is alone anyway. `job_store!` expands
//! the one body for each driver with its pools and that clause.
//!
//! A claim writes a lease token per group (`<holder>:<group key>`, or `<holder>:<id>` for a
//! single job) and every later write is guarded by it: a runner whose lease ran out and was
//! claimed again by another changes nothing.

use crate::rows::Get;
use parlor_domain::Result;
use parlor_domain::ports::{ClaimedGroup, ClaimedJob};

/// Enqueues: $1 name, $2 payload, $3 dedupe key, $4 group key, $5 due, $6 max attempts, $7 now.
pub(crate) const ENQUEUE: &str = "INSERT INTO jobs (name, payload, dedupe_key, group_key, due_at, max_attempts, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7) \
     ON CONFLICT (name, dedupe_key) WHERE state = 'pending' AND dedupe_key IS NOT NULL DO NOTHING";

/// Claims whole groups: $1 name, $2 now, $3 horizon, $4 most groups, $5 holder, $6 lease end.
/// A group qualifies when one of its jobs is due and none is held; it comes with every job due
/// by the horizon that is not held.
macro_rules! claim_groups_sql {
    ($lock:literal) => {
        concat!(
            "WITH picked AS (SELECT id FROM jobs WHERE name = $1 AND state = 'pending' AND due_at <= $3 \
               AND (locked_until IS NULL OR locked_until < $2) \
               AND group_key IN (SELECT j.group_key FROM jobs j WHERE j.name = $1 AND j.state = 'pending' \
                   AND j.group_key IS NOT NULL AND j.due_at <= $2 \
                   AND NOT EXISTS (SELECT 1 FROM jobs k WHERE k.name = $1 AND k.group_key = j.group_key \
                       AND k.state = 'pending' AND k.locked_until >= $2) \
                   GROUP BY j.group_key ORDER BY MIN(j.due_at) LIMIT $4)",
            $lock,
            ") UPDATE jobs SET lease_token = $5 || ':' || group_key, locked_until = $6 \
             WHERE id IN (SELECT id FROM picked) \
             RETURNING id, payload, group_key, attempts, max_attempts, lease_token"
        )
    };
}

/// Claims single jobs (no group key): $1 name, $2 now, $3 most jobs, $4 holder, $5 lease end.
macro_rules! claim_single_sql {
    ($lock:literal) => {
        concat!(
            "WITH picked AS (SELECT id FROM jobs WHERE name = $1 AND state = 'pending' \
               AND group_key IS NULL AND due_at <= $2 AND (locked_until IS NULL OR locked_until < $2) \
               ORDER BY due_at, id LIMIT $3",
            $lock,
            ") UPDATE jobs SET lease_token = $4 || ':' || CAST(id AS TEXT), locked_until = $5 \
             WHERE id IN (SELECT id FROM picked) \
             RETURNING id, payload, group_key, attempts, max_attempts, lease_token"
        )
    };
}

/// $1 lease, $2 new end.
pub(crate) const RENEW: &str =
    "UPDATE jobs SET locked_until = $2 WHERE lease_token = $1 AND state = 'pending'";
/// $1 lease.
pub(crate) const FINISH: &str = "DELETE FROM jobs WHERE lease_token = $1 AND state = 'pending'";
/// $1 lease, $2 due again, $3 error.
pub(crate) const RETRY: &str = "UPDATE jobs SET attempts = attempts + 1, due_at = $2, last_error = $3, \
     locked_until = NULL, lease_token = NULL WHERE lease_token = $1 AND state = 'pending'";
/// $1 lease, $2 error.
pub(crate) const FAIL: &str = "UPDATE jobs SET attempts = attempts + 1, state = 'failed', last_error = $2, \
     locked_until = NULL, lease_token = NULL WHERE lease_token = $1 AND state = 'pending'";
/// $1 lease.
pub(crate) const RELEASE: &str = "UPDATE jobs SET locked_until = NULL, lease_token = NULL \
     WHERE lease_token = $1 AND state = 'pending'";
pub(crate) const PENDING: &str = "SELECT COUNT(*) AS n FROM jobs WHERE state = 'pending'";

/// Gathers claimed rows into their leases, in the order the leases first appear.
pub(crate) fn groups(rows: &[impl Get]) -> Result<Vec<ClaimedGroup>> {
    let mut groups: Vec<ClaimedGroup> = Vec::new();
    for row in rows {
        let lease = row.text("lease_token")?;
        let job = ClaimedJob {
            id: row.int("id")?,
            payload: row.text("payload")?,
            attempts: row.int("attempts")?,
            max_attempts: row.int("max_attempts")?,
        };
        match groups.iter_mut().find(|g| g.lease == lease) {
            Some(group) => group.jobs.push(job),
            None => {
                groups.push(ClaimedGroup { lease, group_key: row.opt_text("group_key")?, jobs: vec![job] })
            }
        }
    }
    // Within a group, in the order they were enqueued (RETURNING promises no order).
    for group in &mut groups {
        group.jobs.sort_by_key(|j| j.id);
    }
    Ok(groups)
}

/// Implements `JobStore` for a driver: `job_store!(Store, write: pool, read: pool, lock: "...")`
/// with the pool that writes, the pool that reads, and the claim's locking clause.
macro_rules! job_store {
    ($store:ty, write: $w:ident, read: $r:ident, lock: $lock:literal) => {
        #[async_trait::async_trait]
        impl parlor_domain::ports::JobStore for $store {
            async fn enqueue(&self, job: parlor_domain::ports::NewJob) -> parlor_domain::Result<bool> {
                let done = sqlx::query($crate::jobs::ENQUEUE)
                    .bind(job.name)
                    .bind(job.payload)
                    .bind(job.dedupe_key)
                    .bind(job.group_key)
                    .bind(job.due.millis())
                    .bind(job.max_attempts)
                    .bind(job.now.millis())
                    .execute(&self.$w)
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn claim_jobs(
                &self,
                claim: parlor_domain::ports::Claim<'_>,
            ) -> parlor_domain::Result<Vec<parlor_domain::ports::ClaimedGroup>> {
                let grouped = sqlx::query($crate::jobs::claim_groups_sql!($lock))
                    .bind(claim.name)
                    .bind(claim.now.millis())
                    .bind(claim.horizon.millis())
                    .bind(claim.limit)
                    .bind(claim.holder)
                    .bind(claim.lease_until.millis())
                    .fetch_all(&self.$w)
                    .await
                    .map_err(db_err)?;
                let single = sqlx::query($crate::jobs::claim_single_sql!($lock))
                    .bind(claim.name)
                    .bind(claim.now.millis())
                    .bind(claim.limit)
                    .bind(claim.holder)
                    .bind(claim.lease_until.millis())
                    .fetch_all(&self.$w)
                    .await
                    .map_err(db_err)?;
                let mut groups = $crate::jobs::groups(&grouped)?;
                groups.extend($crate::jobs::groups(&single)?);
                Ok(groups)
            }

            async fn renew_lease(
                &self,
                lease: &str,
                until: parlor_domain::Timestamp,
            ) -> parlor_domain::Result<u64> {
                let done = sqlx::query($crate::jobs::RENEW)
                    .bind(lease)
                    .bind(until.millis())
                    .execute(&self.$w)
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected())
            }

            async fn finish_jobs(&self, lease: &str) -> parlor_domain::Result<u64> {
                let done =
                    sqlx::query($crate::jobs::FINISH).bind(lease).execute(&self.$w).await.map_err(db_err)?;
                Ok(done.rows_affected())
            }

            async fn retry_jobs(
                &self,
                lease: &str,
                due: parlor_domain::Timestamp,
                error: &str,
            ) -> parlor_domain::Result<u64> {
                let done = sqlx::query($crate::jobs::RETRY)
                    .bind(lease)
                    .bind(due.millis())
                    .bind(error)
                    .execute(&self.$w)
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected())
            }

            async fn fail_jobs(&self, lease: &str, error: &str) -> parlor_domain::Result<u64> {
                let done = sqlx::query($crate::jobs::FAIL)
                    .bind(lease)
                    .bind(error)
                    .execute(&self.$w)
                    .await
                    .map_err(db_err)?;
                Ok(done.rows_affected())
            }

            async fn release_jobs(&self, lease: &str) -> parlor_domain::Result<u64> {
                let done =
                    sqlx::query($crate::jobs::RELEASE).bind(lease).execute(&self.$w).await.map_err(db_err)?;
                Ok(done.rows_affected())
            }

            async fn pending_jobs(&self) -> parlor_domain::Result<i64> {
                use sqlx::Row;
                sqlx::query($crate::jobs::PENDING)
                    .fetch_one(&self.$r)
                    .await
                    .map_err(db_err)?
                    .try_get("n")
                    .map_err(db_err)
            }
        }
    };
}

pub(crate) use {claim_groups_sql, claim_single_sql, job_store};
