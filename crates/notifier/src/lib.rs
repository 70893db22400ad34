//! parlor's notifier role: e-mails for messages left unread. The worker writes a job per
//! recipient in the transaction that stores a direct message or a mention (the outbox); the
//! notifier claims due jobs one recipient at a time, drops those no longer needed (read,
//! deleted, recipient online or unsubscribed), mails the rest as one digest, and retries a
//! failed send with exponential backoff up to a bounded number of tries.

mod mail;
mod mailer;

pub use mailer::{LogMailer, SmtpMailer};

use parlor_domain::ports::{Digest, JobEnd, Mailer, Presence, Store};
use parlor_domain::{Result, Timestamp};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the notifier works.
#[derive(Clone, Debug)]
pub struct NotifierSettings {
    /// How often due jobs are looked for.
    pub poll: Duration,
    /// How long a claim lasts: a notifier that dies mid-job leaves its jobs to another after this.
    pub lease: Duration,
    /// Tries before a job is given up (and logged).
    pub max_attempts: i64,
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
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(60),
            max_attempts: 8,
            backoff: Duration::from_secs(5),
            public_url: "http://127.0.0.1:8080".into(),
            digest_window: Duration::from_secs(30),
        }
    }
}

/// What the notifier needs.
#[derive(Clone)]
pub struct NotifierContext {
    pub store: Arc<dyn Store>,
    pub presence: Arc<dyn Presence>,
    pub mailer: Arc<dyn Mailer>,
    /// Makes a user's unsubscribe token.
    pub unsubscribe_token: Arc<dyn Fn(&parlor_domain::UserId) -> String + Send + Sync>,
    pub settings: NotifierSettings,
}

/// Runs until `shutdown`.
pub async fn run(ctx: NotifierContext, shutdown: CancellationToken) {
    tracing::info!("notifier started");
    let mut tick = tokio::time::interval(ctx.settings.poll);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(e) = run_once(&ctx).await {
            tracing::warn!(error = %e, "notifier round failed");
        }
    }
}

/// Claims and handles what is due now; returns how many e-mails were sent.
pub async fn run_once(ctx: &NotifierContext) -> Result<usize> {
    let now = Timestamp::now();
    let lease_until = now.plus_millis(ctx.settings.lease.as_millis() as i64);
    let horizon = now.plus_millis(ctx.settings.digest_window.as_millis() as i64);
    let digests = ctx.store.claim_due(now, horizon, lease_until, 50).await?;
    let mut sent = 0;
    for digest in digests {
        if handle(ctx, digest).await? {
            sent += 1;
        }
    }
    Ok(sent)
}

async fn handle(ctx: &NotifierContext, digest: Digest) -> Result<bool> {
    let recipient = &digest.recipient;
    let all: Vec<i64> = digest.items.iter().map(|i| i.job_id).collect();
    let wants_mail = recipient.email.is_some() && recipient.email_notifications;
    let online = ctx
        .presence
        .online(std::slice::from_ref(&recipient.user.id))
        .await?
        .first()
        .copied()
        .unwrap_or(false);
    if !wants_mail || online {
        ctx.store.finish_jobs(&all, JobEnd::Dropped).await?;
        return Ok(false);
    }
    let (keep, drop): (Vec<_>, Vec<_>) =
        digest.items.iter().partition(|i| !i.message.deleted && i.message.seq > i.last_read_seq);
    let dropped: Vec<i64> = drop.iter().map(|i| i.job_id).collect();
    if !dropped.is_empty() {
        ctx.store.finish_jobs(&dropped, JobEnd::Dropped).await?;
    }
    if keep.is_empty() {
        return Ok(false);
    }
    let ids: Vec<i64> = keep.iter().map(|i| i.job_id).collect();
    let token = (ctx.unsubscribe_token)(&recipient.user.id);
    let mail = mail::compose(recipient, &keep, &ctx.settings.public_url, &token);
    match ctx.mailer.send(&mail).await {
        Ok(()) => {
            ctx.store.finish_jobs(&ids, JobEnd::Sent).await?;
            metrics::counter!("parlor_emails_sent_total").increment(1);
            tracing::info!(user_id = %recipient.user.id, messages = ids.len(), "unread-message e-mail sent");
            Ok(true)
        }
        Err(e) => {
            metrics::counter!("parlor_emails_failed_total").increment(1);
            let tried = keep.iter().map(|i| i.attempts).max().unwrap_or(0) + 1;
            if tried >= ctx.settings.max_attempts {
                ctx.store.finish_jobs(&ids, JobEnd::Failed).await?;
                tracing::error!(error = %e, user_id = %recipient.user.id, tries = tried, "unread-message e-mail given up");
            } else {
                let wait = ctx.settings.backoff.saturating_mul(1 << (tried - 1).clamp(0, 16));
                let next = Timestamp::now().plus_millis(wait.as_millis() as i64);
                ctx.store.retry_jobs(&ids, next).await?;
                tracing::warn!(error = %e, user_id = %recipient.user.id, tries = tried, retry_in_ms = wait.as_millis() as u64, "unread-message e-mail failed; will retry");
            }
            Ok(false)
        }
    }
}
