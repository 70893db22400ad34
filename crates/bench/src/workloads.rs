//! The workloads: fanout, rooms, persist and idle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{Target, Ws, frame_type, parse_body, parse_nonce, send_frame, string_after};
use crate::report::{Idle, Report, Step};
use crate::stats::Stats;
use crate::sys::{self, CpuMeter, now_us};

/// What every workload shares.
pub struct Run {
    pub url: String,
    pub target: Target,
    pub server_pid: Option<u32>,
    pub grace: Duration,
    pub connect_concurrency: usize,
    pub register_concurrency: usize,
    /// Prefix of this run's usernames, unique per run so a server can be reused.
    pub prefix: String,
}

impl Run {
    fn report(&self, workload: &str, params: serde_json::Value) -> Report {
        Report {
            workload: workload.into(),
            url: self.url.clone(),
            machine: sys::machine(),
            bench_cpus: sys::cpus_allowed("self"),
            server_pid: self.server_pid,
            server_cpus: self.server_pid.and_then(|p| sys::cpus_allowed(&p.to_string())),
            params,
            ..Report::default()
        }
    }

    pub(crate) fn server_meter(&self) -> Option<CpuMeter> {
        self.server_pid.map(|p| CpuMeter::start(&p.to_string()))
    }

    pub(crate) fn server_rss(&self) -> Option<u64> {
        self.server_pid.and_then(|p| sys::rss_kib(&p.to_string()))
    }
}

pub fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{prefix:>12} [{elapsed_precise}] {wide_bar} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_prefix(what.to_string());
    b
}

type Sink = SplitSink<Ws, Message>;
type Source = SplitStream<Ws>;

/// Reads a socket's frames until it closes: deliveries of bench messages (when `deliveries`), and
/// acks and errors of the sends made on it.
pub(crate) async fn read_loop(mut source: Source, stats: Arc<Stats>, deliveries: bool) {
    while let Some(msg) = source.next().await {
        let text = match msg {
            Ok(Message::Text(t)) => t,
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => continue,
        };
        let now = now_us();
        match frame_type(&text) {
            Some("message.created") if deliveries => {
                if let Some((step, _seq, t)) = parse_body(&text) {
                    stats.delivered(step, t, now);
                }
            }
            Some("ack") => {
                if let Some((step, _seq, t)) = parse_nonce(&text) {
                    stats.acked(step, t, now);
                }
            }
            Some("error") => {
                let step = parse_nonce(&text).map(|(s, _, _)| s);
                stats.error(step, string_after(&text, "\"code\":\"").unwrap_or("?"));
            }
            _ => {}
        }
    }
    stats.closed.fetch_add(1, Relaxed);
}

/// Sends one message to `room` every `period` from `first` until `end`, calling `sent` after each.
pub(crate) async fn send_steadily(
    sink: &mut Sink,
    room: &str,
    first: tokio::time::Instant,
    period: Duration,
    end: tokio::time::Instant,
    sent: impl Fn(),
) {
    let mut tick = tokio::time::interval_at(first, period);
    let mut seq = 0u64;
    loop {
        let at = tick.tick().await;
        if at >= end {
            break;
        }
        if sink.send(send_frame(room, 0, seq, now_us())).await.is_err() {
            break;
        }
        seq += 1;
        sent();
    }
}

/// Waits until `done()` or the grace period ends.
async fn grace(run: &Run, done: impl Fn() -> bool) {
    let end = Instant::now() + run.grace;
    while !done() && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn finish_step(stats: &Stats, i: usize, rate: f64, secs: f64, expected: u64, start_us: u64) -> Step {
    let s = &stats.steps[i];
    let delivered = s.delivered.load(Relaxed);
    let sent = s.sent.load(Relaxed);
    let acked = s.acked.load(Relaxed);
    let last = s.last_delivery_us.load(Relaxed);
    let span = (last.saturating_sub(start_us) as f64 / 1e6).max(secs);
    let lost = expected.saturating_sub(delivered);
    Step {
        rate,
        secs,
        sent,
        acked,
        send_errors: s.errors.load(Relaxed),
        acks_per_sec: acked as f64 / secs.max(1e-9),
        expected,
        delivered,
        lost,
        loss_pct: if expected == 0 { 0.0 } else { lost as f64 * 100.0 / expected as f64 },
        delivered_per_sec: delivered as f64 / span.max(1e-9),
        latency: stats.delivery_percentiles(i),
        ack_latency: stats.ack_percentiles(i),
        ..Step::default()
    }
}

/// Shows the delivered frames per second on a bar that counts the milliseconds of a step.
pub(crate) fn step_bar(secs: f64, what: String) -> ProgressBar {
    let b = ProgressBar::new((secs * 1000.0) as u64);
    b.set_style(
        ProgressStyle::with_template("{prefix:>12} [{elapsed_precise}] {wide_bar} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    b.set_prefix(what);
    b
}

/// Sends `rate` messages per second for `dur` on one socket, feeding each millisecond's share
/// and flushing once per tick.
async fn send_steady(
    sink: &mut Sink,
    room: &str,
    step: usize,
    rate: f64,
    dur: Duration,
    stats: &Stats,
    bar: &ProgressBar,
) -> Result<()> {
    let start = Instant::now();
    let total = (rate * dur.as_secs_f64()).round() as u64;
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut last_ui = Instant::now();
    let mut last_delivered = stats.total_delivered.load(Relaxed);
    loop {
        tick.tick().await;
        let el = start.elapsed();
        let due = ((el.as_secs_f64() * rate) as u64).min(total);
        if sent < due {
            while sent < due {
                sink.feed(send_frame(room, step, sent, now_us())).await.context("sending")?;
                sent += 1;
            }
            sink.flush().await.context("flushing sends")?;
            stats.steps[step].sent.store(sent, Relaxed);
        }
        if last_ui.elapsed() >= Duration::from_millis(250) {
            let d = stats.total_delivered.load(Relaxed);
            let per_s = (d - last_delivered) as f64 / last_ui.elapsed().as_secs_f64();
            bar.set_position(el.as_millis() as u64);
            bar.set_message(format!("sent {sent}, delivered {per_s:.0} frames/s"));
            last_ui = Instant::now();
            last_delivered = d;
        }
        if el >= dur && sent >= total {
            break;
        }
    }
    Ok(())
}

pub async fn fanout(
    run: &Run,
    receivers: usize,
    accounts: Option<usize>,
    rates: &[f64],
    step_secs: f64,
) -> Result<Report> {
    if receivers == 0 || rates.is_empty() {
        bail!("fanout needs at least one receiver and one rate");
    }
    let t = &run.target;
    let n_acc = accounts.unwrap_or(receivers).clamp(1, receivers);
    let b = bar(n_acc as u64 + 1, "register");
    let accs = t.register_many(&run.prefix, n_acc + 1, run.register_concurrency, &b).await?;
    b.finish();
    let sender = &accs[0];
    let recv_accs = &accs[1..];
    let room = t.create_room(&sender.token, &format!("{}-fanout", run.prefix)).await?;
    let b = bar(n_acc as u64, "join");
    t.join_many(recv_accs.iter().map(|a| (a.token.clone(), room.clone())).collect(), 16, &b).await?;
    b.finish();
    let tokens: Vec<String> = (0..receivers).map(|i| recv_accs[i % n_acc].token.clone()).collect();
    let b = bar(receivers as u64, "connect");
    let sockets = t.connect_many(&tokens, run.connect_concurrency, &b).await?;
    b.finish();

    let stats = Arc::new(Stats::new(rates.len()));
    let mut tasks = Vec::new();
    for ws in sockets {
        let (_sink, source) = ws.split();
        tasks.push(tokio::spawn(read_loop(source, stats.clone(), true)));
    }
    // The sender's own copies of its messages are not counted: R receivers get each one.
    let (mut sink, source) = t.connect(&sender.token, receivers).await?.split();
    tasks.push(tokio::spawn(read_loop(source, stats.clone(), false)));

    let mut report = run.report(
        "fanout",
        json!({"receivers": receivers, "accounts": n_acc, "rates": rates, "step_secs": step_secs,
               "grace_secs": run.grace.as_secs_f64()}),
    );
    for (i, &rate) in rates.iter().enumerate() {
        let srv = run.server_meter();
        let me = CpuMeter::start("self");
        let start_us = now_us();
        let b = step_bar(step_secs, format!("{rate} msg/s"));
        send_steady(&mut sink, &room, i, rate, Duration::from_secs_f64(step_secs), &stats, &b).await?;
        let (srv_cpu, bench_cpu, rss) = (srv.and_then(|m| m.percent()), me.percent(), run.server_rss());
        let s = &stats.steps[i];
        let sent = s.sent.load(Relaxed);
        let expected = sent * receivers as u64;
        grace(run, || {
            s.delivered.load(Relaxed) >= expected && s.acked.load(Relaxed) + s.errors.load(Relaxed) >= sent
        })
        .await;
        let mut step = finish_step(&stats, i, rate, step_secs, expected, start_us);
        step.server_cpu_pct = srv_cpu;
        step.bench_cpu_pct = bench_cpu;
        step.server_rss_kib = rss;
        b.finish_with_message(format!(
            "delivered {:.0} frames/s, loss {:.3}%, p99 {:.1} ms",
            step.delivered_per_sec, step.loss_pct, step.latency.p99_ms
        ));
        report.steps.push(step);
    }
    report.error_codes = stats.error_codes();
    report.closed_sockets = stats.closed.load(Relaxed);
    for task in tasks {
        task.abort();
    }
    Ok(report)
}

pub async fn rooms(
    run: &Run,
    connections: usize,
    room_size: usize,
    msg_rate: f64,
    secs: f64,
) -> Result<Report> {
    if connections == 0 || room_size == 0 || msg_rate <= 0.0 {
        bail!("rooms needs connections, a room size and a rate above zero");
    }
    let t = &run.target;
    let b = bar(connections as u64, "register");
    let accs = t.register_many(&run.prefix, connections, run.register_concurrency, &b).await?;
    b.finish();
    let n_rooms = connections.div_ceil(room_size);
    let b = bar(n_rooms as u64, "rooms");
    let owned: Vec<(String, String)> = (0..n_rooms)
        .map(|r| (accs[r * room_size].token.clone(), format!("{}-room-{r}", run.prefix)))
        .collect();
    let room_ids = t.create_rooms(owned, &b).await?;
    b.finish();
    let room_of = move |i: usize| i / room_size;
    let joins: Vec<(String, String)> = (0..connections)
        .filter(|i| i % room_size != 0)
        .map(|i| (accs[i].token.clone(), room_ids[room_of(i)].clone()))
        .collect();
    let b = bar(joins.len() as u64, "join");
    t.join_many(joins, 16, &b).await?;
    b.finish();
    let tokens: Vec<String> = accs.iter().map(|a| a.token.clone()).collect();
    let b = bar(connections as u64, "connect");
    let sockets = t.connect_many(&tokens, run.connect_concurrency, &b).await?;
    b.finish();

    let stats = Arc::new(Stats::new(1));
    let room_sent: Arc<Vec<AtomicU64>> = Arc::new((0..n_rooms).map(|_| AtomicU64::new(0)).collect());
    let members: Vec<u64> =
        (0..n_rooms).map(|r| (connections - r * room_size).min(room_size) as u64).collect();
    let period = Duration::from_secs_f64(1.0 / msg_rate);
    let dur = Duration::from_secs_f64(secs);
    let srv = run.server_meter();
    let me = CpuMeter::start("self");
    let start = tokio::time::Instant::now();
    let start_us = now_us();
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let (mut sink, source) = ws.split();
        tasks.push(tokio::spawn(read_loop(source, stats.clone(), true)));
        let room = room_ids[room_of(i)].clone();
        let (stats, room_sent) = (stats.clone(), room_sent.clone());
        let phase = period.mul_f64(i as f64 / connections as f64);
        tasks.push(tokio::spawn(async move {
            send_steadily(&mut sink, &room, start + phase, period, start + dur, || {
                stats.steps[0].sent.fetch_add(1, Relaxed);
                room_sent[room_of(i)].fetch_add(1, Relaxed);
            })
            .await;
        }));
    }
    let b = step_bar(secs, format!("{connections} conns"));
    let mut last = 0u64;
    while start.elapsed() < dur {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let d = stats.total_delivered.load(Relaxed);
        b.set_position(start.elapsed().as_millis() as u64);
        b.set_message(format!("delivered {:.0} frames/s", (d - last) as f64 * 4.0));
        last = d;
    }
    let (srv_cpu, bench_cpu, rss) = (srv.and_then(|m| m.percent()), me.percent(), run.server_rss());
    let expected = || room_sent.iter().zip(&members).map(|(s, m)| s.load(Relaxed) * m).sum::<u64>();
    grace(run, || stats.steps[0].delivered.load(Relaxed) >= expected()).await;
    let total_rate = connections as f64 * msg_rate;
    let mut step = finish_step(&stats, 0, total_rate, secs, expected(), start_us);
    step.server_cpu_pct = srv_cpu;
    step.bench_cpu_pct = bench_cpu;
    step.server_rss_kib = rss;
    b.finish_with_message(format!("loss {:.3}%, p99 {:.1} ms", step.loss_pct, step.latency.p99_ms));
    let mut report = run.report(
        "rooms",
        json!({"connections": connections, "room_size": room_size, "rooms": n_rooms,
               "msg_rate_per_connection": msg_rate, "secs": secs, "grace_secs": run.grace.as_secs_f64()}),
    );
    report.steps.push(step);
    report.error_codes = stats.error_codes();
    report.closed_sockets = stats.closed.load(Relaxed);
    for task in tasks {
        task.abort();
    }
    Ok(report)
}

pub async fn persist(run: &Run, senders: usize, window: usize, secs: f64) -> Result<Report> {
    if senders == 0 || window == 0 {
        bail!("persist needs senders and a window above zero");
    }
    let t = &run.target;
    let b = bar(senders as u64, "register");
    let accs = t.register_many(&run.prefix, senders, run.register_concurrency, &b).await?;
    b.finish();
    let b = bar(senders as u64, "rooms");
    let owned: Vec<(String, String)> = accs
        .iter()
        .enumerate()
        .map(|(i, a)| (a.token.clone(), format!("{}-persist-{i}", run.prefix)))
        .collect();
    let rooms = t.create_rooms(owned, &b).await?;
    b.finish();
    let tokens: Vec<String> = accs.iter().map(|a| a.token.clone()).collect();
    let b = bar(senders as u64, "connect");
    let sockets = t.connect_many(&tokens, run.connect_concurrency, &b).await?;
    b.finish();

    let stats = Arc::new(Stats::new(1));
    let dur = Duration::from_secs_f64(secs);
    let srv = run.server_meter();
    let me = CpuMeter::start("self");
    let start = Instant::now();
    let start_us = now_us();
    let deadline = start + dur;
    let mut tasks = Vec::new();
    for (ws, room) in sockets.into_iter().zip(rooms) {
        let stats = stats.clone();
        tasks.push(tokio::spawn(async move {
            let (mut sink, mut source) = ws.split();
            let mut seq = 0u64;
            for _ in 0..window {
                if sink.send(send_frame(&room, 0, seq, now_us())).await.is_err() {
                    return;
                }
                seq += 1;
                stats.steps[0].sent.fetch_add(1, Relaxed);
            }
            let mut inflight = window;
            let mut own_copies = 0u64;
            // Until every send is answered and its own copy (`message.created`) has come back.
            while inflight > 0 || own_copies < seq {
                let Some(Ok(msg)) = source.next().await else { break };
                let Message::Text(text) = msg else { continue };
                let now = now_us();
                match frame_type(&text) {
                    Some("ack") => {
                        if let Some((step, _, t)) = parse_nonce(&text) {
                            stats.acked(step, t, now);
                        }
                    }
                    Some("error") => {
                        stats.error(
                            parse_nonce(&text).map(|(s, _, _)| s),
                            string_after(&text, "\"code\":\"").unwrap_or("?"),
                        );
                    }
                    Some("message.created") => {
                        if let Some((step, _, t)) = parse_body(&text) {
                            stats.delivered(step, t, now);
                            own_copies += 1;
                        }
                        continue;
                    }
                    _ => continue,
                }
                inflight -= 1;
                if Instant::now() < deadline {
                    if sink.send(send_frame(&room, 0, seq, now_us())).await.is_err() {
                        break;
                    }
                    seq += 1;
                    inflight += 1;
                    stats.steps[0].sent.fetch_add(1, Relaxed);
                }
            }
        }));
    }
    let b = step_bar(secs, format!("{senders}x{window}"));
    let mut last = 0u64;
    while Instant::now() < deadline {
        tokio::time::sleep(
            Duration::from_millis(250).min(deadline.saturating_duration_since(Instant::now())),
        )
        .await;
        let a = stats.total_acked.load(Relaxed);
        b.set_position(start.elapsed().as_millis() as u64);
        b.set_message(format!("{:.0} acks/s", (a - last) as f64 * 4.0));
        last = a;
    }
    let acked_in_time = stats.steps[0].acked.load(Relaxed) + stats.steps[0].errors.load(Relaxed);
    let (srv_cpu, bench_cpu, rss) = (srv.and_then(|m| m.percent()), me.percent(), run.server_rss());
    let s = &stats.steps[0];
    grace(run, || {
        let sent = s.sent.load(Relaxed);
        s.acked.load(Relaxed) + s.errors.load(Relaxed) >= sent && s.delivered.load(Relaxed) >= sent
    })
    .await;
    let sent = s.sent.load(Relaxed);
    let mut step = finish_step(&stats, 0, 0.0, secs, sent, start_us);
    step.acks_per_sec = acked_in_time.saturating_sub(s.errors.load(Relaxed)) as f64 / secs;
    step.rate = step.acks_per_sec;
    step.server_cpu_pct = srv_cpu;
    step.bench_cpu_pct = bench_cpu;
    step.server_rss_kib = rss;
    b.finish_with_message(format!(
        "{:.0} acks/s, ack p99 {:.1} ms",
        step.acks_per_sec, step.ack_latency.p99_ms
    ));
    let mut report = run.report(
        "persist",
        json!({"senders": senders, "window": window, "secs": secs, "grace_secs": run.grace.as_secs_f64()}),
    );
    report.steps.push(step);
    report.error_codes = stats.error_codes();
    report.closed_sockets = stats.closed.load(Relaxed);
    for task in tasks {
        task.abort();
    }
    Ok(report)
}

pub async fn idle(run: &Run, connections: usize, accounts: usize, hold_secs: f64) -> Result<Report> {
    let limit = sys::raise_nofile();
    eprintln!("bench RLIMIT_NOFILE raised to {limit}");
    if (limit as usize) < connections + 64 {
        eprintln!("warning: {connections} sockets need more open files than the bench may have ({limit})");
    }
    if let Some(pid) = run.server_pid
        && let Some(l) = sys::nofile_limit(&pid.to_string())
        && (l as usize) < connections + 64
    {
        eprintln!(
            "warning: the server may open only {l} files; start it after `ulimit -n {}`",
            connections + 1024
        );
    }
    let t = &run.target;
    let accounts = accounts.clamp(1, connections.max(1));
    let b = bar(accounts as u64, "register");
    let accs = t.register_many(&run.prefix, accounts, run.register_concurrency, &b).await?;
    b.finish();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = run.server_rss();
    let tokens: Vec<String> = (0..connections).map(|i| accs[i % accounts].token.clone()).collect();
    let stats = Arc::new(Stats::new(0));
    let b = bar(connections as u64, "connect");
    let started = Instant::now();
    let sockets = t.connect_many(&tokens, run.connect_concurrency, &b).await?;
    let connect_secs = started.elapsed().as_secs_f64();
    b.finish();
    // Keep reading each socket, so the server's pings are answered.
    let tasks: Vec<_> =
        sockets.into_iter().map(|ws| tokio::spawn(read_loop(ws.split().1, stats.clone(), false))).collect();
    let b = step_bar(hold_secs, "hold".into());
    let hold_start = Instant::now();
    while hold_start.elapsed().as_secs_f64() < hold_secs {
        tokio::time::sleep(Duration::from_millis(250)).await;
        b.set_position(hold_start.elapsed().as_millis() as u64);
        b.set_message(format!("server RSS {} KiB", run.server_rss().unwrap_or(0)));
    }
    let after = run.server_rss();
    b.finish();
    let closed = stats.closed.load(Relaxed);
    let per_conn = match (before, after) {
        (Some(b), Some(a)) if connections > 0 => Some((a as f64 - b as f64) * 1024.0 / connections as f64),
        _ => None,
    };
    let mut report = run.report(
        "idle",
        json!({"connections": connections, "accounts": accounts, "hold_secs": hold_secs,
               "source_addresses": t.sources().len(), "bench_nofile": limit}),
    );
    report.idle = Some(Idle {
        connections,
        accounts,
        source_addresses: t.sources().len(),
        connect_secs,
        still_open: connections as u64 - closed.min(connections as u64),
        server_rss_before_kib: before,
        server_rss_after_kib: after,
        rss_per_connection_bytes: per_conn,
    });
    report.closed_sockets = closed;
    for task in tasks {
        task.abort();
    }
    Ok(report)
}
