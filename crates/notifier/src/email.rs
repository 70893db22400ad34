//! The unread-message e-mail job: one job per (recipient, message), grouped by recipient, so a
//! run gets every job of one recipient falling due within the digest window and sends at most
//! one e-mail for them.

use crate::mail::{self, Item};
use async_trait::async_trait;
use parlor_domain::ports::{Mailer, Presence, Store, unread_email};
use parlor_domain::{MessageId, RoomId, UserId};
use parlor_jobs::{Job, Policy};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;

/// How the e-mails are made and retried.
#[derive(Clone, Debug)]
pub struct NotifierSettings {
    /// How long a claim lasts: a notifier that dies mid-job leaves its jobs to another after this.
    pub lease: Duration,
    /// Wait before the first retry; each later one waits twice as long.
    pub backoff: Duration,
    /// Base URL of the web client, for links in e-mails.
    pub public_url: String,
    /// A recipient's jobs falling due within this time of the first are mailed with it, as one
    /// digest.
    pub digest_window: Duration,
}

impl Default for NotifierSettings {
    fn default() -> Self {
        Self {
            lease: Duration::from_secs(60),
            backoff: Duration::from_secs(5),
            public_url: "http://127.0.0.1:8080".into(),
            digest_window: Duration::from_secs(30),
        }
    }
}

/// One message that may owe its recipient an e-mail, as the outbox writes it (the store builds
/// this JSON in SQL: keep the field names).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnreadEmailPayload {
    pub recipient: UserId,
    pub room: RoomId,
    pub message: MessageId,
}

/// The unread-message e-mail job and what it needs to run.
#[derive(Clone)]
pub struct UnreadEmail {
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    pub mailer: Arc<dyn Mailer>,
    /// Makes a user's unsubscribe token.
    pub unsubscribe_token: Arc<dyn Fn(&UserId) -> String + Send + Sync>,
    pub settings: NotifierSettings,
}

#[async_trait]
impl Job for UnreadEmail {
    const NAME: &'static str = unread_email::NAME;
    const MAX_ATTEMPTS: i64 = unread_email::MAX_ATTEMPTS;
    type Payload = UnreadEmailPayload;

    fn group(payload: &UnreadEmailPayload) -> Option<String> {
        Some(payload.recipient.to_string())
    }

    fn policy(&self) -> Policy {
        Policy {
            backoff: self.settings.backoff,
            lease: self.settings.lease,
            window: Some(self.settings.digest_window),
        }
    }

    async fn run(&self, payload: UnreadEmailPayload) -> anyhow::Result<()> {
        self.run_group(vec![payload]).await
    }

    /// Mails one digest per recipient (a group is one recipient's), or nothing when nothing is
    /// still unread.
    async fn run_group(&self, payloads: Vec<UnreadEmailPayload>) -> anyhow::Result<()> {
        let mut recipients: Vec<UserId> = payloads.iter().map(|p| p.recipient.clone()).collect();
        // A group is one recipient's; were it not, each recipient still gets one digest.
        recipients.sort_unstable();
        recipients.dedup();
        for recipient in recipients {
            let mine = payloads.iter().filter(|p| p.recipient == recipient);
            self.digest(&recipient, mine).await?;
        }
        Ok(())
    }
}

impl UnreadEmail {
    async fn digest(
        &self,
        recipient: &UserId,
        payloads: impl Iterator<Item = &UnreadEmailPayload>,
    ) -> anyhow::Result<()> {
        let Some(record) = self.store.user_by_id(recipient).await? else { return Ok(()) };
        let wants_mail = record.email.is_some() && record.email_notifications;
        let online =
            self.presence.online(std::slice::from_ref(recipient)).await?.first().copied().unwrap_or(false);
        if !wants_mail || online {
            return Ok(());
        }
        let mut items = Vec::new();
        for payload in payloads {
            // A message gone, or a recipient who left the room, owes nothing.
            let Some(access) = self.store.room_access(&payload.room, recipient).await? else { continue };
            if access.role.is_none() {
                continue;
            }
            let Some(message) = self.store.message(&payload.room, &payload.message).await? else { continue };
            if message.deleted || message.seq <= access.last_read_seq.unwrap_or(0) {
                continue;
            }
            items.push(Item { room_id: payload.room.clone(), room_name: access.room.name, message });
        }
        if items.is_empty() {
            return Ok(());
        }
        let token = (self.unsubscribe_token)(recipient);
        let mail = mail::compose(&record, &items, &self.settings.public_url, &token);
        match self.mailer.send(&mail).await {
            Ok(()) => {
                metrics::counter!("parlor_emails_sent_total").increment(1);
                tracing::info!(user_id = %recipient, messages = items.len(), "unread-message e-mail sent");
                Ok(())
            }
            Err(e) => {
                metrics::counter!("parlor_emails_failed_total").increment(1);
                tracing::warn!(error = %e, user_id = %recipient, "unread-message e-mail not sent");
                Err(e.into())
            }
        }
    }
}
