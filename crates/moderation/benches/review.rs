//! `Moderator::review` over a mix of typical chat messages, with a real SQLite store (in a
//! temporary directory) resolving mentions. One message per iteration, on a single-threaded
//! runtime, so the throughput criterion prints is messages per second on one core (SQLite's
//! own thread only serves the few messages that mention someone).
//!
//! ```text
//! cargo bench -p parlor-moderation --bench review                 # full run
//! cargo bench -p parlor-moderation --bench review -- --quick      # a few seconds
//! ```

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use parlor_domain::ports::{NewUser, ReviewRequest, Reviewer, Store, UserStore, Verdict};
use parlor_domain::{RoomId, Timestamp, UserId};
use parlor_moderation::{ModerationSettings, Moderator};
use parlor_store::SqliteStore;
use std::hint::black_box;
use std::sync::Arc;

/// Typical chat: mostly short plain lines, some markdown, some mentions (of users who exist and
/// of some who do not), a few links, a code block, emoji and other languages.
const MIX: &[&str] = &[
    "hello",
    "hi all",
    "ok",
    "thanks!",
    "sounds good to me",
    "lol",
    "👍",
    "can someone review my PR when they have a minute?",
    "I'll be 5 minutes late to standup",
    "the deploy is stuck at 80%, any ideas?",
    "message 5",
    "did anyone get the invite for friday?",
    "lunch is here!",
    "it works on my machine 😅",
    "the CI is red on main again, looking into it",
    "we should add an index on (room_id, seq), the query does a sequential scan",
    "good morning everyone, have a great day",
    "no idea tbh",
    "bonjour à tous, ça va ?",
    "merged, thanks for the quick review",
    "hi **bob**",
    "that's _really_ nice work",
    "run `cargo test -p parlor` before pushing",
    "hello @alice",
    "@bob can you check the logs?",
    "cc @carol and @nobody",
    "see https://example.com/docs/setup for the details",
    "```\nfn main() {\n    println!(\"hello\");\n}\n```",
    "- milk\n- eggs\n- bread",
    "is prod down or is it just me?",
    "the meeting got moved to tomorrow at 3pm",
    "happy friday! 🎉",
];

fn setup() -> (tokio::runtime::Runtime, tempfile::TempDir, Moderator) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let moderator = rt.block_on(async {
        let store = SqliteStore::open(&dir.path().join("bench.db")).await.expect("store");
        for name in ["alice", "bob", "carol", "dave"] {
            store
                .create_user(NewUser {
                    id: UserId::generate(),
                    username: name.into(),
                    display_name: name.into(),
                    email: None,
                    password_hash: "x".into(),
                    phrase_hash: "x".into(),
                    created_at: Timestamp(0),
                })
                .await
                .expect("user");
        }
        let store: Arc<dyn Store> = Arc::new(store);
        Moderator::new(ModerationSettings::default(), store)
    });
    (rt, dir, moderator)
}

/// Many authors each posting now and then, so that the flood rule sees realistic traffic (and
/// keeps its memory busy) without refusing the mix.
fn requests(count: usize, bodies: &[&str]) -> Vec<ReviewRequest> {
    let authors: Vec<UserId> = (0..10_007).map(|i| UserId::from(format!("author-{i}").as_str())).collect();
    let rooms: Vec<RoomId> = (0..97).map(|i| RoomId::from(format!("room-{i}").as_str())).collect();
    (0..count)
        .map(|i| {
            let a = (i * 7919) % authors.len();
            ReviewRequest {
                author_id: authors[a].clone(),
                room_id: rooms[a % rooms.len()].clone(),
                body: bodies[i % bodies.len()].to_owned(),
                trace_id: String::new(),
            }
        })
        .collect()
}

fn bench(c: &mut Criterion, name: &str, bodies: &[&str], must_allow: bool) {
    let (rt, _dir, moderator) = setup();
    let all = requests(200_000, bodies);
    let rejected = rt.block_on(async {
        let mut rejected = Vec::new();
        for r in all.iter().take(bodies.len()) {
            if let Verdict::Reject { reason, .. } = moderator.review(r.clone()).await.expect("review") {
                rejected.push((r.body.clone(), reason));
            }
        }
        rejected
    });
    assert!(!must_allow || rejected.is_empty(), "the mix must be allowed: {rejected:?}");
    let mut group = c.benchmark_group("review");
    group.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    group.bench_function(name, |b| {
        b.iter(|| {
            let request = all[i % all.len()].clone();
            i += 1;
            black_box(rt.block_on(moderator.review(black_box(request))).expect("review"))
        })
    });
    group.finish();
}

fn typical_mix(c: &mut Criterion) {
    bench(c, "typical_mix", MIX, true);
}

fn plain_text(c: &mut Criterion) {
    let plain: Vec<&str> =
        MIX.iter().copied().filter(|m| !m.contains(['@', '*', '_', '`', '\n', ':'])).collect();
    bench(c, "plain_text", &plain, true);
}

/// The longest bodies the contract allows (4000 characters): not typical, a bound on the cost.
/// The spelled-out one is refused as spam and the one with 80 links as too many links, after
/// the work of every rule before.
fn long_bodies(c: &mut Criterion) {
    let bodies = [
        "x".repeat(4000),
        "é".repeat(4000),
        "lorem ipsum dolor sit amet, ".repeat(142),
        "f.r.e.e m.o.n.e.y ".repeat(222),
        "**bold** _it_ `code` [link](https://example.com) ".repeat(80),
    ];
    let bodies: Vec<&str> = bodies.iter().map(String::as_str).collect();
    bench(c, "long_bodies", &bodies, false);
}

criterion_group!(benches, typical_mix, plain_text, long_bodies);
criterion_main!(benches);
