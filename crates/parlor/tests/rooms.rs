//! Rooms, the public directory, membership and direct rooms over REST.

mod common;

use common::{TestApp, TestUser, assert_error};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

async fn patch(app: &TestApp, path: &str, user: &TestUser, body: Value) -> (StatusCode, Value) {
    app.call(Method::PATCH, path, Some(&user.token), Some(body)).await
}

async fn delete(app: &TestApp, path: &str, user: &TestUser) -> (StatusCode, Value) {
    app.call(Method::DELETE, path, Some(&user.token), None).await
}

async fn post_empty(app: &TestApp, path: &str, user: &TestUser) -> (StatusCode, Value) {
    app.call(Method::POST, path, Some(&user.token), None).await
}

/// The public directory for a query.
async fn directory(app: &TestApp, user: &TestUser, q: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/v1/rooms/public?q={q}"), &user.token).await;
    assert_eq!(status, StatusCode::OK, "directory: {body}");
    body["rooms"].as_array().expect("rooms").clone()
}

/// The members of a room as (username, role) pairs, as `user` sees them.
async fn members(app: &TestApp, user: &TestUser, room: &str) -> Vec<(String, String)> {
    let (status, body) = app.get(&format!("/api/v1/rooms/{room}/members"), &user.token).await;
    assert_eq!(status, StatusCode::OK, "members: {body}");
    let mut found: Vec<(String, String)> = body["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["user"]["username"].as_str().expect("username").to_owned(),
                m["role"].as_str().expect("role").to_owned(),
            )
        })
        .collect();
    found.sort();
    found
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = list.iter().map(|(u, r)| ((*u).to_owned(), (*r).to_owned())).collect();
    v.sort();
    v
}

/// Adds `target` to `room` as `actor` with an optional role.
async fn add(
    app: &TestApp,
    actor: &TestUser,
    room: &str,
    target: &str,
    role: Option<&str>,
) -> (StatusCode, Value) {
    let mut body = json!({ "user_id": target });
    if let Some(role) = role {
        body["role"] = json!(role);
    }
    app.post(&format!("/api/v1/rooms/{room}/members"), &actor.token, body).await
}

fn ids(rooms: &[Value]) -> Vec<&str> {
    rooms.iter().map(|r| r["id"].as_str().expect("room id")).collect()
}

#[tokio::test]
async fn creating_a_room_answers_201_with_the_creator_as_its_owner_and_only_member() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let (status, room) =
        app.post("/api/v1/rooms", &alice.token, json!({"name": "  general  ", "topic": "all things"})).await;

    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert!(room["id"].is_string());
    assert_eq!(room["kind"], "group");
    assert_eq!(room["name"], "general", "the name is kept trimmed");
    assert_eq!(room["topic"], "all things");
    assert_eq!(room["visibility"], "public", "public by default");
    assert_eq!(room["owner_id"], alice.id.as_str());
    assert_eq!(room["member_count"], 1);
    assert_eq!(room["last_seq"], 0);
    assert!(room["created_at"].as_str().expect("created_at").ends_with('Z'));
    let id = room["id"].as_str().expect("id");
    assert_eq!(members(&app, &alice, id).await, pairs(&[("alice", "owner")]));
    assert_eq!(ids(&app.my_rooms(&alice).await), vec![id]);
}

#[tokio::test]
async fn a_room_can_be_created_private_and_without_a_topic() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let (status, room) =
        app.post("/api/v1/rooms", &alice.token, json!({"name": "secret", "visibility": "private"})).await;

    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(room["visibility"], "private");
    assert_eq!(room["topic"], Value::Null);
}

#[tokio::test]
async fn an_unknown_visibility_value_is_a_400_invalid_request() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let answer =
        app.post("/api/v1/rooms", &alice.token, json!({"name": "general", "visibility": "secret"})).await;

    assert_error(answer, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(app.my_rooms(&alice).await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_missing_or_mistyped_name_is_a_400_invalid_request() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let missing = app.post("/api/v1/rooms", &alice.token, json!({"topic": "no name"})).await;
    let number = app.post("/api/v1/rooms", &alice.token, json!({"name": 42})).await;
    let broken = app.raw(Method::POST, "/api/v1/rooms", Some(&alice.token), "{\"name\": ").await;

    assert_error(missing, StatusCode::BAD_REQUEST, "invalid_request");
    assert_error(number, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(broken.status(), StatusCode::BAD_REQUEST);
    let body: Value = broken.json().await.expect("a JSON error");
    assert_eq!(body["error"]["code"], "invalid_request");
}

#[tokio::test]
async fn an_empty_blank_or_too_long_room_name_is_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    for name in [String::new(), "   ".to_owned(), "x".repeat(101), "é".repeat(101)] {
        let answer = app.post("/api/v1/rooms", &alice.token, json!({ "name": name })).await;
        let error = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(error["field"], "name", "{name:?}");
    }
    let (status, room) = app.post("/api/v1/rooms", &alice.token, json!({"name": "é".repeat(100)})).await;
    assert_eq!(status, StatusCode::CREATED, "100 characters are allowed: {room}");
}

#[tokio::test]
async fn a_topic_over_1000_characters_is_422_naming_the_field() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let answer =
        app.post("/api/v1/rooms", &alice.token, json!({"name": "a", "topic": "t".repeat(1001)})).await;
    let ok = app.post("/api/v1/rooms", &alice.token, json!({"name": "b", "topic": "t".repeat(1000)})).await;

    let error = assert_error(answer, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["field"], "topic");
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);
}

#[tokio::test]
async fn room_calls_without_a_token_are_401() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    let create = app.call(Method::POST, "/api/v1/rooms", None, Some(json!({"name": "x"}))).await;
    let list = app.call(Method::GET, "/api/v1/rooms", None, None).await;
    let show = app.call(Method::GET, &format!("/api/v1/rooms/{room}"), None, None).await;
    let bad = app.get("/api/v1/rooms", "not-a-token").await;

    for answer in [create, list, show, bad] {
        assert_error(answer, StatusCode::UNAUTHORIZED, "unauthorized");
    }
}

#[tokio::test]
async fn my_room_list_holds_only_my_rooms_with_read_marker_and_unread_count_of_others_messages() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let room = app.room(&alice, "general", "public").await;
    let other = app.room(&carol, "elsewhere", "public").await;
    app.join(&bob, &room).await;
    app.say_numbered(&alice, &room, "from alice", 0..3).await;
    app.say(&bob, &room, "from bob").await;

    let bobs = app.my_rooms(&bob).await;
    let alices = app.my_room(&alice, &room).await;

    assert_eq!(ids(&bobs), vec![room.as_str()], "not {other}");
    let seen = &bobs[0];
    assert_eq!(seen["name"], "general");
    assert_eq!(seen["member_count"], 2);
    assert_eq!(seen["last_seq"], 4);
    assert_eq!(seen["last_read_seq"], 0);
    assert_eq!(seen["unread_count"], 3, "bob's own message is not unread");
    assert_eq!(alices["unread_count"], 1, "alice's own messages are not unread");
    assert_eq!(alices["last_read_seq"], 0);
}

#[tokio::test]
async fn the_public_directory_lists_public_rooms_by_name_substring_and_never_private_ones() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let lovers = app.room(&alice, "Rust lovers", "public").await;
    let secret = app.room(&alice, "rust secrets", "private").await;
    let cooking = app.room(&alice, "cooking", "public").await;
    let dm = app.post("/api/v1/dms", &alice.token, json!({"user_id": bob.id})).await;
    assert_eq!(dm.0, StatusCode::OK, "{}", dm.1);

    let rust = directory(&app, &bob, "RUST").await;
    let ust = directory(&app, &bob, "ust").await;
    let all = directory(&app, &bob, "").await;
    let (status, none_q) = app.get("/api/v1/rooms/public", &bob.token).await;

    assert_eq!(ids(&rust), vec![lovers.as_str()], "by name, case-insensitively");
    assert_eq!(ids(&ust), vec![lovers.as_str()], "by substring");
    let mut listed = ids(&all);
    listed.sort_unstable();
    let mut expected = vec![lovers.as_str(), cooking.as_str()];
    expected.sort_unstable();
    assert_eq!(listed, expected, "never {secret} nor a direct room");
    assert_eq!(status, StatusCode::OK);
    assert_eq!(none_q["rooms"].as_array().expect("rooms").len(), 2);
    assert!(all.iter().all(|r| r["visibility"] == "public" && r["kind"] == "group"));
    assert!(directory(&app, &bob, "nothing-like-this").await.is_empty());
}

#[tokio::test]
async fn the_public_directory_answers_at_most_100_rooms() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    for i in 0..101 {
        app.room(&alice, &format!("room {i}"), "public").await;
    }

    let listed = directory(&app, &alice, "room").await;

    assert_eq!(listed.len(), 100);
}

#[tokio::test]
async fn a_private_room_is_404_to_a_non_member_while_a_public_one_is_visible() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let public = app.room(&alice, "open", "public").await;
    let private = app.room(&alice, "closed", "private").await;

    let (status, seen) = app.get(&format!("/api/v1/rooms/{public}"), &bob.token).await;
    let hidden = app.get(&format!("/api/v1/rooms/{private}"), &bob.token).await;
    let unknown = app.get("/api/v1/rooms/no-such-room", &bob.token).await;
    let (own_status, own) = app.get(&format!("/api/v1/rooms/{private}"), &alice.token).await;

    assert_eq!(status, StatusCode::OK, "{seen}");
    assert_eq!(seen["id"], public.as_str());
    assert_eq!(seen["name"], "open");
    assert_eq!(seen["member_count"], 1);
    assert_error(hidden, StatusCode::NOT_FOUND, "not_found");
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(own_status, StatusCode::OK, "{own}");
    assert_eq!(own["visibility"], "private");
}

#[tokio::test]
async fn the_owner_patches_a_room_and_gets_the_new_values() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let room = app.room(&alice, "general", "public").await;

    let (status, patched) =
        patch(&app, &format!("/api/v1/rooms/{room}"), &alice, json!({"name": "lounge", "topic": "chill"}))
            .await;
    let (_, only_topic) =
        patch(&app, &format!("/api/v1/rooms/{room}"), &alice, json!({"topic": "chill more"})).await;
    let (_, shown) = app.get(&format!("/api/v1/rooms/{room}"), &alice.token).await;

    assert_eq!(status, StatusCode::OK, "{patched}");
    assert_eq!(patched["name"], "lounge");
    assert_eq!(patched["topic"], "chill");
    assert_eq!(only_topic["name"], "lounge", "an absent field is left as it is");
    assert_eq!(only_topic["topic"], "chill more");
    assert_eq!(shown["name"], "lounge");
    assert_eq!(shown["topic"], "chill more");
}

#[tokio::test]
async fn an_admin_may_patch_a_room_but_a_plain_member_or_outsider_gets_403() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let room = app.room(&alice, "general", "public").await;
    assert_eq!(add(&app, &alice, &room, &bob.id, Some("admin")).await.0, StatusCode::CREATED);
    app.join(&carol, &room).await;
    let path = format!("/api/v1/rooms/{room}");

    let (status, by_admin) = patch(&app, &path, &bob, json!({"topic": "by the admin"})).await;
    let by_member = patch(&app, &path, &carol, json!({"topic": "by a member"})).await;
    let by_outsider = patch(&app, &path, &dave, json!({"topic": "by an outsider"})).await;
    let (_, shown) = app.get(&path, &alice.token).await;

    assert_eq!(status, StatusCode::OK, "{by_admin}");
    assert_eq!(by_admin["topic"], "by the admin");
    assert_error(by_member, StatusCode::FORBIDDEN, "forbidden");
    assert_error(by_outsider, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(shown["topic"], "by the admin", "refused patches changed nothing");
}

#[tokio::test]
async fn patching_a_private_room_as_an_outsider_is_404_and_an_empty_name_is_422() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&alice, "closed", "private").await;
    let path = format!("/api/v1/rooms/{room}");

    let outsider = patch(&app, &path, &bob, json!({"name": "mine"})).await;
    let empty = patch(&app, &path, &alice, json!({"name": "  "})).await;

    assert_error(outsider, StatusCode::NOT_FOUND, "not_found");
    let error = assert_error(empty, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["field"], "name");
}

#[tokio::test]
async fn joining_a_public_room_answers_200_with_the_room_and_again_409() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&alice, "general", "public").await;
    let path = format!("/api/v1/rooms/{room}/join");

    let (status, joined) = post_empty(&app, &path, &bob).await;
    let again = post_empty(&app, &path, &bob).await;
    let by_owner = post_empty(&app, &path, &alice).await;

    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["id"], room.as_str());
    assert_eq!(joined["member_count"], 2);
    assert_error(again, StatusCode::CONFLICT, "conflict");
    assert_error(by_owner, StatusCode::CONFLICT, "conflict");
    assert_eq!(members(&app, &bob, &room).await, pairs(&[("alice", "owner"), ("bob", "member")]));
    assert_eq!(ids(&app.my_rooms(&bob).await), vec![room.as_str()]);
}

#[tokio::test]
async fn joining_a_private_or_unknown_room_is_404() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&alice, "closed", "private").await;

    let private = post_empty(&app, &format!("/api/v1/rooms/{room}/join"), &bob).await;
    let unknown = post_empty(&app, "/api/v1/rooms/no-such-room/join", &bob).await;

    assert_error(private, StatusCode::NOT_FOUND, "not_found");
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found");
    assert!(app.my_rooms(&bob).await.is_empty());
}

#[tokio::test]
async fn leaving_a_room_answers_204_and_the_room_leaves_my_list() {
    let app = TestApp::spawn().await;
    let (alice, bob, room) = app.alice_and_bob_in("general").await;

    let (status, body) = post_empty(&app, &format!("/api/v1/rooms/{room}/leave"), &bob).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(app.my_rooms(&bob).await.is_empty());
    assert_eq!(members(&app, &alice, &room).await, pairs(&[("alice", "owner")]));
    let (_, shown) = app.get(&format!("/api/v1/rooms/{room}"), &alice.token).await;
    assert_eq!(shown["member_count"], 1);
    let after = app.get(&format!("/api/v1/rooms/{room}/messages"), &bob.token).await;
    assert_error(after, StatusCode::FORBIDDEN, "forbidden");
    // Leaving is not forever: a public room can be joined again.
    app.join(&bob, &room).await;
}

#[tokio::test]
async fn the_member_list_is_for_members_only_403_for_a_public_room_and_404_for_a_private_one() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let public = app.room(&alice, "open", "public").await;
    let private = app.room(&alice, "closed", "private").await;
    app.join(&bob, &public).await;

    let (status, body) = app.get(&format!("/api/v1/rooms/{public}/members"), &bob.token).await;
    let outsider_public = app.get(&format!("/api/v1/rooms/{public}/members"), &carol.token).await;
    let outsider_private = app.get(&format!("/api/v1/rooms/{private}/members"), &carol.token).await;

    assert_eq!(status, StatusCode::OK, "{body}");
    let list = body["members"].as_array().expect("members");
    assert_eq!(list.len(), 2);
    for m in list {
        assert!(m["user"]["id"].is_string() && m["user"]["display_name"].is_string(), "{m}");
        assert!(m["joined_at"].is_string(), "{m}");
        assert!(m["user"].get("email").is_none(), "no private fields: {m}");
    }
    assert_eq!(members(&app, &bob, &public).await, pairs(&[("alice", "owner"), ("bob", "member")]));
    assert_error(outsider_public, StatusCode::FORBIDDEN, "forbidden");
    assert_error(outsider_private, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_owner_adds_a_member_to_a_private_room_with_201_user_role_and_joined_at() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&alice, "closed", "private").await;

    let (status, added) = add(&app, &alice, &room, &bob.id, None).await;

    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["user"]["id"], bob.id.as_str());
    assert_eq!(added["user"]["username"], "bob");
    assert_eq!(added["role"], "member");
    assert!(added["joined_at"].is_string());
    let (status, shown) = app.get(&format!("/api/v1/rooms/{room}"), &bob.token).await;
    assert_eq!(status, StatusCode::OK, "the private room is visible to its new member: {shown}");
    assert_eq!(shown["member_count"], 2);
    assert_eq!(ids(&app.my_rooms(&bob).await), vec![room.as_str()]);
}

#[tokio::test]
async fn in_a_private_room_only_the_owner_or_an_admin_adds_members() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let erin = app.register("erin").await;
    let room = app.room(&alice, "closed", "private").await;
    assert_eq!(add(&app, &alice, &room, &bob.id, None).await.0, StatusCode::CREATED);

    let by_member = add(&app, &bob, &room, &carol.id, None).await;
    let (status, admin) = add(&app, &alice, &room, &carol.id, Some("admin")).await;
    let (by_admin_status, by_admin) = add(&app, &carol, &room, &dave.id, None).await;
    let by_outsider = add(&app, &erin, &room, &erin.id, None).await;

    assert_error(by_member, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(status, StatusCode::CREATED, "{admin}");
    assert_eq!(admin["role"], "admin");
    assert_eq!(by_admin_status, StatusCode::CREATED, "{by_admin}");
    assert_error(by_outsider, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        members(&app, &alice, &room).await,
        pairs(&[("alice", "owner"), ("bob", "member"), ("carol", "admin"), ("dave", "member")])
    );
}

#[tokio::test]
async fn in_a_public_room_any_member_adds_members_but_only_with_the_member_role() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let erin = app.register("erin").await;
    let room = app.room(&alice, "open", "public").await;
    app.join(&bob, &room).await;

    let (status, added) = add(&app, &bob, &room, &carol.id, Some("member")).await;
    let as_admin = add(&app, &bob, &room, &dave.id, Some("admin")).await;
    let as_owner = add(&app, &bob, &room, &dave.id, Some("owner")).await;
    let by_outsider = add(&app, &erin, &room, &dave.id, None).await;

    assert_eq!(status, StatusCode::CREATED, "{added}");
    assert_eq!(added["role"], "member");
    assert_error(as_admin, StatusCode::FORBIDDEN, "forbidden");
    assert_error(as_owner, StatusCode::FORBIDDEN, "forbidden");
    assert_error(by_outsider, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        members(&app, &alice, &room).await,
        pairs(&[("alice", "owner"), ("bob", "member"), ("carol", "member")])
    );
}

#[tokio::test]
async fn adding_an_unknown_user_is_404_an_existing_member_409_and_a_bad_role_400() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&alice, "closed", "private").await;
    assert_eq!(add(&app, &alice, &room, &bob.id, None).await.0, StatusCode::CREATED);

    let unknown = add(&app, &alice, &room, "no-such-user", None).await;
    let again = add(&app, &alice, &room, &bob.id, None).await;
    let owner_again = add(&app, &alice, &room, &alice.id, None).await;
    let bad_role = add(&app, &alice, &room, &bob.id, Some("king")).await;

    assert_error(unknown, StatusCode::NOT_FOUND, "not_found");
    assert_error(again, StatusCode::CONFLICT, "conflict");
    assert_error(owner_again, StatusCode::CONFLICT, "conflict");
    assert_error(bad_role, StatusCode::BAD_REQUEST, "invalid_request");
    assert_eq!(members(&app, &alice, &room).await, pairs(&[("alice", "owner"), ("bob", "member")]));
}

#[tokio::test]
async fn the_owner_and_an_admin_remove_members_with_204() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let room = app.room(&alice, "general", "public").await;
    assert_eq!(add(&app, &alice, &room, &bob.id, Some("admin")).await.0, StatusCode::CREATED);
    app.join(&carol, &room).await;
    app.join(&dave, &room).await;

    let by_owner = delete(&app, &format!("/api/v1/rooms/{room}/members/{}", carol.id), &alice).await;
    let by_admin = delete(&app, &format!("/api/v1/rooms/{room}/members/{}", dave.id), &bob).await;

    assert_eq!(by_owner.0, StatusCode::NO_CONTENT, "{}", by_owner.1);
    assert_eq!(by_admin.0, StatusCode::NO_CONTENT, "{}", by_admin.1);
    assert_eq!(members(&app, &alice, &room).await, pairs(&[("alice", "owner"), ("bob", "admin")]));
    assert!(app.my_rooms(&carol).await.is_empty());
    let (_, shown) = app.get(&format!("/api/v1/rooms/{room}"), &alice.token).await;
    assert_eq!(shown["member_count"], 2);
}

#[tokio::test]
async fn an_admin_cannot_remove_the_owner_and_a_plain_member_cannot_remove_another() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let room = app.room(&alice, "general", "public").await;
    assert_eq!(add(&app, &alice, &room, &bob.id, Some("admin")).await.0, StatusCode::CREATED);
    app.join(&carol, &room).await;
    app.join(&dave, &room).await;

    let admin_kicks_owner = delete(&app, &format!("/api/v1/rooms/{room}/members/{}", alice.id), &bob).await;
    let member_kicks_member =
        delete(&app, &format!("/api/v1/rooms/{room}/members/{}", dave.id), &carol).await;
    let member_kicks_owner =
        delete(&app, &format!("/api/v1/rooms/{room}/members/{}", alice.id), &carol).await;

    assert_error(admin_kicks_owner, StatusCode::FORBIDDEN, "forbidden");
    assert_error(member_kicks_member, StatusCode::FORBIDDEN, "forbidden");
    assert_error(member_kicks_owner, StatusCode::FORBIDDEN, "forbidden");
    assert_eq!(
        members(&app, &alice, &room).await,
        pairs(&[("alice", "owner"), ("bob", "admin"), ("carol", "member"), ("dave", "member")])
    );
}

#[tokio::test]
async fn a_member_may_remove_themself() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&alice, "closed", "private").await;
    assert_eq!(add(&app, &alice, &room, &bob.id, None).await.0, StatusCode::CREATED);

    let (status, body) = delete(&app, &format!("/api/v1/rooms/{room}/members/{}", bob.id), &bob).await;

    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert!(app.my_rooms(&bob).await.is_empty());
    let hidden = app.get(&format!("/api/v1/rooms/{room}"), &bob.token).await;
    assert_error(hidden, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_direct_room_is_the_same_room_every_time_and_both_users_see_it() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;

    let (status, first) = app.post("/api/v1/dms", &alice.token, json!({"user_id": bob.id})).await;
    let (again_status, again) = app.post("/api/v1/dms", &alice.token, json!({"user_id": bob.id})).await;
    let (other_status, from_bob) = app.post("/api/v1/dms", &bob.token, json!({"user_id": alice.id})).await;

    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(again_status, StatusCode::OK, "{again}");
    assert_eq!(other_status, StatusCode::OK, "{from_bob}");
    let id = first["id"].as_str().expect("room id");
    assert_eq!(again["id"], id);
    assert_eq!(from_bob["id"], id);
    assert_eq!(first["kind"], "direct");
    assert_eq!(first["name"], Value::Null);
    assert_eq!(first["topic"], Value::Null);
    assert_eq!(first["owner_id"], Value::Null);
    assert_eq!(first["visibility"], "private");
    assert_eq!(first["member_count"], 2);
    assert_eq!(first["last_seq"], 0);
    for user in [&alice, &bob] {
        let rooms = app.my_rooms(user).await;
        assert_eq!(ids(&rooms), vec![id], "{} sees the direct room once", user.username);
        assert_eq!(rooms[0]["kind"], "direct");
        assert_eq!(rooms[0]["unread_count"], 0);
    }
    assert_eq!(members(&app, &alice, id).await, pairs(&[("alice", "member"), ("bob", "member")]));
}

#[tokio::test]
async fn a_direct_room_is_invisible_to_a_third_user() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let (_, dm) = app.post("/api/v1/dms", &alice.token, json!({"user_id": bob.id})).await;
    let id = dm["id"].as_str().expect("room id");

    let show = app.get(&format!("/api/v1/rooms/{id}"), &carol.token).await;
    let join = post_empty(&app, &format!("/api/v1/rooms/{id}/join"), &carol).await;
    let list = app.get(&format!("/api/v1/rooms/{id}/members"), &carol.token).await;

    assert_error(show, StatusCode::NOT_FOUND, "not_found");
    assert_error(join, StatusCode::NOT_FOUND, "not_found");
    assert_error(list, StatusCode::NOT_FOUND, "not_found");
    assert!(app.my_rooms(&carol).await.is_empty());
}

#[tokio::test]
async fn a_direct_room_with_oneself_is_422_and_with_an_unknown_user_404() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;

    let own = app.post("/api/v1/dms", &alice.token, json!({"user_id": alice.id})).await;
    let unknown = app.post("/api/v1/dms", &alice.token, json!({"user_id": "no-such-user"})).await;
    let missing = app.post("/api/v1/dms", &alice.token, json!({})).await;

    let error = assert_error(own, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(error["field"], "user_id");
    assert_error(unknown, StatusCode::NOT_FOUND, "not_found");
    assert_error(missing, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(app.my_rooms(&alice).await.is_empty());
}

#[tokio::test]
async fn a_direct_room_cannot_be_left_patched_or_have_members_added_or_removed() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let (_, dm) = app.post("/api/v1/dms", &alice.token, json!({"user_id": bob.id})).await;
    let id = dm["id"].as_str().expect("room id");

    let leave = post_empty(&app, &format!("/api/v1/rooms/{id}/leave"), &alice).await;
    let add_carol = add(&app, &alice, id, &carol.id, None).await;
    let remove_bob = delete(&app, &format!("/api/v1/rooms/{id}/members/{}", bob.id), &alice).await;
    let remove_self = delete(&app, &format!("/api/v1/rooms/{id}/members/{}", alice.id), &alice).await;
    let rename = patch(&app, &format!("/api/v1/rooms/{id}"), &alice, json!({"name": "us"})).await;

    for answer in [leave, add_carol, remove_bob, remove_self, rename] {
        assert_error(answer, StatusCode::FORBIDDEN, "forbidden");
    }
    assert_eq!(members(&app, &bob, id).await, pairs(&[("alice", "member"), ("bob", "member")]));
}
