//! parlor's moderation role: the one place where a message body is judged (blocked words, flood,
//! link spam) and rendered (CommonMark to safe HTML, auto-links, mentions). The worker calls it
//! through the `Reviewer` port; in the distributed mode the same code sits behind gRPC.

mod render;
mod rules;

pub use render::{RenderedBody, mention_candidates, render};
pub use rules::{ModerationSettings, Moderator};
