//! The review rules, in the order they run:
//!
//! 1. blocked words and phrases ([`BlockList`]) → `blocked_word`;
//! 2. the body is rendered (mentions resolved through the store);
//! 3. more than `max_links` links → `too_many_links`;
//! 4. a link into a blocked domain ([`DomainList`]) → `spam`;
//! 5. more than `new_account_max_links` links from an account younger than `new_account_age`
//!    → `spam`;
//! 6. the classifier's spam probability at or above `spam_threshold` → `spam`;
//! 7. the flood rules ([`crate::flood`]): repeated or near-same bodies, bursts across rooms →
//!    `flood`. Only messages that passed every other rule are remembered.
//!
//! A body that passes them is allowed with its rendering. docs/moderation.md lists every setting.

use crate::blocklist::BlockList;
use crate::classifier::{Classifier, DEFAULT_SPAM_THRESHOLD};
use crate::flood::{Fingerprint, Flood, FloodLimits, FloodTracker};
use crate::links::DomainList;
use crate::render::{mention_candidates, render};
use async_trait::async_trait;
use parlor_domain::model::User;
use parlor_domain::ports::{ReviewRequest, Reviewer, Store, Verdict};
use parlor_domain::{RejectReason, Result, Timestamp};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a resolved mention is remembered. Usernames never change and accounts are never
/// deleted, so a user found once stays right; the limit only bounds staleness should that change.
/// Names that resolve to nobody are never remembered (the account may be created any moment).
const MENTION_TTL: Duration = Duration::from_secs(60);
/// Most resolved mentions remembered (past it the cache starts over).
const MENTION_CACHE: usize = 50_000;

/// The built-in blocked phrases, used when no list is given.
pub const BUILTIN_BLOCKED_WORDS: &str = include_str!("blocked_words.txt");
/// The built-in blocked link domains, used when no list is given.
pub const BUILTIN_BLOCKED_DOMAINS: &str = include_str!("blocked_domains.txt");

/// How review judges. Build it with `..ModerationSettings::default()` so that new settings keep
/// their defaults.
#[derive(Clone, Debug)]
pub struct ModerationSettings {
    /// Blocked words and phrases, one a line (`#` starts a comment); `None`: the built-in list.
    pub blocked_words: Option<String>,
    /// Blocked link domains, one a line (`#` starts a comment; a domain covers its
    /// subdomains); `None`: the built-in list (a few IP loggers).
    pub blocked_domains: Option<String>,
    /// Most links a message may hold (more: `too_many_links`).
    pub max_links: usize,
    /// Accounts younger than this are new.
    pub new_account_age: Duration,
    /// Most links a message of a new account may hold (more: `spam`).
    pub new_account_max_links: usize,
    /// How many times one author may post the same or a near-same body within `flood_window`
    /// (the next one is `flood`).
    pub flood_repeats: usize,
    /// The window of the repeat rule.
    pub flood_window: Duration,
    /// Token-set Jaccard similarity at which two bodies are near-same (above 1: only identical
    /// token forms are).
    pub flood_similarity: f64,
    /// Fewest distinct tokens both bodies need before similarity (rather than identity) counts.
    pub flood_min_tokens: usize,
    /// How many messages one author may post within `burst_window` while spreading them over two
    /// rooms or more (the next one is `flood`).
    pub burst_messages: usize,
    /// The window of the cross-room burst rule.
    pub burst_window: Duration,
    /// Most authors the flood rules remember (older ones are forgotten first).
    pub flood_max_authors: usize,
    /// Spam probability from the classifier at or above which a message is `spam` (above 1
    /// turns the classifier off).
    pub spam_threshold: f64,
    /// A classifier model (the JSON that `parlor-train-classifier` writes); `None`: the built-in
    /// one.
    pub classifier_model: Option<String>,
}

impl Default for ModerationSettings {
    fn default() -> Self {
        Self {
            blocked_words: None,
            blocked_domains: None,
            max_links: 10,
            new_account_age: Duration::from_secs(3600),
            new_account_max_links: 2,
            flood_repeats: 5,
            flood_window: Duration::from_secs(30),
            flood_similarity: 0.8,
            flood_min_tokens: 3,
            burst_messages: 20,
            burst_window: Duration::from_secs(10),
            flood_max_authors: 100_000,
            spam_threshold: DEFAULT_SPAM_THRESHOLD,
            classifier_model: None,
        }
    }
}

impl ModerationSettings {
    /// Reads the blocked words from a file (one word or phrase a line).
    pub fn blocked_words_file(mut self, path: &Path) -> std::io::Result<Self> {
        self.blocked_words = Some(std::fs::read_to_string(path)?);
        Ok(self)
    }

    /// Reads the blocked link domains from a file (one domain a line).
    pub fn blocked_domains_file(mut self, path: &Path) -> std::io::Result<Self> {
        self.blocked_domains = Some(std::fs::read_to_string(path)?);
        Ok(self)
    }

    /// Reads a classifier model from a file written by `parlor-train-classifier`.
    pub fn classifier_model_file(mut self, path: &Path) -> std::io::Result<Self> {
        self.classifier_model = Some(std::fs::read_to_string(path)?);
        Ok(self)
    }
}

/// The moderation role in process.
pub struct Moderator {
    blocked: BlockList,
    domains: DomainList,
    max_links: usize,
    new_account_age: Duration,
    new_account_max_links: usize,
    spam_threshold: f64,
    classifier: Classifier,
    flood: FloodTracker,
    /// Lower-cased username → the user and when it was looked up.
    mentioned: Mutex<HashMap<String, (Instant, User)>>,
    /// Resolves mentioned usernames and authors' accounts.
    store: Arc<dyn Store>,
}

fn reject(reason: RejectReason, message: impl Into<String>) -> Verdict {
    Verdict::Reject { reason, message: message.into() }
}

impl Moderator {
    /// A moderator with these settings, resolving mentions through `store`. A classifier model
    /// in the settings that does not parse is logged and the built-in one used.
    pub fn new(settings: ModerationSettings, store: Arc<dyn Store>) -> Self {
        let classifier = match settings.classifier_model.as_deref().map(Classifier::from_json) {
            None => Classifier::builtin().clone(),
            Some(Ok(model)) => model,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "the classifier model does not parse; using the built-in one");
                Classifier::builtin().clone()
            }
        };
        Self {
            blocked: BlockList::new(settings.blocked_words.as_deref().unwrap_or(BUILTIN_BLOCKED_WORDS)),
            domains: DomainList::new(settings.blocked_domains.as_deref().unwrap_or(BUILTIN_BLOCKED_DOMAINS)),
            max_links: settings.max_links,
            new_account_age: settings.new_account_age,
            new_account_max_links: settings.new_account_max_links,
            spam_threshold: settings.spam_threshold,
            classifier,
            flood: FloodTracker::new(FloodLimits {
                repeats: settings.flood_repeats,
                window: settings.flood_window,
                similarity: settings.flood_similarity,
                min_tokens: settings.flood_min_tokens,
                burst_messages: settings.burst_messages,
                burst_window: settings.burst_window,
                max_authors: settings.flood_max_authors,
            }),
            mentioned: Mutex::new(HashMap::new()),
            store,
        }
    }

    /// The existing users among the mentioned names, by lower-cased username: from the cache,
    /// and the rest from the store in one query.
    async fn resolve_mentions(&self, candidates: Vec<String>) -> Result<HashMap<String, User>> {
        let mut found = HashMap::with_capacity(candidates.len());
        let mut missing = Vec::new();
        let now = Instant::now();
        if let Ok(cache) = self.mentioned.lock() {
            for name in candidates {
                match cache.get(&name) {
                    Some((at, user)) if now.saturating_duration_since(*at) < MENTION_TTL => {
                        found.insert(name, user.clone());
                    }
                    _ => missing.push(name),
                }
            }
        } else {
            missing = candidates;
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let users = self.store.users_by_usernames(&missing).await?;
        if let Ok(mut cache) = self.mentioned.lock() {
            if cache.len() + users.len() > MENTION_CACHE {
                cache.clear();
            }
            for user in &users {
                cache.insert(user.username.to_lowercase(), (now, user.clone()));
            }
        }
        found.extend(users.into_iter().map(|u| (u.username.to_lowercase(), u)));
        Ok(found)
    }

    /// The classifier's spam probability for a body (for diagnostics).
    pub fn spam_probability(&self, body: &str) -> f64 {
        self.classifier.spam_probability(body, render(body, &HashMap::new()).links)
    }

    /// Whether the author's account is younger than `new_account_age`.
    async fn is_new_account(&self, request: &ReviewRequest) -> Result<bool> {
        let Some(record) = self.store.user_by_id(&request.author_id).await? else { return Ok(false) };
        let age_ms = Timestamp::now().millis().saturating_sub(record.user.created_at.millis());
        Ok(u128::try_from(age_ms).unwrap_or(0) < self.new_account_age.as_millis())
    }
}

#[async_trait]
impl Reviewer for Moderator {
    async fn review(&self, request: ReviewRequest) -> Result<Verdict> {
        let body = request.body.as_str();
        if self.blocked.find(body).is_some() {
            return Ok(reject(RejectReason::BlockedWord, "the message holds a blocked word or phrase"));
        }
        let candidates = mention_candidates(body);
        let users =
            if candidates.is_empty() { HashMap::new() } else { self.resolve_mentions(candidates).await? };
        let rendered = render(body, &users);
        if rendered.links > self.max_links {
            return Ok(reject(
                RejectReason::TooManyLinks,
                format!("a message may hold at most {} links", self.max_links),
            ));
        }
        if rendered.urls.iter().any(|u| self.domains.blocked(u).is_some()) {
            return Ok(reject(RejectReason::Spam, "the message links to a blocked domain"));
        }
        if rendered.links > self.new_account_max_links && self.is_new_account(&request).await? {
            return Ok(reject(
                RejectReason::Spam,
                format!(
                    "new accounts may post at most {} links in a message; try again later",
                    self.new_account_max_links
                ),
            ));
        }
        if self.spam_threshold <= 1.0
            && self.classifier.spam_probability(body, rendered.links) >= self.spam_threshold
        {
            return Ok(reject(RejectReason::Spam, "the message looks like spam"));
        }
        match self.flood.check(&request.author_id, &request.room_id, Fingerprint::of(body), Instant::now()) {
            Some(Flood::Repeats) => {
                return Ok(reject(
                    RejectReason::Flood,
                    "the same message was sent too many times; wait a little",
                ));
            }
            Some(Flood::Burst) => {
                return Ok(reject(
                    RejectReason::Flood,
                    "too many messages across rooms at once; wait a little",
                ));
            }
            None => {}
        }
        Ok(Verdict::Allow {
            html: rendered.html,
            mentions: rendered.mentions.into_iter().map(|u| u.id).collect(),
        })
    }
}
