//! Tasks that must run as long as their process does: one that ends early stops the process.
//!
//! An outbox relay that panicked, or a consumer whose loop ended, would otherwise leave a process
//! that still passes its health checks and answers RPCs while its events pile up in the outbox
//! or on the topic — a process no orchestrator restarts, with read models silently going stale.
//! Instead the task's end is recorded as the process's failure and its stop begins: the process
//! drains what it can and exits non-zero, and Kubernetes (or systemd, or a person) starts it
//! again. Nothing is lost by that: unpublished events stay in the outbox, and events applied but
//! not acknowledged are delivered again and dropped by the inbox.

use std::{
    any::Any,
    future::Future,
    panic::AssertUnwindSafe,
    sync::{Arc, OnceLock},
};

use futures::FutureExt;
use tokio_util::sync::CancellationToken;

/// How a process stops: the token its long-running tasks watch, and the failure that fired it,
/// when a failure did rather than a signal.
#[derive(Clone, Debug, Default)]
pub struct Stop {
    token: CancellationToken,
    failure: Arc<OnceLock<String>>,
}

impl Stop {
    pub fn new() -> Self {
        Self::default()
    }

    /// The token that fires when the stop begins, for tasks to watch.
    pub fn token(&self) -> CancellationToken {
        self.token.clone()
    }

    /// Begins the stop because `why` failed. The first failure is the one kept: later ones are
    /// usually its consequences.
    pub fn fail(&self, why: impl Into<String>) {
        let why = why.into();
        tracing::error!(failure = %why, "stopping the process after a failure");
        // An Err here means an earlier failure is already recorded: keep that one.
        let _ = self.failure.set(why);
        self.token.cancel();
    }

    /// The failure that began the stop, if one did.
    pub fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    pub fn is_stopping(&self) -> bool {
        self.token.is_cancelled()
    }
}

/// Runs `task`, which should run until the stop begins. If it ends before — returning or
/// panicking — the process's stop begins with that as its failure, naming `task_name`.
pub async fn until_stopped(task_name: impl Into<String>, stop: Stop, task: impl Future<Output = ()>) {
    // AssertUnwindSafe: after a panic nothing of the task is used again; the process stops.
    let outcome = AssertUnwindSafe(task).catch_unwind().await;
    let task_name = task_name.into();
    match outcome {
        Ok(()) if stop.is_stopping() => {}
        Ok(()) => stop.fail(format!("{task_name} ended before the process was told to stop")),
        Err(panic) => stop.fail(format!("{task_name} panicked: {}", panic_message(panic.as_ref()))),
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(message) = panic.downcast_ref::<&str>() {
        message
    } else if let Some(message) = panic.downcast_ref::<String>() {
        message
    } else {
        "(no message)"
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)] // tests fail loudly

    use super::*;

    #[tokio::test]
    async fn a_task_that_runs_until_the_stop_is_no_failure() {
        let stop = Stop::new();
        let token = stop.token();
        let task = tokio::spawn(until_stopped("relay", stop.clone(), async move { token.cancelled().await }));
        stop.token().cancel();
        task.await.unwrap();
        assert_eq!(stop.failure(), None);
    }

    #[tokio::test]
    async fn a_task_that_returns_early_stops_the_process_naming_it() {
        let stop = Stop::new();
        until_stopped("points ticker", stop.clone(), async {}).await;
        assert!(stop.is_stopping(), "the stop began");
        assert_eq!(stop.failure(), Some("points ticker ended before the process was told to stop"));
    }

    #[tokio::test]
    async fn a_task_that_panics_stops_the_process_with_its_message() {
        let stop = Stop::new();
        let task = tokio::spawn(until_stopped("identity outbox relay", stop.clone(), async {
            tokio::task::yield_now().await;
            panic!("index out of bounds: {}", 7);
        }));
        task.await.expect("the panic is caught, not passed on to the runtime");
        assert!(stop.is_stopping());
        assert_eq!(stop.failure(), Some("identity outbox relay panicked: index out of bounds: 7"));
    }

    #[tokio::test]
    async fn the_first_failure_is_kept() {
        let stop = Stop::new();
        until_stopped("bank consumer", stop.clone(), async { panic!("first") }).await;
        until_stopped("benefits consumer", stop.clone(), async { panic!("second") }).await;
        stop.fail("gRPC server stopped: address in use");
        assert_eq!(stop.failure(), Some("bank consumer panicked: first"));
    }

    #[tokio::test]
    async fn a_panic_while_stopping_is_still_a_failure() {
        let stop = Stop::new();
        stop.token().cancel();
        until_stopped("council ticker", stop.clone(), async { panic!("while draining") }).await;
        // Ending at the stop is what a task should do; panicking there is a bug all the same,
        // and the process's exit code says so.
        assert_eq!(stop.failure(), Some("council ticker panicked: while draining"));
    }
}
