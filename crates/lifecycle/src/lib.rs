//! One supervisor for every task the process spawns. A [`Supervisor`] is a node of a tree: a
//! name, a [`CancellationToken`] (a child of its parent's, so stopping a node stops everything
//! under it) and a [`TaskTracker`] of the tasks spawned through it. Nothing in parlor calls
//! `tokio::spawn` directly: a task that nobody can wait for is a task that can outlive the stop,
//! still writing after the store is closed.
//!
//! The process builds one root, gives each role a child, and stops the children one after the
//! other in a fixed order ([`Supervisor::stop`]): the edge first (no new connections, sockets
//! closed with 1001, requests in flight finished), then the workers (what is queued is
//! committed), then the jobs, and only then the store is closed. Each stop waits for every task of
//! the node and of its children, up to a grace period, and logs what is left.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

/// A node of the task tree; cheap to clone (all clones are the same node).
#[derive(Clone, Debug)]
pub struct Supervisor {
    node: Arc<Node>,
}

#[derive(Debug)]
struct Node {
    /// Path from the root, e.g. `serve/gateway/sessions`: what the logs name.
    name: String,
    token: CancellationToken,
    tracker: TaskTracker,
    /// Nodes made by [`Supervisor::child`]: waited for with this one.
    children: Mutex<Vec<Supervisor>>,
}

/// What a stop found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stopped {
    /// Tasks still running when the grace period ran out (0: everything ended).
    pub left: usize,
}

impl Supervisor {
    /// A root: the process's, or a test's.
    pub fn root(name: &str) -> Self {
        Self::node(name.to_owned(), CancellationToken::new())
    }

    fn node(name: String, token: CancellationToken) -> Self {
        Self {
            node: Arc::new(Node {
                name,
                token,
                tracker: TaskTracker::new(),
                children: Mutex::new(Vec::new()),
            }),
        }
    }

    /// A child node: cancelled with this one (or alone, by its own [`stop`](Self::stop)), and
    /// waited for with this one.
    pub fn child(&self, name: &str) -> Self {
        let child = Self::node(format!("{}/{name}", self.node.name), self.node.token.child_token());
        self.children().push(child.clone());
        child
    }

    fn children(&self) -> std::sync::MutexGuard<'_, Vec<Supervisor>> {
        // A panic while the list was held leaves it usable: it is only pushed to and read.
        self.node.children.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The node's path, e.g. `serve/gateway`.
    pub fn name(&self) -> &str {
        &self.node.name
    }

    /// Spawns a task of this node. `task` names it in the log line written when it ends (at
    /// debug level: per-connection tasks come and go by the thousand).
    pub fn spawn<F>(&self, task: &'static str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let span = tracing::debug_span!("task", node = %self.node.name, task);
        let node = self.node.name.clone();
        self.node.tracker.spawn(
            async move {
                let out = future.await;
                tracing::debug!(node = %node, task, "task ended");
                out
            }
            .instrument(span),
        )
    }

    /// Tracks a future that someone else spawns (a WebSocket session, which hyper runs after the
    /// upgrade): this node waits for it like for its own tasks.
    pub fn track<F: Future>(&self, future: F) -> tokio_util::task::task_tracker::TrackedFuture<F> {
        self.node.tracker.track_future(future)
    }

    /// The stop token of this node (cancelled when it or an ancestor stops).
    pub fn token(&self) -> &CancellationToken {
        &self.node.token
    }

    /// Resolves when this node is told to stop.
    pub fn cancelled(&self) -> WaitForCancellationFuture<'_> {
        self.node.token.cancelled()
    }

    /// Whether this node has been told to stop.
    pub fn is_cancelled(&self) -> bool {
        self.node.token.is_cancelled()
    }

    /// Tasks running in this node and under it.
    pub fn running(&self) -> usize {
        let children: Vec<Supervisor> = self.children().clone();
        self.node.tracker.len() + children.iter().map(Supervisor::running).sum::<usize>()
    }

    /// Waits until every task of this node and of its children has ended (without telling them to
    /// stop: for a role that stops by itself once its input ends).
    pub async fn wait(&self) {
        self.node.tracker.close();
        self.node.tracker.wait().await;
        loop {
            let children: Vec<Supervisor> = self.children().clone();
            for child in &children {
                Box::pin(child.wait()).await;
            }
            // A task may have made a child while we waited.
            if self.children().len() == children.len() {
                break;
            }
        }
    }

    /// Tells this node (and everything under it) to stop, and waits up to `grace` for every task
    /// to end. Logs the stop and what was left; a task still running after the grace period is
    /// not waited for further (the process is about to end), and is counted in the answer.
    pub async fn stop(&self, grace: Duration) -> Stopped {
        tracing::debug!(node = %self.node.name, "stopping");
        self.node.token.cancel();
        let left = match tokio::time::timeout(grace, self.wait()).await {
            Ok(()) => 0,
            Err(_) => self.running(),
        };
        if left == 0 {
            tracing::info!(node = %self.node.name, "stopped");
        } else {
            tracing::warn!(node = %self.node.name, left, grace_ms = grace.as_millis() as u64, "stopped with tasks still running");
        }
        Stopped { left }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn stopping_a_node_stops_and_waits_for_its_tasks_and_its_childrens() {
        let root = Supervisor::root("test");
        let child = root.child("child");
        let ended = Arc::new(AtomicUsize::new(0));
        for node in [&root, &child] {
            let token = node.token().clone();
            let ended = ended.clone();
            node.spawn("waits", async move {
                token.cancelled().await;
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(root.running(), 2);
        assert_eq!(root.stop(Duration::from_secs(10)).await, Stopped { left: 0 });
        assert_eq!(ended.load(Ordering::SeqCst), 2);
        assert_eq!(root.running(), 0);
    }

    #[tokio::test]
    async fn a_child_stops_alone_and_its_parent_keeps_running() {
        let root = Supervisor::root("test");
        let child = root.child("child");
        let token = root.token().clone();
        root.spawn("parent task", async move { token.cancelled().await });
        let token = child.token().clone();
        child.spawn("child task", async move { token.cancelled().await });
        assert_eq!(child.stop(Duration::from_secs(10)).await, Stopped { left: 0 });
        assert!(!root.is_cancelled());
        assert_eq!(root.running(), 1);
        root.stop(Duration::from_secs(10)).await;
    }

    #[tokio::test]
    async fn a_task_that_ignores_the_stop_is_counted_as_left() {
        let root = Supervisor::root("test");
        let (_keep, never) = tokio::sync::oneshot::channel::<()>();
        root.spawn("stubborn", async move {
            let _ = never.await;
        });
        // The task can never end, so the grace period always runs out, however busy the machine.
        assert_eq!(root.stop(Duration::from_millis(50)).await, Stopped { left: 1 });
    }
}
