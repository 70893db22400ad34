//! Property tests of the message invariants, against the real server through its real interfaces
//! (REST and WebSocket). proptest generates the schedules: how many senders and rooms, what each
//! sends over which channel, which nonces repeat, and the interleaving of sends, deletes and read
//! markers. One server per test (spawning is the slow part); every case gets fresh rooms, so the
//! cases do not see each other.
//!
//! 16 cases per property by default; more with `PROPTEST_CASES=1000 cargo test -p parlor --test
//! properties`. A failure is shrunk to a small schedule and printed.

mod common;

use common::{TestApp, TestUser, WsClient};
use futures_util::future::join_all;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestError, TestRunner};
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Cases per property: `PROPTEST_CASES` or 16.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(16);
    Config { cases, failure_persistence: None, ..Config::default() }
}

/// Runs a property whose cases are async, on one runtime and one server; each case gets `users`
/// new users. New ones each time: the moderation's flood rules (the same body repeated,
/// bursts across rooms) would otherwise refuse the senders of later cases.
fn check<S, F>(strategy: S, users: usize, case: F)
where
    S: Strategy,
    S::Value: std::fmt::Debug,
    F: AsyncFn(&TestApp, &[TestUser], S::Value) -> Result<(), TestCaseError>,
{
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a runtime");
    let app = rt.block_on(TestApp::spawn());
    let mut runner = TestRunner::new(config());
    let result = runner.run(&strategy, |input| {
        rt.block_on(async {
            let pool = join_all((0..users).map(|_| {
                let n = USERS.fetch_add(1, Ordering::Relaxed);
                app.register_owned(format!("user{n}"))
            }))
            .await;
            case(&app, &pool, input).await
        })
    });
    match result {
        Ok(()) => {}
        Err(TestError::Fail(why, input)) => panic!("property failed: {why}\nminimal input: {input:#?}"),
        Err(TestError::Abort(why)) => panic!("property aborted: {why}"),
    }
}

static ROOMS: AtomicUsize = AtomicUsize::new(0);
static USERS: AtomicUsize = AtomicUsize::new(0);
static BODIES: AtomicUsize = AtomicUsize::new(0);

/// A body no other message has: the flood rules refuse a body repeated too often.
fn body(what: &str) -> String {
    format!("{what}x{}", BODIES.fetch_add(1, Ordering::Relaxed))
}

/// A fresh public room owned by `owner` that every user of `members` joins.
async fn fresh_room(app: &TestApp, owner: &TestUser, members: &[TestUser]) -> String {
    let n = ROOMS.fetch_add(1, Ordering::Relaxed);
    let room = app.room(owner, &format!("room {n}"), "public").await;
    for m in members {
        if m.id != owner.id {
            app.join(m, &room).await;
        }
    }
    room
}

// ---------------------------------------------------------------------------------------------
// (a) seqs are gapless and ordered per room under concurrent senders; (b) nonces are idempotent.

/// How a sender sends.
#[derive(Clone, Copy, Debug)]
enum Channel {
    /// One WebSocket, every `send` frame written at once, acks read as they come back.
    Ws,
    /// REST `POST .../messages`, one after another.
    Rest,
    /// REST, every send at once on its own request.
    RestConcurrent,
}

/// One send of a sender's schedule.
#[derive(Clone, Debug)]
struct Send {
    room: usize,
    /// `Some(k)`: the sender's nonce number `k` (few, so they repeat); `None`: a nonce of its own
    /// (over WebSocket) or no nonce at all (over REST).
    nonce: Option<u8>,
}

#[derive(Clone, Debug)]
struct Sender {
    channel: Channel,
    sends: Vec<Send>,
}

#[derive(Clone, Debug)]
struct Schedule {
    rooms: usize,
    senders: Vec<Sender>,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (1usize..=3).prop_flat_map(|rooms| {
        let send =
            (0..rooms, prop::option::weighted(0.4, 0u8..3)).prop_map(|(room, nonce)| Send { room, nonce });
        let channel = prop_oneof![Just(Channel::Ws), Just(Channel::Rest), Just(Channel::RestConcurrent)];
        let sender = (channel, prop::collection::vec(send, 1..10))
            .prop_map(|(channel, sends)| Sender { channel, sends });
        prop::collection::vec(sender, 1..=4).prop_map(move |senders| Schedule { rooms, senders })
    })
}

/// What one sender saw: for each send, in the order the answers came back, the room, the nonce
/// key and the message answered.
type Acks = Vec<(usize, Option<u8>, Value)>;

async fn run_sender(
    app: &TestApp,
    user: &TestUser,
    rooms: &[String],
    sender: &Sender,
    tag: &str,
) -> Result<Acks, TestCaseError> {
    let nonce_of = |i: usize, s: &Send| match s.nonce {
        Some(k) => Some(format!("{tag}-k{k}")),
        None => Some(format!("{tag}-own{i}")),
    };
    match sender.channel {
        Channel::Ws => {
            let mut ws: WsClient = app.ws(&user.token).await;
            let mut by_nonce: HashMap<String, Vec<usize>> = HashMap::new();
            for (i, s) in sender.sends.iter().enumerate() {
                let nonce = nonce_of(i, s).unwrap_or_default();
                by_nonce.entry(nonce.clone()).or_default().push(i);
                let frame = json!({"type": "send", "room_id": rooms[s.room], "body": body(&format!("{tag}i{i}")), "nonce": nonce});
                ws.send(frame).await;
            }
            let mut acks = Acks::new();
            while acks.len() < sender.sends.len() {
                let frame = ws.next_json().await;
                match frame["type"].as_str() {
                    Some("ack") => {
                        let nonce = frame["nonce"].as_str().unwrap_or_default().to_owned();
                        let waiting = by_nonce.get_mut(&nonce);
                        let i = waiting.and_then(|w| (!w.is_empty()).then(|| w.remove(0)));
                        let i =
                            i.ok_or_else(|| TestCaseError::fail(format!("an ack for no send: {frame}")))?;
                        let s = &sender.sends[i];
                        acks.push((s.room, s.nonce, frame["message"].clone()));
                    }
                    Some("error") => return Err(TestCaseError::fail(format!("a send was refused: {frame}"))),
                    _ => {}
                }
            }
            ws.close().await;
            Ok(acks)
        }
        Channel::Rest => {
            let mut acks = Acks::new();
            for (i, s) in sender.sends.iter().enumerate() {
                let (status, msg) =
                    rest_send(app, user, &rooms[s.room], body(&format!("{tag}i{i}")), rest_nonce(i, s, tag))
                        .await;
                check_status(status, s, &msg)?;
                acks.push((s.room, s.nonce, msg));
            }
            Ok(acks)
        }
        Channel::RestConcurrent => {
            let answers = join_all(sender.sends.iter().enumerate().map(|(i, s)| async move {
                let answer =
                    rest_send(app, user, &rooms[s.room], body(&format!("{tag}i{i}")), rest_nonce(i, s, tag))
                        .await;
                (s, answer)
            }))
            .await;
            let mut acks = Acks::new();
            for (s, (status, msg)) in answers {
                prop_assert!(
                    status == StatusCode::CREATED || (status == StatusCode::OK && s.nonce.is_some()),
                    "send answered {status}: {msg}"
                );
                acks.push((s.room, s.nonce, msg));
            }
            Ok(acks)
        }
    }
}

/// Over REST a send of its own carries no nonce.
fn rest_nonce(_i: usize, s: &Send, tag: &str) -> Option<String> {
    s.nonce.map(|k| format!("{tag}-k{k}"))
}

fn check_status(status: StatusCode, s: &Send, msg: &Value) -> Result<(), TestCaseError> {
    prop_assert!(
        status == StatusCode::CREATED || (status == StatusCode::OK && s.nonce.is_some()),
        "send answered {status}: {msg}"
    );
    Ok(())
}

async fn rest_send(
    app: &TestApp,
    user: &TestUser,
    room: &str,
    body: impl AsRef<str>,
    nonce: Option<String>,
) -> (StatusCode, Value) {
    let mut req = json!({"body": body.as_ref()});
    if let Some(n) = nonce {
        req["nonce"] = json!(n);
    }
    app.post(&format!("/api/v1/rooms/{room}/messages"), &user.token, req).await
}

static CASES: AtomicUsize = AtomicUsize::new(0);

#[test]
fn seqs_are_gapless_and_each_senders_order_holds_and_nonces_store_one_message() {
    check(schedule(), 4, async |app, pool, plan| {
        let case = CASES.fetch_add(1, Ordering::Relaxed);
        let users = &pool[..plan.senders.len()];
        let mut rooms = Vec::new();
        for _ in 0..plan.rooms {
            rooms.push(fresh_room(app, &users[0], users).await);
        }
        // Every sender at once.
        let tags: Vec<String> = (0..plan.senders.len()).map(|i| format!("c{case}s{i}")).collect();
        let results = join_all(
            plan.senders.iter().enumerate().map(|(i, s)| run_sender(app, &users[i], &rooms, s, &tags[i])),
        )
        .await;
        let mut per_sender = Vec::new();
        for r in results {
            per_sender.push(r?);
        }
        let histories: Vec<Vec<Value>> = join_all(rooms.iter().map(|r| app.history(&users[0], r))).await;

        for (r, history) in histories.iter().enumerate() {
            // (a) 1..=N, no gap, no duplicate.
            let seqs: Vec<i64> = history.iter().map(|m| m["seq"].as_i64().unwrap_or(-1)).collect();
            let want: Vec<i64> = (1..=seqs.len() as i64).collect();
            prop_assert_eq!(&seqs, &want, "room {} history seqs", r);
            // Exactly the distinct sends: one message per nonce key, one per send without one.
            let mut expected = 0;
            for sender in &plan.senders {
                let mut keys = HashSet::new();
                for (i, s) in sender.sends.iter().enumerate().filter(|(_, s)| s.room == r) {
                    let fresh = match (s.nonce, sender.channel) {
                        (Some(k), _) => keys.insert(format!("k{k}")),
                        (None, _) => keys.insert(format!("own{i}")),
                    };
                    expected += usize::from(fresh);
                }
            }
            prop_assert_eq!(history.len(), expected, "room {} holds one message per distinct send", r);
        }
        let seq_of: HashMap<String, (usize, i64)> = histories
            .iter()
            .enumerate()
            .flat_map(|(r, h)| {
                h.iter().map(move |m| {
                    (m["id"].as_str().unwrap_or_default().to_owned(), (r, m["seq"].as_i64().unwrap_or(-1)))
                })
            })
            .collect();

        for (i, acks) in per_sender.iter().enumerate() {
            // (b) every answer for one nonce key names the same message, and it is in the history
            // with that sender as its author.
            let mut by_key: BTreeMap<(usize, u8), &str> = BTreeMap::new();
            for (room, nonce, msg) in acks {
                let id = msg["id"].as_str().unwrap_or_default();
                prop_assert_eq!(msg["author"]["id"].as_str(), Some(users[i].id.as_str()));
                prop_assert!(
                    seq_of.get(id).is_some_and(|(r, _)| r == room),
                    "acked {} is in room {}'s history",
                    id,
                    room
                );
                if let Some(k) = nonce {
                    let first = *by_key.entry((*room, *k)).or_insert(id);
                    prop_assert_eq!(first, id, "sender {} nonce {} answered two messages", i, k);
                }
            }
            // (a) per room, the sender's messages are in the history in the order their first acks
            // came back. Only for an ordered stream of sends: a WebSocket, or REST calls one after
            // another; concurrent REST calls have no order to keep.
            if matches!(plan.senders[i].channel, Channel::RestConcurrent) {
                continue;
            }
            for r in 0..rooms.len() {
                let mut seen = HashSet::new();
                let seqs: Vec<i64> = acks
                    .iter()
                    .filter(|(room, _, _)| *room == r)
                    .filter_map(|(_, _, m)| {
                        let id = m["id"].as_str().unwrap_or_default();
                        seen.insert(id).then(|| seq_of.get(id).map(|(_, s)| *s).unwrap_or(-1))
                    })
                    .collect();
                prop_assert!(
                    seqs.windows(2).all(|w| w[0] < w[1]),
                    "sender {} in room {}: ack order gives seqs {:?}",
                    i,
                    r,
                    seqs
                );
            }
        }
        Ok(())
    });
}

/// A nonce sent many times at once, over both channels and by two connections of the author,
/// stores one message; every answer names it; a later resend names it too.
#[test]
fn a_nonce_repeated_concurrently_and_later_stores_one_message() {
    let strategy = (1usize..6, 0usize..6, 0usize..3);
    check(strategy, 2, async |app, pool, (rest_copies, ws_copies, later)| {
        let (alice, bob) = (&pool[0], &pool[1]);
        let room = fresh_room(app, alice, std::slice::from_ref(bob)).await;
        let case = CASES.fetch_add(1, Ordering::Relaxed);
        let nonce = format!("repeat-{case}");
        // bob's message with the same nonce is another author's: a message of its own.
        let (status, bobs) = rest_send(app, bob, &room, body("bobs"), Some(nonce.clone())).await;
        prop_assert_eq!(status, StatusCode::CREATED);
        let mut sockets = Vec::new();
        for _ in 0..2 {
            sockets.push(app.ws(&alice.token).await);
        }
        let rest = join_all(
            (0..rest_copies)
                .map(|i| rest_send(app, alice, &room, body(&format!("copy{i}")), Some(nonce.clone()))),
        );
        let ws = join_all(sockets.iter_mut().enumerate().map(|(s, sock)| {
            let (room, nonce) = (room.clone(), nonce.clone());
            async move {
                let copies = ws_copies / 2 + usize::from(s == 0 && ws_copies % 2 == 1);
                for i in 0..copies {
                    sock.send(json!({"type": "send", "room_id": room, "body": body(&format!("ws{s}i{i}")), "nonce": nonce})).await;
                }
                let mut ids = Vec::new();
                while ids.len() < copies {
                    let f = sock.next_json().await;
                    match f["type"].as_str() {
                        Some("ack") if f["nonce"] == nonce.as_str() => ids.push(f["message"]["id"].clone()),
                        Some("error") => ids.push(f.clone()),
                        _ => {}
                    }
                }
                ids
            }
        }));
        let (rest, ws) = tokio::join!(rest, ws);
        let mut ids: Vec<Value> = Vec::new();
        let mut created = 0;
        for (status, msg) in rest {
            prop_assert!(status == StatusCode::CREATED || status == StatusCode::OK, "{status}: {msg}");
            created += usize::from(status == StatusCode::CREATED);
            ids.push(msg["id"].clone());
        }
        ids.extend(ws.into_iter().flatten());
        for _ in 0..later {
            let (status, msg) = rest_send(app, alice, &room, body("later"), Some(nonce.clone())).await;
            prop_assert_eq!(status, StatusCode::OK, "a later resend gives back the first: {}", msg);
            ids.push(msg["id"].clone());
        }
        let history = app.history(alice, &room).await;
        let alices: Vec<&Value> = history.iter().filter(|m| m["author"]["id"] == alice.id.as_str()).collect();
        prop_assert_eq!(alices.len(), 1, "one stored message: {:?}", history);
        prop_assert!(created <= 1, "at most one 201");
        prop_assert!(
            ids.iter().all(|id| *id == alices[0]["id"]),
            "every answer names {}: {:?}",
            alices[0]["id"],
            ids
        );
        prop_assert_eq!(history.len(), 2);
        prop_assert!(history.iter().any(|m| m["id"] == bobs["id"]));
        for s in sockets {
            s.close().await;
        }
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// (c) read markers never go back and never pass the last seq; (d) unread counts agree with the
// history.

/// A seq for a read marker, relative to the room's state when it is sent.
#[derive(Clone, Copy, Debug)]
enum ReadAt {
    /// `last_seq - k` (at least 0).
    Below(i64),
    /// The room's last seq.
    Last,
    /// `last_seq + k`.
    Beyond(i64),
    /// `i64::MAX`: valid, clamped to the last seq.
    Max,
    /// Negative: `validation_failed`.
    Negative(i64),
    /// Over `i64` in the JSON: `invalid_request`.
    TooBig,
}

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Member `who` sends `n` messages.
    Send { who: usize, n: usize },
    /// Member `who` deletes their `k`-th message (mod how many they have), if any.
    Delete { who: usize, k: usize },
    /// Member `who` moves their marker, over WebSocket or REST.
    Read { who: usize, at: ReadAt, ws: bool },
}

fn ops(members: usize) -> impl Strategy<Value = Vec<Op>> {
    let at = prop_oneof![
        3 => (0i64..4).prop_map(ReadAt::Below),
        2 => Just(ReadAt::Last),
        2 => (1i64..5).prop_map(ReadAt::Beyond),
        1 => Just(ReadAt::Max),
        1 => (1i64..1000).prop_map(|k| ReadAt::Negative(-k)),
        1 => Just(ReadAt::TooBig),
    ];
    let op = prop_oneof![
        3 => (0..members, 1usize..4).prop_map(|(who, n)| Op::Send { who, n }),
        1 => (0..members, 0usize..8).prop_map(|(who, k)| Op::Delete { who, k }),
        4 => (0..members, at, any::<bool>()).prop_map(|(who, at, ws)| Op::Read { who, at, ws }),
    ];
    prop::collection::vec(op, 1..16)
}

/// The caller's `last_read_seq` and `unread_count` in `GET /rooms`.
async fn marker(app: &TestApp, user: &TestUser, room: &str) -> (i64, i64) {
    let r = app.my_room(user, room).await;
    (r["last_read_seq"].as_i64().unwrap_or(-1), r["unread_count"].as_i64().unwrap_or(-1))
}

/// The unread count the contract defines, from the history: messages above the marker that
/// others wrote and that are not deleted.
fn unread_in(history: &[Value], user: &TestUser, marker: i64) -> i64 {
    history
        .iter()
        .filter(|m| {
            m["seq"].as_i64().unwrap_or(0) > marker
                && m["author"]["id"] != user.id.as_str()
                && m["deleted"] != true
        })
        .count() as i64
}

#[test]
fn read_markers_never_go_back_nor_past_the_end_and_unread_counts_agree_with_the_history() {
    let strategy = (2usize..=3).prop_flat_map(|members| (Just(members), ops(members)));
    check(strategy, 3, async |app, pool, (members, ops)| {
        let users = &pool[..members];
        let room = fresh_room(app, &users[0], users).await;
        let mut sockets = Vec::new();
        for u in users {
            sockets.push(app.ws(&u.token).await);
        }
        let mut last_seq = 0i64;
        let mut own: Vec<Vec<String>> = vec![Vec::new(); members];
        let mut markers = vec![0i64; members];
        for op in ops {
            match op {
                Op::Send { who, n } => {
                    for i in 0..n {
                        let msg = app.say(&users[who], &room, &body(&format!("m{i}"))).await;
                        last_seq += 1;
                        prop_assert_eq!(msg["seq"].as_i64(), Some(last_seq));
                        own[who].push(msg["id"].as_str().unwrap_or_default().to_owned());
                    }
                }
                Op::Delete { who, k } => {
                    if own[who].is_empty() {
                        continue;
                    }
                    let at = k % own[who].len();
                    let id = own[who].remove(at);
                    let (status, body) = app
                        .call(
                            reqwest::Method::DELETE,
                            &format!("/api/v1/rooms/{room}/messages/{id}"),
                            Some(&users[who].token),
                            None,
                        )
                        .await;
                    prop_assert_eq!(status, StatusCode::NO_CONTENT, "delete: {}", body);
                }
                Op::Read { who, at, ws } => {
                    let raw = match at {
                        ReadAt::Below(k) => ((last_seq - k).max(0)).to_string(),
                        ReadAt::Last => last_seq.to_string(),
                        ReadAt::Beyond(k) => (last_seq + k).to_string(),
                        ReadAt::Max => i64::MAX.to_string(),
                        ReadAt::Negative(k) => k.to_string(),
                        ReadAt::TooBig => "18446744073709551616".to_owned(),
                    };
                    let expect_code = match at {
                        ReadAt::Negative(_) => Some("validation_failed"),
                        ReadAt::TooBig => Some("invalid_request"),
                        _ => None,
                    };
                    if ws {
                        let sock = &mut sockets[who];
                        sock.send_text(format!(r#"{{"type":"read","room_id":"{room}","seq":{raw}}}"#)).await;
                        sock.send(json!({"type": "ping"})).await;
                        // Frames are applied in order: the pong comes after the read is done.
                        let mut error = None;
                        loop {
                            let f = sock.next_json().await;
                            match f["type"].as_str() {
                                Some("pong") => break,
                                Some("error") => {
                                    error = Some(f["code"].as_str().unwrap_or_default().to_owned())
                                }
                                _ => {}
                            }
                        }
                        prop_assert_eq!(error.as_deref(), expect_code, "read {} over WebSocket", raw);
                    } else {
                        let resp = app
                            .raw(
                                reqwest::Method::POST,
                                &format!("/api/v1/rooms/{room}/read"),
                                Some(&users[who].token),
                                format!(r#"{{"seq":{raw}}}"#),
                            )
                            .await;
                        let status = resp.status();
                        let body: Value = resp.json().await.unwrap_or(Value::Null);
                        match expect_code {
                            None => prop_assert_eq!(status, StatusCode::NO_CONTENT, "read {}: {}", raw, body),
                            Some("validation_failed") => {
                                prop_assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
                                prop_assert_eq!(&body["error"]["code"], "validation_failed");
                            }
                            Some(_) => {
                                prop_assert_eq!(status, StatusCode::BAD_REQUEST);
                                prop_assert_eq!(&body["error"]["code"], "invalid_request");
                            }
                        }
                    }
                    if expect_code.is_none() {
                        let seq: i64 = raw.parse().unwrap_or(i64::MAX);
                        markers[who] = markers[who].max(seq.min(last_seq));
                    }
                    let (got, _) = marker(app, &users[who], &room).await;
                    prop_assert_eq!(got, markers[who], "marker of member {} after reading at {}", who, raw);
                    prop_assert!(got <= last_seq, "never past the last seq");
                }
            }
            // (d) after every step, every member's unread count is what the history says.
            let history = app.history(&users[0], &room).await;
            for (i, u) in users.iter().enumerate() {
                let (got_marker, unread) = marker(app, u, &room).await;
                prop_assert_eq!(got_marker, markers[i], "member {}'s marker never moved back", i);
                prop_assert_eq!(unread, unread_in(&history, u, got_marker), "member {}'s unread count", i);
            }
        }
        // The `ready` of a new connection says the same as the room list.
        let history = app.history(&users[0], &room).await;
        for (i, u) in users.iter().enumerate() {
            let ws = app.ws(&u.token).await;
            let listed = ws.ready["rooms"]
                .as_array()
                .and_then(|rs| rs.iter().find(|r| r["id"] == room.as_str()))
                .cloned()
                .unwrap_or(Value::Null);
            prop_assert_eq!(listed["last_read_seq"].as_i64(), Some(markers[i]), "ready: {}", listed);
            prop_assert_eq!(
                listed["unread_count"].as_i64(),
                Some(unread_in(&history, u, markers[i])),
                "ready: {}",
                listed
            );
            ws.close().await;
        }
        for s in sockets {
            s.close().await;
        }
        Ok(())
    });
}
