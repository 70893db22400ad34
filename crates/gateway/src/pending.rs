//! Sends waiting for their outcome. A command goes to the queue with a request id; the worker
//! publishes the outcome to this gateway's topic; the waiter here gets it: a REST handler through
//! a oneshot channel, a WebSocket as an `ack` or `error` frame queued on its connection.

use crate::hub::Conn;
use crate::state::AppState;
use parking_lot::Mutex;
use parlor_domain::protocol::ServerEvent;
use parlor_domain::queue::{Command, Inbound, Outcome};
use parlor_domain::{Error, Result};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Who waits for an outcome.
pub enum Waiter {
    /// A REST handler.
    Http(oneshot::Sender<Outcome>),
    /// A WebSocket `send` with its nonce.
    Ws { conn: Conn, nonce: String },
}

/// The table of waiting sends.
#[derive(Default)]
pub struct Pending {
    waiting: Mutex<HashMap<String, (Instant, Waiter)>>,
}

impl Pending {
    fn insert(&self, request_id: String, waiter: Waiter) {
        self.waiting.lock().insert(request_id, (Instant::now(), waiter));
    }

    fn remove(&self, request_id: &str) -> Option<Waiter> {
        let (since, waiter) = self.waiting.lock().remove(request_id)?;
        let seconds = since.elapsed().as_secs_f64();
        metrics::histogram!("parlor_send_ack_seconds").record(seconds);
        tracing::debug!(trace_id = %request_id, ms = seconds * 1000.0, "outcome received");
        Some(waiter)
    }

    /// Hands an outcome to its waiter, if it still waits.
    pub fn resolve(&self, request_id: &str, outcome: Outcome) {
        match self.remove(request_id) {
            Some(Waiter::Http(tx)) => {
                // The handler may have timed out and gone; the outcome is then simply dropped.
                let _gone = tx.send(outcome);
            }
            Some(Waiter::Ws { conn, nonce }) => match outcome {
                Outcome::Created { message, .. } => {
                    conn.send_event(&ServerEvent::Ack { nonce, message });
                }
                Outcome::Failed(e) => {
                    conn.send_error(&e, Some(nonce));
                }
                Outcome::Edited { .. } | Outcome::Deleted { .. } => {}
            },
            None => {}
        }
    }

    /// Fails the sends that have waited longer than `max_wait` (their outcome was lost).
    pub fn expire(&self, max_wait: Duration) {
        let expired: Vec<Waiter> = {
            let mut waiting = self.waiting.lock();
            let old: Vec<String> = waiting
                .iter()
                .filter(|(_, (t, _))| t.elapsed() > max_wait)
                .map(|(id, _)| id.clone())
                .collect();
            old.into_iter().filter_map(|id| waiting.remove(&id).map(|(_, w)| w)).collect()
        };
        let lost = Error::Unavailable("no answer from the worker in time; retry with the same nonce".into());
        for waiter in expired {
            match waiter {
                Waiter::Http(tx) => drop(tx),
                Waiter::Ws { conn, nonce } => {
                    conn.send_error(&lost, Some(nonce));
                }
            }
        }
    }

    /// How many sends are waiting.
    pub fn len(&self) -> usize {
        self.waiting.lock().len()
    }

    /// Whether none is waiting.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Queues a command for the worker; its outcome will go to `waiter`.
pub async fn submit(state: &AppState, command: Command, waiter: Waiter) -> Result<()> {
    let kind = match (&command, &waiter) {
        (Command::Create { .. }, Waiter::Ws { .. }) => "send_ws",
        (Command::Create { .. }, Waiter::Http(_)) => "send_rest",
        (Command::Edit { .. }, _) => "edit",
        (Command::Delete { .. }, _) => "delete",
    };
    metrics::counter!("parlor_messages_in_total", "kind" => kind).increment(1);
    let request_id = uuid::Uuid::now_v7().to_string();
    state.pending.insert(request_id.clone(), waiter);
    let item = Inbound {
        request_id: request_id.clone(),
        origin: state.gateway_id.clone(),
        command,
        enqueued_at: Some(parlor_domain::Timestamp::now()),
    };
    if let Err(e) = state.queue.push(item).await {
        state.pending.remove(&request_id);
        tracing::warn!(trace_id = %request_id, kind, error = %e, "could not queue");
        return Err(e);
    }
    // The trace id follows the command through the worker and moderation.
    tracing::debug!(trace_id = %request_id, kind, "queued");
    Ok(())
}

/// Queues a command and waits for its outcome (REST).
pub async fn submit_and_wait(state: &AppState, command: Command) -> Result<Outcome> {
    let (tx, rx) = oneshot::channel();
    submit(state, command, Waiter::Http(tx)).await?;
    match tokio::time::timeout(state.settings.send_timeout, rx).await {
        Ok(Ok(outcome)) => Ok(outcome),
        _ => Err(Error::Unavailable("no answer from the worker in time; retry with the same nonce".into())),
    }
}
