//! parlor's notifier: e-mails for messages left unread, as a job of the job runner
//! (`parlor-jobs`). The worker writes an `unread_email` job per recipient in the transaction that
//! stores a direct message or a mention (the outbox); a runner claims a recipient's due jobs
//! together, and [`UnreadEmail`] drops those no longer needed (read, deleted, recipient online or
//! unsubscribed) and mails the rest as one digest. A failed send is retried by the runner with
//! exponential backoff, up to a bounded number of tries.

mod email;
mod mail;
mod mailer;

pub use email::{NotifierSettings, UnreadEmail, UnreadEmailPayload};
pub use mailer::{LogMailer, SmtpMailer};
