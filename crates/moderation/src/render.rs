//! Rendering a body: CommonMark through pulldown-cmark, raw HTML escaped, bare URLs and
//! `@username` mentions turned into markup, and the result cleaned by ammonia so that nothing
//! executable survives whatever the input.

use parlor_domain::model::User;
use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
use std::collections::{HashMap, HashSet};
use std::sync::LazyLock;

/// A rendered body.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderedBody {
    /// Safe HTML.
    pub html: String,
    /// The users mentioned, in order of first mention, without repeats.
    pub mentions: Vec<User>,
    /// How many links the body holds (bare or written as links).
    pub links: usize,
    /// The targets of those links, as written (bare URLs without a scheme get `https://`).
    pub urls: Vec<String>,
}

fn options() -> Options {
    Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TABLES | Options::ENABLE_TASKLISTS
}

static CLEANER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.link_rel(Some("nofollow noopener noreferrer"))
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .rm_tags(&["img"])
        .add_tags(&["span", "input"])
        .add_tag_attributes("span", &["data-user-id"])
        .add_allowed_classes("span", &["mention"])
        .add_tag_attributes("input", &["type", "checked", "disabled"]);
    b
});

/// A piece of text: plain, a bare link, or a possible mention.
enum Piece<'a> {
    Text(&'a str),
    Link(&'a str),
    Mention(&'a str),
}

fn is_username_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')
}

/// Splits text into plain runs, bare links and `@name` candidates.
fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut finder = linkify::LinkFinder::new();
    finder.kinds(&[linkify::LinkKind::Url]);
    for span in finder.spans(text) {
        match span.kind() {
            Some(linkify::LinkKind::Url) => out.push(Piece::Link(span.as_str())),
            _ => split_mentions(span.as_str(), &mut out),
        }
    }
    out
}

fn split_mentions<'a>(text: &'a str, out: &mut Vec<Piece<'a>>) {
    let mut start = 0;
    let mut prev: Option<char> = None;
    let mut iter = text.char_indices().peekable();
    while let Some((i, c)) = iter.next() {
        let at_word_start = prev.is_none_or(|p| !is_username_char(p) && p != '@');
        if c == '@' && at_word_start {
            let name_start = i + 1;
            let mut end = name_start;
            while let Some(&(j, d)) = iter.peek() {
                if is_username_char(d) {
                    end = j + d.len_utf8();
                    iter.next();
                } else {
                    break;
                }
            }
            // A trailing '.' or '-' is punctuation, not part of the name ("thanks @bob.").
            let name = text[name_start..end].trim_end_matches(['.', '-']);
            if name.len() >= 3 {
                let name_end = name_start + name.len();
                if start < i {
                    out.push(Piece::Text(&text[start..i]));
                }
                out.push(Piece::Mention(&text[i..name_end]));
                start = name_end;
            }
            prev = text[..end].chars().next_back();
            continue;
        }
        prev = Some(c);
    }
    if start < text.len() {
        out.push(Piece::Text(&text[start..]));
    }
}

/// Walks the body's text outside code and links, calling `f` on each piece.
fn walk_text<'a>(body: &'a str, mut f: impl FnMut(Event<'a>) -> Vec<Event<'a>>) -> Vec<Event<'a>> {
    let mut in_link = 0usize;
    let mut in_code = false;
    let mut out = Vec::new();
    for event in Parser::new_ext(body, options()) {
        match event {
            Event::Start(Tag::Link { .. }) => {
                in_link += 1;
                out.push(event);
            }
            Event::End(TagEnd::Link) => {
                in_link = in_link.saturating_sub(1);
                out.push(event);
            }
            // Images become links to the image: no third-party request when a message is shown.
            Event::Start(Tag::Image { link_type, dest_url, title, id }) => {
                in_link += 1;
                out.push(Event::Start(Tag::Link { link_type, dest_url, title, id }));
            }
            Event::End(TagEnd::Image) => {
                in_link = in_link.saturating_sub(1);
                out.push(Event::End(TagEnd::Link));
            }
            Event::Start(Tag::CodeBlock(_)) => {
                in_code = true;
                out.push(event);
            }
            Event::End(TagEnd::CodeBlock) => {
                in_code = false;
                out.push(event);
            }
            // Raw HTML is shown as text, never interpreted.
            Event::Html(raw) | Event::InlineHtml(raw) => {
                if in_link > 0 || in_code {
                    out.push(Event::Text(raw));
                } else {
                    out.extend(f(Event::Text(raw)));
                }
            }
            Event::Text(t) if in_link == 0 && !in_code => out.extend(f(Event::Text(t))),
            other => out.push(other),
        }
    }
    out
}

/// The `@name`s a body mentions, lower-cased, without repeats, so the caller can resolve them.
pub fn mention_candidates(body: &str) -> Vec<String> {
    let mut seen = Vec::new();
    walk_text(body, |event| {
        if let Event::Text(t) = &event {
            for piece in pieces(t) {
                if let Piece::Mention(m) = piece {
                    let name = m[1..].to_lowercase();
                    if !seen.contains(&name) {
                        seen.push(name);
                    }
                }
            }
        }
        Vec::new()
    });
    seen
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let _infallible = pulldown_cmark_escape::escape_html(&mut out, s);
    out
}

/// Renders a body. `users` maps lower-cased usernames to the users that exist; an `@name` of
/// anyone else stays plain text.
pub fn render(body: &str, users: &HashMap<String, User>) -> RenderedBody {
    let mut mentions: Vec<User> = Vec::new();
    let mut urls: Vec<String> = Vec::new();
    let events = walk_text(body, |event| {
        let Event::Text(t) = event else { return vec![event] };
        let mut out = Vec::new();
        for piece in pieces(&t) {
            match piece {
                Piece::Text(s) => out.push(Event::Text(CowStr::from(s.to_owned()))),
                Piece::Link(url) => {
                    let href = if url.contains("://") { url.to_owned() } else { format!("https://{url}") };
                    out.push(Event::InlineHtml(CowStr::from(format!(
                        "<a href=\"{}\">{}</a>",
                        escape(&href),
                        escape(url)
                    ))));
                    urls.push(href);
                }
                Piece::Mention(m) => match users.get(&m[1..].to_lowercase()) {
                    Some(user) => {
                        if !mentions.iter().any(|u| u.id == user.id) {
                            mentions.push(user.clone());
                        }
                        out.push(Event::InlineHtml(CowStr::from(format!(
                            "<span class=\"mention\" data-user-id=\"{}\">@{}</span>",
                            escape(user.id.as_str()),
                            escape(&user.username)
                        ))));
                    }
                    None => out.push(Event::Text(CowStr::from(m.to_owned()))),
                },
            }
        }
        out
    });
    for event in &events {
        if let Event::Start(Tag::Link { dest_url, .. }) = event {
            urls.push(dest_url.to_string());
        }
    }
    let mut html = String::with_capacity(body.len() * 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    RenderedBody { html: CLEANER.clean(&html).to_string(), mentions, links: urls.len(), urls }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parlor_domain::{Timestamp, UserId};

    fn users() -> HashMap<String, User> {
        let alice = User {
            id: UserId::from("u-alice"),
            username: "Alice".into(),
            display_name: "Alice".into(),
            created_at: Timestamp(0),
        };
        HashMap::from([("alice".to_owned(), alice)])
    }

    #[test]
    fn markdown_is_rendered_and_raw_html_escaped() {
        let r = render("**hi** <script>alert(1)</script>", &HashMap::new());
        assert!(r.html.contains("<strong>hi</strong>"), "{}", r.html);
        assert!(!r.html.contains("<script"), "{}", r.html);
        assert!(r.html.contains("&lt;script&gt;"), "{}", r.html);
    }

    #[test]
    fn dangerous_links_lose_their_href() {
        let r =
            render("[x](javascript:alert(1)) <a href=\"javascript:x\" onclick=\"y\">z</a>", &HashMap::new());
        assert!(!r.html.contains("<a href=\"javascript"), "{}", r.html);
        assert!(r.html.contains("&lt;a href="), "raw HTML must be shown as text: {}", r.html);
        assert_eq!(r.html.matches("<a ").count(), 1, "{}", r.html);
    }

    #[test]
    fn bare_urls_become_nofollow_links() {
        let r = render("see https://example.com/a?b=1 now", &HashMap::new());
        assert!(r.html.contains("href=\"https://example.com/a?b=1\""), "{}", r.html);
        assert!(r.html.contains("rel=\"nofollow noopener noreferrer\""), "{}", r.html);
        assert_eq!(r.links, 1);
    }

    #[test]
    fn mentions_of_existing_users_resolve_and_others_stay_text() {
        assert_eq!(mention_candidates("hi @alice and @bob. mail a@b.c `@code`"), vec!["alice", "bob"]);
        let r = render("hi @alice and @bob.", &users());
        assert_eq!(r.mentions.len(), 1);
        assert!(r.html.contains("data-user-id=\"u-alice\""), "{}", r.html);
        assert!(r.html.contains("@bob."), "{}", r.html);
    }

    #[test]
    fn code_is_left_alone() {
        let r = render("```\n@alice https://x.y\n```", &users());
        assert!(r.mentions.is_empty());
        assert!(!r.html.contains("<a "), "{}", r.html);
    }
}
