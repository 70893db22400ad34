//! `parlor-bench`: drives a running parlor server through its public contract (REST and the
//! WebSocket) and measures fan-out, many small rooms, idle connections and the store path; and
//! `parlor-bench ceiling`, the leanest broadcast server speaking the same frames, to compare with.

mod ceiling;
mod client;
mod report;
mod soak;
mod stats;
mod sys;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::client::Target;
use crate::workloads::Run;

#[derive(Parser)]
#[command(name = "parlor-bench", version, about, long_about = None)]
#[command(after_help = "Run the server and the bench on separate cores, e.g.\n  \
    taskset -c 0 parlor serve --auth-rate 100000 --auth-burst 100000 --send-rate 100000 --send-burst 100000\n  \
    taskset -c 1 parlor-bench fanout --server-pid $(pgrep -n parlor)\nSee docs/performance.md.")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// R receivers in one room, one sender stepping through rates.
    Fanout(FanoutArgs),
    /// C connections in rooms of N, each sending at a steady rate: the shape of a team chat.
    Rooms(RoomsArgs),
    /// K idle authenticated connections: the server's memory per connection.
    Idle(IdleArgs),
    /// Acknowledged sends per second at saturation: many senders, each with a window of sends in flight.
    Persist(PersistArgs),
    /// K connections over U accounts in rooms, steady traffic for a long time: the server's memory and open files over time.
    Soak(SoakArgs),
    /// Run the ceiling: a lean broadcast server with the same frames, no auth and no storage.
    Ceiling(CeilingArgs),
}

#[derive(Args, Clone)]
struct Common {
    /// The server's HTTP base.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// The server's process id, to read its CPU time and RSS from /proc.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Draw latency percentiles and throughput per step to this SVG file.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Bind client sockets round-robin to this many source addresses 127.0.0.2, 127.0.0.3, ...
    /// (loopback targets only); 0 lets the kernel choose. `idle` defaults to 4.
    #[arg(long)]
    source_ips: Option<usize>,
    /// Sockets opened at once.
    #[arg(long, default_value_t = 64)]
    connect_concurrency: usize,
    /// Registrations at once (each is a slow password hash on the server).
    #[arg(long, default_value_t = 8)]
    register_concurrency: usize,
    /// How long to wait after a step for late deliveries before counting the rest as lost.
    #[arg(long, default_value_t = 5.0)]
    grace_secs: f64,
    /// Username prefix; by default one unique to this run.
    #[arg(long)]
    prefix: Option<String>,
}

#[derive(Args)]
struct FanoutArgs {
    #[command(flatten)]
    common: Common,
    /// Receiving connections in the room.
    #[arg(long, default_value_t = 500)]
    receivers: usize,
    /// Accounts the receivers are spread over (default: one each). Fewer saves registration time.
    #[arg(long)]
    accounts: Option<usize>,
    /// Messages per second of the sender, one step each.
    #[arg(long, value_delimiter = ',', default_value = "100,500,1000,2000")]
    rates: Vec<f64>,
    /// Length of each step.
    #[arg(long, default_value_t = 10.0)]
    step_secs: f64,
}

#[derive(Args)]
struct RoomsArgs {
    #[command(flatten)]
    common: Common,
    /// Connections (one account each).
    #[arg(long, default_value_t = 2000)]
    connections: usize,
    /// Connections per room.
    #[arg(long, default_value_t = 10)]
    room_size: usize,
    /// Messages per second sent by each connection.
    #[arg(long, default_value_t = 1.0)]
    msg_rate: f64,
    /// How long everyone sends.
    #[arg(long, default_value_t = 20.0)]
    secs: f64,
}

#[derive(Args)]
struct IdleArgs {
    #[command(flatten)]
    common: Common,
    /// Idle authenticated connections to open.
    #[arg(long, default_value_t = 10000)]
    connections: usize,
    /// Accounts the connections are spread over.
    #[arg(long, default_value_t = 100)]
    accounts: usize,
    /// How long to hold them open before measuring.
    #[arg(long, default_value_t = 5.0)]
    hold_secs: f64,
}

#[derive(Args)]
struct SoakArgs {
    #[command(flatten)]
    common: Common,
    /// Connections to hold open.
    #[arg(long, default_value_t = 10000)]
    connections: usize,
    /// Accounts the connections are spread over; each account sends from its first connection.
    #[arg(long, default_value_t = 500)]
    accounts: usize,
    /// Accounts per room.
    #[arg(long, default_value_t = 10)]
    room_size: usize,
    /// Messages per second, all senders together.
    #[arg(long, default_value_t = 100.0)]
    msg_rate: f64,
    /// How long the traffic runs.
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// How often to read the server's RSS and open files.
    #[arg(long, default_value_t = 30.0)]
    sample_secs: f64,
}

#[derive(Args)]
struct PersistArgs {
    #[command(flatten)]
    common: Common,
    /// Sending connections, each with its own account and room.
    #[arg(long, default_value_t = 64)]
    senders: usize,
    /// Sends in flight per sender; each ack lets the next one go.
    #[arg(long, default_value_t = 16)]
    window: usize,
    /// How long to measure.
    #[arg(long, default_value_t = 10.0)]
    secs: f64,
}

#[derive(Args)]
struct CeilingArgs {
    /// Address to listen on; port 0 picks a free one (logged as `listening on <addr>`).
    #[arg(long, default_value = "127.0.0.1:9090")]
    listen: String,
    /// Frames queued per socket before it is dropped as a slow consumer.
    #[arg(long, default_value_t = 4096)]
    outbound_buffer: usize,
}

fn pinning_advice(server_pid: Option<u32>) {
    let mine = sys::cpus_allowed("self").unwrap_or_else(|| "?".into());
    eprintln!("machine: {}", sys::machine());
    eprintln!("this bench may run on cpus {mine} (Cpus_allowed_list of /proc/self/status)");
    match server_pid.and_then(|p| sys::cpus_allowed(&p.to_string())) {
        Some(srv) => {
            eprintln!("the server (pid {}) may run on cpus {srv}", server_pid.unwrap_or_default());
            if srv == mine {
                eprintln!("warning: server and bench share cores; pin them apart with taskset");
            }
        }
        None => eprintln!("(no --server-pid: no server CPU, RSS or affinity)"),
    }
    eprintln!(
        "advice: run the server and the bench on separate cores, e.g. `taskset -c 0 parlor serve ...` and `taskset -c 1 parlor-bench ...`"
    );
}

async fn run_common(c: &Common, default_sources: usize) -> Result<Run> {
    pinning_advice(c.server_pid);
    let target = Target::new(&c.url, c.source_ips.unwrap_or(default_sources)).await?;
    let prefix = c.prefix.clone().unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("b{:x}", (nanos / 1000) % 0xff_ffff_ffff)
    });
    Ok(Run {
        url: c.url.clone(),
        target,
        server_pid: c.server_pid,
        grace: Duration::from_secs_f64(c.grace_secs.max(0.0)),
        connect_concurrency: c.connect_concurrency,
        register_concurrency: c.register_concurrency,
        prefix,
    })
}

fn output(c: &Common, r: &report::Report) -> Result<()> {
    report::print_table(r);
    if let Some(p) = &c.json {
        report::write_json(r, p)?;
        eprintln!("wrote {}", p.display());
    }
    if let Some(p) = &c.svg {
        report::write_svg(r, p)?;
        eprintln!("wrote {}", p.display());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    sys::now_us();
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Ceiling(a) => ceiling::serve(&a.listen, a.outbound_buffer).await,
        Cmd::Fanout(a) => {
            let run = run_common(&a.common, 0).await?;
            let r = workloads::fanout(&run, a.receivers, a.accounts, &a.rates, a.step_secs).await?;
            output(&a.common, &r)
        }
        Cmd::Rooms(a) => {
            let run = run_common(&a.common, 0).await?;
            let r = workloads::rooms(&run, a.connections, a.room_size, a.msg_rate, a.secs).await?;
            output(&a.common, &r)
        }
        Cmd::Idle(a) => {
            let run = run_common(&a.common, 4).await?;
            let r = workloads::idle(&run, a.connections, a.accounts, a.hold_secs).await?;
            output(&a.common, &r)
        }
        Cmd::Soak(a) => {
            let run = run_common(&a.common, 4).await?;
            let args = soak::SoakArgs {
                connections: a.connections,
                accounts: a.accounts,
                room_size: a.room_size,
                msg_rate: a.msg_rate,
                minutes: a.minutes,
                sample_secs: a.sample_secs,
            };
            let r = soak::soak(&run, &args).await?;
            soak::print(&r);
            if let Some(p) = &a.common.json {
                std::fs::write(p, serde_json::to_vec_pretty(&r)?)?;
                eprintln!("wrote {}", p.display());
            }
            Ok(())
        }
        Cmd::Persist(a) => {
            let run = run_common(&a.common, 0).await?;
            let r = workloads::persist(&run, a.senders, a.window, a.secs).await?;
            output(&a.common, &r)
        }
    }
}
