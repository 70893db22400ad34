//! Messages over REST: sending, idempotence, validation, history paging, edits, deletes,
//! rendering, moderation, read markers, search and the send rate limit.

mod common;

use common::{TestApp, TestUser, assert_error, retry_after_secs};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

fn messages_path(room: &str) -> String {
    format!("/api/v1/rooms/{room}/messages")
}

fn message_path(room: &str, message: &Value) -> String {
    format!("/api/v1/rooms/{room}/messages/{}", message["id"].as_str().expect("message id"))
}

/// Posts a message body (and any other fields) and returns the raw answer.
async fn send(app: &TestApp, user: &TestUser, room: &str, body: Value) -> (StatusCode, Value) {
    app.post(&messages_path(room), &user.token, body).await
}

async fn edit(
    app: &TestApp,
    user: &TestUser,
    room: &str,
    message: &Value,
    body: &str,
) -> (StatusCode, Value) {
    app.call(Method::PATCH, &message_path(room, message), Some(&user.token), Some(json!({ "body": body })))
        .await
}

async fn remove(app: &TestApp, user: &TestUser, room: &str, message: &Value) -> (StatusCode, Value) {
    app.call(Method::DELETE, &message_path(room, message), Some(&user.token), None).await
}

/// A history page as `user` sees it with this query string; returns the messages and `has_more`.
async fn page(app: &TestApp, user: &TestUser, room: &str, query: &str) -> (Vec<Value>, bool) {
    let (status, body) = app.get(&format!("{}{query}", messages_path(room)), &user.token).await;
    assert_eq!(status, StatusCode::OK, "history {query}: {body}");
    (body["messages"].as_array().expect("messages").clone(), body["has_more"].as_bool().expect("has_more"))
}

fn seqs(messages: &[Value]) -> Vec<i64> {
    messages.iter().map(|m| m["seq"].as_i64().expect("seq")).collect()
}

async fn mark_read(app: &TestApp, user: &TestUser, room: &str, seq: i64) {
    let (status, body) =
        app.post(&format!("/api/v1/rooms/{room}/read"), &user.token, json!({ "seq": seq })).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "read {seq}: {body}");
}

async fn search(app: &TestApp, user: &TestUser, query: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/v1/search?{query}"), &user.token).await;
    assert_eq!(status, StatusCode::OK, "search {query}: {body}");
    body["messages"].as_array().expect("messages").clone()
}

fn bodies(messages: &[Value]) -> Vec<&str> {
    messages.iter().map(|m| m["body"].as_str().expect("body")).collect()
}

#[tokio::test]
async fn sent_messages_answer_201_with_seqs_1_2_3_and_no_gap() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;

    let first = app.say(&alice, &room, "one").await;
    let second = app.say(&bob, &room, "two").await;
    let third = app.say(&alice, &room, "three").await;

    assert_eq!(seqs(&[first.clone(), second, third]), vec![1, 2, 3]);
    assert!(first["id"].is_string());
    assert_eq!(first["room_id"], room.as_str());
    assert_eq!(first["author"]["id"], alice.id.as_str());
    assert_eq!(first["author"]["username"], "alice");
    assert_eq!(first["body"], "one");
    assert_eq!(first["html"], "<p>one</p>\n");
    assert_eq!(first["mentions"], json!([]));
    assert_eq!(first["reply_to"], Value::Null);
    assert_eq!(first["nonce"], Value::Null);
    assert_eq!(first["edited_at"], Value::Null);
    assert_eq!(first["deleted"], false);
    assert!(first["created_at"].as_str().expect("created_at").ends_with('Z'));
    let (history, has_more) = page(&app, &bob, &room, "").await;
    assert_eq!(seqs(&history), vec![1, 2, 3]);
    assert_eq!(bodies(&history), vec!["one", "two", "three"]);
    assert!(!has_more);
    let (_, shown) = app.get(&format!("/api/v1/rooms/{room}"), &bob.token).await;
    assert_eq!(shown["last_seq"], 3);
}

#[tokio::test]
async fn a_repeated_nonce_answers_200_with_the_first_message_and_stores_nothing_new() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;

    let (status, first) = send(&app, &alice, &room, json!({"body": "hello", "nonce": "n-1"})).await;
    let (again_status, again) =
        send(&app, &alice, &room, json!({"body": "hello again", "nonce": "n-1"})).await;
    let (other_status, other) = send(&app, &bob, &room, json!({"body": "hello", "nonce": "n-1"})).await;

    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["nonce"], "n-1");
    assert_eq!(again_status, StatusCode::OK, "{again}");
    assert_eq!(again, first, "the very same message");
    assert_eq!(other_status, StatusCode::CREATED, "a nonce is per author: {other}");
    assert_eq!(other["seq"], 2);
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(bodies(&history), vec!["hello", "hello"]);
}

#[tokio::test]
async fn a_nonce_of_64_characters_is_accepted_and_65_is_422() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    let (status, ok) = send(&app, &alice, &room, json!({"body": "a", "nonce": "n".repeat(64)})).await;
    let long = send(&app, &alice, &room, json!({"body": "b", "nonce": "n".repeat(65)})).await;

    assert_eq!(status, StatusCode::CREATED, "{ok}");
    let error = assert_error(long, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["field"], "nonce");
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(seqs(&history), vec![1]);
}

#[tokio::test]
async fn an_empty_or_whitespace_body_is_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    for body in ["", "   ", "\n\t \n"] {
        let answer = send(&app, &alice, &room, json!({ "body": body })).await;
        let error = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["field"], "body", "{body:?}");
    }
    let missing = send(&app, &alice, &room, json!({"nonce": "x"})).await;
    assert_error(missing, StatusCode::BAD_REQUEST, "invalid_request");
    let (history, _) = page(&app, &alice, &room, "").await;
    assert!(history.is_empty());
}

#[tokio::test]
async fn a_body_of_4000_characters_is_accepted_and_4001_is_422_counting_scalar_values() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    // "é" is two bytes: 4000 of them are 8000 bytes but 4000 characters.
    let (status, ok) = send(&app, &alice, &room, json!({"body": "é".repeat(4000)})).await;
    let (ascii_status, ascii) = send(&app, &alice, &room, json!({"body": "x".repeat(4000)})).await;
    let long = send(&app, &alice, &room, json!({"body": "é".repeat(4001)})).await;
    let long_ascii = send(&app, &alice, &room, json!({"body": "y".repeat(4001)})).await;

    assert_eq!(status, StatusCode::CREATED, "{ok}");
    assert_eq!(ok["body"].as_str().expect("body").chars().count(), 4000);
    assert_eq!(ascii_status, StatusCode::CREATED, "{ascii}");
    for answer in [long, long_ascii] {
        let error = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["field"], "body");
    }
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(seqs(&history), vec![1, 2]);
}

#[tokio::test]
async fn a_request_body_over_64_kib_is_413_payload_too_large() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let huge = json!({ "body": "x".repeat(70 * 1024) }).to_string();

    let resp = app.raw(Method::POST, &messages_path(&room), Some(&alice.token), huge).await;

    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let body: Value = resp.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "payload_too_large");
    let (history, _) = page(&app, &alice, &room, "").await;
    assert!(history.is_empty());
}

#[tokio::test]
async fn a_reply_to_an_existing_message_is_kept_and_to_an_unknown_one_is_422() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let other_room = app.room(&alice, "other", "public").await;
    let first = app.say(&alice, &room, "question?").await;
    let elsewhere = app.say(&alice, &other_room, "elsewhere").await;

    let (status, reply) = send(&app, &alice, &room, json!({"body": "answer", "reply_to": first["id"]})).await;
    let unknown =
        send(&app, &alice, &room, json!({"body": "to nothing", "reply_to": "no-such-message"})).await;
    let cross = send(&app, &alice, &room, json!({"body": "across rooms", "reply_to": elsewhere["id"]})).await;

    assert_eq!(status, StatusCode::CREATED, "{reply}");
    assert_eq!(reply["reply_to"], first["id"]);
    for answer in [unknown, cross] {
        let error = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["field"], "reply_to");
    }
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(seqs(&history), vec![1, 2], "a refused reply takes no seq");
    assert_eq!(app.say(&alice, &room, "next").await["seq"], 3);
}

#[tokio::test]
async fn history_pages_back_and_forth_with_has_more_in_each_direction() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    app.say_numbered(&alice, &room, "message", 1..=10).await;

    let (newest, newest_more) = page(&app, &alice, &room, "?limit=3").await;
    let (back, back_more) = page(&app, &alice, &room, "?before=8&limit=3").await;
    let (oldest, oldest_more) = page(&app, &alice, &room, "?before=3&limit=3").await;
    let (start, start_more) = page(&app, &alice, &room, "?after=0&limit=3").await;
    let (forward, forward_more) = page(&app, &alice, &room, "?after=7&limit=3").await;
    let (beyond, beyond_more) = page(&app, &alice, &room, "?after=10").await;
    let (all, all_more) = page(&app, &alice, &room, "").await;
    let (exact, exact_more) = page(&app, &alice, &room, "?limit=10").await;

    assert_eq!((seqs(&newest), newest_more), (vec![8, 9, 10], true), "the newest page");
    assert_eq!(bodies(&newest), vec!["message 8", "message 9", "message 10"]);
    assert_eq!((seqs(&back), back_more), (vec![5, 6, 7], true));
    assert_eq!((seqs(&oldest), oldest_more), (vec![1, 2], false));
    assert_eq!((seqs(&start), start_more), (vec![1, 2, 3], true));
    assert_eq!((seqs(&forward), forward_more), (vec![8, 9, 10], false));
    assert_eq!((seqs(&beyond), beyond_more), (vec![], false));
    assert_eq!((seqs(&all), all_more), ((1..=10).collect::<Vec<_>>(), false), "default limit 50");
    assert_eq!((seqs(&exact), exact_more), ((1..=10).collect::<Vec<_>>(), false));
}

#[tokio::test]
async fn the_default_history_page_is_the_newest_50() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    app.say_numbered(&alice, &room, "message", 1..=55).await;

    let (newest, more) = page(&app, &alice, &room, "").await;
    let (max, max_more) = page(&app, &alice, &room, "?limit=200").await;

    assert_eq!(seqs(&newest), (6..=55).collect::<Vec<_>>());
    assert!(more);
    assert_eq!(seqs(&max), (1..=55).collect::<Vec<_>>());
    assert!(!max_more);
}

#[tokio::test]
async fn history_limits_outside_1_to_200_or_both_cursors_are_422_and_a_non_number_400() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let path = messages_path(&room);

    for query in ["?limit=0", "?limit=201", "?limit=-1"] {
        let answer = app.get(&format!("{path}{query}"), &alice.token).await;
        let error = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["field"], "limit", "{query}");
    }
    let both = app.get(&format!("{path}?before=5&after=1"), &alice.token).await;
    assert_error(both, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    for query in ["?limit=abc", "?before=x", "?after=1.5"] {
        let answer = app.get(&format!("{path}{query}"), &alice.token).await;
        assert_error(answer, StatusCode::BAD_REQUEST, "invalid_request");
    }
}

#[tokio::test]
async fn a_non_member_gets_403_for_a_public_room_and_404_for_a_private_one_reading_and_posting() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let public = app.room(&alice, "open", "public").await;
    let private = app.room(&alice, "closed", "private").await;
    app.say(&alice, &public, "hi").await;
    app.say(&alice, &private, "hi").await;

    let read_public = app.get(&messages_path(&public), &bob.token).await;
    let post_public = send(&app, &bob, &public, json!({"body": "let me in"})).await;
    let read_private = app.get(&messages_path(&private), &bob.token).await;
    let post_private = send(&app, &bob, &private, json!({"body": "let me in"})).await;
    let read_unknown = app.get(&messages_path("no-such-room"), &bob.token).await;
    let post_unknown = send(&app, &bob, "no-such-room", json!({"body": "anyone?"})).await;

    assert_error(read_public, StatusCode::FORBIDDEN, "forbidden");
    assert_error(post_public, StatusCode::FORBIDDEN, "forbidden");
    assert_error(read_private, StatusCode::NOT_FOUND, "not_found");
    assert_error(post_private, StatusCode::NOT_FOUND, "not_found");
    assert_error(read_unknown, StatusCode::NOT_FOUND, "not_found");
    assert_error(post_unknown, StatusCode::NOT_FOUND, "not_found");
    for room in [&public, &private] {
        let (history, _) = page(&app, &alice, room, "").await;
        assert_eq!(seqs(&history), vec![1], "nothing was stored");
    }
}

#[tokio::test]
async fn someone_elses_direct_room_is_404_for_reading_and_posting() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.dm(&alice, &bob).await;
    let (status, msg) = send(&app, &bob, &room, json!({"body": "psst"})).await;
    assert_eq!(status, StatusCode::CREATED, "{msg}");

    let read = app.get(&messages_path(&room), &carol.token).await;
    let post = send(&app, &carol, &room, json!({"body": "me too"})).await;
    let edit_it = edit(&app, &carol, &room, &msg, "changed").await;
    let delete_it = remove(&app, &carol, &room, &msg).await;
    let read_marker = app.post(&format!("/api/v1/rooms/{room}/read"), &carol.token, json!({"seq": 1})).await;

    for answer in [read, post, edit_it, delete_it, read_marker] {
        assert_error(answer, StatusCode::NOT_FOUND, "not_found");
    }
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(bodies(&history), vec!["psst"]);
}

#[tokio::test]
async fn the_author_edits_a_message_and_gets_edited_at_and_the_new_html() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let msg = app.say(&alice, &room, "helo").await;

    let (status, edited) = edit(&app, &alice, &room, &msg, "hello **world**").await;

    assert_eq!(status, StatusCode::OK, "{edited}");
    assert_eq!(edited["id"], msg["id"]);
    assert_eq!(edited["seq"], msg["seq"]);
    assert_eq!(edited["body"], "hello **world**");
    assert_eq!(edited["html"], "<p>hello <strong>world</strong></p>\n");
    assert!(edited["edited_at"].as_str().expect("edited_at").ends_with('Z'));
    assert_eq!(edited["created_at"], msg["created_at"]);
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(history, vec![edited]);
}

#[tokio::test]
async fn editing_someone_elses_message_is_403_even_for_the_owner() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;
    let by_bob = app.say(&bob, &room, "bob's words").await;
    let by_alice = app.say(&alice, &room, "alice's words").await;

    let bob_edits = edit(&app, &bob, &room, &by_alice, "changed by bob").await;
    let owner_edits = edit(&app, &alice, &room, &by_bob, "changed by the owner").await;

    assert_error(bob_edits, StatusCode::FORBIDDEN, "forbidden");
    assert_error(owner_edits, StatusCode::FORBIDDEN, "forbidden");
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(bodies(&history), vec!["bob's words", "alice's words"]);
    assert!(history.iter().all(|m| m["edited_at"].is_null()));
}

#[tokio::test]
async fn editing_an_unknown_or_deleted_message_is_404_and_an_empty_edit_422() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let msg = app.say(&alice, &room, "soon gone").await;
    let kept = app.say(&alice, &room, "kept").await;

    let empty = edit(&app, &alice, &room, &kept, "   ").await;
    let unknown = edit(&app, &alice, &room, &json!({"id": "no-such-message"}), "x").await;
    assert_eq!(remove(&app, &alice, &room, &msg).await.0, StatusCode::NO_CONTENT);
    let deleted = edit(&app, &alice, &room, &msg, "back from the dead").await;

    let error = assert_error(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["field"], "body");
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found");
    assert_error(deleted, StatusCode::NOT_FOUND, "not_found");
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(history[0]["deleted"], true);
    assert_eq!(history[0]["body"], "");
}

#[tokio::test]
async fn an_edit_goes_through_review_and_a_blocked_phrase_is_rejected() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let msg = app.say(&alice, &room, "an honest offer").await;

    let answer = edit(&app, &alice, &room, &msg, "buy followers here").await;

    let error = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "rejected");
    assert_eq!(error["reason"], "blocked_word");
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(bodies(&history), vec!["an honest offer"]);
    assert!(history[0]["edited_at"].is_null());
}

#[tokio::test]
async fn the_author_deletes_a_message_with_204_and_it_stays_in_history_emptied() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    app.say(&alice, &room, "one").await;
    let msg = app.say(&alice, &room, "two @alice https://example.com").await;
    app.say(&alice, &room, "three").await;

    let (status, body) = remove(&app, &alice, &room, &msg).await;
    let (again, again_body) = remove(&app, &alice, &room, &msg).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(again, StatusCode::NO_CONTENT, "deleting again is still 204: {again_body}");
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(seqs(&history), vec![1, 2, 3], "the seq stays");
    let gone = &history[1];
    assert_eq!(gone["id"], msg["id"]);
    assert_eq!(gone["seq"], 2);
    assert_eq!(gone["deleted"], true);
    assert_eq!(gone["body"], "");
    assert_eq!(gone["html"], "");
    assert_eq!(gone["mentions"], json!([]), "nothing of the body is left");
    assert_eq!(history[0]["deleted"], false);
    assert_eq!(history[2]["body"], "three");
    assert_eq!(app.say(&alice, &room, "four").await["seq"], 4, "no seq is reused");
}

#[tokio::test]
async fn the_room_owner_or_an_admin_deletes_anothers_message_but_a_plain_member_gets_403() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let room = app.room(&alice, "general", "public").await;
    let (status, body) = app
        .post(
            &format!("/api/v1/rooms/{room}/members"),
            &alice.token,
            json!({"user_id": bob.id, "role": "admin"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    app.join(&carol, &room).await;
    app.join(&dave, &room).await;
    let first = app.say(&carol, &room, "first by carol").await;
    let second = app.say(&carol, &room, "second by carol").await;
    let third = app.say(&carol, &room, "third by carol").await;

    let by_member = remove(&app, &dave, &room, &third).await;
    let by_owner = remove(&app, &alice, &room, &first).await;
    let by_admin = remove(&app, &bob, &room, &second).await;
    let unknown = remove(&app, &alice, &room, &json!({"id": "no-such-message"})).await;

    assert_error(by_member, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(by_owner.0, StatusCode::NO_CONTENT, "{}", by_owner.1);
    assert_eq!(by_admin.0, StatusCode::NO_CONTENT, "{}", by_admin.1);
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found");
    let (history, _) = page(&app, &dave, &room, "").await;
    let deleted: Vec<bool> = history.iter().map(|m| m["deleted"].as_bool().expect("deleted")).collect();
    assert_eq!(deleted, vec![true, true, false]);
    assert_eq!(history[2]["body"], "third by carol");
}

#[tokio::test]
async fn raw_html_in_a_body_is_escaped_and_never_interpreted() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    let script = app.say(&alice, &room, "<script>alert(1)</script>").await;
    let handler = app.say(&alice, &room, "<img src=x onerror=\"alert(1)\"> <b onclick=\"x()\">hi</b>").await;

    assert_eq!(script["body"], "<script>alert(1)</script>", "the body is kept as sent");
    let html = script["html"].as_str().expect("html");
    assert!(!html.contains("<script"), "{html}");
    assert!(html.contains("&lt;script&gt;"), "{html}");
    let html = handler["html"].as_str().expect("html");
    // The only markup is the paragraph: the tags and their handlers are text.
    let tags: Vec<&str> = html.match_indices('<').map(|(i, _)| &html[i..]).collect();
    assert_eq!(tags.len(), 2, "{html}");
    assert!(tags[0].starts_with("<p>") && tags[1].starts_with("</p>"), "{html}");
    assert!(html.contains("&lt;img src=x onerror="), "{html}");
    assert!(html.contains("&lt;b onclick="), "{html}");
}

#[tokio::test]
async fn javascript_links_lose_their_target() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    let link = app.say(&alice, &room, "[click me](javascript:alert(1))").await;
    let auto = app.say(&alice, &room, "<javascript:alert(1)>").await;
    let upper = app.say(&alice, &room, "[x](JaVaScRiPt:alert(1))").await;

    for msg in [link, auto, upper] {
        let html = msg["html"].as_str().expect("html").to_lowercase();
        assert!(!html.contains("href=\"javascript:"), "{html}");
        assert!(!html.contains("href='javascript:"), "{html}");
    }
}

#[tokio::test]
async fn bare_urls_become_nofollow_links() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    let msg = app.say(&alice, &room, "see https://example.com/page?a=1 now").await;

    let html = msg["html"].as_str().expect("html");
    assert!(html.contains("<a href=\"https://example.com/page?a=1\""), "{html}");
    assert!(html.contains("rel=\"nofollow noopener noreferrer\""), "{html}");
    assert!(html.contains(">https://example.com/page?a=1</a>"), "{html}");
    let written = app.say(&alice, &room, "[docs](https://example.org/docs)").await;
    let html = written["html"].as_str().expect("html");
    assert!(html.contains("href=\"https://example.org/docs\""), "{html}");
    assert!(html.contains("rel=\"nofollow noopener noreferrer\""), "{html}");
}

#[tokio::test]
async fn a_mention_of_an_existing_user_lands_in_mentions_and_others_stay_text() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.room(&alice, "general", "public").await;
    app.join(&bob, &room).await;

    let msg = app.say(&alice, &room, "hi @bob and @Carol and @nobody, again @bob").await;

    assert_eq!(msg["mentions"], json!([bob.id, carol.id]), "in order, without repeats, any existing user");
    let html = msg["html"].as_str().expect("html");
    assert!(html.contains(&format!("data-user-id=\"{}\"", bob.id)), "{html}");
    assert!(html.contains("@nobody"), "{html}");
    assert!(!html.contains("data-user-id=\"\""), "{html}");
    let code = app.say(&alice, &room, "`@bob` in code").await;
    assert_eq!(code["mentions"], json!([]));
}

#[tokio::test]
async fn a_blocked_phrase_is_422_rejected_with_reason_blocked_word_and_nothing_is_stored() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    let plain = send(&app, &alice, &room, json!({"body": "buy followers now"})).await;
    let disguised =
        send(&app, &alice, &room, json!({"body": "Want to BUY   Followers?!", "nonce": "n-1"})).await;

    for answer in [plain, disguised] {
        let error = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "rejected");
        assert_eq!(error["reason"], "blocked_word");
    }
    let (history, _) = page(&app, &alice, &room, "").await;
    assert!(history.is_empty());
    let fine = app.say(&alice, &room, "followers are welcome to buy nothing").await;
    assert_eq!(fine["seq"], 1, "a rejected message takes no seq");
}

#[tokio::test]
async fn a_read_marker_moves_forward_only_clamps_to_last_seq_and_lowers_unread_count() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;
    app.say_numbered(&alice, &room, "news", 1..=3).await;
    let before = app.my_room(&bob, &room).await;

    mark_read(&app, &bob, &room, 2).await;
    let after_two = app.my_room(&bob, &room).await;
    mark_read(&app, &bob, &room, 1).await;
    let after_back = app.my_room(&bob, &room).await;
    mark_read(&app, &bob, &room, 99).await;
    let after_far = app.my_room(&bob, &room).await;
    app.say(&alice, &room, "news 4").await;
    let after_new = app.my_room(&bob, &room).await;

    assert_eq!((before["last_read_seq"].clone(), before["unread_count"].clone()), (json!(0), json!(3)));
    assert_eq!((after_two["last_read_seq"].clone(), after_two["unread_count"].clone()), (json!(2), json!(1)));
    assert_eq!(after_back["last_read_seq"], 2, "never back");
    assert_eq!(after_back["unread_count"], 1);
    assert_eq!(after_far["last_read_seq"], 3, "clamped to the room's last seq");
    assert_eq!(after_far["unread_count"], 0);
    assert_eq!(after_new["last_read_seq"], 3);
    assert_eq!(after_new["unread_count"], 1);
    assert_eq!(app.my_room(&alice, &room).await["unread_count"], 0, "alice's own messages");
}

#[tokio::test]
async fn unread_count_leaves_out_deleted_messages() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;
    let first = app.say(&alice, &room, "oops").await;
    app.say(&alice, &room, "right").await;

    assert_eq!(remove(&app, &alice, &room, &first).await.0, StatusCode::NO_CONTENT);

    let seen = app.my_room(&bob, &room).await;
    assert_eq!(seen["unread_count"], 1);
    assert_eq!(seen["last_seq"], 2);
}

#[tokio::test]
async fn a_read_marker_from_a_non_member_is_refused_and_a_bad_seq_is_rejected() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let public = app.room(&alice, "open", "public").await;
    let private = app.room(&alice, "closed", "private").await;
    let path = |room: &str| format!("/api/v1/rooms/{room}/read");

    let outsider_public = app.post(&path(&public), &bob.token, json!({"seq": 1})).await;
    let outsider_private = app.post(&path(&private), &bob.token, json!({"seq": 1})).await;
    let not_a_number = app.post(&path(&public), &alice.token, json!({"seq": "one"})).await;
    let negative = app.post(&path(&public), &alice.token, json!({"seq": -1})).await;

    assert_error(outsider_public, StatusCode::FORBIDDEN, "forbidden");
    assert_error(outsider_private, StatusCode::NOT_FOUND, "not_found");
    assert_error(not_a_number, StatusCode::BAD_REQUEST, "invalid_request");
    let error = assert_error(negative, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["field"], "seq");
}

#[tokio::test]
async fn search_finds_words_in_my_rooms_only_newest_first() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let open = app.room(&alice, "open", "public").await;
    let mine = app.room(&alice, "mine", "private").await;
    let bobs = app.room(&bob, "bobs", "private").await;
    let unjoined = app.room(&bob, "unjoined", "public").await;
    app.join(&bob, &open).await;
    app.say(&alice, &open, "I like pineapple pizza").await;
    app.say(&bob, &bobs, "secret pineapple recipe").await;
    app.say(&bob, &unjoined, "public pineapple elsewhere").await;
    app.say(&alice, &mine, "no fruit here").await;
    app.say(&alice, &mine, "more Pineapple please").await;
    app.say(&bob, &open, "pineapple is wrong on pizza").await;

    let found = search(&app, &alice, "q=pineapple").await;
    let for_bob = search(&app, &bob, "q=pineapple").await;
    let both_words = search(&app, &alice, "q=pineapple%20pizza").await;
    let nothing = search(&app, &alice, "q=durian").await;

    assert_eq!(
        bodies(&found),
        vec!["pineapple is wrong on pizza", "more Pineapple please", "I like pineapple pizza"],
        "newest first, case-insensitive, never another user's room"
    );
    assert!(found.iter().all(|m| m["room_id"] == open.as_str() || m["room_id"] == mine.as_str()));
    assert_eq!(
        bodies(&for_bob),
        vec![
            "pineapple is wrong on pizza",
            "public pineapple elsewhere",
            "secret pineapple recipe",
            "I like pineapple pizza"
        ]
    );
    assert_eq!(bodies(&both_words), vec!["pineapple is wrong on pizza", "I like pineapple pizza"]);
    assert!(nothing.is_empty());
    assert_eq!(found[0]["author"]["username"], "bob", "whole message objects");
    assert!(found[0]["seq"].is_i64() && found[0]["html"].is_string());
}

#[tokio::test]
async fn search_filters_by_room_id_and_refuses_a_room_i_may_not_read() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let open = app.room(&alice, "open", "public").await;
    let mine = app.room(&alice, "mine", "private").await;
    let bobs = app.room(&bob, "bobs", "private").await;
    let bobs_public = app.room(&bob, "bobs-public", "public").await;
    app.say(&alice, &open, "kiwi in the open").await;
    app.say(&alice, &mine, "kiwi in private").await;
    app.say(&bob, &bobs, "kiwi of bob").await;
    app.say(&bob, &bobs_public, "kiwi of bob in public").await;

    let in_open = search(&app, &alice, &format!("q=kiwi&room_id={open}")).await;
    let in_mine = search(&app, &alice, &format!("q=kiwi&room_id={mine}")).await;
    let in_bobs = app.get(&format!("/api/v1/search?q=kiwi&room_id={bobs}"), &alice.token).await;
    let in_bobs_public = app.get(&format!("/api/v1/search?q=kiwi&room_id={bobs_public}"), &alice.token).await;

    assert_eq!(bodies(&in_open), vec!["kiwi in the open"]);
    assert_eq!(bodies(&in_mine), vec!["kiwi in private"]);
    assert_error(in_bobs, StatusCode::NOT_FOUND, "not_found");
    assert_error(in_bobs_public, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn search_needs_a_non_empty_query() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    for query in ["", "?q=", "?q=%20%20"] {
        let answer = app.get(&format!("/api/v1/search{query}"), &alice.token).await;
        let error = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["field"], "q", "{query:?}");
    }
}

#[tokio::test]
async fn search_leaves_out_deleted_messages() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let gone = app.say(&alice, &room, "mango one").await;
    app.say(&alice, &room, "mango two").await;

    assert_eq!(remove(&app, &alice, &room, &gone).await.0, StatusCode::NO_CONTENT);

    assert_eq!(bodies(&search(&app, &alice, "q=mango").await), vec!["mango two"]);
}

#[tokio::test]
async fn sending_over_the_rate_limit_is_429_with_retry_after_and_stores_nothing() {
    let app = TestApp::spawn_with(&[("--send-rate", "1"), ("--send-burst", "3")]).await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    app.say_numbered(&alice, &room, "burst", 1..=3).await;

    let resp = app
        .raw(
            Method::POST,
            &messages_path(&room),
            Some(&alice.token),
            json!({"body": "one too many"}).to_string(),
        )
        .await;

    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after = retry_after_secs(&resp);
    assert!(retry_after >= 1, "{retry_after}");
    let body: Value = resp.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "rate_limited");
    let ms = body["error"]["retry_after_ms"].as_u64().expect("retry_after_ms");
    assert!((1..=1000).contains(&ms), "{ms}");
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(bodies(&history), vec!["burst 1", "burst 2", "burst 3"]);
}

#[tokio::test]
async fn concurrent_sends_with_one_nonce_store_one_message() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    // Four at once: below the flood rule's threshold of repeated bodies.
    let answers = futures_util::future::join_all(
        (0..4).map(|_| send(&app, &alice, &room, json!({"body": "only once", "nonce": "same"}))),
    )
    .await;

    let created = answers.iter().filter(|(s, _)| *s == StatusCode::CREATED).count();
    assert_eq!(created, 1, "{answers:?}");
    assert!(answers.iter().all(|(s, m)| s.is_success() && m["id"] == answers[0].1["id"]), "{answers:?}");
    let (history, _) = page(&app, &alice, &room, "").await;
    assert_eq!(seqs(&history), vec![1]);
}

#[tokio::test]
async fn retrying_one_nonce_many_times_keeps_answering_the_first_message() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    let (status, first) = send(&app, &alice, &room, json!({"body": "patience", "nonce": "retry"})).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");

    // A client that keeps retrying (say, on a flaky network) must never be told its message was
    // refused: the nonce says it is the same message, so it is not a repeat for the flood rule.
    for attempt in 1..=8 {
        let (status, again) = send(&app, &alice, &room, json!({"body": "patience", "nonce": "retry"})).await;
        assert_eq!(status, StatusCode::OK, "retry {attempt}: {again}");
        assert_eq!(again["id"], first["id"]);
    }
}

#[tokio::test]
async fn search_answers_at_most_50_messages() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;
    app.say_numbered(&alice, &room, "papaya number", 1..=55).await;

    let found = search(&app, &alice, "q=papaya").await;

    assert_eq!(found.len(), 50);
    assert_eq!(found[0]["body"], "papaya number 55", "newest first");
    assert_eq!(seqs(&found), (6..=55).rev().collect::<Vec<_>>());
}

#[tokio::test]
async fn editing_a_message_that_is_not_there_stays_404_however_often_and_feeds_no_flood_rule() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("edits").await;
    let nothing = json!({"id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"});
    let bobs = app.say(&bob, &room, "bob's own words").await;
    let gone = app.say(&alice, &room, "soon gone").await;
    let (status, _) = remove(&app, &alice, &room, &gone).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // Well past the flood rule's five repeats of one body.
    for _ in 0..8 {
        assert_error(
            edit(&app, &alice, &room, &nothing, "the same words").await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_error(
            edit(&app, &alice, &room, &gone, "the same words").await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
        assert_error(
            edit(&app, &alice, &room, &bobs, "the same words").await,
            StatusCode::FORBIDDEN,
            "forbidden",
        );
    }
    let (status, sent) = send(&app, &alice, &room, json!({"body": "the same words"})).await;

    assert_eq!(status, StatusCode::CREATED, "no refused edit counted as a repeat: {sent}");
}
