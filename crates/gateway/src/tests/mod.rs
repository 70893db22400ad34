//! In-process tests of the gateway's middle layer: the hub, the table of sends waiting for their
//! outcome, the WebSocket session and admission. They run over the embedded adapters (`LocalBus`,
//! `LocalQueue`, `LocalPresence`) and SQLite in a temporary directory: no binary, no socket. The
//! test plays the worker where one is needed: it takes commands from the queue and publishes
//! their outcome to the gateway's topic, as the worker does.

mod admission;
mod hub;
mod pending;
mod session;

use crate::state::{AppState, GatewaySettings};
use crate::{GatewayDeps, build};
use parlor_broker::{LocalBus, LocalPresence, LocalQueue};
use parlor_domain::bus::{BusEvent, Envelope, Topic};
use parlor_domain::model::{Role, Visibility};
use parlor_domain::ports::{Bus, Consumer, Delivery, NewRoom, Queue, Store};
use parlor_domain::queue::Outcome;
use parlor_domain::{RoomId, Timestamp, UserId};
use parlor_store::SqliteStore;
use parlor_users::{AccountSettings, Accounts};
use std::sync::Arc;
use std::time::Duration;

/// The longest any step of these tests may take before it counts as never.
pub(crate) const WAIT: Duration = Duration::from_secs(10);

/// The gateway's id on the bus in these tests.
const GATEWAY_ID: &str = "gateway-under-test";

/// A gateway over the embedded adapters, stopped when dropped.
pub(crate) struct TestGateway {
    pub state: AppState,
    pub bus: Arc<LocalBus>,
    pub queue: Arc<LocalQueue>,
    tasks: parlor_lifecycle::Supervisor,
    _dir: tempfile::TempDir,
}

/// A registered user and an access token of theirs.
pub(crate) struct TestUser {
    pub id: UserId,
    pub token: String,
}

impl TestGateway {
    /// A gateway with the default settings.
    pub async fn start() -> Self {
        Self::with(GatewaySettings::default()).await
    }

    /// A gateway with `settings`.
    pub async fn with(settings: GatewaySettings) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn Store> =
            Arc::new(SqliteStore::open(&dir.path().join("parlor.db")).await.expect("the store opens"));
        let bus = Arc::new(LocalBus::new());
        let queue = Arc::new(LocalQueue::new(1, 1024));
        let accounts = Arc::new(
            Accounts::new(
                store.clone(),
                bus.clone(),
                AccountSettings {
                    jwt_secret: b"in-process-test-secret-0123456789".to_vec(),
                    access_ttl: Duration::from_secs(900),
                    refresh_ttl: Duration::from_secs(3600),
                },
            )
            .await
            .expect("accounts"),
        );
        let tasks = parlor_lifecycle::Supervisor::root("test gateway");
        let state = build(
            GatewayDeps {
                store,
                bus: bus.clone(),
                queue: queue.clone(),
                presence: Arc::new(LocalPresence::new()),
                accounts: accounts.clone(),
                authenticator: accounts,
                metrics: None,
            },
            settings,
            GATEWAY_ID.into(),
            &tasks,
        )
        .await
        .expect("the gateway builds");
        Self { state, bus, queue, tasks, _dir: dir }
    }

    /// Registers `name`.
    pub async fn user(&self, name: &str) -> TestUser {
        let registered = self
            .state
            .accounts
            .register(name, "password-0123", None, None, None)
            .await
            .expect("the user registers");
        TestUser { id: registered.user.user.id, token: registered.tokens.access_token }
    }

    /// A public room owned by `owner`.
    pub async fn room(&self, owner: &TestUser, name: &str) -> RoomId {
        let room = NewRoom {
            id: RoomId::generate(),
            name: name.into(),
            topic: None,
            visibility: Visibility::Public,
            owner_id: owner.id.clone(),
            created_at: Timestamp::now(),
        };
        self.state.store.create_room(room).await.expect("the room is created").id
    }

    /// Makes `user` a member of `room`.
    pub async fn join(&self, user: &TestUser, room: &RoomId) {
        self.state.store.add_member(room, &user.id, Role::Member, Timestamp::now()).await.expect("joined");
    }

    /// The queue's consumer, to play the worker.
    pub async fn worker(&self) -> Box<dyn Consumer> {
        self.queue
            .try_consumer(0, "test worker")
            .await
            .expect("the partition's consumer")
            .expect("the in-process queue has no other worker")
    }

    /// Publishes an outcome to this gateway, as the worker does.
    pub async fn reply(&self, request_id: &str, outcome: Outcome) {
        let envelope = Envelope {
            topic: Topic::Gateway(GATEWAY_ID.into()),
            event: BusEvent::Reply { request_id: request_id.to_owned(), outcome: Box::new(outcome) },
        };
        self.bus.publish(Arc::new(envelope)).await.expect("published");
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        self.state.shutdown.cancel();
        self.tasks.token().cancel();
    }
}

/// The next command the gateway queued, waiting for it.
pub(crate) async fn next_command(consumer: &mut Box<dyn Consumer>) -> Delivery {
    let found = tokio::time::timeout(WAIT, async {
        loop {
            match consumer.next_batch(1).await {
                Some(mut batch) if !batch.is_empty() => return batch.remove(0),
                Some(_) => continue,
                None => panic!("the queue closed"),
            }
        }
    })
    .await;
    found.expect("a command is queued in time")
}
