//! One suite for the `Store` port, run against every driver: SQLite in a fresh file, PostgreSQL
//! in a fresh database on the server named by `PARLOR_TEST_POSTGRES_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`). The PostgreSQL tests fail, loudly, when the
//! server is not there.

use parlor_domain::model::{Role, Visibility};
use parlor_domain::ports::{NewRoom, NewUser, Page, Prepared, ProfilePatch, Rotation, Store};
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{Error, MessageId, RoomId, SessionId, Timestamp, UserId};
use std::sync::Arc;

use parlor_store::testing::{TestStore as Fixture, user};

async fn room(store: &Arc<dyn Store>, owner: &UserId, name: &str, visibility: Visibility) -> RoomId {
    let id = RoomId::generate();
    store
        .create_room(NewRoom {
            id: id.clone(),
            name: name.into(),
            topic: None,
            visibility,
            owner_id: owner.clone(),
            created_at: Timestamp::now(),
        })
        .await
        .expect("create room");
    id
}

fn create(room: &RoomId, author: &UserId, body: &str, nonce: Option<&str>) -> Prepared {
    Prepared {
        command: Command::Create {
            room_id: room.clone(),
            author_id: author.clone(),
            body: body.into(),
            nonce: nonce.map(Into::into),
            reply_to: None,
        },
        html: format!("<p>{body}</p>"),
        mentions: Vec::new(),
        now: Timestamp::now(),
        notify_at: None,
    }
}

fn created(o: &Outcome) -> (i64, bool, MessageId) {
    match o {
        Outcome::Created { message, created } => (message.seq, *created, message.id.clone()),
        other => panic!("expected a created message, got {other:?}"),
    }
}

async fn users_are_unique_case_insensitively_and_searchable(store: Arc<dyn Store>) {
    let alice = user(&store, "Alice").await;
    let dup = store
        .create_user(NewUser {
            id: UserId::generate(),
            username: "alice".into(),
            display_name: "x".into(),
            email: None,
            password_hash: "h".into(),
            phrase_hash: "p".into(),
            created_at: Timestamp::now(),
        })
        .await;
    assert!(matches!(dup, Err(Error::Conflict(_))), "{dup:?}");
    user(&store, "al_bert").await;
    user(&store, "alfred").await;
    let found = store.user_by_username("ALICE").await.expect("lookup").expect("found");
    assert_eq!(found.user.id, alice);
    let names: Vec<String> =
        store.search_users("al", 20).await.expect("search").into_iter().map(|u| u.username).collect();
    assert_eq!(names, vec!["al_bert", "alfred", "Alice"]);
    let names: Vec<String> =
        store.search_users("al_", 20).await.expect("search").into_iter().map(|u| u.username).collect();
    assert_eq!(names, vec!["al_bert"], "the underscore is not a wildcard");
    let mentioned = store.users_by_usernames(&["alice".into(), "nobody".into()]).await.expect("by names");
    assert_eq!(mentioned.len(), 1);
    let own = store
        .update_profile(
            &alice,
            ProfilePatch {
                display_name: Some("A".into()),
                email: Some(Some("a@b.co".into())),
                email_notifications: Some(false),
            },
        )
        .await
        .expect("update");
    assert_eq!(
        (own.user.display_name.as_str(), own.email.as_deref(), own.email_notifications),
        ("A", Some("a@b.co"), false)
    );
    let own = store
        .update_profile(&alice, ProfilePatch { email: Some(None), ..ProfilePatch::default() })
        .await
        .expect("clear");
    assert_eq!((own.user.display_name.as_str(), own.email), ("A", None));
}

async fn refresh_tokens_rotate_and_a_reused_one_ends_the_session(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let now = Timestamp::now();
    let sid = SessionId::generate();
    let session = parlor_domain::model::SessionRecord {
        id: sid.clone(),
        user_id: alice.clone(),
        created_at: now,
        last_seen_at: now,
        user_agent: Some("test".into()),
        revoked_at: None,
    };
    store.create_session(session, "h1", now.plus_millis(60_000)).await.expect("session");
    let r = store.rotate_refresh("h1", "h2", now, now.plus_millis(60_000)).await.expect("rotate");
    assert_eq!(r, Rotation::Rotated { session_id: sid.clone(), user_id: alice.clone() });
    assert_eq!(store.rotate_refresh("nope", "h3", now, now).await.expect("rotate"), Rotation::Invalid);
    let r = store.rotate_refresh("h1", "h3", now, now.plus_millis(60_000)).await.expect("reuse");
    assert_eq!(r, Rotation::Reused { session_id: sid.clone(), user_id: alice.clone() });
    assert!(store.session(&sid).await.expect("session").expect("exists").revoked_at.is_some());
    assert_eq!(store.rotate_refresh("h2", "h4", now, now).await.expect("rotate"), Rotation::Invalid);
    assert!(store.active_sessions(&alice).await.expect("list").is_empty());
}

async fn other_sessions_end_and_the_current_one_stays(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let now = Timestamp::now();
    let mut ids = Vec::new();
    for i in 0..3 {
        let sid = SessionId::generate();
        let s = parlor_domain::model::SessionRecord {
            id: sid.clone(),
            user_id: alice.clone(),
            created_at: now,
            last_seen_at: now,
            user_agent: None,
            revoked_at: None,
        };
        store.create_session(s, &format!("t{i}"), now.plus_millis(60_000)).await.expect("session");
        ids.push(sid);
    }
    let ended = store.revoke_user_sessions(&alice, Some(&ids[0]), now).await.expect("revoke");
    assert_eq!(ended.len(), 2);
    let left: Vec<SessionId> =
        store.active_sessions(&alice).await.expect("list").into_iter().map(|s| s.id).collect();
    assert_eq!(left, vec![ids[0].clone()]);
    assert!(store.revoke_session(&ids[0], now).await.expect("revoke"));
    assert!(!store.revoke_session(&ids[0], now).await.expect("again"));
}

async fn rooms_memberships_read_markers_and_direct_rooms(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let general = room(&store, &alice, "General", Visibility::Public).await;
    room(&store, &alice, "Secret", Visibility::Private).await;
    store.add_member(&general, &bob, Role::Member, Timestamp::now()).await.expect("join");
    assert!(matches!(
        store.add_member(&general, &bob, Role::Member, Timestamp::now()).await,
        Err(Error::Conflict(_))
    ));
    let access = store.room_access(&general, &bob).await.expect("access").expect("room");
    assert_eq!((access.role, access.room.member_count), (Some(Role::Member), 2));
    let public: Vec<String> =
        store.public_rooms("gen", 100).await.expect("directory").into_iter().filter_map(|r| r.name).collect();
    assert_eq!(public, vec!["General"]);
    assert!(store.public_rooms("secret", 100).await.expect("directory").is_empty());

    let batch: Vec<Prepared> = (0..3).map(|i| create(&general, &alice, &format!("m{i}"), None)).collect();
    store.apply(&batch).await.expect("apply");
    let rooms = store.user_rooms(&bob).await.expect("rooms");
    assert_eq!((rooms[0].last_seq, rooms[0].last_read_seq, rooms[0].unread_count), (3, Some(0), Some(3)));
    assert_eq!(store.mark_read(&general, &bob, 2).await.expect("read"), 2);
    assert_eq!(store.mark_read(&general, &bob, 1).await.expect("never back"), 2);
    assert_eq!(store.mark_read(&general, &bob, 99).await.expect("clamped"), 3);
    assert_eq!(store.user_rooms(&bob).await.expect("rooms")[0].unread_count, Some(0));

    let (dm, first) = store.direct_room(&alice, &bob, Timestamp::now()).await.expect("dm");
    let (again, second) = store.direct_room(&bob, &alice, Timestamp::now()).await.expect("dm again");
    assert!(first && !second);
    assert_eq!(dm.id, again.id);
    assert_eq!(dm.member_count, 2);
    assert!(store.remove_member(&general, &bob).await.expect("leave"));
    assert!(!store.remove_member(&general, &bob).await.expect("leave twice"));
    assert_eq!(store.room_access(&general, &bob).await.expect("access").expect("room").room.member_count, 1);
    let updated =
        store.update_room(&general, Some("Lobby".into()), Some(Some("t".into()))).await.expect("update");
    assert_eq!((updated.name.as_deref(), updated.topic.as_deref()), (Some("Lobby"), Some("t")));
    let cleared = store.update_room(&general, None, Some(None)).await.expect("clear topic");
    assert_eq!((cleared.name.as_deref(), cleared.topic), (Some("Lobby"), None));
}

async fn a_batch_gets_gapless_seqs_and_nonces_deduplicate(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let eve = user(&store, "eve").await;
    let r = room(&store, &alice, "r", Visibility::Private).await;
    let mut batch = vec![
        create(&r, &alice, "one", Some("n1")),
        create(&r, &alice, "two", Some("n2")),
        create(&r, &alice, "one again", Some("n1")),
        create(&r, &eve, "intruder", None),
    ];
    batch.push(Prepared {
        command: Command::Create {
            room_id: r.clone(),
            author_id: alice.clone(),
            body: "reply".into(),
            nonce: None,
            reply_to: Some(MessageId::from("missing")),
        },
        html: String::new(),
        mentions: Vec::new(),
        now: Timestamp::now(),
        notify_at: None,
    });
    let out = store.apply(&batch).await.expect("apply");
    let (s1, c1, id1) = created(&out[0]);
    let (s2, c2, _) = created(&out[1]);
    let (s3, c3, id3) = created(&out[2]);
    assert_eq!((s1, c1, s2, c2, s3, c3), (1, true, 2, true, 1, false));
    assert_eq!(id1, id3);
    assert!(matches!(&out[3], Outcome::Failed(Error::NotFound(_))), "private room: {:?}", out[3]);
    assert!(matches!(&out[4], Outcome::Failed(Error::Validation { .. })), "{:?}", out[4]);
    let again = store.apply(&[create(&r, &alice, "one", Some("n1"))]).await.expect("retry");
    assert_eq!(created(&again[0]), (1, false, id1.clone()));
    let (page, more) = store.history(&r, Page::Latest, 50).await.expect("history");
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), vec![1, 2]);
    assert!(!more);
    assert_eq!(store.message_by_nonce(&r, &alice, "n2").await.expect("by nonce").map(|m| m.seq), Some(2));
}

async fn edits_and_deletes_keep_their_rules(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let r = room(&store, &alice, "r", Visibility::Public).await;
    store.add_member(&r, &bob, Role::Member, Timestamp::now()).await.expect("join");
    let out = store.apply(&[create(&r, &bob, "hello", None)]).await.expect("apply");
    let (_, _, id) = created(&out[0]);
    let edit = |who: &UserId| Prepared {
        command: Command::Edit {
            room_id: r.clone(),
            message_id: id.clone(),
            author_id: who.clone(),
            body: "edited".into(),
        },
        html: "<p>edited</p>".into(),
        mentions: Vec::new(),
        now: Timestamp::now(),
        notify_at: None,
    };
    let delete = |who: &UserId| Prepared {
        command: Command::Delete { room_id: r.clone(), message_id: id.clone(), actor_id: who.clone() },
        html: String::new(),
        mentions: Vec::new(),
        now: Timestamp::now(),
        notify_at: None,
    };
    let out = store.apply(&[edit(&alice), edit(&bob)]).await.expect("edits");
    assert!(matches!(&out[0], Outcome::Failed(Error::Forbidden(_))), "{:?}", out[0]);
    match &out[1] {
        Outcome::Edited { message } => assert!(message.body == "edited" && message.edited_at.is_some()),
        other => panic!("{other:?}"),
    }
    // The owner may delete another's message.
    let out = store.apply(&[delete(&alice)]).await.expect("delete");
    assert!(matches!(&out[0], Outcome::Deleted { seq: 1, .. }), "{:?}", out[0]);
    let m = store.message(&r, &id).await.expect("load").expect("kept");
    assert!(m.deleted && m.body.is_empty() && m.html.is_empty());
    let out = store.apply(&[edit(&bob)]).await.expect("edit deleted");
    assert!(matches!(&out[0], Outcome::Failed(Error::NotFound(_))), "{:?}", out[0]);
}

async fn history_pages_both_ways_and_search_stays_in_the_users_rooms(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let r = room(&store, &alice, "r", Visibility::Public).await;
    let other = room(&store, &bob, "other", Visibility::Private).await;
    let batch: Vec<Prepared> =
        (1..=10).map(|i| create(&r, &alice, &format!("word{i} common"), None)).collect();
    store.apply(&batch).await.expect("apply");
    store.apply(&[create(&other, &bob, "common secret", None)]).await.expect("apply");
    let seqs = |p: &[parlor_domain::model::Message]| p.iter().map(|m| m.seq).collect::<Vec<_>>();
    let (p, more) = store.history(&r, Page::Latest, 3).await.expect("latest");
    assert_eq!((seqs(&p), more), (vec![8, 9, 10], true));
    let (p, more) = store.history(&r, Page::Before(8), 5).await.expect("before");
    assert_eq!((seqs(&p), more), (vec![3, 4, 5, 6, 7], true));
    let (p, more) = store.history(&r, Page::Before(3), 5).await.expect("before");
    assert_eq!((seqs(&p), more), (vec![1, 2], false));
    let (p, more) = store.history(&r, Page::After(7), 2).await.expect("after");
    assert_eq!((seqs(&p), more), (vec![8, 9], true));
    let (p, more) = store.history(&r, Page::After(8), 5).await.expect("after");
    assert_eq!((seqs(&p), more), (vec![9, 10], false));
    let found = store.search(&alice, "common", None, 50).await.expect("search");
    assert_eq!(found.len(), 10, "bob's private room is not searched");
    assert_eq!(found[0].seq, 10, "newest first");
    let found = store.search(&alice, "WORD1", Some(&r), 50).await.expect("prefix search");
    assert_eq!(seqs(&found).len(), 2, "word1 and word10 match the prefix: {:?}", seqs(&found));
    assert!(store.search(&alice, "\" OR *", None, 50).await.expect("operators are words").is_empty());
}

async fn concurrent_batches_on_one_room_stay_gapless(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let r = room(&store, &alice, "busy", Visibility::Public).await;
    let tasks: Vec<_> = (0..8)
        .map(|t| {
            let store = store.clone();
            let r = r.clone();
            let alice = alice.clone();
            tokio::spawn(async move {
                for i in 0..5 {
                    let batch: Vec<Prepared> = (0..5)
                        .map(|j| create(&r, &alice, &format!("{t}-{i}-{j}"), Some(&format!("{t}-{i}-{j}"))))
                        .collect();
                    store.apply(&batch).await.expect("apply");
                }
            })
        })
        .collect();
    for t in futures_util::future::join_all(tasks).await {
        t.expect("task");
    }
    let (page, more) = store.history(&r, Page::Latest, 200).await.expect("history");
    assert!(!more);
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=200).collect::<Vec<i64>>());
}

async fn unread_email_jobs_are_written_with_the_message_and_claimed_by_recipient_under_a_lease(
    store: Arc<dyn Store>,
) {
    use parlor_domain::ports::{Claim, unread_email};
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    let carol = user(&store, "carol").await;
    for u in [&bob, &carol] {
        store
            .update_profile(
                u,
                ProfilePatch { email: Some(Some(format!("{u}@example.com"))), ..ProfilePatch::default() },
            )
            .await
            .expect("email");
    }
    let (dm, _) = store.direct_room(&alice, &bob, Timestamp::now()).await.expect("dm");
    let group = room(&store, &alice, "g", Visibility::Public).await;
    store.add_member(&group, &carol, Role::Member, Timestamp::now()).await.expect("join");
    let now = Timestamp::now();
    let mut to_bob = create(&dm.id, &alice, "hi bob", None);
    to_bob.notify_at = Some(now);
    let mut mention = create(&group, &alice, "hi @carol", None);
    mention.notify_at = Some(now);
    mention.mentions = vec![carol.clone()];
    let mut plain = create(&group, &alice, "nobody mentioned", None);
    plain.notify_at = Some(now);
    let outcomes = store.apply(&[to_bob, mention, plain]).await.expect("apply");
    assert_eq!(store.pending_jobs().await.expect("count"), 2, "one for bob's DM, one for carol's mention");

    let later = now.plus_millis(1000);
    let claim = |holder: &'static str| Claim {
        name: unread_email::NAME,
        now: later,
        horizon: later,
        limit: 10,
        holder,
        lease_until: later.plus_millis(60_000),
    };
    let claimed = store.claim_jobs(claim("a")).await.expect("claim");
    assert_eq!(claimed.len(), 2, "one group per recipient: {claimed:?}");
    assert!(store.claim_jobs(claim("b")).await.expect("claim again").is_empty(), "claimed jobs are held");
    let bobs = claimed.iter().find(|g| g.group_key.as_deref() == Some(bob.as_str())).expect("bob's group");
    let payload: serde_json::Value = serde_json::from_str(&bobs.jobs[0].payload).expect("JSON payload");
    assert_eq!(payload["recipient"], bob.as_str());
    assert_eq!(payload["room"], dm.id.as_str());
    assert_eq!(payload["message"], created(&outcomes[0]).2.as_str());
    assert_eq!((bobs.jobs[0].attempts, bobs.jobs[0].max_attempts), (0, unread_email::MAX_ATTEMPTS));

    // A retry releases the lease and counts the try; the old token then ends nothing.
    assert_eq!(store.retry_jobs(&bobs.lease, later, "SMTP down").await.expect("retry"), 1);
    assert_eq!(store.finish_jobs(&bobs.lease).await.expect("finish with a spent lease"), 0);
    let retried = store.claim_jobs(claim("b")).await.expect("claim after retry");
    assert_eq!(retried.len(), 1, "bob's again; carol's is still held");
    assert_eq!(retried[0].jobs[0].attempts, 1);
    let carols = claimed.iter().find(|g| g.group_key.as_deref() == Some(carol.as_str())).expect("carol's");
    assert_eq!(store.renew_lease(&carols.lease, later.plus_millis(90_000)).await.expect("renew"), 1);
    assert_eq!(store.finish_jobs(&carols.lease).await.expect("finish carol's"), 1);
    assert_eq!(store.finish_jobs(&retried[0].lease).await.expect("finish bob's"), 1);
    assert_eq!(store.pending_jobs().await.expect("count"), 0);
}

async fn accounts_are_disabled_and_enabled_and_ended_sessions_are_found_by_time(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let bob = user(&store, "bob").await;
    assert_eq!(store.user_by_id(&alice).await.expect("load").expect("alice").disabled_at, None);
    let t1 = Timestamp(1_000_000);
    let disabled = store.set_disabled(&alice, Some(t1)).await.expect("disable").expect("alice");
    assert_eq!(disabled.disabled_at, Some(t1));
    let again = store.set_disabled(&alice, Some(Timestamp(2_000_000))).await.expect("again").expect("alice");
    assert_eq!(again.disabled_at, Some(t1), "a disabled account keeps the time it was disabled");
    let by_name = store.user_by_username("ALICE").await.expect("lookup").expect("alice");
    assert_eq!(by_name.disabled_at, Some(t1));
    assert_eq!(store.user_by_id(&bob).await.expect("load").expect("bob").disabled_at, None, "bob is not");
    let enabled = store.set_disabled(&alice, None).await.expect("enable").expect("alice");
    assert_eq!(enabled.disabled_at, None);
    assert!(store.set_disabled(&UserId::generate(), Some(t1)).await.expect("unknown").is_none());

    let now = Timestamp::now();
    let mut sessions = Vec::new();
    for (i, who) in [&alice, &alice, &bob].into_iter().enumerate() {
        let sid = SessionId::generate();
        let s = parlor_domain::model::SessionRecord {
            id: sid.clone(),
            user_id: who.clone(),
            created_at: now,
            last_seen_at: now,
            user_agent: None,
            revoked_at: None,
        };
        store.create_session(s, &format!("e{i}"), now.plus_millis(60_000)).await.expect("session");
        sessions.push(sid);
    }
    assert!(store.sessions_ended_since(now.plus_millis(-60_000), 10).await.expect("none yet").is_empty());
    store.revoke_session(&sessions[2], now.plus_millis(10)).await.expect("revoke");
    let ended = store.revoke_user_sessions(&alice, None, now.plus_millis(20)).await.expect("revoke all");
    assert_eq!(ended.len(), 2);
    let found = store.sessions_ended_since(now, 10).await.expect("ended");
    let ids: Vec<SessionId> = found.iter().map(|s| s.id.clone()).collect();
    assert_eq!(ids[0], sessions[2], "in the order they ended: {ids:?}");
    assert_eq!(ids.len(), 3);
    assert!(found.iter().all(|s| s.revoked_at.is_some()));
    assert_eq!(found[0].user_id, bob);
    let later = store.sessions_ended_since(now.plus_millis(15), 10).await.expect("later");
    assert_eq!(later.len(), 2, "only alice's");
    assert!(later.iter().all(|s| s.user_id == alice));
    assert_eq!(store.sessions_ended_since(now, 1).await.expect("limited").len(), 1);
    assert!(store.sessions_ended_since(now.plus_millis(21), 10).await.expect("after").is_empty());
}

/// PostgreSQL's text cannot hold U+0000: a key or query holding it names nothing, on every
/// driver alike, and is never a server error (found by contract fuzzing).
async fn keys_and_queries_holding_nul_name_nothing(store: Arc<dyn Store>) {
    let alice = user(&store, "alice").await;
    let r = room(&store, &alice, "general", Visibility::Public).await;
    let nul = "a\0b";
    assert!(store.user_by_username(nul).await.expect("by username").is_none());
    assert!(store.search_users(nul, 20).await.expect("search users").is_empty());
    assert!(store.public_rooms(nul, 20).await.expect("public rooms").is_empty());
    let not_there = |what: &str, r: Result<bool, Error>| match r {
        Ok(false) | Err(Error::NotFound(_)) => {}
        other => panic!("{what}: {other:?}"),
    };
    not_there("user", store.user_by_id(&UserId::from(nul)).await.map(|u| u.is_some()));
    not_there("room", store.room_access(&RoomId::from(nul), &alice).await.map(|a| a.is_some()));
    not_there("mark read", store.mark_read(&RoomId::from(nul), &alice, 1).await.map(|_| true));
    not_there("message", store.message(&r, &MessageId::from(nul)).await.map(|m| m.is_some()));
}

macro_rules! suite {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::sqlite().await;
                    super::$name(f.store.clone()).await;
                    f.drop_db().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let f = super::Fixture::postgres().await;
                    super::$name(f.store.clone()).await;
                    f.drop_db().await;
                }
            )*
        }
    };
}

suite!(
    users_are_unique_case_insensitively_and_searchable,
    refresh_tokens_rotate_and_a_reused_one_ends_the_session,
    other_sessions_end_and_the_current_one_stays,
    rooms_memberships_read_markers_and_direct_rooms,
    a_batch_gets_gapless_seqs_and_nonces_deduplicate,
    edits_and_deletes_keep_their_rules,
    history_pages_both_ways_and_search_stays_in_the_users_rooms,
    concurrent_batches_on_one_room_stay_gapless,
    unread_email_jobs_are_written_with_the_message_and_claimed_by_recipient_under_a_lease,
    accounts_are_disabled_and_enabled_and_ended_sessions_are_found_by_time,
    keys_and_queries_holding_nul_name_nothing,
);
