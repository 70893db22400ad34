//! Closing the WebSockets of sessions that ended in another process. Logout, session revocation
//! and password changes made through a gateway announce the ended sessions on the bus, and every
//! gateway closes their connections at once. A command such as `parlor user disable` (or
//! `reset-password`) runs in a process of its own that may share no bus with the server (the
//! embedded mode has none), so each gateway also looks in the store, every couple of seconds and
//! only while it holds connections, for sessions ended since its last look, and closes theirs the
//! same way: an `error` frame with code `unauthorized`, then close code 4001. What it finds goes
//! out on the bus as `SessionsEnded`, the event a logout makes, so it takes the one path every
//! event takes to the connections (with several gateways each may announce the same ending; closing
//! an ended session's connections again does nothing).

use crate::state::AppState;
use parlor_domain::bus::{BusEvent, Envelope, Topic};
use parlor_domain::{SessionId, Timestamp, UserId};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How often the store is looked at.
const EVERY: Duration = Duration::from_secs(2);
/// How far back each look reaches past the previous one: a session's end is stamped with the
/// clock of the process that ended it before its transaction commits, so it can land a little in
/// the past (and clocks of machines differ a little).
const OVERLAP_MS: i64 = 15_000;
/// Most ended sessions read in one query.
const PAGE: i64 = 1000;

/// Watches the store for ended sessions until the gateway's background tasks stop.
pub(crate) async fn watch(state: AppState) {
    {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Sessions already handled, with when they ended (forgotten once out of the overlap).
        let mut handled: HashMap<SessionId, Timestamp> = HashMap::new();
        let mut since = Timestamp::now().plus_millis(-OVERLAP_MS);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = state.background.cancelled() => return,
            }
            let started = Timestamp::now();
            if state.hub.connection_count() > 0 {
                match look(&state, since, &mut handled).await {
                    Ok(()) => {}
                    Err(e) => {
                        // Try again from the same point next time.
                        tracing::debug!(error = %e, "could not look for ended sessions");
                        continue;
                    }
                }
            }
            since = started.plus_millis(-OVERLAP_MS);
            handled.retain(|_, at| *at >= since);
        }
    }
}

/// Closes the local connections of the sessions that ended at `since` or later.
async fn look(
    state: &AppState,
    since: Timestamp,
    handled: &mut HashMap<SessionId, Timestamp>,
) -> parlor_domain::Result<()> {
    let mut from = since;
    // A few pages at most per look; a flood of endings is caught up with over the next looks.
    for _ in 0..10 {
        let page = state.store.sessions_ended_since(from, PAGE).await?;
        let full = page.len() as i64 == PAGE;
        let mut by_user: BTreeMap<UserId, Vec<SessionId>> = BTreeMap::new();
        for session in page {
            let ended = session.revoked_at.unwrap_or(from);
            from = from.max(ended);
            if handled.insert(session.id.clone(), ended).is_none() {
                by_user.entry(session.user_id).or_default().push(session.id);
            }
        }
        for (user_id, session_ids) in by_user {
            let envelope = Envelope {
                topic: Topic::User(user_id.clone()),
                event: BusEvent::SessionsEnded { user_id, session_ids },
            };
            state.bus.publish(Arc::new(envelope)).await?;
        }
        if !full {
            break;
        }
    }
    Ok(())
}
