//! `Moderator::review` end to end, over a real SQLite store: every rule, the reasons, and that
//! ordinary messages pass with their rendering.

use parlor_domain::ports::{NewUser, ReviewRequest, Reviewer, Store, UserStore, Verdict};
use parlor_domain::{RejectReason, RoomId, Timestamp, UserId};
use parlor_moderation::{ModerationSettings, Moderator};
use parlor_store::SqliteStore;
use std::sync::Arc;
use std::time::Duration;

struct Fixture {
    _dir: tempfile::TempDir,
    store: Arc<SqliteStore>,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Arc::new(SqliteStore::open(&dir.path().join("test.db")).await.expect("store"));
    Fixture { _dir: dir, store }
}

impl Fixture {
    async fn user(&self, name: &str, age: Duration) -> UserId {
        let id = UserId::generate();
        let created_at = Timestamp(Timestamp::now().millis() - i64::try_from(age.as_millis()).expect("age"));
        self.store
            .create_user(NewUser {
                id: id.clone(),
                username: name.into(),
                display_name: name.into(),
                email: None,
                password_hash: "x".into(),
                phrase_hash: "x".into(),
                created_at,
            })
            .await
            .expect("user");
        id
    }

    fn moderator(&self, settings: ModerationSettings) -> Moderator {
        let store: Arc<dyn Store> = self.store.clone();
        Moderator::new(settings, store)
    }
}

async fn review(m: &Moderator, author: &UserId, room: &str, body: &str) -> Verdict {
    m.review(ReviewRequest {
        author_id: author.clone(),
        room_id: RoomId::from(room),
        body: body.into(),
        trace_id: String::new(),
    })
    .await
    .expect("review")
}

fn reason(v: &Verdict) -> Option<RejectReason> {
    match v {
        Verdict::Allow { .. } => None,
        Verdict::Reject { reason, .. } => Some(*reason),
    }
}

const OLD: Duration = Duration::from_secs(30 * 24 * 3600);

#[tokio::test]
async fn ordinary_messages_pass_with_their_rendering_and_mentions() {
    let f = fixture().await;
    let alice = f.user("alice", Duration::ZERO).await;
    let bob = f.user("bob", Duration::ZERO).await;
    let m = f.moderator(ModerationSettings::default());
    for body in ["hello", "hi **bob**", "message 5", "see https://example.com", "x", "é"] {
        assert_eq!(reason(&review(&m, &bob, "r", body).await), None, "{body}");
    }
    assert_eq!(reason(&review(&m, &bob, "r", &"x".repeat(4000)).await), None);
    assert_eq!(reason(&review(&m, &bob, "r", &"é".repeat(4000)).await), None);
    let Verdict::Allow { html, mentions } =
        review(&m, &bob, "r", "hello @alice, see https://example.com").await
    else {
        panic!("allowed")
    };
    assert_eq!(mentions, vec![alice.clone()]);
    assert!(html.contains("class=\"mention\""), "{html}");
    assert!(html.contains("href=\"https://example.com\""), "{html}");
}

#[tokio::test]
async fn fenced_code_is_kept_verbatim_without_links_or_mentions() {
    let f = fixture().await;
    let _alice = f.user("alice", OLD).await;
    let bob = f.user("bob", OLD).await;
    let m = f.moderator(ModerationSettings::default());
    let body = "look:\n```\nif a < b && c > d { @alice(\"https://x.example\"); }\n```";
    let Verdict::Allow { html, mentions } = review(&m, &bob, "r", body).await else { panic!("allowed") };
    assert!(mentions.is_empty(), "{mentions:?}");
    assert!(!html.contains("<a "), "{html}");
    assert!(!html.contains("mention"), "{html}");
    assert!(
        html.contains(
            "<pre><code>if a &lt; b &amp;&amp; c &gt; d { @alice(\"https://x.example\"); }\n</code></pre>"
        ),
        "{html}"
    );
    let Verdict::Allow { html, .. } = review(&m, &bob, "r", "run `a<b> @alice https://x.example`").await
    else {
        panic!("allowed")
    };
    assert!(html.contains("<code>a&lt;b&gt; @alice https://x.example</code>"), "{html}");
}

#[tokio::test]
async fn blocked_words_are_found_through_disguises() {
    let f = fixture().await;
    let bob = f.user("bob", OLD).await;
    let m = f.moderator(ModerationSettings {
        blocked_words: Some("free money\nass\n".into()),
        ..ModerationSettings::default()
    });
    for body in [
        "fr33 m0ney",
        "f.r.e.e money",
        "f r e e m o n e y",
        "f-r-e-e m-o-n-e-y",
        "fr\u{200B}ee mon\u{AD}ey",
        "frée mönéy",
        "ＦＲＥＥ ＭＯＮＥＹ",
        "freeeeee money!!!",
        "what an @$$",
    ] {
        assert_eq!(reason(&review(&m, &bob, "r", body).await), Some(RejectReason::BlockedWord), "{body}");
    }
    for body in ["the class is full", "a nice passage", "I assume so", "free for lunch? money is tight"] {
        assert_eq!(reason(&review(&m, &bob, "r", body).await), None, "{body}");
    }
}

#[tokio::test]
async fn the_built_in_list_still_blocks_what_the_contract_tests_expect() {
    let f = fixture().await;
    let bob = f.user("bob", OLD).await;
    let m = f.moderator(ModerationSettings::default());
    for body in [
        "buy followers now",
        "Want to BUY   Followers?!",
        "Cheap! Buy   FOLLOWERS today",
        "cheap viagra here",
        "fr33 m0ney",
        "f.r.e.e money",
        "ｆｒｅｅ　ｍｏｎｅｙ",
    ] {
        assert_eq!(reason(&review(&m, &bob, "r", body).await), Some(RejectReason::BlockedWord), "{body}");
    }
    assert_eq!(reason(&review(&m, &bob, "r", "followers are welcome to buy nothing").await), None);
}

#[tokio::test]
async fn links_too_many_blocked_domains_and_new_accounts() {
    let f = fixture().await;
    let old = f.user("old", OLD).await;
    let new = f.user("new", Duration::from_secs(60)).await;
    let m = f.moderator(ModerationSettings {
        blocked_domains: Some("bad.example\n".into()),
        max_links: 4,
        ..ModerationSettings::default()
    });
    let links =
        |n: usize| (0..n).map(|i| format!("https://site{i}.example/docs")).collect::<Vec<_>>().join(" and ");
    assert_eq!(reason(&review(&m, &old, "r", &links(4)).await), None);
    assert_eq!(reason(&review(&m, &old, "r", &links(5)).await), Some(RejectReason::TooManyLinks));
    assert_eq!(
        reason(&review(&m, &old, "r", "see https://cdn.bad.example/x").await),
        Some(RejectReason::Spam)
    );
    assert_eq!(
        reason(&review(&m, &old, "r", "see [this](https://bad.example)").await),
        Some(RejectReason::Spam)
    );
    assert_eq!(reason(&review(&m, &old, "r", "see https://notbad.example").await), None);
    // A new account may post a couple of links, not more.
    assert_eq!(reason(&review(&m, &new, "r", &links(2)).await), None);
    assert_eq!(reason(&review(&m, &new, "r", &links(3)).await), Some(RejectReason::Spam));
    let strict =
        f.moderator(ModerationSettings { new_account_max_links: 0, ..ModerationSettings::default() });
    assert_eq!(
        reason(&review(&strict, &new, "r", "see https://example.com").await),
        Some(RejectReason::Spam)
    );
    assert_eq!(reason(&review(&strict, &old, "r", "see https://example.com").await), None);
}

#[tokio::test]
async fn the_classifier_refuses_obvious_spam() {
    let f = fixture().await;
    let bob = f.user("bob", OLD).await;
    let m = f.moderator(ModerationSettings::default());
    let spam = "Claim your FREE crypto airdrop now!!! limited slots https://claim-the-airdrop.xyz";
    assert_eq!(reason(&review(&m, &bob, "r", spam).await), Some(RejectReason::Spam));
    let off = f.moderator(ModerationSettings { spam_threshold: 2.0, ..ModerationSettings::default() });
    assert_eq!(reason(&review(&off, &bob, "r", spam).await), None, "a threshold above 1 turns it off");
}

#[tokio::test]
async fn flood_repeats_and_cross_room_bursts() {
    let f = fixture().await;
    let bob = f.user("bob", OLD).await;
    let carol = f.user("carol", OLD).await;
    let m = f.moderator(ModerationSettings::default());
    for i in 0..5 {
        assert_eq!(reason(&review(&m, &bob, "r", "anyone up for lunch?").await), None, "{i}");
    }
    assert_eq!(reason(&review(&m, &bob, "r", "ANYONE up for lunch??").await), Some(RejectReason::Flood));
    for i in 0..20 {
        assert_eq!(
            reason(&review(&m, &carol, &format!("room {}", i % 4), &format!("hi {i}")).await),
            None,
            "{i}"
        );
    }
    assert_eq!(reason(&review(&m, &carol, "room 9", "hi again").await), Some(RejectReason::Flood));
    // Numbered messages in one room are not a flood.
    let dave = f.user("dave", OLD).await;
    for i in 0..120 {
        assert_eq!(reason(&review(&m, &dave, "r", &format!("message {i}")).await), None, "{i}");
    }
}

#[tokio::test]
async fn a_user_created_after_being_mentioned_is_found_at_the_next_mention() {
    let f = fixture().await;
    let bob = f.user("bob", OLD).await;
    let m = f.moderator(ModerationSettings::default());
    let mentions = |v: Verdict| match v {
        Verdict::Allow { mentions, .. } => mentions,
        Verdict::Reject { .. } => panic!("allowed"),
    };
    assert!(mentions(review(&m, &bob, "r", "hi @zoe").await).is_empty());
    let zoe = f.user("zoe", Duration::ZERO).await;
    assert_eq!(mentions(review(&m, &bob, "r", "hi @zoe, welcome").await), vec![zoe.clone()]);
    assert_eq!(mentions(review(&m, &bob, "r", "hello @ZOE and @nobody").await), vec![zoe]);
}
