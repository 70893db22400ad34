//! Moderation's parsers of message bodies: the markdown renderer with its sanitiser, and the
//! normalisation behind the blocked-word list and the classifier.

use crate::html::dangers;
use parlor_domain::model::User;
use parlor_domain::validate;
use parlor_domain::{Timestamp, UserId};
use parlor_moderation::classifier::Classifier;
use parlor_moderation::{BUILTIN_BLOCKED_WORDS, BlockList, mention_candidates, normalise};
use std::collections::HashMap;
use std::sync::LazyLock;

fn user(id: &str, username: &str) -> (String, User) {
    let user = User {
        id: UserId::from(id),
        username: username.to_owned(),
        display_name: username.to_owned(),
        created_at: Timestamp(0),
    };
    (username.to_lowercase(), user)
}

/// The users a fuzzed body may mention; one has an id made to break out of its attribute.
static USERS: LazyLock<HashMap<String, User>> = LazyLock::new(|| {
    HashMap::from([
        user("u-alice", "alice"),
        user("u-bob", "Bob.B"),
        user("\"><script>alert(1)</script><a href=\"javascript:x", "eve"),
    ])
});

/// A message body rendered as the worker renders it: nothing may panic, and the HTML must hold no
/// script or other active element, no event handler, no `style`, no URL of a scheme other than
/// `http`, `https` and `mailto`, and no link without `rel="nofollow noopener noreferrer"`.
pub fn render(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    // Only bodies that pass validation are rendered.
    if validate::body(&text).is_err() {
        return;
    }
    let r = parlor_moderation::render(&text, &USERS);
    let found = dangers(&r.html);
    assert!(found.is_empty(), "the rendering of {text:?} is unsafe: {found:?}\n{}", r.html);
    assert_eq!(r.links, r.urls.len());
    let candidates = mention_candidates(&text);
    for (i, m) in r.mentions.iter().enumerate() {
        assert!(!r.mentions[..i].iter().any(|o| o.id == m.id), "{} mentioned twice", m.username);
        assert!(
            candidates.contains(&m.username.to_lowercase()),
            "{} resolved but not a candidate: {candidates:?}",
            m.username
        );
    }
}

static BUILTIN: LazyLock<BlockList> = LazyLock::new(|| BlockList::new(BUILTIN_BLOCKED_WORDS));

/// The longest list a fuzzed input may bring (each term compiles into up to 32 variants).
const MAX_TERMS: usize = 8;

/// Blocked-word normalisation and matching. The input is a text, or `list NUL text` to bring a
/// list of its own. Nothing may panic; `normalise` gives words of letters and digits separated by
/// single spaces; a hit names a term of the list; each term of a list is found in itself; the
/// classifier's score is a probability.
pub fn blocklist(data: &[u8]) {
    let input = String::from_utf8_lossy(data);
    let (list, text) = match input.split_once('\0') {
        Some((list, text)) => (Some(list), text),
        None => (None, &*input),
    };
    let n = normalise(text);
    assert!(!n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  "), "{text:?} -> {n:?}");
    assert!(n.chars().all(|c| c == ' ' || c.is_alphanumeric()), "{text:?} -> {n:?}");
    let terms = |list: &str| -> Vec<String> {
        list.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_owned)
            .collect()
    };
    if let Some(hit) = BUILTIN.find(text) {
        assert!(terms(BUILTIN_BLOCKED_WORDS).iter().any(|t| t == hit), "{hit:?} is not a term");
    }
    if let Some(list) = list
        && list.lines().count() <= MAX_TERMS
    {
        let own = BlockList::new(list);
        let written = terms(list);
        if let Some(hit) = own.find(text) {
            assert!(written.iter().any(|t| t == hit), "{hit:?} is not a term of {list:?}");
        }
        for term in written.iter().filter(|t| !normalise(t).is_empty()) {
            assert!(own.find(term).is_some(), "the term {term:?} is not found in itself");
        }
    }
    let p = Classifier::builtin().spam_probability(text, 0);
    assert!((0.0..=1.0).contains(&p), "spam probability {p} for {text:?}");
}
