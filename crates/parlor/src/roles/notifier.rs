//! The notifier role: the background jobs, today the unread-message e-mails (`parlor serve`,
//! `parlor notifier`).

use super::{Role, grace, within_grace};
use crate::settings::NotifyArgs;
use crate::wiring::Services;
use async_trait::async_trait;
use parlor_domain::ports::Mailer;
use parlor_users::Accounts;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The notifier, ready to run.
pub struct Notifier {
    ctx: parlor_notifier::NotifierContext,
}

impl Notifier {
    /// E-mails over SMTP, or to the log without `--smtp-url`; unsubscribe links signed by
    /// `accounts`.
    pub fn new(services: &Services, args: &NotifyArgs, accounts: Arc<Accounts>) -> anyhow::Result<Self> {
        let mailer: Arc<dyn Mailer> = match &args.smtp_url {
            Some(url) => Arc::new(parlor_notifier::SmtpMailer::new(&url.0, &args.mail_from)?),
            None => Arc::new(parlor_notifier::LogMailer),
        };
        let ctx = parlor_notifier::NotifierContext {
            store: services.store.port(),
            presence: services.presence.clone(),
            mailer,
            unsubscribe_token: Arc::new(move |user| accounts.unsubscribe_token(user)),
            settings: parlor_notifier::NotifierSettings {
                backoff: args.notify_retry,
                lease: args.notify_lease,
                public_url: args.public_url.clone(),
                ..parlor_notifier::NotifierSettings::default()
            },
        };
        Ok(Self { ctx })
    }
}

#[async_trait]
impl Role for Notifier {
    fn name(&self) -> &'static str {
        "notifier"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        let work = parlor_notifier::run(self.ctx, shutdown.clone());
        within_grace("the jobs", &shutdown, grace::JOBS, async {
            work.await;
            Ok(())
        })
        .await
    }
}
