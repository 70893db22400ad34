//! The digest e-mail: who wrote, where, what (quoted), and links to the rooms and to unsubscribe;
//! plain text and HTML.

use parlor_domain::RoomId;
use parlor_domain::model::{Message, UserRecord};
use parlor_domain::ports::Mail;
use sha2::{Digest as _, Sha256};

/// One still-unread message of a digest.
pub struct Item {
    pub room_id: RoomId,
    /// The room's name (`None` for a direct room).
    pub room_name: Option<String>,
    /// The message as it is now.
    pub message: Message,
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let _ = pulldown_cmark_escape::escape_html(&mut out, s);
    out
}

fn place(item: &Item) -> String {
    match &item.room_name {
        Some(name) => format!("#{name}"),
        None => "a direct message".into(),
    }
}

/// The e-mail for a recipient's due items.
pub fn compose(recipient: &UserRecord, items: &[Item], public_url: &str, token: &str) -> Mail {
    let base = public_url.trim_end_matches('/');
    let mut senders: Vec<&str> = items.iter().map(|i| i.message.author.display_name.as_str()).collect();
    senders.dedup();
    let subject = match (items.len(), senders.as_slice()) {
        (1, [one]) => format!("{one} sent you a message on parlor"),
        (n, [one]) => format!("{n} unread messages from {one} on parlor"),
        (n, _) => format!("{n} unread messages on parlor"),
    };
    let unsubscribe_url = format!("{base}/api/v1/unsubscribe?token={token}");
    let mut text =
        format!("Hello {},\n\nYou have unread messages on parlor:\n\n", recipient.user.display_name);
    let mut html = format!(
        "<p>Hello {},</p><p>You have unread messages on parlor:</p>",
        escape(&recipient.user.display_name)
    );
    for item in items {
        let link = format!("{base}/#/rooms/{}", item.room_id);
        let author = &item.message.author;
        text.push_str(&format!("{} (@{}) in {}:\n", author.display_name, author.username, place(item)));
        for line in item.message.body.lines() {
            text.push_str(&format!("> {line}\n"));
        }
        text.push_str(&format!("{link}\n\n"));
        html.push_str(&format!(
            "<p><b>{}</b> (@{}) in <a href=\"{}\">{}</a>:</p><blockquote>{}</blockquote>",
            escape(&author.display_name),
            escape(&author.username),
            escape(&link),
            escape(&place(item)),
            item.message.html
        ));
    }
    text.push_str(&format!("To stop these e-mails: {unsubscribe_url}\n"));
    html.push_str(&format!("<p><a href=\"{}\">Stop these e-mails</a></p>", escape(&unsubscribe_url)));
    // The same messages always give the same id, so a retried digest can be recognised
    // downstream.
    let mut ids: Vec<&str> = items.iter().map(|i| i.message.id.as_str()).collect();
    ids.sort_unstable();
    let key = Sha256::digest(format!("{}:{ids:?}", recipient.user.id).as_bytes());
    let key: String = key.iter().take(16).map(|b| format!("{b:02x}")).collect();
    Mail {
        to: recipient.email.clone().unwrap_or_default(),
        subject,
        text,
        html,
        message_id: format!("<digest-{key}@parlor>"),
        unsubscribe_url,
    }
}
