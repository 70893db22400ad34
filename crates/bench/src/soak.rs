//! `soak`: K connections over U accounts in rooms, steady traffic for a long time, and the
//! server's memory and open files sampled all along: after the warm-up both should stay flat.

use crate::stats::Stats;
use crate::sys;
use crate::workloads::{Run, bar, read_loop, send_steadily, step_bar};
use anyhow::{Result, bail};
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use tokio::time::Instant;

/// One reading of the server and the traffic.
#[derive(Serialize, Clone)]
pub struct Sample {
    pub secs: f64,
    pub sent: u64,
    pub delivered: u64,
    pub errors: u64,
    pub closed: u64,
    pub server_rss_kib: Option<u64>,
    pub server_fds: Option<u64>,
    pub server_cpu_percent: Option<f64>,
}

#[derive(Serialize)]
pub struct Soak {
    pub connections: usize,
    pub accounts: usize,
    pub room_size: usize,
    pub msg_rate: f64,
    pub minutes: f64,
    pub samples: Vec<Sample>,
    /// Sent, expected deliveries (each message times the sockets of its room) and delivered.
    pub sent: u64,
    pub expected: u64,
    pub delivered: u64,
    pub errors: u64,
    pub closed: u64,
    /// After the warm-up (the first fifth): RSS at its start, its highest, at the end.
    pub rss_warm_kib: Option<u64>,
    pub rss_max_kib: Option<u64>,
    pub rss_end_kib: Option<u64>,
    pub fds_min: Option<u64>,
    pub fds_max: Option<u64>,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub struct SoakArgs {
    pub connections: usize,
    pub accounts: usize,
    pub room_size: usize,
    pub msg_rate: f64,
    pub minutes: f64,
    pub sample_secs: f64,
}

pub async fn soak(run: &Run, a: &SoakArgs) -> Result<Soak> {
    if a.connections == 0 || a.accounts == 0 || a.room_size == 0 || a.msg_rate <= 0.0 || a.minutes <= 0.0 {
        bail!("soak needs connections, accounts, a room size, a rate and a duration above zero");
    }
    let limit = sys::raise_nofile();
    if (limit as usize) < a.connections + 64 {
        eprintln!(
            "warning: {} sockets need more open files than the bench may have ({limit})",
            a.connections
        );
    }
    let t = &run.target;
    let accounts = a.accounts.min(a.connections);
    let b = bar(accounts as u64, "register");
    let accs = t.register_many(&run.prefix, accounts, run.register_concurrency, &b).await?;
    b.finish();
    // Accounts in rooms of `room_size`; the first of each room owns it.
    let n_rooms = accounts.div_ceil(a.room_size);
    let room_of = |acc: usize| acc / a.room_size;
    let b = bar(n_rooms as u64, "rooms");
    let owned: Vec<(String, String)> = (0..n_rooms)
        .map(|r| (accs[r * a.room_size].token.clone(), format!("{}-soak-{r}", run.prefix)))
        .collect();
    let room_ids = t.create_rooms(owned, &b).await?;
    b.finish();
    let joins: Vec<(String, String)> = (0..accounts)
        .filter(|i| i % a.room_size != 0)
        .map(|i| (accs[i].token.clone(), room_ids[room_of(i)].clone()))
        .collect();
    let b = bar(joins.len() as u64, "join");
    t.join_many(joins, 16, &b).await?;
    b.finish();
    // Socket i belongs to account i % accounts: every room's sockets get its messages.
    let tokens: Vec<String> = (0..a.connections).map(|i| accs[i % accounts].token.clone()).collect();
    let mut sockets_in_room = vec![0u64; n_rooms];
    for i in 0..a.connections {
        sockets_in_room[room_of(i % accounts)] += 1;
    }
    let b = bar(a.connections as u64, "connect");
    let sockets = t.connect_many(&tokens, run.connect_concurrency, &b).await?;
    b.finish();

    let stats = Arc::new(Stats::new(1));
    let expected = Arc::new(AtomicU64::new(0));
    let dur = Duration::from_secs_f64(a.minutes * 60.0);
    // One sender per account (its first socket), all together sending `msg_rate` a second.
    let period = Duration::from_secs_f64(accounts as f64 / a.msg_rate);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, ws) in sockets.into_iter().enumerate() {
        let (mut sink, source) = ws.split();
        tasks.push(tokio::spawn(read_loop(source, stats.clone(), true)));
        if i >= accounts {
            // Only reads; keep the write half alive so the socket stays open.
            tasks.push(tokio::spawn(async move {
                tokio::time::sleep(dur + Duration::from_secs(3600)).await;
                drop(sink);
            }));
            continue;
        }
        let room = room_of(i);
        let (room_id, fanout) = (room_ids[room].clone(), sockets_in_room[room]);
        let (stats, expected) = (stats.clone(), expected.clone());
        let phase = period.mul_f64(i as f64 / accounts as f64);
        tasks.push(tokio::spawn(async move {
            send_steadily(&mut sink, &room_id, start + phase, period, start + dur, || {
                stats.steps[0].sent.fetch_add(1, Relaxed);
                expected.fetch_add(fanout, Relaxed);
            })
            .await;
            // Keep the socket open (and read) until the run ends.
            tokio::time::sleep(Duration::from_secs(3600)).await;
            drop(sink);
        }));
    }

    let pid = run.server_pid.map(|p| p.to_string());
    let every = Duration::from_secs_f64(a.sample_secs.max(1.0));
    let b = step_bar(dur.as_secs_f64(), format!("{} conns", a.connections));
    let mut samples = Vec::new();
    let mut meter = run.server_meter();
    let mut next = start + every;
    loop {
        tokio::time::sleep_until(next.min(start + dur)).await;
        let now = Instant::now();
        let sample = Sample {
            secs: (now - start).as_secs_f64(),
            sent: stats.steps[0].sent.load(Relaxed),
            delivered: stats.total_delivered.load(Relaxed),
            errors: stats.error_codes().values().sum(),
            closed: stats.closed.load(Relaxed),
            server_rss_kib: run.server_rss(),
            server_fds: pid.as_deref().and_then(sys::open_fds),
            server_cpu_percent: meter.as_ref().and_then(|m| m.percent()),
        };
        meter = run.server_meter();
        b.set_position((now - start).as_millis() as u64);
        b.set_message(format!(
            "RSS {:.1} MiB, {} fds, {} sent",
            sample.server_rss_kib.unwrap_or(0) as f64 / 1024.0,
            sample.server_fds.unwrap_or(0),
            sample.sent
        ));
        b.println(row(&sample));
        samples.push(sample);
        if now >= start + dur {
            break;
        }
        next += every;
    }
    b.finish();
    let want = expected.load(Relaxed);
    let end = Instant::now() + run.grace;
    while stats.total_delivered.load(Relaxed) < want && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for task in tasks {
        task.abort();
    }
    let warm: Vec<&Sample> = samples.iter().filter(|s| s.secs >= dur.as_secs_f64() / 5.0).collect();
    let warm = if warm.is_empty() { samples.iter().collect() } else { warm };
    let lat = stats.delivery_percentiles(0);
    Ok(Soak {
        connections: a.connections,
        accounts,
        room_size: a.room_size,
        msg_rate: a.msg_rate,
        minutes: a.minutes,
        sent: stats.steps[0].sent.load(Relaxed),
        expected: want,
        delivered: stats.total_delivered.load(Relaxed),
        errors: samples.last().map_or(0, |s| s.errors),
        closed: stats.closed.load(Relaxed),
        rss_warm_kib: warm.first().and_then(|s| s.server_rss_kib),
        rss_max_kib: warm.iter().filter_map(|s| s.server_rss_kib).max(),
        rss_end_kib: warm.last().and_then(|s| s.server_rss_kib),
        fds_min: warm.iter().filter_map(|s| s.server_fds).min(),
        fds_max: warm.iter().filter_map(|s| s.server_fds).max(),
        p50_ms: lat.p50_ms,
        p99_ms: lat.p99_ms,
        max_ms: lat.max_ms,
        samples,
    })
}

fn row(s: &Sample) -> String {
    format!(
        "{:>8.0} s  sent {:>9}  delivered {:>11}  errors {:>5}  closed {:>5}  RSS {:>8.1} MiB  fds {:>6}  cpu {:>5}",
        s.secs,
        s.sent,
        s.delivered,
        s.errors,
        s.closed,
        s.server_rss_kib.unwrap_or(0) as f64 / 1024.0,
        s.server_fds.map_or("-".into(), |f| f.to_string()),
        s.server_cpu_percent.map_or("-".into(), |c| format!("{c:.0}%")),
    )
}

pub fn print(s: &Soak) {
    println!(
        "\n== soak: {} connections over {} accounts in rooms of {}, {} msg/s for {} min ==",
        s.connections, s.accounts, s.room_size, s.msg_rate, s.minutes
    );
    for sample in &s.samples {
        println!("{}", row(sample));
    }
    let loss = s.expected.saturating_sub(s.delivered);
    println!(
        "sent {}, delivered {} of {} expected (loss {}), errors {}, sockets closed {}",
        s.sent, s.delivered, s.expected, loss, s.errors, s.closed
    );
    println!("latency send->delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms", s.p50_ms, s.p99_ms, s.max_ms);
    if let (Some(w), Some(m), Some(e)) = (s.rss_warm_kib, s.rss_max_kib, s.rss_end_kib) {
        println!(
            "after warm-up: RSS {:.1} MiB at its start, {:.1} MiB at most, {:.1} MiB at the end ({:+.1}%)",
            w as f64 / 1024.0,
            m as f64 / 1024.0,
            e as f64 / 1024.0,
            (e as f64 - w as f64) * 100.0 / w.max(1) as f64
        );
    }
    if let (Some(lo), Some(hi)) = (s.fds_min, s.fds_max) {
        println!("after warm-up: open files between {lo} and {hi}");
    }
}
