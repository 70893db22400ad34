//! parlor's worker role: takes commands from the queue a batch at a time, has each body reviewed,
//! applies the batch in one transaction (group commit), then publishes the events and the replies.
//! Nothing is acknowledged — to the queue or to a client — before the commit.
//!
//! Workers share the queue's partitions. Every `REBALANCE_EVERY` a worker beats its membership
//! (`Queue::join`), computes its share from the live workers (`partition::assigned`, the same
//! answer in every worker), takes the partitions of its share it does not hold
//! (`Queue::try_consumer`: `None` while the last holder has not let go) and hands back those it
//! holds that are no longer its own. A partition runs in a task of its own; handing it back
//! stops the task between batches: the batch in hand is applied, published and acknowledged,
//! then the consumer is released, so one room's commands are never applied by two workers at
//! once nor out of order. A dead worker's partitions move when its membership and leases run
//! out. On shutdown the worker leaves the membership (the others start taking its share), drains
//! what its partitions hold, and releases them.

use parlor_domain::bus::{BusEvent, Envelope, Frame, Topic};
use parlor_domain::model::Message;
use parlor_domain::partition::assigned;
use parlor_domain::ports::{
    Bus, Consumer, Delivery, Prepared, Queue, ReviewRequest, Reviewer, Store, Verdict,
};
use parlor_domain::protocol::ServerEvent;
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{Error, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How often a worker beats its membership and looks at its share. Leases and membership TTLs
/// must be several times longer (the deployments use 1 s and more).
pub const REBALANCE_EVERY: Duration = Duration::from_millis(250);

/// What the worker needs.
#[derive(Clone)]
pub struct WorkerContext {
    pub store: Arc<dyn Store>,
    pub queue: Arc<dyn Queue>,
    pub bus: Arc<dyn Bus>,
    pub reviewer: Arc<dyn Reviewer>,
    /// Most commands applied in one transaction.
    pub batch_max: usize,
    /// Delay of the unread-message e-mail of a new message; `None`: no e-mails.
    pub notify_after: Option<Duration>,
    /// Where the worker says which partitions it holds (`Holdings::default()` when nobody but
    /// the `parlor_worker_partitions` gauge looks).
    pub holdings: Holdings,
}

/// The partitions a worker holds, ascending: a cheap handle to clone, written by the worker and
/// read by whoever wants to know (tests; the `parlor_worker_partitions` gauge follows it).
#[derive(Clone, Debug)]
pub struct Holdings(Arc<watch::Sender<Vec<usize>>>);

impl Default for Holdings {
    fn default() -> Self {
        Self(Arc::new(watch::Sender::new(Vec::new())))
    }
}

impl Holdings {
    /// The partitions held now.
    pub fn get(&self) -> Vec<usize> {
        self.0.borrow().clone()
    }

    /// A receiver that sees each change.
    pub fn watch(&self) -> watch::Receiver<Vec<usize>> {
        self.0.subscribe()
    }

    fn set(&self, mut held: Vec<usize>) {
        held.sort_unstable();
        metrics::gauge!("parlor_worker_partitions").set(held.len() as f64);
        self.0.send_if_modified(|now| {
            let changed = *now != held;
            *now = held;
            changed
        });
    }
}

/// Consumes this worker's share of the queue's partitions until `shutdown`, then drains what it
/// holds and lets go of it.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> Result<(), Error> {
    let me = format!("worker-{}", uuid::Uuid::now_v7());
    let partitions = ctx.queue.partitions();
    let mut membership = ctx.queue.join(&me).await?;
    // Each held partition's task, and the token that hands it back (a child of `shutdown`).
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut held: HashMap<usize, CancellationToken> = HashMap::new();
    let mut task_partition: HashMap<tokio::task::Id, usize> = HashMap::new();
    // The first beat makes this worker known; its share is computed from the second, once the
    // others have had a beat's time to be heard (over RabbitMQ a newcomer hears them then).
    let mut beats = 0u64;
    loop {
        while let Some(done) = tasks.try_join_next_with_id() {
            let id = match done {
                Ok((id, ())) => id,
                Err(e) => {
                    tracing::error!(error = %e, "a worker partition task failed");
                    e.id()
                }
            };
            if let Some(p) = task_partition.remove(&id) {
                held.remove(&p);
            }
        }
        match membership.beat().await {
            Ok(members) if beats > 0 => {
                let mine = assigned(partitions, &members, &me);
                for (p, stop) in &held {
                    if !mine.contains(p) && !stop.is_cancelled() {
                        let workers = members.len();
                        tracing::info!(partition = p, worker = %me, workers, "handing a partition back");
                        stop.cancel();
                    }
                }
                for p in mine {
                    if held.contains_key(&p) {
                        continue;
                    }
                    match ctx.queue.try_consumer(p, &me).await {
                        Ok(Some(consumer)) => {
                            let stop = shutdown.child_token();
                            let task =
                                tasks.spawn(consume(ctx.clone(), consumer, stop.clone(), shutdown.clone()));
                            task_partition.insert(task.id(), p);
                            held.insert(p, stop);
                        }
                        Ok(None) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, partition = p, "cannot take a partition; retrying")
                        }
                    }
                }
                if beats == 1 {
                    tracing::info!(partitions, worker = %me, "worker started");
                }
                beats += 1;
            }
            Ok(_) => beats += 1,
            // Keep what is held: its leases say whether it is still ours.
            Err(e) => tracing::warn!(error = %e, "the worker membership is unreachable; retrying"),
        }
        ctx.holdings.set(held.iter().filter(|(_, stop)| !stop.is_cancelled()).map(|(p, _)| *p).collect());
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(REBALANCE_EVERY) => {}
        }
    }
    // Leave first, so the others start taking this share while it drains.
    membership.leave().await;
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a worker partition task failed");
        }
    }
    ctx.holdings.set(Vec::new());
    tracing::info!(worker = %me, "worker stopped");
    Ok(())
}

/// Consumes one partition until `stop` (a hand-back, or `shutdown`) or until the consumer is done
/// (its lease lost), then releases it. On shutdown it first drains what is queued.
async fn consume(
    ctx: WorkerContext,
    mut consumer: Box<dyn Consumer>,
    stop: CancellationToken,
    shutdown: CancellationToken,
) {
    loop {
        // Stopping cancels a wait for deliveries, never a batch being applied.
        let batch = tokio::select! {
            batch = consumer.next_batch(ctx.batch_max) => batch,
            () = stop.cancelled() => break,
        };
        let Some(batch) = batch else {
            consumer.release().await;
            return;
        };
        if !batch.is_empty() && !process(&ctx, consumer.as_mut(), batch).await {
            // The batch was not committed: let go, so the queue hands it out again, first and in
            // order (the next `try_consumer`, ours or another worker's, starts with it).
            consumer.release().await;
            return;
        }
    }
    if shutdown.is_cancelled() {
        // Shutting down: the gateways no longer accept sends, so finish what is already queued.
        // (A durable queue keeps the rest for the next worker.)
        while let Ok(Some(batch)) =
            tokio::time::timeout(Duration::from_millis(200), consumer.next_batch(ctx.batch_max)).await
        {
            if batch.is_empty() || !process(&ctx, consumer.as_mut(), batch).await {
                break;
            }
        }
    }
    consumer.release().await;
}

/// Reviews, applies and publishes one batch; true when it was committed (and acknowledged, as
/// far as the queue answered). An uncommitted batch is left unacknowledged, for the caller to
/// have it delivered again.
pub async fn process(ctx: &WorkerContext, consumer: &mut dyn Consumer, batch: Vec<Delivery>) -> bool {
    tracing::debug!(size = batch.len(), "batch");
    let now = Timestamp::now();
    for d in &batch {
        // From the gateway's clock to this one: clamped at zero when they disagree.
        if let Some(queued) = d.item.enqueued_at {
            let lag = (now.millis() - queued.millis()).max(0) as f64 / 1000.0;
            metrics::histogram!("parlor_queue_lag_seconds").record(lag);
        }
    }
    // Review first: a rejected command fails alone and is not part of the transaction. Repeats
    // of a send within the batch (same room, author and nonce) go to the store like any other:
    // `Store::apply` answers them with the first's message.
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
    let mut prepared = Vec::with_capacity(batch.len());
    let mut refused = Vec::new();
    for (i, d) in batch.iter().enumerate() {
        match review(ctx, &d.item.command, &d.item.request_id).await {
            Ok((html, mentions)) => {
                outcomes.push(None);
                let notify_at = ctx.notify_after.map(|d| now.plus_millis(d.as_millis() as i64));
                prepared.push(Prepared { command: d.item.command.clone(), html, mentions, now, notify_at });
            }
            Err(e) => {
                outcomes.push(Some(Outcome::Failed(e)));
                refused.push(i);
            }
        }
    }
    metrics::histogram!("parlor_batch_size").record(batch.len() as f64);
    let started = std::time::Instant::now();
    let applied = if prepared.is_empty() { Ok(Vec::new()) } else { ctx.store.apply(&prepared).await };
    metrics::histogram!("parlor_store_apply_seconds").record(started.elapsed().as_secs_f64());
    let committed = applied.is_ok();
    match applied {
        Ok(results) => {
            let mut results = results.into_iter();
            for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
                *slot = results.next();
            }
        }
        Err(e) => {
            tracing::error!(error = %e, batch = prepared.len(), "could not commit a batch");
            let e = match e {
                Error::Internal(_) => Error::Unavailable("the message could not be stored".into()),
                other => other,
            };
            for slot in outcomes.iter_mut().filter(|o| o.is_none()) {
                *slot = Some(Outcome::Failed(e.clone()));
            }
        }
    }
    for i in refused {
        if let Some(first) = stored_before(ctx, &batch[i].item.command, &outcomes).await {
            outcomes[i] = Some(Outcome::Created { message: first, created: false });
        }
    }
    for (d, outcome) in batch.iter().zip(outcomes) {
        let outcome = outcome.unwrap_or_else(|| Outcome::Failed(Error::internal("no outcome for a command")));
        if matches!(outcome, Outcome::Created { created: true, .. }) {
            metrics::counter!("parlor_messages_stored_total").increment(1);
        }
        log_outcome(&d.item.request_id, &outcome);
        if let Some(event) = room_event(&outcome) {
            publish(ctx, event).await;
        }
        let reply = Envelope {
            topic: Topic::Gateway(d.item.origin.clone()),
            event: BusEvent::Reply { request_id: d.item.request_id.clone(), outcome: Box::new(outcome) },
        };
        publish(ctx, reply).await;
    }
    if committed {
        let tags: Vec<String> = batch.iter().map(|d| d.tag.clone()).collect();
        if let Err(e) = consumer.ack(&tags).await {
            tracing::warn!(error = %e, "could not acknowledge a batch; it will be redelivered and deduplicated by nonce");
        }
    }
    committed
}

/// The message a send that review refused was a retry of, if it was stored: stored by this batch
/// (`outcomes`), or before. Such a retry is answered with the first message rather than judged
/// again: review could now refuse it (flood counts the retries) although it was accepted once.
/// Looking only when review refuses keeps the common path free of a read per message; the store
/// answers the retries review lets through.
async fn stored_before(
    ctx: &WorkerContext,
    command: &Command,
    outcomes: &[Option<Outcome>],
) -> Option<Message> {
    let Command::Create { room_id, author_id, nonce: Some(nonce), .. } = command else { return None };
    let in_batch = outcomes.iter().find_map(|o| match o {
        Some(Outcome::Created { message, .. })
            if &message.room_id == room_id
                && &message.author.id == author_id
                && message.nonce.as_deref() == Some(nonce.as_str()) =>
        {
            Some(message.clone())
        }
        _ => None,
    });
    match in_batch {
        Some(message) => Some(message),
        None => ctx.store.message_by_nonce(room_id, author_id, nonce).await.ok().flatten(),
    }
}

/// One line per command, with the trace id the gateway logged when it queued it; never the body.
fn log_outcome(trace_id: &str, outcome: &Outcome) {
    match outcome {
        Outcome::Created { message, created } => {
            tracing::debug!(trace_id, room_id = %message.room_id, seq = message.seq, created, "stored");
        }
        Outcome::Edited { message } => {
            tracing::debug!(trace_id, room_id = %message.room_id, seq = message.seq, "edited");
        }
        Outcome::Deleted { room_id, seq, .. } => {
            tracing::debug!(trace_id, room_id = %room_id, seq, "deleted")
        }
        Outcome::Failed(Error::Rejected { reason, .. }) => {
            tracing::info!(trace_id, reason = reason.as_str(), "rejected by moderation");
        }
        Outcome::Failed(e) => tracing::info!(trace_id, code = e.code(), error = %e, "refused"),
    }
}

async fn review(
    ctx: &WorkerContext,
    command: &Command,
    trace_id: &str,
) -> Result<(String, Vec<parlor_domain::UserId>), Error> {
    let (author_id, room_id, body) = match command {
        Command::Create { author_id, room_id, body, .. } | Command::Edit { author_id, room_id, body, .. } => {
            (author_id, room_id, body)
        }
        Command::Delete { .. } => return Ok((String::new(), Vec::new())),
    };
    let verdict = ctx
        .reviewer
        .review(ReviewRequest {
            author_id: author_id.clone(),
            room_id: room_id.clone(),
            body: body.clone(),
            trace_id: trace_id.to_owned(),
        })
        .await
        .map_err(|e| match e {
            Error::Internal(_) => Error::Unavailable("moderation is unavailable".into()),
            other => other,
        })?;
    match verdict {
        Verdict::Allow { html, mentions } => Ok((html, mentions)),
        Verdict::Reject { reason, message } => {
            metrics::counter!("parlor_rejected_total", "reason" => reason.as_str()).increment(1);
            Err(Error::Rejected { reason, message })
        }
    }
}

/// The event a room's members get for an outcome, if any.
fn room_event(outcome: &Outcome) -> Option<Envelope> {
    let (room_id, seq, event) = match outcome {
        Outcome::Created { message, created: true } => {
            (message.room_id.clone(), message.seq, ServerEvent::MessageCreated { message: message.clone() })
        }
        Outcome::Edited { message } => {
            (message.room_id.clone(), message.seq, ServerEvent::MessageUpdated { message: message.clone() })
        }
        Outcome::Deleted { room_id, message_id, seq } => (
            room_id.clone(),
            *seq,
            ServerEvent::MessageDeleted {
                room_id: room_id.clone(),
                message_id: message_id.clone(),
                seq: *seq,
            },
        ),
        Outcome::Created { created: false, .. } | Outcome::Failed(_) => return None,
    };
    Some(Envelope {
        topic: Topic::Room(room_id.clone()),
        event: BusEvent::Message { room_id, seq, frame: Frame(event.to_bytes()) },
    })
}

/// Publishes an event or a reply. The change is committed by now, so a failure is retried a few
/// times (a broker that just came back refuses the first command of a stale connection); after
/// that, clients catch up with `sync`, and a sender retries with its nonce.
async fn publish(ctx: &WorkerContext, envelope: Envelope) {
    let envelope = Arc::new(envelope);
    let mut delay = Duration::from_millis(100);
    for attempt in 0..4 {
        match ctx.bus.publish(envelope.clone()).await {
            Ok(()) => return,
            Err(e) if attempt == 3 => tracing::warn!(error = %e, "could not publish an event"),
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
}
