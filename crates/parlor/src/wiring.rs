//! Choosing the adapters: once, at start-up, from the settings. Roles get `Arc<dyn Port>`
//! handles and never learn which implementation is behind them. [`Services`] is what every role
//! of a process shares, built once by the command and closed once, after the last role stopped.

use crate::settings::{BrokerArgs, StoreArgs};
use anyhow::{Context, bail};
use parlor_broker::rabbitmq::RabbitQueue;
use parlor_broker::redis::{RedisBus, RedisPresence, RedisQueue, RedisServer};
use parlor_broker::{LocalBus, LocalPresence, LocalQueue};
use parlor_domain::ports::{Bus, Presence, Queue, Store};
use parlor_lifecycle::Supervisor;
use parlor_store::{PostgresOptions, PostgresStore, SqliteStore};
use std::sync::Arc;
use std::time::Duration;

/// The store, whichever it is.
pub enum StoreHandle {
    Sqlite(SqliteStore),
    Postgres(PostgresStore),
}

impl StoreHandle {
    /// Opens the store the settings name (applying migrations unless told not to).
    pub async fn open(args: &StoreArgs) -> anyhow::Result<Self> {
        match &args.database_url {
            Some(url) if url.0.starts_with("postgres://") || url.0.starts_with("postgresql://") => {
                let options =
                    PostgresOptions { max_connections: args.db_max_connections, migrate: !args.no_migrate };
                Ok(Self::Postgres(PostgresStore::connect(&url.0, options).await.context("PostgreSQL")?))
            }
            Some(url) if url.0.starts_with("sqlite:") => {
                Ok(Self::Sqlite(SqliteStore::open_url(&url.0).await?))
            }
            Some(_) => bail!("{}", crate::settings::DATABASE_URL_PROBLEM),
            None => {
                std::fs::create_dir_all(&args.data_dir).with_context(|| {
                    format!("cannot create the data directory {}", args.data_dir.display())
                })?;
                Ok(Self::Sqlite(SqliteStore::open(&args.data_dir.join("parlor.db")).await?))
            }
        }
    }

    /// Whether several processes can share this store.
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The store as the port.
    pub fn port(&self) -> Arc<dyn Store> {
        match self {
            Self::Sqlite(s) => Arc::new(s.clone()),
            Self::Postgres(s) => Arc::new(s.clone()),
        }
    }

    /// Closes the connections, waiting for queries in flight.
    pub async fn close(&self) {
        match self {
            Self::Sqlite(s) => s.close().await,
            Self::Postgres(s) => s.close().await,
        }
    }
}

/// The queue and the bus, and the Redis server if there is one.
pub struct Broker {
    pub queue: Arc<dyn Queue>,
    pub bus: Arc<dyn Bus>,
    redis: Option<RedisServer>,
    presence_ttl: std::time::Duration,
}

impl Broker {
    /// Connects to what the settings name; in-process adapters for what they leave out.
    pub async fn connect(args: &BrokerArgs, store: &StoreHandle) -> anyhow::Result<Self> {
        let redis = match &args.redis_url {
            Some(url) => Some(RedisServer::connect(&url.0, &args.key_prefix).await.context("Redis")?),
            None => None,
        };
        let queue: Arc<dyn Queue> = match (&args.amqp_url, &redis) {
            (Some(url), _) => Arc::new(
                RabbitQueue::connect(&url.0, &args.key_prefix, args.worker_partitions)
                    .await
                    .context("RabbitMQ")?
                    .with_member_ttl(args.partition_lease),
            ),
            (None, Some(server)) => {
                Arc::new(RedisQueue::new(server.clone(), args.worker_partitions, args.partition_lease))
            }
            // The embedded SQLite store has one writer: one partition makes fewer, larger
            // transactions (17,500 acknowledged sends/s against 14,000 with four; see
            // docs/performance.md). PostgreSQL commits partitions side by side.
            (None, None) => {
                let partitions = if store.is_shared() { args.worker_partitions } else { 1 };
                Arc::new(LocalQueue::new(partitions, 8192))
            }
        };
        let bus: Arc<dyn Bus> = match &redis {
            Some(server) => Arc::new(RedisBus::new(server.clone())),
            None => Arc::new(LocalBus::new()),
        };
        Ok(Self { queue, bus, redis, presence_ttl: args.presence_ttl })
    }

    /// In-process adapters only.
    fn local() -> Self {
        Self {
            queue: Arc::new(LocalQueue::new(1, 8192)),
            bus: Arc::new(LocalBus::new()),
            redis: None,
            presence_ttl: Duration::from_secs(30),
        }
    }

    /// Whether processes can reach each other through this broker.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// Presence as the gateway `gateway_id` keeps it.
    pub fn presence(&self, gateway_id: &str) -> Arc<dyn Presence> {
        match &self.redis {
            Some(server) => {
                Arc::new(RedisPresence::new(server.clone(), gateway_id.to_owned(), self.presence_ttl))
            }
            None => Arc::new(LocalPresence::new()),
        }
    }
}

/// What the roles of one process share: built once, handed to each role, closed after them.
pub struct Services {
    /// This process's id: the gateway's name for replies, and its presence claims'.
    pub instance_id: String,
    pub store: StoreHandle,
    pub queue: Arc<dyn Queue>,
    pub bus: Arc<dyn Bus>,
    pub presence: Arc<dyn Presence>,
    /// Whether the store and the broker can be shared with other processes.
    pub shared: bool,
    /// The process's metrics, for `/metrics`.
    pub metrics: Option<metrics_exporter_prometheus::PrometheusHandle>,
    /// The root of the process's task tree: every role's node hangs from it.
    pub tasks: Supervisor,
    /// The services' own tasks (metrics upkeep), stopped after every role.
    own: Supervisor,
}

impl Services {
    /// Opens the store and connects the broker the settings name (in-process adapters without
    /// broker settings: the moderation role uses neither queue nor bus).
    pub async fn open(store: &StoreArgs, broker: Option<&BrokerArgs>) -> anyhow::Result<Self> {
        let tasks = Supervisor::root("parlor");
        let own = tasks.child("services");
        let store = StoreHandle::open(store).await?;
        let broker = match broker {
            Some(args) => Broker::connect(args, &store).await?,
            None => Broker::local(),
        };
        let instance_id = parlor_domain::UserId::generate().to_string();
        let presence = broker.presence(&instance_id);
        let metrics = crate::metrics::handle(&own);
        Ok(Self {
            shared: store.is_shared() && broker.is_shared(),
            instance_id,
            store,
            queue: broker.queue,
            bus: broker.bus,
            presence,
            metrics,
            tasks,
            own,
        })
    }

    /// After the roles: stops the services' own tasks, closes the store (SQLite checkpoints its
    /// log), and says whether any task of the process is still running.
    pub async fn close(self) {
        self.own.stop(Duration::from_secs(2)).await;
        self.store.close().await;
        tracing::info!("store closed");
        let left = self.tasks.stop(Duration::from_secs(1)).await.left;
        if left == 0 {
            tracing::info!("stopped: no task left");
        } else {
            tracing::warn!(left, "stopped with tasks still running");
        }
    }
}
