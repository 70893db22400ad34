//! parlor's moderation role: the one place where a message body is judged (blocked words, link
//! spam, a trained content score, flood) and rendered (CommonMark to safe HTML, auto-links,
//! mentions). The worker calls it through the `Reviewer` port; in the distributed mode the same
//! code sits behind gRPC. docs/moderation.md describes every rule and setting.

mod blocklist;
pub mod classifier;
mod flood;
mod links;
mod normalize;
mod render;
mod rules;

pub use blocklist::BlockList;
pub use links::DomainList;
pub use normalize::normalise;
pub use render::{RenderedBody, mention_candidates, render};
pub use rules::{BUILTIN_BLOCKED_DOMAINS, BUILTIN_BLOCKED_WORDS, ModerationSettings, Moderator};
