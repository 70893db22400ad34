//! The notifier role: the durable job runner (`parlor serve`, `parlor notifier`), with every job
//! this build knows registered: today the unread-message e-mails. Any number of notifiers run
//! side by side; the jobs table's leases give each job to one at a time.

use super::{Role, grace, within_grace};
use crate::settings::NotifyArgs;
use crate::wiring::Services;
use async_trait::async_trait;
use parlor_domain::ports::Mailer;
use parlor_jobs::{Runner, RunnerSettings};
use parlor_users::Accounts;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// The job runner, ready to run.
pub struct Notifier {
    runner: Runner,
}

impl Notifier {
    /// E-mails over SMTP, or to the log without `--smtp-url`; unsubscribe links signed by
    /// `accounts`.
    pub fn new(services: &Services, args: &NotifyArgs, accounts: Arc<Accounts>) -> anyhow::Result<Self> {
        let mailer: Arc<dyn Mailer> = match &args.smtp_url {
            Some(url) => Arc::new(parlor_notifier::SmtpMailer::new(&url.0, &args.mail_from)?),
            None => Arc::new(parlor_notifier::LogMailer),
        };
        let email = parlor_notifier::UnreadEmail {
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
        let settings = RunnerSettings {
            holder: format!("notifier-{}", services.instance_id),
            // What a stopping runner gives its jobs, inside the role's own budget.
            grace: grace::JOBS / 2,
            ..RunnerSettings::default()
        };
        Ok(Self { runner: Runner::new(services.store.port(), settings).register(email) })
    }
}

#[async_trait]
impl Role for Notifier {
    fn name(&self) -> &'static str {
        "notifier"
    }

    async fn run(self: Box<Self>, shutdown: CancellationToken) -> anyhow::Result<()> {
        tracing::info!("notifier started");
        let work = self.runner.run(shutdown.clone());
        within_grace("the jobs", &shutdown, grace::JOBS, async {
            work.await;
            Ok(())
        })
        .await
    }
}
