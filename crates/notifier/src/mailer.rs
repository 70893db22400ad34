//! Mailers: SMTP through lettre (STARTTLS or TLS and authentication as the URL says), and a log
//! mailer for development that records who would get what, never the text.

use async_trait::async_trait;
use lettre::message::{MultiPart, header};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};
use parlor_domain::ports::{Mail, Mailer};
use parlor_domain::{Error, Result};

/// Sends over SMTP.
pub struct SmtpMailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: String,
}

impl SmtpMailer {
    /// A mailer for `url`: `smtp://host:port` (plain), `smtp://user:pass@host:587?tls=required`
    /// (STARTTLS), `smtps://host:465` (TLS).
    pub fn new(url: &str, from: &str) -> Result<Self> {
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
            .map_err(|e| Error::internal(format!("bad --smtp-url: {e}")))?
            .timeout(Some(std::time::Duration::from_secs(15)))
            .build();
        Ok(Self { transport, from: from.to_owned() })
    }
}

#[async_trait]
impl Mailer for SmtpMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        let message = Message::builder()
            .from(self.from.parse().map_err(|e| Error::internal(format!("bad sender address: {e}")))?)
            .to(mail.to.parse().map_err(|e| Error::internal(format!("bad recipient address: {e}")))?)
            .subject(&mail.subject)
            .message_id(Some(mail.message_id.clone()))
            .header(ListUnsubscribe(format!("<{}>", mail.unsubscribe_url)))
            .multipart(MultiPart::alternative_plain_html(mail.text.clone(), mail.html.clone()))
            .map_err(|e| Error::internal(format!("cannot build the e-mail: {e}")))?;
        self.transport.send(message).await.map(|_| ()).map_err(|e| Error::Unavailable(format!("SMTP: {e}")))
    }
}

/// `List-Unsubscribe`, so mail clients offer an unsubscribe button.
#[derive(Clone)]
struct ListUnsubscribe(String);

impl header::Header for ListUnsubscribe {
    fn name() -> header::HeaderName {
        header::HeaderName::new_from_ascii_str("List-Unsubscribe")
    }

    fn parse(s: &str) -> std::result::Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }

    fn display(&self) -> header::HeaderValue {
        header::HeaderValue::new(Self::name(), self.0.clone())
    }
}

/// Logs e-mails instead of sending them (no `--smtp-url`): recipient and subject only.
pub struct LogMailer;

#[async_trait]
impl Mailer for LogMailer {
    async fn send(&self, mail: &Mail) -> Result<()> {
        tracing::info!(to = %mail.to, subject = %mail.subject, "e-mail (not sent: no --smtp-url)");
        Ok(())
    }
}
