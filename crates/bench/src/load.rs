//! Concurrent clients calling a gRPC method for a fixed time: as fast as answers come (the
//! peak), or on a schedule (a steady rate, to read latency at a given load).

#![allow(clippy::unwrap_used)] // a benchmark program fails loudly

use std::{
    future::Future,
    time::{Duration, Instant},
};

use crate::support::{CpuTimer, percentile, rate};

/// What a load run measured.
pub struct Load {
    pub answered: usize,
    pub elapsed: Duration,
    /// Sorted.
    pub latencies: Vec<Duration>,
    /// CPU time this process spent over the run, every thread: the clients, the gRPC stack and,
    /// embedded, the services; not a database server in another process.
    pub cpu: Option<Duration>,
}

impl Load {
    pub fn rate(&self) -> f64 {
        rate(self.answered, self.elapsed)
    }

    /// The pause between one client's requests that makes `clients` of them ask at `fraction`
    /// of this run's rate.
    pub fn pause_for(&self, clients: usize, fraction: f64) -> Duration {
        Duration::from_secs_f64(clients as f64 / (self.rate() * fraction))
    }

    /// This process's CPU time per answered request, in microseconds: what a request costs the
    /// machine, which moves less from run to run on a shared machine than the rate does.
    pub fn cpu_per_request_us(&self) -> Option<f64> {
        Some(self.cpu?.as_secs_f64() * 1e6 / self.answered.max(1) as f64)
    }

    pub fn show(&self, label: &str) {
        let cpu = self.cpu_per_request_us().map(|us| format!("   {us:>6.0} µs CPU/req")).unwrap_or_default();
        println!(
            "  {label:<46} {:>8.0} req/s   p50 {:>7.3} ms   p99 {:>7.3} ms{cpu}",
            self.rate(),
            percentile(&self.latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&self.latencies, 0.99).as_secs_f64() * 1e3
        );
    }
}

/// `clients` tasks call `ask(n)` (n: the request's number, distinct across clients) for
/// `seconds`: as fast as answers come (`pause` zero), or on a fixed schedule of one request every
/// `pause` per client, the clients' schedules spread evenly over a pause so the requests arrive
/// at a steady rate rather than all together. On a schedule, latency counts from when the
/// request was due, so a server that falls behind shows it in the tail (no coordinated
/// omission).
pub async fn load<F, Fut>(clients: usize, seconds: u64, pause: Duration, ask: F) -> Load
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (started, cpu) = (Instant::now(), CpuTimer::start());
    let deadline = started + Duration::from_secs(seconds);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let ask = ask.clone();
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            let mut n = c * 7919;
            let mut due = started + pause.mul_f64(c as f64 / clients as f64);
            tokio::time::sleep_until(due.into()).await;
            while Instant::now() < deadline {
                let asked = if pause.is_zero() { Instant::now() } else { due };
                ask(n).await;
                latencies.push(asked.elapsed());
                n += clients;
                if !pause.is_zero() {
                    due += pause;
                    tokio::time::sleep_until(due.into()).await;
                }
            }
            latencies
        });
    }
    let mut latencies = Vec::new();
    while let Some(done) = tasks.join_next().await {
        latencies.extend(done.unwrap());
    }
    let elapsed = started.elapsed();
    let cpu = cpu.elapsed();
    latencies.sort();
    Load { answered: latencies.len(), elapsed, latencies, cpu }
}
