//! The gRPC services through real tonic clients over sockets: `parlor moderation` and `parlor
//! users` running alone, `Chat` on `parlor serve`, health and reflection on each.

mod common;

use common::{TestApp, free_port, spawn_parlor};
use parlor_proto::v1 as pb;
use parlor_proto::v1::chat_client::ChatClient;
use parlor_proto::v1::moderation_client::ModerationClient;
use parlor_proto::v1::review_response::{Reason, Verdict};
use parlor_proto::v1::users_client::UsersClient;
use reqwest::Method;
use std::process::Child;
use std::time::Duration;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};

const SECRET: &str = "grpc-test-secret-0123456789";

/// A process serving gRPC, killed at the end.
struct Service {
    child: Child,
    url: String,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(role: &str, extra: &[&str], dir: Option<tempfile::TempDir>) -> Service {
    let data_dir = dir.as_ref().map(|d| d.path().display().to_string()).unwrap_or_default();
    let mut args: Vec<String> = vec![role.into(), "--grpc-listen".into(), "127.0.0.1:0".into()];
    if !data_dir.is_empty() {
        args.push("--data-dir".into());
        args.push(data_dir);
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    let (child, addr) = spawn_parlor(&args, "gRPC listening on ");
    Service { child, url: format!("http://{}", addr.trim()), _dir: dir }
}

async fn channel(url: &str) -> Channel {
    Channel::from_shared(url.to_owned())
        .expect("url")
        .connect()
        .await
        .expect("the service accepts connections")
}

fn review(author: &str, body: &str) -> pb::ReviewRequest {
    pb::ReviewRequest { author_id: author.into(), room_id: "room".into(), body: body.into() }
}

#[tokio::test]
async fn moderation_runs_alone_answers_health_and_reflection_and_reviews() {
    let moderation = start("moderation", &[], Some(tempfile::tempdir().expect("dir")));
    let ch = channel(&moderation.url).await;

    let mut health = HealthClient::new(ch.clone());
    for service in ["", "parlor.v1.Moderation"] {
        let status = health
            .check(HealthCheckRequest { service: service.into() })
            .await
            .expect("health answers")
            .into_inner()
            .status;
        assert_eq!(status, ServingStatus::Serving as i32, "{service:?}");
    }

    let mut client = ModerationClient::new(ch.clone());
    let allowed =
        client.review(review("u1", "hello **world**, see https://example.com")).await.expect("review");
    let allowed = allowed.into_inner();
    assert_eq!(allowed.verdict, Verdict::Allow as i32);
    assert!(allowed.html.contains("<strong>world</strong>"), "{}", allowed.html);
    assert!(allowed.html.contains("rel=\"nofollow noopener noreferrer\""), "{}", allowed.html);

    let rejected = client.review(review("u2", "buy followers today")).await.expect("review").into_inner();
    assert_eq!((rejected.verdict, rejected.reason), (Verdict::Reject as i32, Reason::BlockedWord as i32));
    assert!(!rejected.message.is_empty());

    // The blocked list is matched after normalising case, look-alike digits, separators inside
    // words, zero-width characters, diacritics, compatibility forms and repeated letters.
    for (i, disguised) in [
        "fr33 m0ney for all",
        "get F.R.E.E M.O.N.E.Y now",
        "fr\u{200b}ee mon\u{200d}ey",
        "frée mönéy",
        "\u{ff26}\u{ff32}\u{ff25}\u{ff25} money",
        "freeeeee moneyyyy",
    ]
    .iter()
    .enumerate()
    {
        let verdict = client.review(review(&format!("n{i}"), disguised)).await.expect("review").into_inner();
        assert_eq!(
            (verdict.verdict, verdict.reason),
            (Verdict::Reject as i32, Reason::BlockedWord as i32),
            "{disguised:?}"
        );
    }
    let fine =
        client.review(review("n-ok", "the free tier costs no money")).await.expect("review").into_inner();
    assert_eq!(fine.verdict, Verdict::Allow as i32, "words apart are not the phrase");

    let mut verdicts = Vec::new();
    for _ in 0..8 {
        verdicts.push(
            client.review(review("u3", "same thing again and again")).await.expect("review").into_inner(),
        );
    }
    let last = verdicts.last().expect("some");
    assert_eq!((last.verdict, last.reason), (Verdict::Reject as i32, Reason::Flood as i32), "flood");
    assert_eq!(verdicts[0].verdict, Verdict::Allow as i32, "the first one passes");

    for (bad, what) in [
        (review("", "hi"), "no author"),
        (pb::ReviewRequest { room_id: String::new(), ..review("u", "hi") }, "no room"),
        (review("u", "   "), "empty body"),
        (review("u", &"x".repeat(4001)), "body too long"),
    ] {
        let status = client.review(bad).await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    }

    // A call ends at its deadline (grpc-timeout, which tonic enforces at both ends). The
    // request's message is held back, so the review cannot start and only the deadline can end
    // the call, however fast the server.
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await.expect("the channel is ready");
    let mut held = tonic::Request::new(futures_util::stream::pending::<pb::ReviewRequest>());
    held.set_timeout(Duration::from_millis(100));
    let call = grpc.client_streaming(
        held,
        tonic::codegen::http::uri::PathAndQuery::from_static("/parlor.v1.Moderation/Review"),
        tonic_prost::ProstCodec::<pb::ReviewRequest, pb::ReviewResponse>::default(),
    );
    let status = tokio::time::timeout(Duration::from_secs(20), call)
        .await
        .expect("the server ends the call at its deadline")
        .expect_err("a deadline that passes before the request is whole fails");
    assert!(matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled), "{status:?}");

    let mut reflection =
        tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(ch.clone());
    let request = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(String::new()),
        ),
    };
    let mut answers = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection answers")
        .into_inner();
    let answer = answers.message().await.expect("a reply").expect("one reply");
    let listed = format!("{:?}", answer.message_response);
    assert!(listed.contains("parlor.v1.Moderation"), "{listed}");
}

#[tokio::test]
async fn users_runs_alone_and_checks_tokens_users_and_presence() {
    // The users role and a server share one SQLite database and one signing key.
    let app = TestApp::spawn_with(&[("--jwt-secret", SECRET)]).await;
    let users =
        start("users", &["--jwt-secret", SECRET, "--data-dir", &app.data_dir().display().to_string()], None);
    let alice = app.register("alice").await;
    let ch = channel(&users.url).await;
    let status = HealthClient::new(ch.clone())
        .check(HealthCheckRequest { service: "parlor.v1.Users".into() })
        .await
        .expect("health answers")
        .into_inner()
        .status;
    assert_eq!(status, ServingStatus::Serving as i32);
    let mut client = UsersClient::new(ch);

    let me = client
        .authenticate(pb::AuthenticateRequest { access_token: alice.token.clone() })
        .await
        .expect("a valid token")
        .into_inner();
    assert_eq!(me.user.as_ref().map(|u| u.username.as_str()), Some("alice"));
    assert!(!me.session_id.is_empty());

    for bad in ["", "garbage", "a.b.c"] {
        let status = client
            .authenticate(pb::AuthenticateRequest { access_token: bad.into() })
            .await
            .expect_err("a bad token");
        assert_eq!(status.code(), Code::Unauthenticated, "{bad:?}");
    }

    let got =
        client.get_user(pb::GetUserRequest { id: alice.id.clone() }).await.expect("get user").into_inner();
    assert_eq!(got.user.map(|u| u.id), Some(alice.id.clone()));
    let status = client.get_user(pb::GetUserRequest { id: "nobody".into() }).await.expect_err("unknown");
    assert_eq!(status.code(), Code::NotFound);
    let status = client.get_user(pb::GetUserRequest { id: String::new() }).await.expect_err("empty");
    assert_eq!(status.code(), Code::InvalidArgument);

    let presence = client
        .get_presence(pb::GetPresenceRequest { user_ids: vec![alice.id.clone(), "nobody".into()] })
        .await
        .expect("presence")
        .into_inner();
    assert_eq!(presence.presences.len(), 2);
    let too_many = pb::GetPresenceRequest { user_ids: (0..1001).map(|i| i.to_string()).collect() };
    assert_eq!(client.get_presence(too_many).await.expect_err("too many").code(), Code::InvalidArgument);

    // Logging out is honoured by the users service at once.
    let (status, _) = app.call(Method::POST, "/api/v1/auth/logout", Some(&alice.token), None).await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
    let status = client
        .authenticate(pb::AuthenticateRequest { access_token: alice.token.clone() })
        .await
        .expect_err("a logged-out token");
    assert_eq!(status.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn chat_post_message_takes_the_send_path_for_integrations_with_the_service_token() {
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let app =
        TestApp::spawn_with(&[("--grpc-listen", listen.as_str()), ("--service-token", "integration-token")])
            .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let room = app.room(&alice, "bots", "public").await;
    let mut ws = app.ws(&alice.token).await;
    let mut client = ChatClient::new(channel(&format!("http://{listen}")).await);
    let post = |author: &str, body: &str, nonce: &str| {
        let mut request = tonic::Request::new(pb::PostMessageRequest {
            room_id: room.clone(),
            author_id: author.into(),
            body: body.into(),
            nonce: nonce.into(),
        });
        request.metadata_mut().insert("authorization", "Bearer integration-token".parse().expect("header"));
        request
    };

    let anonymous = tonic::Request::new(pb::PostMessageRequest {
        room_id: room.clone(),
        author_id: alice.id.clone(),
        body: "hi".into(),
        nonce: String::new(),
    });
    assert_eq!(client.post_message(anonymous).await.expect_err("no token").code(), Code::Unauthenticated);

    let posted = client
        .post_message(post(&alice.id, "from the **bridge**", "b-1"))
        .await
        .expect("posted")
        .into_inner();
    assert!(posted.created);
    let message = posted.message.expect("the message");
    assert_eq!(message.seq, 1);
    let event = ws.next_of_type("message.created").await;
    assert_eq!(event["message"]["id"], message.id.as_str());
    assert_eq!(event["message"]["html"], "<p>from the <strong>bridge</strong></p>\n");

    let again =
        client.post_message(post(&alice.id, "from the **bridge**", "b-1")).await.expect("again").into_inner();
    assert!(!again.created);
    assert_eq!(again.message.map(|m| m.id), Some(message.id));

    let status = client.post_message(post(&bob.id, "not a member", "b-2")).await.expect_err("not a member");
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = client.post_message(post(&alice.id, "buy followers", "b-3")).await.expect_err("rejected");
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("blocked_word"), "{status:?}");
    let status = client.post_message(post(&alice.id, "", "b-4")).await.expect_err("empty");
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut elsewhere = post(&alice.id, "hi", "b-5");
    elsewhere.get_mut().room_id = "no-such-room".into();
    assert_eq!(client.post_message(elsewhere).await.expect_err("unknown room").code(), Code::NotFound);
}

#[tokio::test]
async fn chat_post_message_holds_integrations_to_their_own_rate_limit_per_author() {
    let port = free_port().to_string();
    let listen = format!("127.0.0.1:{port}");
    let app = TestApp::spawn_with(&[
        ("--grpc-listen", listen.as_str()),
        ("--service-token", "integration-token"),
        ("--service-send-rate", "1"),
        ("--service-send-burst", "2"),
    ])
    .await;
    let (alice, bob, room) = app.alice_and_bob_in("bridged").await;
    let client = ChatClient::new(channel(&format!("http://{listen}")).await);
    let post = |author: &str, i: usize| {
        let mut request = tonic::Request::new(pb::PostMessageRequest {
            room_id: room.clone(),
            author_id: author.into(),
            body: format!("relayed line number {i} of many"),
            nonce: format!("{author}-{i}"),
        });
        request.metadata_mut().insert("authorization", "Bearer integration-token".parse().expect("header"));
        request
    };

    // All at once: a bucket of 2 refilling at 1 a second admits 2, and one more per second the
    // calls take to arrive.
    let started = std::time::Instant::now();
    let answers = futures_util::future::join_all((0..12).map(|i| {
        let mut client = client.clone();
        let request = post(&alice.id, i);
        async move { client.post_message(request).await }
    }))
    .await;
    let elapsed = started.elapsed().as_secs();
    let admitted = answers.iter().filter(|a| a.is_ok()).count();
    let limited: Vec<_> = answers.iter().filter_map(|a| a.as_ref().err()).collect();
    let mut client = client.clone();
    let for_bob = client.post_message(post(&bob.id, 0)).await;
    let (own_status, own) = app
        .post(
            &format!("/api/v1/rooms/{room}/messages"),
            &alice.token,
            serde_json::json!({"body": "my own words"}),
        )
        .await;

    assert!(admitted >= 2, "the burst is admitted: {answers:?}");
    assert!(admitted as u64 <= 2 + elapsed + 1, "{admitted} admitted in {elapsed} s: {answers:?}");
    assert!(
        limited.iter().all(|s| s.code() == Code::ResourceExhausted && s.message().contains("retry in")),
        "{limited:?}"
    );
    assert!(for_bob.is_ok(), "another author has a bucket of their own: {for_bob:?}");
    assert_eq!(own_status, reqwest::StatusCode::CREATED, "alice's own sends are not the bridge's: {own}");
}
