//! The shared clock, /proc readings (CPU time, RSS, affinity) and the file-descriptor limit.

use std::sync::OnceLock;
use std::time::Instant;

static EPOCH: OnceLock<Instant> = OnceLock::new();

/// Microseconds since the first call in this process. Every client of the bench runs in this one
/// process, so a time written into a message body by the sender can be compared with the time a
/// receiver sees it.
pub fn now_us() -> u64 {
    let epoch = EPOCH.get_or_init(Instant::now);
    u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// Linux reports /proc CPU times in USER_HZ, which is 100 on every architecture it runs on.
const USER_HZ: f64 = 100.0;

/// CPU seconds (user + system) a process has used, from /proc/<pid>/stat (`self` for the bench).
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, so utime (14) and stime (15) are at 11 and 12 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / USER_HZ)
}

fn status_field(pid: &str, name: &str) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim_start_matches(':').trim().to_string()))
}

/// Resident set size in KiB, from /proc/<pid>/status `VmRSS`.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let v = status_field(pid, "VmRSS")?;
    v.split_whitespace().next()?.parse().ok()
}

/// The CPUs a process may run on (`Cpus_allowed_list` of /proc/<pid>/status), e.g. `1` or `0-1`.
pub fn cpus_allowed(pid: &str) -> Option<String> {
    status_field(pid, "Cpus_allowed_list")
}

/// The soft limit on open files of another process, from /proc/<pid>/limits.
pub fn nofile_limit(pid: &str) -> Option<u64> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Raises this process's RLIMIT_NOFILE soft limit as far as the hard limit allows.
pub fn raise_nofile() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0)
}

/// A CPU-time meter for a process between two points in time.
pub struct CpuMeter {
    pid: String,
    cpu: Option<f64>,
    at: Instant,
}

impl CpuMeter {
    pub fn start(pid: &str) -> Self {
        Self { pid: pid.to_string(), cpu: cpu_seconds(pid), at: Instant::now() }
    }

    /// Percent of one core used since `start` (100 = one core busy all the time).
    pub fn percent(&self) -> Option<f64> {
        let now = cpu_seconds(&self.pid)?;
        let wall = self.at.elapsed().as_secs_f64();
        if wall <= 0.0 {
            return None;
        }
        Some((now - self.cpu?) / wall * 100.0)
    }
}

/// Describes the machine in one line: cores, CPU model, memory.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| {
                l.strip_prefix("MemTotal:").and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            })
        })
        .map(|kib| format!("{:.1} GiB", kib as f64 / 1024.0 / 1024.0))
        .unwrap_or_else(|| "? GiB".into());
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap_or_default();
    format!("{model}; cpus online {}; bench may use {cores}; memory {mem}", online.trim())
}

/// Open file descriptors of a process, by counting /proc/<pid>/fd.
pub fn open_fds(pid: &str) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}
