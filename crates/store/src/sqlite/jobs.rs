//! The notification outbox in SQLite.

use super::{SqliteStore, db_err};
use crate::jobs::{ClaimedJob, assemble};
use async_trait::async_trait;
use parlor_domain::ports::{Digest, JobEnd, JobStore};
use parlor_domain::{Error, Result, Timestamp, UserId};
use sqlx::Row;

fn state(end: JobEnd) -> &'static str {
    match end {
        JobEnd::Sent => "sent",
        JobEnd::Dropped => "dropped",
        JobEnd::Failed => "failed",
    }
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn claim_due(
        &self,
        now: Timestamp,
        horizon: Timestamp,
        lease_until: Timestamp,
        limit: i64,
    ) -> Result<Vec<Digest>> {
        let mut tx = self.writer.begin().await.map_err(db_err)?;
        // Recipients with due jobs, none of whose pending jobs another notifier holds.
        let recipients = sqlx::query(
            "SELECT DISTINCT recipient_id FROM notification_jobs j WHERE state = 'pending' \
             AND next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM notification_jobs k \
             WHERE k.recipient_id = j.recipient_id AND k.state = 'pending' AND k.locked_until >= ?) LIMIT ?",
        )
        .bind(now.millis())
        .bind(now.millis())
        .bind(limit)
        .fetch_all(&mut *tx)
        .await
        .map_err(db_err)?;
        let mut claims = Vec::with_capacity(recipients.len());
        for row in recipients {
            let recipient: String = row.try_get("recipient_id").map_err(db_err)?;
            let jobs = sqlx::query(
                "UPDATE notification_jobs SET locked_until = ? WHERE recipient_id = ? AND state = 'pending' \
                 AND next_attempt_at <= ? AND (locked_until IS NULL OR locked_until < ?) \
                 RETURNING id, attempts, room_id, message_id",
            )
            .bind(lease_until.millis())
            .bind(&recipient)
            .bind(horizon.millis())
            .bind(now.millis())
            .fetch_all(&mut *tx)
            .await
            .map_err(db_err)?;
            let jobs = jobs
                .iter()
                .map(|r| {
                    Ok(ClaimedJob {
                        id: r.try_get("id").map_err(db_err)?,
                        attempts: r.try_get("attempts").map_err(db_err)?,
                        room_id: r.try_get::<String, _>("room_id").map_err(db_err)?.into(),
                        message_id: r.try_get::<String, _>("message_id").map_err(db_err)?.into(),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if !jobs.is_empty() {
                claims.push((UserId::from(recipient), jobs));
            }
        }
        tx.commit().await.map_err(db_err)?;
        assemble(self, claims).await
    }

    async fn finish_jobs(&self, job_ids: &[i64], end: JobEnd) -> Result<()> {
        let ids = serde_json::to_string(job_ids).map_err(Error::internal)?;
        sqlx::query(
            "UPDATE notification_jobs SET state = ?, locked_until = NULL WHERE id IN (SELECT value FROM json_each(?))",
        )
        .bind(state(end))
        .bind(ids)
        .execute(&self.writer)
        .await
        .map_err(db_err)?;
        Ok(())
    }

    async fn retry_jobs(&self, job_ids: &[i64], next_attempt_at: Timestamp) -> Result<i64> {
        let ids = serde_json::to_string(job_ids).map_err(Error::internal)?;
        let rows = sqlx::query(
            "UPDATE notification_jobs SET attempts = attempts + 1, next_attempt_at = ?, locked_until = NULL \
             WHERE id IN (SELECT value FROM json_each(?)) RETURNING attempts",
        )
        .bind(next_attempt_at.millis())
        .bind(ids)
        .fetch_all(&self.writer)
        .await
        .map_err(db_err)?;
        rows.iter().map(|r| r.try_get::<i64, _>("attempts").map_err(db_err)).try_fold(0, |m, a| Ok(m.max(a?)))
    }

    async fn pending_jobs(&self) -> Result<i64> {
        sqlx::query("SELECT COUNT(*) AS n FROM notification_jobs WHERE state = 'pending'")
            .fetch_one(&self.reader)
            .await
            .map_err(db_err)?
            .try_get("n")
            .map_err(db_err)
    }
}
