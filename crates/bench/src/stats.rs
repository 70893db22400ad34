//! Counters and latency histograms, one set per step, shared by all the tasks of a run.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies are recorded in microseconds, up to 10 minutes, to 3 significant digits.
fn new_hist() -> Option<Histogram<u64>> {
    Histogram::new_with_bounds(1, 600_000_000, 3).ok()
}

#[derive(Default)]
pub struct StepStats {
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    pub errors: AtomicU64,
    pub delivered: AtomicU64,
    /// Bench clock (µs) of the last delivery of this step.
    pub last_delivery_us: AtomicU64,
    delivery: Mutex<Option<Histogram<u64>>>,
    ack: Mutex<Option<Histogram<u64>>>,
}

pub struct Stats {
    pub steps: Vec<StepStats>,
    pub total_delivered: AtomicU64,
    pub total_acked: AtomicU64,
    pub error_codes: Mutex<BTreeMap<String, u64>>,
    pub closed: AtomicU64,
}

fn record(h: &Mutex<Option<Histogram<u64>>>, v: u64) {
    if let Ok(mut g) = h.lock() {
        if g.is_none() {
            *g = new_hist();
        }
        if let Some(h) = g.as_mut() {
            h.saturating_record(v.max(1));
        }
    }
}

impl Stats {
    pub fn new(steps: usize) -> Self {
        Self {
            steps: (0..steps).map(|_| StepStats::default()).collect(),
            total_delivered: AtomicU64::new(0),
            total_acked: AtomicU64::new(0),
            error_codes: Mutex::new(BTreeMap::new()),
            closed: AtomicU64::new(0),
        }
    }

    pub fn delivered(&self, step: usize, sent_us: u64, now_us: u64) {
        self.total_delivered.fetch_add(1, Relaxed);
        if let Some(s) = self.steps.get(step) {
            s.delivered.fetch_add(1, Relaxed);
            s.last_delivery_us.fetch_max(now_us, Relaxed);
            record(&s.delivery, now_us.saturating_sub(sent_us));
        }
    }

    pub fn acked(&self, step: usize, sent_us: u64, now_us: u64) {
        self.total_acked.fetch_add(1, Relaxed);
        if let Some(s) = self.steps.get(step) {
            s.acked.fetch_add(1, Relaxed);
            record(&s.ack, now_us.saturating_sub(sent_us));
        }
    }

    /// An `error` frame answering a send: counted per step (from its nonce) and by code.
    pub fn error(&self, step: Option<usize>, code: &str) {
        if let Some(s) = step.and_then(|i| self.steps.get(i)) {
            s.errors.fetch_add(1, Relaxed);
        }
        if let Ok(mut m) = self.error_codes.lock() {
            *m.entry(code.to_string()).or_default() += 1;
        }
    }

    pub fn delivery_percentiles(&self, step: usize) -> Percentiles {
        self.steps.get(step).map(|s| Percentiles::of(&s.delivery)).unwrap_or_default()
    }

    pub fn ack_percentiles(&self, step: usize) -> Percentiles {
        self.steps.get(step).map(|s| Percentiles::of(&s.ack)).unwrap_or_default()
    }

    pub fn error_codes(&self) -> BTreeMap<String, u64> {
        self.error_codes.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Percentiles {
    fn of(h: &Mutex<Option<Histogram<u64>>>) -> Self {
        let Ok(g) = h.lock() else { return Self::default() };
        let Some(h) = g.as_ref() else { return Self::default() };
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}
