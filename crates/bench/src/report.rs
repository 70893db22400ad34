//! Results: the table on stdout, the JSON file and the SVG chart.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use serde::Serialize;

use crate::stats::Percentiles;

/// A named series of a chart: its label, how to read it from a step, its colour.
type Series = (&'static str, fn(&Step) -> f64, RGBColor);

#[derive(Clone, Debug, Default, Serialize)]
pub struct Step {
    /// What the step offered: messages per second sent into the server (all senders together).
    pub rate: f64,
    pub secs: f64,
    pub sent: u64,
    pub acked: u64,
    pub send_errors: u64,
    /// Acknowledged sends per second over the step.
    pub acks_per_sec: f64,
    /// Frames the receivers should have had: sent messages times the connections that get each.
    pub expected: u64,
    pub delivered: u64,
    /// `expected - delivered` after the grace period.
    pub lost: u64,
    pub loss_pct: f64,
    /// Delivered frames over the time from the step's start to its last delivery (at least the
    /// step's length).
    pub delivered_per_sec: f64,
    pub latency: Percentiles,
    pub ack_latency: Percentiles,
    pub server_cpu_pct: Option<f64>,
    pub server_rss_kib: Option<u64>,
    pub bench_cpu_pct: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Idle {
    pub connections: usize,
    pub accounts: usize,
    pub source_addresses: usize,
    pub connect_secs: f64,
    pub still_open: u64,
    pub server_rss_before_kib: Option<u64>,
    pub server_rss_after_kib: Option<u64>,
    pub rss_per_connection_bytes: Option<f64>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub workload: String,
    pub url: String,
    pub machine: String,
    pub bench_cpus: Option<String>,
    pub server_pid: Option<u32>,
    pub server_cpus: Option<String>,
    pub params: serde_json::Value,
    pub steps: Vec<Step>,
    pub idle: Option<Idle>,
    pub error_codes: BTreeMap<String, u64>,
    pub closed_sockets: u64,
}

fn opt_f(v: Option<f64>, digits: usize) -> String {
    v.map(|x| format!("{x:.digits$}")).unwrap_or_else(|| "-".into())
}

pub fn print_table(r: &Report) {
    println!();
    println!("== {} against {} ==", r.workload, r.url);
    println!("machine: {}", r.machine);
    println!(
        "bench on cpus {}; server pid {} on cpus {}",
        r.bench_cpus.as_deref().unwrap_or("?"),
        r.server_pid.map(|p| p.to_string()).unwrap_or_else(|| "-".into()),
        r.server_cpus.as_deref().unwrap_or("?")
    );
    if !r.steps.is_empty() {
        println!(
            "{:>9} {:>8} {:>8} {:>10} {:>12} {:>12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>7} {:>9} {:>7}",
            "rate/s",
            "sent",
            "errors",
            "acks/s",
            "expected",
            "delivered",
            "loss%",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "max ms",
            "ack p50",
            "ack p99",
            "srv cpu",
            "srv rss",
            "bench"
        );
        for s in &r.steps {
            println!(
                "{:>9.0} {:>8} {:>8} {:>10.0} {:>12} {:>12} {:>8.3} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9.2} {:>9.2} {:>6}% {:>8}M {:>6}%",
                s.rate,
                s.sent,
                s.send_errors,
                s.acks_per_sec,
                s.expected,
                s.delivered,
                s.loss_pct,
                s.latency.p50_ms,
                s.latency.p90_ms,
                s.latency.p99_ms,
                s.latency.max_ms,
                s.ack_latency.p50_ms,
                s.ack_latency.p99_ms,
                opt_f(s.server_cpu_pct, 0),
                opt_f(s.server_rss_kib.map(|k| k as f64 / 1024.0), 1),
                opt_f(s.bench_cpu_pct, 0),
            );
        }
        println!("{:>9} {:>12}", "rate/s", "frames/s");
        for s in &r.steps {
            println!("{:>9.0} {:>12.0}", s.rate, s.delivered_per_sec);
        }
    }
    if let Some(i) = &r.idle {
        println!(
            "idle: {} sockets ({} accounts, {} source addresses) opened in {:.1} s, {} still open at the end",
            i.connections, i.accounts, i.source_addresses, i.connect_secs, i.still_open
        );
        println!(
            "server RSS before {} MiB, after {} MiB: {} bytes per connection",
            opt_f(i.server_rss_before_kib.map(|k| k as f64 / 1024.0), 1),
            opt_f(i.server_rss_after_kib.map(|k| k as f64 / 1024.0), 1),
            opt_f(i.rss_per_connection_bytes, 0)
        );
    }
    if !r.error_codes.is_empty() {
        println!("error frames by code: {:?}", r.error_codes);
    }
    if r.closed_sockets > 0 {
        println!("sockets closed by the server during the run: {}", r.closed_sockets);
    }
}

pub fn write_json(r: &Report, path: &Path) -> Result<()> {
    let text = serde_json::to_string_pretty(r)?;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// Two charts: send→delivery latency percentiles per step, and delivered frames/s per step.
pub fn write_svg(r: &Report, path: &Path) -> Result<()> {
    let root = SVGBackend::new(path, (960, 900)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (top, bottom) = root.split_vertically(450);
    let xs: Vec<f64> = r.steps.iter().map(|s| s.rate).collect();
    let x_max = xs.iter().copied().fold(1.0, f64::max) * 1.1;
    let y_lat = r.steps.iter().map(|s| s.latency.max_ms.max(s.latency.p99_ms)).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&top)
        .caption(format!("{}: send→delivery latency (ms)", r.workload), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_lat)
        .map_err(|e| anyhow!("{e}"))?;
    chart.configure_mesh().x_desc("offered messages/s").y_desc("ms").draw().map_err(|e| anyhow!("{e}"))?;
    let series: [Series; 4] = [
        ("p50", |s| s.latency.p50_ms, BLUE),
        ("p90", |s| s.latency.p90_ms, GREEN),
        ("p99", |s| s.latency.p99_ms, RED),
        ("max", |s| s.latency.max_ms, BLACK),
    ];
    for (name, f, color) in series {
        let pts: Vec<(f64, f64)> = r.steps.iter().map(|s| (s.rate, f(s))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;

    let y_tp = r.steps.iter().map(|s| s.delivered_per_sec.max(s.acks_per_sec)).fold(1.0, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&bottom)
        .caption(format!("{}: delivered frames/s and acks/s", r.workload), ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(80)
        .build_cartesian_2d(0.0..x_max, 0.0..y_tp)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("offered messages/s")
        .y_desc("per second")
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let tp: [Series; 2] =
        [("delivered frames/s", |s| s.delivered_per_sec, BLUE), ("acks/s", |s| s.acks_per_sec, MAGENTA)];
    for (name, f, color) in tp {
        let pts: Vec<(f64, f64)> = r.steps.iter().map(|s| (s.rate, f(s))).collect();
        chart
            .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(pts.into_iter().map(|p| Circle::new(p, 4, color.filled())))
            .map_err(|e| anyhow!("{e}"))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
