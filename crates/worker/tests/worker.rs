//! The worker in process, with the embedded adapters: the in-process queue and bus, SQLite in a
//! temporary directory, and the real moderation. Each test queues commands as a gateway would,
//! runs `parlor_worker::run`, and reads what the worker published and stored.

use parlor_broker::{LocalBus, LocalQueue};
use parlor_domain::bus::{BusEvent, Envelope, Topic};
use parlor_domain::model::Visibility;
use parlor_domain::ports::{Bus, NewRoom, Page, Queue, Store, Subscriptions};
use parlor_domain::queue::{Command, Inbound, Outcome};
use parlor_domain::{Error, MessageId, RejectReason, RoomId, Timestamp, UserId};
use parlor_moderation::{ModerationSettings, Moderator};
use parlor_store::SqliteStore;
use parlor_worker::{Holdings, WorkerContext};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const WAIT: Duration = Duration::from_secs(10);
const GATEWAY: &str = "gw-test";

/// A worker over embedded adapters, a user, a room of theirs, and the gateway's replies.
struct Rig {
    store: Arc<dyn Store>,
    queue: Arc<dyn Queue>,
    alice: UserId,
    room: RoomId,
    replies: Receiver<Arc<Envelope>>,
    events: Receiver<Arc<Envelope>>,
    /// The receivers' subscriptions live as long as they do.
    _subscriptions: [Arc<dyn Subscriptions>; 2],
    holdings: Holdings,
    stop: CancellationToken,
    worker: Option<JoinHandle<Result<(), Error>>>,
    _dir: tempfile::TempDir,
}

use parlor_store::testing::user;

impl Rig {
    /// Everything but the worker, which `start` runs: commands queued before it starts are
    /// taken as one batch.
    async fn new(batch_max: usize) -> (Self, WorkerContext) {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("worker.db")).await.expect("SQLite opens"));
        let queue: Arc<dyn Queue> = Arc::new(LocalQueue::new(1, 4096));
        let bus: Arc<dyn Bus> = Arc::new(LocalBus::new());
        let alice = user(&store, "alice").await;
        let room = RoomId::generate();
        store
            .create_room(NewRoom {
                id: room.clone(),
                name: "general".into(),
                topic: None,
                visibility: Visibility::Public,
                owner_id: alice.clone(),
                created_at: Timestamp::now(),
            })
            .await
            .expect("create a room");
        let (gateway, replies) = bus.subscriber().await.expect("a subscriber");
        gateway.subscribe(Topic::Gateway(GATEWAY.into())).await.expect("subscribe");
        let (member, events) = bus.subscriber().await.expect("a subscriber");
        member.subscribe(Topic::Room(room.clone())).await.expect("subscribe");
        let holdings = Holdings::default();
        let ctx = WorkerContext {
            store: store.clone(),
            queue: queue.clone(),
            bus: bus.clone(),
            reviewer: Arc::new(Moderator::new(ModerationSettings::default(), store.clone())),
            batch_max,
            notify_after: None,
            holdings: holdings.clone(),
        };
        let rig = Self {
            store,
            queue,
            alice,
            room,
            replies,
            events,
            _subscriptions: [gateway, member],
            holdings,
            stop: CancellationToken::new(),
            worker: None,
            _dir: dir,
        };
        (rig, ctx)
    }

    /// Runs the worker and waits until it holds the queue's partition.
    async fn start(&mut self, ctx: WorkerContext) {
        self.worker = Some(tokio::spawn(parlor_worker::run(ctx, self.stop.clone())));
        let mut held = self.holdings.watch();
        tokio::time::timeout(WAIT, held.wait_for(|h| !h.is_empty()))
            .await
            .expect("the worker takes its partition in time")
            .expect("the worker runs");
    }

    /// Stops the worker and waits for it to end.
    async fn stop(&mut self) {
        self.stop.cancel();
        let worker = self.worker.take().expect("a running worker");
        tokio::time::timeout(WAIT, worker)
            .await
            .expect("the worker stops in time")
            .expect("the worker task ends")
            .expect("the worker ends well");
        assert!(self.holdings.get().is_empty(), "a stopped worker holds nothing");
    }

    async fn push(&self, request_id: &str, command: Command) {
        let item = Inbound {
            request_id: request_id.into(),
            origin: GATEWAY.into(),
            command,
            enqueued_at: Some(Timestamp::now()),
        };
        self.queue.push(item).await.expect("queued");
    }

    fn create(&self, body: &str, nonce: Option<&str>) -> Command {
        Command::Create {
            room_id: self.room.clone(),
            author_id: self.alice.clone(),
            body: body.into(),
            nonce: nonce.map(Into::into),
            reply_to: None,
        }
    }

    /// The next reply, as (request id, outcome).
    async fn reply(&mut self) -> (String, Outcome) {
        let envelope = tokio::time::timeout(WAIT, self.replies.recv())
            .await
            .expect("a reply in time")
            .expect("the bus is open");
        match &envelope.event {
            BusEvent::Reply { request_id, outcome } => (request_id.clone(), (**outcome).clone()),
            other => panic!("a reply, not {other:?}"),
        }
    }

    /// The next room event, as (seq, the frame's JSON).
    async fn event(&mut self) -> (i64, serde_json::Value) {
        let envelope = tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the bus is open");
        match &envelope.event {
            BusEvent::Message { seq, frame, .. } => {
                (*seq, serde_json::from_slice(&frame.0).expect("a frame is JSON"))
            }
            other => panic!("a room event, not {other:?}"),
        }
    }

    async fn history(&self) -> Vec<parlor_domain::model::Message> {
        self.store.history(&self.room, Page::Latest, 1000).await.expect("history").0
    }
}

fn created(outcome: &Outcome) -> (i64, bool, MessageId) {
    match outcome {
        Outcome::Created { message, created } => (message.seq, *created, message.id.clone()),
        other => panic!("a created message, not {other:?}"),
    }
}

#[tokio::test]
async fn a_send_is_stored_and_its_event_and_reply_are_published() {
    let (mut rig, ctx) = Rig::new(64).await;
    rig.start(ctx).await;
    rig.push("r1", rig.create("hello there", Some("n1"))).await;
    let (request_id, outcome) = rig.reply().await;
    assert_eq!(request_id, "r1");
    let (seq, fresh, id) = created(&outcome);
    assert_eq!((seq, fresh), (1, true));
    let (event_seq, frame) = rig.event().await;
    assert_eq!(event_seq, 1);
    assert_eq!(frame["type"], "message.created", "{frame}");
    assert_eq!(frame["message"]["id"], id.as_str());
    assert_eq!(frame["message"]["body"], "hello there");
    let history = rig.history().await;
    assert_eq!(history.len(), 1);
    assert_eq!((history[0].id.clone(), history[0].nonce.as_deref()), (id, Some("n1")));
    assert!(history[0].html.contains("hello there"), "stored with its rendering: {}", history[0].html);
    rig.stop().await;
}

#[tokio::test]
async fn a_rejected_body_fails_alone_without_breaking_its_batch() {
    let (mut rig, ctx) = Rig::new(64).await;
    // Queued before the worker starts, so the three come as one batch.
    rig.push("ok1", rig.create("first of three", None)).await;
    rig.push("bad", rig.create("buy followers here", None)).await;
    rig.push("ok2", rig.create("third of three", None)).await;
    rig.start(ctx).await;
    let mut replies = Vec::new();
    for _ in 0..3 {
        replies.push(rig.reply().await);
    }
    assert_eq!(replies.iter().map(|(r, _)| r.as_str()).collect::<Vec<_>>(), ["ok1", "bad", "ok2"]);
    assert_eq!(created(&replies[0].1).0, 1);
    match &replies[1].1 {
        Outcome::Failed(Error::Rejected { reason, .. }) => assert_eq!(*reason, RejectReason::BlockedWord),
        other => panic!("the blocked phrase is rejected, not {other:?}"),
    }
    assert_eq!(created(&replies[2].1).0, 2, "the rejected one takes no seq");
    assert_eq!((rig.event().await.0, rig.event().await.0), (1, 2), "no event for the rejected one");
    let bodies: Vec<String> = rig.history().await.into_iter().map(|m| m.body).collect();
    assert_eq!(bodies, ["first of three", "third of three"]);
    rig.stop().await;
}

#[tokio::test]
async fn a_nonce_repeated_within_a_batch_and_across_batches_stores_one_message() {
    let (mut rig, ctx) = Rig::new(64).await;
    rig.push("a", rig.create("only once", Some("same"))).await;
    rig.push("b", rig.create("only once", Some("same"))).await;
    rig.push("c", rig.create("another", Some("other"))).await;
    rig.start(ctx).await;
    let (_, first) = rig.reply().await;
    let (_, repeat) = rig.reply().await;
    let (_, other) = rig.reply().await;
    let (seq, fresh, id) = created(&first);
    assert_eq!((seq, fresh), (1, true));
    assert_eq!(created(&repeat), (1, false, id.clone()), "the repeat in the batch names the first");
    assert_eq!(created(&other).0, 2);
    // A later batch: the store answers the retry with the first message.
    rig.push("d", rig.create("only once", Some("same"))).await;
    let (request_id, later) = rig.reply().await;
    assert_eq!((request_id.as_str(), created(&later)), ("d", (1, false, id)));
    assert_eq!(rig.history().await.len(), 2, "one message per nonce");
    // Only the two new messages were announced.
    assert_eq!((rig.event().await.0, rig.event().await.0), (1, 2));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), rig.events.recv()).await.is_err(),
        "no event for a repeat"
    );
    rig.stop().await;
}

#[tokio::test]
async fn edits_and_deletes_are_applied_and_announced_and_keep_their_rules() {
    let (mut rig, ctx) = Rig::new(64).await;
    let bob = user(&rig.store, "bob").await;
    rig.start(ctx).await;
    rig.push("c", rig.create("draft", None)).await;
    let (_, id) = {
        let (_, outcome) = rig.reply().await;
        let (seq, _, id) = created(&outcome);
        (seq, id)
    };
    rig.event().await;
    let room = rig.room.clone();
    let edit = |author: &UserId, body: &str| Command::Edit {
        room_id: room.clone(),
        message_id: id.clone(),
        author_id: author.clone(),
        body: body.into(),
    };
    let alice = rig.alice.clone();
    rig.push("e", edit(&alice, "final")).await;
    match rig.reply().await.1 {
        Outcome::Edited { message } => {
            assert_eq!((message.body.as_str(), message.edited_at.is_some()), ("final", true))
        }
        other => panic!("an edit, not {other:?}"),
    }
    let (seq, frame) = rig.event().await;
    assert_eq!(
        (seq, frame["type"].as_str(), frame["message"]["body"].as_str()),
        (1, Some("message.updated"), Some("final"))
    );
    // bob is not a member of the room: his edit fails and changes nothing.
    rig.push("x", edit(&bob, "hijacked")).await;
    assert!(matches!(rig.reply().await.1, Outcome::Failed(_)), "a stranger cannot edit");
    let delete =
        Command::Delete { room_id: rig.room.clone(), message_id: id.clone(), actor_id: rig.alice.clone() };
    rig.push("d", delete).await;
    match rig.reply().await.1 {
        Outcome::Deleted { message_id, seq, .. } => assert_eq!((message_id, seq), (id.clone(), 1)),
        other => panic!("a delete, not {other:?}"),
    }
    let (_, frame) = rig.event().await;
    assert_eq!(frame["type"], "message.deleted", "{frame}");
    let history = rig.history().await;
    assert_eq!(history.len(), 1);
    assert!(history[0].deleted, "the message is deleted");
    rig.stop().await;
}

#[tokio::test]
async fn shutdown_drains_what_is_queued() {
    // Small batches, so most of what is queued still waits when the stop comes.
    let (mut rig, ctx) = Rig::new(4).await;
    rig.start(ctx).await;
    for n in 0..200 {
        rig.push(&format!("r{n}"), rig.create(&format!("message {n}"), Some(&format!("n{n}")))).await;
    }
    rig.stop().await;
    let history = rig.history().await;
    assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), (1..=200).collect::<Vec<i64>>());
    assert_eq!(history.last().map(|m| m.body.as_str()), Some("message 199"), "in the order queued");
}
