//! The review rules: blocked words and phrases, flood, and link spam. A body that passes them is
//! rendered; the verdict carries the HTML and the mentioned users.

use crate::render::{mention_candidates, render};
use async_trait::async_trait;
use parlor_domain::ports::{ReviewRequest, Reviewer, Store, Verdict};
use parlor_domain::{RejectReason, Result, UserId};
use std::collections::{HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The built-in blocked phrases, used when no file is given.
const BUILTIN_BLOCKED: &str = include_str!("blocked_words.txt");

/// How review judges.
#[derive(Clone, Debug)]
pub struct ModerationSettings {
    /// Blocked words and phrases, one a line (`#` starts a comment).
    pub blocked_words: Option<String>,
    /// Most links a message may hold.
    pub max_links: usize,
    /// How many times one author may post the same body within `flood_window`.
    pub flood_repeats: usize,
    /// The window of the flood rule.
    pub flood_window: Duration,
}

impl Default for ModerationSettings {
    fn default() -> Self {
        Self { blocked_words: None, max_links: 10, flood_repeats: 5, flood_window: Duration::from_secs(30) }
    }
}

/// The moderation role in process.
pub struct Moderator {
    /// Normalised blocked phrases.
    blocked: Vec<String>,
    max_links: usize,
    flood_repeats: usize,
    flood_window: Duration,
    /// Recent bodies (as hashes) per author, for the flood rule.
    recent: Mutex<HashMap<UserId, VecDeque<(Instant, u64)>>>,
    /// Resolves mentioned usernames.
    store: Arc<dyn Store>,
}

/// Lower-cases and reduces a text to words separated by single spaces.
fn normalise(s: &str) -> String {
    s.to_lowercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

impl Moderator {
    /// A moderator with these settings, resolving mentions through `store`.
    pub fn new(settings: ModerationSettings, store: Arc<dyn Store>) -> Self {
        let list = settings.blocked_words.as_deref().unwrap_or(BUILTIN_BLOCKED);
        let blocked = list
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(normalise)
            .filter(|l| !l.is_empty())
            .collect();
        Self {
            blocked,
            max_links: settings.max_links,
            flood_repeats: settings.flood_repeats,
            flood_window: settings.flood_window,
            recent: Mutex::new(HashMap::new()),
            store,
        }
    }

    fn blocked_word(&self, body: &str) -> bool {
        let text = format!(" {} ", normalise(body));
        self.blocked.iter().any(|phrase| text.contains(&format!(" {phrase} ")))
    }

    /// Records the body and says whether the author is flooding.
    fn flooding(&self, author: &UserId, body: &str) -> bool {
        let mut h = DefaultHasher::new();
        normalise(body).hash(&mut h);
        let hash = h.finish();
        let now = Instant::now();
        let Ok(mut recent) = self.recent.lock() else { return false };
        if recent.len() > 100_000 {
            recent.retain(|_, q| q.back().is_some_and(|(t, _)| now.duration_since(*t) < self.flood_window));
        }
        let q = recent.entry(author.clone()).or_default();
        while q.front().is_some_and(|(t, _)| now.duration_since(*t) >= self.flood_window) {
            q.pop_front();
        }
        let repeats = q.iter().filter(|(_, h)| *h == hash).count();
        q.push_back((now, hash));
        if q.len() > 64 {
            q.pop_front();
        }
        repeats >= self.flood_repeats
    }
}

#[async_trait]
impl Reviewer for Moderator {
    async fn review(&self, request: ReviewRequest) -> Result<Verdict> {
        if self.blocked_word(&request.body) {
            return Ok(Verdict::Reject {
                reason: RejectReason::BlockedWord,
                message: "the message holds a blocked word or phrase".into(),
            });
        }
        let candidates = mention_candidates(&request.body);
        let users = if candidates.is_empty() {
            HashMap::new()
        } else {
            self.store
                .users_by_usernames(&candidates)
                .await?
                .into_iter()
                .map(|u| (u.username.to_lowercase(), u))
                .collect()
        };
        let rendered = render(&request.body, &users);
        if rendered.links > self.max_links {
            return Ok(Verdict::Reject {
                reason: RejectReason::TooManyLinks,
                message: format!("a message may hold at most {} links", self.max_links),
            });
        }
        if self.flooding(&request.author_id, &request.body) {
            return Ok(Verdict::Reject {
                reason: RejectReason::Flood,
                message: "the same message was sent too many times; wait a little".into(),
            });
        }
        Ok(Verdict::Allow {
            html: rendered.html,
            mentions: rendered.mentions.into_iter().map(|u| u.id).collect(),
        })
    }
}
