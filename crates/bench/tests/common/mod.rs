//! Shared by the bench's tests: spawning a server, reading its address, a tiny fanout.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A child process killed when dropped.
pub struct Server(pub Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `cmd`, waits for a stdout (or stderr) line holding `listening on <addr>` and returns
/// the address; the rest of the output is drained in the background.
pub fn spawn_listening(mut cmd: Command) -> (Server, String) {
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).env("NO_COLOR", "1");
    let mut child = cmd.spawn().expect("spawning the server");
    let (tx, rx) = mpsc::channel::<String>();
    let out = child.stdout.take().expect("stdout");
    let err = child.stderr.take().expect("stderr");
    for pipe in [Box::new(out) as Box<dyn std::io::Read + Send>, Box::new(err)] {
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if !line.contains("gRPC")
                    && let Some(i) = line.find("listening on ")
                {
                    let addr: String = line[i + "listening on ".len()..]
                        .chars()
                        .take_while(|c| c.is_ascii_hexdigit() || matches!(c, '.' | ':' | '[' | ']'))
                        .collect();
                    let _ = tx.send(addr);
                }
            }
        });
    }
    let server = Server(child);
    let addr = rx.recv_timeout(Duration::from_secs(60)).expect("no `listening on` line within 60 s");
    (server, addr)
}

/// Runs a tiny fanout (5 receivers, 50 msg/s for 1 s) against `url` and returns its JSON report.
pub fn tiny_fanout(url: &str, dir: &Path) -> serde_json::Value {
    let json = dir.join("fanout.json");
    let svg = dir.join("fanout.svg");
    let out = Command::new(env!("CARGO_BIN_EXE_parlor-bench"))
        .args(["fanout", "--url", url, "--receivers", "5", "--rates", "50", "--step-secs", "1"])
        .args(["--grace-secs", "5", "--json"])
        .arg(&json)
        .arg("--svg")
        .arg(&svg)
        .output()
        .expect("running parlor-bench fanout");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "fanout failed:\n{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains("frames/s"), "no table in the output:\n{text}");
    let svg_text = std::fs::read_to_string(&svg).expect("the SVG was written");
    assert!(svg_text.contains("<svg"), "not an SVG");
    serde_json::from_str(&std::fs::read_to_string(&json).expect("the JSON was written")).expect("valid JSON")
}

/// Zero loss, every send acknowledged and delivered to the 5 receivers, sane latencies.
pub fn assert_sane(r: &serde_json::Value) {
    assert_eq!(r["workload"], "fanout");
    let step = &r["steps"][0];
    assert_eq!(step["sent"], 50, "{r:#}");
    assert_eq!(step["acked"], 50, "{r:#}");
    assert_eq!(step["send_errors"], 0, "{r:#}");
    assert_eq!(step["expected"], 250, "{r:#}");
    assert_eq!(step["delivered"], 250, "{r:#}");
    assert_eq!(step["lost"], 0, "{r:#}");
    assert_eq!(step["latency"]["count"], 250, "{r:#}");
    let p50 = step["latency"]["p50_ms"].as_f64().expect("p50");
    let max = step["latency"]["max_ms"].as_f64().expect("max");
    assert!(p50 > 0.0 && p50 <= max && max < 5000.0, "latencies: {r:#}");
    assert!(step["delivered_per_sec"].as_f64().expect("rate") > 100.0, "{r:#}");
    assert!(r["bench_cpus"].is_string(), "{r:#}");
}
