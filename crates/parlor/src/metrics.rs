//! The Prometheus recorder. The `metrics` facade is process-wide by design, so its recorder is
//! installed once, on first use, and every role of the process reports into it; its upkeep task
//! runs under the services' node of the supervisor.

use parlor_lifecycle::Supervisor;
use std::sync::OnceLock;
use std::time::Duration;

/// The recorder's handle (none if another recorder was installed first), with its upkeep
/// started in `tasks` on the first call.
pub fn handle(tasks: &Supervisor) -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> = OnceLock::new();
    let mut installed = false;
    let handle = HANDLE
        .get_or_init(|| {
            installed = true;
            use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
            let seconds =
                [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];
            let sizes = [1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 5000.0];
            PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
                .ok()?
                .set_buckets_for_metric(Matcher::Suffix("_size".into()), &sizes)
                .ok()?
                .install_recorder()
                .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
                .ok()
        })
        .clone();
    if installed && let Some(upkeep) = handle.clone() {
        let stop = tasks.token().clone();
        tasks.spawn("metrics upkeep", async move {
            crate::roles::every(Duration::from_secs(5), stop, || {
                upkeep.run_upkeep();
                std::future::ready(std::ops::ControlFlow::Continue(()))
            })
            .await
        });
    }
    handle
}
