//! parlor's worker role: takes commands from the queue a batch at a time, has each body reviewed,
//! applies the batch in one transaction (group commit), then publishes the events and the replies.
//! Nothing is acknowledged — to the queue or to a client — before the commit.

use parlor_domain::bus::{BusEvent, Envelope, Frame, Topic};
use parlor_domain::ports::{
    Bus, Consumer, Delivery, Prepared, Queue, ReviewRequest, Reviewer, Store, Verdict,
};
use parlor_domain::protocol::ServerEvent;
use parlor_domain::queue::{Command, Outcome};
use parlor_domain::{Error, Timestamp};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

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
}

/// Runs one consumer per queue partition until `shutdown`, then drains what is queued.
pub async fn run(ctx: WorkerContext, shutdown: CancellationToken) -> Result<(), Error> {
    let mut tasks = JoinSet::new();
    for p in 0..ctx.queue.partitions() {
        let consumer = ctx.queue.consumer(p).await?;
        tasks.spawn(consume(ctx.clone(), consumer, shutdown.clone()));
    }
    tracing::info!(partitions = ctx.queue.partitions(), "worker started");
    while let Some(done) = tasks.join_next().await {
        if let Err(e) = done {
            tracing::error!(error = %e, "a worker partition task failed");
        }
    }
    Ok(())
}

async fn consume(ctx: WorkerContext, mut consumer: Box<dyn Consumer>, shutdown: CancellationToken) {
    loop {
        let batch = tokio::select! {
            batch = consumer.next_batch(ctx.batch_max) => batch,
            () = shutdown.cancelled() => break,
        };
        let Some(batch) = batch else { return };
        if !batch.is_empty() {
            process(&ctx, consumer.as_mut(), batch).await;
        }
    }
    // Shutting down: the gateways no longer accept sends, so finish what is already queued.
    // (A durable queue keeps the rest for the next worker.)
    while let Ok(Some(batch)) =
        tokio::time::timeout(Duration::from_millis(200), consumer.next_batch(ctx.batch_max)).await
    {
        if batch.is_empty() {
            break;
        }
        process(&ctx, consumer.as_mut(), batch).await;
    }
}

/// Reviews, applies and publishes one batch.
pub async fn process(ctx: &WorkerContext, consumer: &mut dyn Consumer, batch: Vec<Delivery>) {
    tracing::debug!(size = batch.len(), "batch");
    let now = Timestamp::now();
    for d in &batch {
        // From the gateway's clock to this one: clamped at zero when they disagree.
        if let Some(queued) = d.item.enqueued_at {
            let lag = (now.millis() - queued.millis()).max(0) as f64 / 1000.0;
            metrics::histogram!("parlor_queue_lag_seconds").record(lag);
        }
    }
    // Review first: a rejected command fails alone and is not part of the transaction.
    let mut outcomes: Vec<Option<Outcome>> = Vec::with_capacity(batch.len());
    let mut prepared = Vec::with_capacity(batch.len());
    // Where each (room, author, nonce) first stands in this batch.
    let mut first_in_batch: HashMap<_, usize> = HashMap::new();
    for (i, d) in batch.iter().enumerate() {
        // Sends repeated within the batch (same room, author and nonce) share the first's fate.
        if let Command::Create { room_id, author_id, nonce: Some(nonce), .. } = &d.item.command {
            if let Some(&first) = first_in_batch.get(&(room_id, author_id, nonce)) {
                // A copy of an earlier command of this batch shares its fate: the same failure,
                // or (once the first is stored) the store answers it with the first message.
                match outcomes[first].clone() {
                    Some(outcome) => outcomes.push(Some(outcome)),
                    None => {
                        outcomes.push(None);
                        prepared.push(Prepared {
                            notify_at: None,
                            command: d.item.command.clone(),
                            html: String::new(),
                            mentions: Vec::new(),
                            now,
                        });
                    }
                }
                continue;
            }
            first_in_batch.insert((room_id, author_id, nonce), i);
        }
        match review(ctx, &d.item.command, &d.item.request_id).await {
            Ok((html, mentions)) => {
                // A retry of a stored send is answered by the store with the first message.
                outcomes.push(None);
                let notify_at = ctx.notify_after.map(|d| now.plus_millis(d.as_millis() as i64));
                prepared.push(Prepared { command: d.item.command.clone(), html, mentions, now, notify_at });
            }
            Err(e) => outcomes.push(Some(refused(ctx, &d.item.command, e).await)),
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
}

/// The outcome of a command review refused. A retry of a send that was stored is answered with
/// the first message rather than judged again: review could now refuse it (flood counts the
/// retries) although it was accepted once. Looking only when review refuses keeps the common
/// path free of a read per message; the store answers the retries review lets through.
async fn refused(ctx: &WorkerContext, command: &Command, e: Error) -> Outcome {
    if let Command::Create { room_id, author_id, nonce: Some(nonce), .. } = command
        && let Ok(Some(first)) = ctx.store.message_by_nonce(room_id, author_id, nonce).await
    {
        return Outcome::Created { message: first, created: false };
    }
    Outcome::Failed(e)
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
