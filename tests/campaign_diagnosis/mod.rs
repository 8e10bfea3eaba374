//! What the crash campaign prints when the loop does not settle: per service, what an operator
//! would look at first — its consumers' lag and its outbox backlog (its `/metrics`), its unsent
//! outbox rows and parked events (its schema), and the warnings and errors its processes logged.
//! CI keeps only the test's output, and the services' logs go with the run's temporary
//! directory, so this is all there is to go on afterwards.

use std::{collections::BTreeMap, path::PathBuf};

use jiaxin_kit::storage::Database;

/// How many distinct warning/error messages, and how many of the last such lines, per service.
const TOP_MESSAGES: usize = 8;
const LAST_LINES: usize = 6;

/// One service's state, as text.
pub async fn service(name: &str, admin_port: u16, db: &Database, logs: &[PathBuf]) -> String {
    let mut out = format!("--- {name}\n");
    out += &format!("  {}\n", backlog(db).await);
    for line in metrics(admin_port) {
        out += &format!("  {line}\n");
    }
    out += &log_summary(logs);
    out
}

/// Unsent outbox rows and parked events, from the service's own tables.
async fn backlog(db: &Database) -> String {
    let unsent = jiaxin_kit::outbox::undelivered(db).await;
    let parked: Result<Vec<(String, String, i64)>, _> = sqlx::query_as(
        "SELECT consumer, topic, CAST(COUNT(*) AS BIGINT) FROM kit_dead_letters WHERE replayed_at IS NULL \
         GROUP BY consumer, topic",
    )
    .fetch_all(db.pool())
    .await;
    let unsent = unsent.map_or_else(|e| format!("? ({e})"), |n| n.to_string());
    let parked = parked.map_or_else(|e| format!("? ({e})"), |rows| format!("{rows:?}"));
    format!("outbox unsent: {unsent}; dead letters (consumer, topic, count): {parked}")
}

/// The lines of the process's `/metrics` about its consumers (lag, partitions assigned, dead
/// letters) and its outbox.
fn metrics(admin_port: u16) -> Vec<String> {
    let body = match crate::processes::http_get(admin_port, "/metrics") {
        Ok(body) => body,
        Err(e) => return vec![format!("(no answer from /metrics on port {admin_port}: {e})")],
    };
    body.lines()
        .filter(|line| {
            [
                "jiaxin_consumer_lag",
                "jiaxin_consumer_assigned_partitions",
                "jiaxin_outbox_backlog",
                "jiaxin_events_dead_lettered_total",
            ]
            .iter()
            .any(|name| line.starts_with(name))
        })
        .map(str::to_owned)
        .collect()
}

/// The service's warnings and errors across all its processes' logs (JSON lines): the most
/// frequent messages with their counts, and the last few lines as written.
fn log_summary(logs: &[PathBuf]) -> String {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut last = Vec::new();
    for path in logs {
        let Ok(text) = std::fs::read_to_string(path) else { continue };
        for line in text.lines() {
            let Ok(entry) = serde_json::from_str::<serde_json::Value>(line) else {
                // A panic message or anything else not written by the logger.
                if !line.trim().is_empty() {
                    *counts.entry(format!("(not JSON) {}", truncate(line))).or_default() += 1;
                    last.push(truncate(line));
                }
                continue;
            };
            let level = entry["level"].as_str().unwrap_or_default();
            if level != "WARN" && level != "ERROR" {
                continue;
            }
            // The services log flattened JSON: the message sits beside the level.
            let message = entry["message"].as_str().unwrap_or_default();
            *counts.entry(format!("{level} {message}")).or_default() += 1;
            last.push(truncate(line));
        }
    }
    let mut frequent: Vec<(String, usize)> = counts.into_iter().collect();
    frequent.sort_by_key(|(_, count)| std::cmp::Reverse(*count));
    let mut out = format!("  {} log files; warnings and errors by message:\n", logs.len());
    for (message, count) in frequent.iter().take(TOP_MESSAGES) {
        out += &format!("    {count:6} × {message}\n");
    }
    out += "  the last of them:\n";
    for line in last.iter().rev().take(LAST_LINES).rev() {
        out += &format!("    {line}\n");
    }
    out
}

fn truncate(line: &str) -> String {
    line.chars().take(400).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The summary counts warnings and errors by message across a service's log files, keeps
    /// what is not JSON (a panic), and leaves out everything below WARN.
    #[test]
    fn log_summary_counts_warnings_and_errors_by_message_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let first = dir.path().join("council-1.log");
        let second = dir.path().join("council-2.log");
        let line = |level: &str, message: &str| format!(r#"{{"level":"{level}","message":"{message}","target":"t"}}"#);
        std::fs::write(
            &first,
            [line("INFO", "started"), line("WARN", "kafka receive failed"), line("WARN", "kafka receive failed")]
                .join("\n"),
        )
        .unwrap();
        std::fs::write(
            &second,
            [line("ERROR", "event parked as dead letter"), "thread 'main' panicked at src/x.rs".into()].join("\n"),
        )
        .unwrap();
        let summary = log_summary(&[first, second]);
        assert!(summary.contains("2 log files"), "{summary}");
        assert!(summary.contains("2 × WARN kafka receive failed"), "{summary}");
        assert!(summary.contains("1 × ERROR event parked as dead letter"), "{summary}");
        assert!(summary.contains("1 × (not JSON) thread 'main' panicked"), "{summary}");
        assert!(!summary.contains("started"), "{summary}");
    }
}
