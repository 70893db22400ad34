//! parlor's fuzz targets, as plain functions of the input bytes. Each one parses outside input the
//! way the server does and panics on a finding: a crash of the code under test, or an assertion
//! about its result that does not hold. The libFuzzer targets in `fuzz/` call them, and so does
//! `tests/replay.rs`, which replays the committed corpora (`fuzz/corpus/<target>/`) and a few
//! thousand mutations of them in `cargo test`. docs/fuzzing.md describes each target.

mod html;
mod jwt;
mod moderation;
mod protocol;

pub use html::{Danger, dangers};
pub use jwt::{SECRET, jwt};
pub use moderation::{blocklist, render};
pub use protocol::{rest_bodies, ws_frame};

/// A target: a function of the input bytes that panics on a finding.
pub type Target = fn(&[u8]);

/// The targets by name, as `fuzz/fuzz_targets/<name>.rs` and `fuzz/corpus/<name>/` call them.
pub const TARGETS: &[(&str, Target)] = &[
    ("ws_frame", ws_frame),
    ("rest_bodies", rest_bodies),
    ("render", render),
    ("blocklist", blocklist),
    ("jwt", jwt),
];
