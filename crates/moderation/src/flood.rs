//! The flood rules, kept in memory per author:
//!
//! - repeats: one author sending the same or a near-same body more than `repeats` times within
//!   `window`. Bodies are compared by their token form (case, diacritics, punctuation, spacing,
//!   zero-width characters and long letter runs ignored), and two bodies of `min_tokens` or more
//!   distinct tokens are also near-same when the Jaccard similarity of their token sets reaches
//!   `similarity` (reordered words, one word swapped in a long message).
//! - cross-room bursts: one author sending more than `burst_messages` messages within
//!   `burst_window` while spreading them over two rooms or more.
//!
//! Memory is bounded: each author keeps at most [`HISTORY`] recent messages, and past
//! `max_authors` authors the ones idle for longer than the longest window are dropped (and if
//! that is not enough, the least recently active).

use crate::normalize::for_each_token;
use parlor_domain::{RoomId, UserId};
// `DefaultHasher` is fine here, unlike for queue partitions (`parlor_domain::partition`): these
// hashes only key this process's in-memory counters and are never stored or compared with
// another process's, so a toolchain that changes the algorithm changes nothing observable.
use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Recent messages remembered per author.
pub(crate) const HISTORY: usize = 48;
/// Token hashes kept per message (the smallest ones: a bottom-k sketch of the token set).
const SKETCH: usize = 64;
/// Shards of the author table, to keep lock contention low.
const SHARDS: usize = 16;

/// The thresholds.
#[derive(Clone, Debug)]
pub(crate) struct FloodLimits {
    pub repeats: usize,
    pub window: Duration,
    pub similarity: f64,
    pub min_tokens: usize,
    pub burst_messages: usize,
    pub burst_window: Duration,
    pub max_authors: usize,
}

/// Why a message is a flood.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Flood {
    Repeats,
    Burst,
}

/// One remembered message.
#[derive(Clone, Debug)]
struct Seen {
    at: Instant,
    room: u64,
    /// Hash of the token form.
    exact: u64,
    /// Sorted smallest token hashes; complete when the message has at most `SKETCH` tokens.
    sketch: Vec<u64>,
    /// Distinct tokens in the message.
    distinct: usize,
}

/// The fingerprint of a body.
#[derive(Clone, Debug)]
pub(crate) struct Fingerprint {
    exact: u64,
    sketch: Vec<u64>,
    distinct: usize,
}

fn hash_str(s: &str) -> u64 {
    let mut h = DefaultHasher::new();
    s.hash(&mut h);
    h.finish()
}

impl Fingerprint {
    /// The fingerprint of a body.
    pub(crate) fn of(body: &str) -> Self {
        let mut exact = DefaultHasher::new();
        let mut tokens: Vec<u64> = Vec::new();
        for_each_token(body, |t, number| {
            // Letter runs count once ("hello" and "heeello" are the same word); digits do not
            // ("message 1" and "message 11" differ).
            let mut h = DefaultHasher::new();
            let mut last = None;
            for c in t.chars() {
                if number || last != Some(c) {
                    c.hash(&mut h);
                }
                last = Some(c);
            }
            let token = h.finish();
            token.hash(&mut exact);
            tokens.push(token);
        });
        if tokens.is_empty() {
            // Only symbols or emoji: compare the text itself.
            body.trim().hash(&mut exact);
        }
        tokens.sort_unstable();
        tokens.dedup();
        let distinct = tokens.len();
        tokens.truncate(SKETCH);
        Self { exact: exact.finish(), sketch: tokens, distinct }
    }
}

/// Jaccard similarity of two token sets given as bottom-k sketches (exact when both are whole).
fn similarity(a: &[u64], a_whole: bool, b: &[u64], b_whole: bool) -> f64 {
    if a_whole && b_whole {
        let (mut i, mut j, mut both) = (0, 0, 0usize);
        while i < a.len() && j < b.len() {
            match a[i].cmp(&b[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    both += 1;
                    i += 1;
                    j += 1;
                }
            }
        }
        let union = a.len() + b.len() - both;
        return if union == 0 { 1.0 } else { both as f64 / union as f64 };
    }
    // Bottom-k estimate: of the k smallest hashes of the union, the share found in both.
    let (mut i, mut j, mut taken, mut both) = (0, 0, 0usize, 0usize);
    while taken < SKETCH && (i < a.len() || j < b.len()) {
        match (a.get(i), b.get(j)) {
            (Some(x), Some(y)) if x == y => {
                both += 1;
                i += 1;
                j += 1;
            }
            (Some(x), Some(y)) if x < y => i += 1,
            (Some(_), Some(_)) => j += 1,
            (Some(_), None) => i += 1,
            (None, _) => j += 1,
        }
        taken += 1;
    }
    if taken == 0 { 1.0 } else { both as f64 / taken as f64 }
}

/// The flood tracker.
pub(crate) struct FloodTracker {
    limits: FloodLimits,
    shards: Vec<Mutex<HashMap<UserId, VecDeque<Seen>>>>,
    hasher: std::collections::hash_map::RandomState,
}

impl FloodTracker {
    pub(crate) fn new(limits: FloodLimits) -> Self {
        Self {
            limits,
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }

    fn near_same(&self, a: &Fingerprint, s: &Seen) -> bool {
        if a.exact == s.exact {
            return true;
        }
        let min = self.limits.min_tokens.max(1);
        if self.limits.similarity > 1.0 || a.distinct < min || s.distinct < min {
            return false;
        }
        similarity(&a.sketch, a.distinct <= SKETCH, &s.sketch, s.distinct <= SKETCH) >= self.limits.similarity
    }

    /// Records a message at `now` and says whether it floods.
    pub(crate) fn check(
        &self,
        author: &UserId,
        room: &RoomId,
        print: Fingerprint,
        now: Instant,
    ) -> Option<Flood> {
        let shard_index = usize::try_from(self.hasher.hash_one(author) % SHARDS as u64).unwrap_or(0);
        let shard = self.shards.get(shard_index)?;
        let Ok(mut table) = shard.lock() else { return None };
        let keep = self.limits.window.max(self.limits.burst_window);
        let shard_max = self.limits.max_authors.div_ceil(SHARDS).max(1);
        if table.len() >= shard_max && !table.contains_key(author) {
            evict(&mut table, now, keep, shard_max);
        }
        let room = hash_str(room.as_str());
        let history = table.entry(author.clone()).or_default();
        while history.front().is_some_and(|s| now.saturating_duration_since(s.at) >= keep) {
            history.pop_front();
        }
        let repeats = history
            .iter()
            .filter(|s| now.saturating_duration_since(s.at) < self.limits.window && self.near_same(&print, s))
            .count();
        let (mut burst, mut other_room) = (0usize, false);
        for s in history.iter().filter(|s| now.saturating_duration_since(s.at) < self.limits.burst_window) {
            burst += 1;
            other_room |= s.room != room;
        }
        history.push_back(Seen {
            at: now,
            room,
            exact: print.exact,
            sketch: print.sketch,
            distinct: print.distinct,
        });
        while history.len() > HISTORY {
            history.pop_front();
        }
        if repeats >= self.limits.repeats {
            Some(Flood::Repeats)
        } else if other_room && burst >= self.limits.burst_messages {
            Some(Flood::Burst)
        } else {
            None
        }
    }

    /// Authors remembered (for tests).
    #[cfg(test)]
    fn authors(&self) -> usize {
        self.shards.iter().map(|s| s.lock().map(|t| t.len()).unwrap_or(0)).sum()
    }
}

/// Makes room in a full shard: drops idle authors, then the least recently active.
fn evict(table: &mut HashMap<UserId, VecDeque<Seen>>, now: Instant, keep: Duration, max: usize) {
    table.retain(|_, h| h.back().is_some_and(|s| now.saturating_duration_since(s.at) < keep));
    if table.len() >= max {
        let mut last: Vec<(Instant, UserId)> =
            table.iter().filter_map(|(k, h)| h.back().map(|s| (s.at, k.clone()))).collect();
        last.sort_unstable_by_key(|(at, _)| *at);
        let drop = table.len() + 1 - (max * 3 / 4).max(1).min(max);
        for (_, k) in last.into_iter().take(drop) {
            table.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> FloodLimits {
        FloodLimits {
            repeats: 3,
            window: Duration::from_secs(30),
            similarity: 0.8,
            min_tokens: 4,
            burst_messages: 5,
            burst_window: Duration::from_secs(10),
            max_authors: 1000,
        }
    }

    fn check(t: &FloodTracker, author: &str, room: &str, body: &str, at: Instant) -> Option<Flood> {
        t.check(&UserId::from(author), &RoomId::from(room), Fingerprint::of(body), at)
    }

    #[test]
    fn the_same_body_repeated_past_the_limit_floods() {
        let t = FloodTracker::new(limits());
        let now = Instant::now();
        for i in 0..3 {
            assert_eq!(check(&t, "a", "r", "hello there", now + Duration::from_secs(i)), None);
        }
        assert_eq!(check(&t, "a", "r", "hello there", now + Duration::from_secs(3)), Some(Flood::Repeats));
        assert_eq!(check(&t, "b", "r", "hello there", now + Duration::from_secs(3)), None, "per author");
    }

    #[test]
    fn near_same_bodies_count_as_repeats() {
        let t = FloodTracker::new(limits());
        let now = Instant::now();
        assert_eq!(check(&t, "a", "r", "Hello there!", now), None);
        assert_eq!(check(&t, "a", "r", "hello   THERE", now), None);
        assert_eq!(check(&t, "a", "r", "héllo\u{200B} thereeee!!!", now), None);
        assert_eq!(check(&t, "a", "r", "HELLO, there.", now), Some(Flood::Repeats));

        let long = "join my channel for the best crypto signals every day guaranteed";
        for (i, body) in [
            long.to_owned(),
            format!("{long} now"),
            "every day guaranteed: join my channel for the best crypto signals".to_owned(),
        ]
        .iter()
        .enumerate()
        {
            assert_eq!(check(&t, "s", "r", body, now), None, "{i}");
        }
        assert_eq!(check(&t, "s", "r", &format!("{long} today"), now), Some(Flood::Repeats));
    }

    #[test]
    fn numbered_messages_are_not_repeats() {
        let t = FloodTracker::new(FloodLimits { repeats: 5, ..limits() });
        let now = Instant::now();
        let filler = "lorem ipsum dolor sit amet ".repeat(130);
        for i in 0..200 {
            assert_eq!(check(&t, "a", "r", &format!("message {i}"), now), None);
            assert_eq!(check(&t, "b", "r", &format!("flood {i} {filler}"), now), None);
        }
    }

    #[test]
    fn the_window_slides() {
        let t = FloodTracker::new(limits());
        let now = Instant::now();
        for i in 0..10 {
            assert_eq!(check(&t, "a", "r", "ping", now + Duration::from_secs(11 * i)), None);
        }
    }

    #[test]
    fn emoji_only_bodies_are_compared_as_written() {
        let t = FloodTracker::new(limits());
        let now = Instant::now();
        for body in ["👍", "🎉", "😂", "❤️", "🙏", "👀"] {
            assert_eq!(check(&t, "a", "r", body, now), None);
        }
    }

    #[test]
    fn bursts_across_rooms_flood_but_one_busy_room_does_not() {
        let t = FloodTracker::new(limits());
        let now = Instant::now();
        for i in 0..20 {
            assert_eq!(check(&t, "a", "r", &format!("line {i}"), now), None, "one room");
        }
        for i in 0..5 {
            assert_eq!(check(&t, "b", &format!("room {i}"), &format!("hi {i}"), now), None);
        }
        assert_eq!(check(&t, "b", "room 9", "hi 9", now), Some(Flood::Burst));
        // Later, the burst window has passed.
        assert_eq!(check(&t, "b", "room 10", "hi 10", now + Duration::from_secs(11)), None);
    }

    #[test]
    fn memory_is_bounded() {
        let t = FloodTracker::new(FloodLimits { max_authors: 160, ..limits() });
        let now = Instant::now();
        for i in 0..10_000 {
            check(&t, &format!("user {i}"), "r", "hello", now + Duration::from_millis(i));
        }
        assert!(t.authors() <= 160, "{}", t.authors());
        for i in 0..100 {
            check(&t, "one", "r", &format!("m {i}"), now);
        }
        assert!(
            t.shards
                .iter()
                .all(|s| s.lock().map(|t| t.values().all(|h| h.len() <= HISTORY)).unwrap_or(false))
        );
    }

    #[test]
    fn sketches_estimate_similarity() {
        let a: Vec<u64> = (0..64).collect();
        assert!((similarity(&a, true, &a, true) - 1.0).abs() < 1e-9);
        let b: Vec<u64> = (32..96).collect();
        assert!((similarity(&a, true, &b, true) - 32.0 / 96.0).abs() < 1e-9);
        assert!(similarity(&a, false, &b, false) < 0.6);
        assert!((similarity(&[], true, &[], true) - 1.0).abs() < 1e-9);
    }
}
