//! Turning claimed notification jobs into digests, for both drivers: each driver claims the rows
//! in its own SQL; reading what the e-mail needs goes through the store's ports.

use parlor_domain::ports::{Digest, DigestItem, MessageStore, RoomStore, UserStore};
use parlor_domain::{MessageId, Result, RoomId, UserId};

/// A claimed job as its row says.
pub struct ClaimedJob {
    pub id: i64,
    pub attempts: i64,
    pub room_id: RoomId,
    pub message_id: MessageId,
}

/// Builds the digests of claimed jobs. A job whose message is gone, or whose recipient left the
/// room, comes back with the message marked deleted or as read, so the notifier drops it.
pub async fn assemble<S>(store: &S, claims: Vec<(UserId, Vec<ClaimedJob>)>) -> Result<Vec<Digest>>
where
    S: UserStore + MessageStore + RoomStore + ?Sized,
{
    let mut digests = Vec::with_capacity(claims.len());
    for (recipient, jobs) in claims {
        let Some(record) = store.user_by_id(&recipient).await? else { continue };
        let mut items = Vec::with_capacity(jobs.len());
        for job in jobs {
            let access = store.room_access(&job.room_id, &recipient).await?;
            let Some(message) = store.message(&job.room_id, &job.message_id).await? else { continue };
            let (room_name, last_read_seq) = match access {
                Some(a) => {
                    (a.room.name, if a.role.is_some() { a.last_read_seq.unwrap_or(0) } else { i64::MAX })
                }
                None => (None, i64::MAX),
            };
            items.push(DigestItem {
                job_id: job.id,
                attempts: job.attempts,
                room_id: job.room_id,
                room_name,
                message,
                last_read_seq,
            });
        }
        digests.push(Digest { recipient: record, items });
    }
    Ok(digests)
}
