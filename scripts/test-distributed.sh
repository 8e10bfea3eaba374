#!/usr/bin/env bash
# The distributed suite: the same end-to-end tests against a running cluster (PostgreSQL, a
# Kafka-protocol broker, one process per service; scripts/dev-cluster.sh), plus the store, bus
# and process tests that need PostgreSQL and a broker of their own namespace. Starts the cluster
# itself and stops it afterwards, leaving nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
export JIAXIN_CLUSTER_DIR="${JIAXIN_CLUSTER_DIR:-$(mktemp -d /tmp/jiaxin-test-cluster.XXXXXX)}"
# A broker of this run's own, started empty: every test makes topics of its own namespace, and
# tansu grows slower with every topic it holds, so a broker kept from earlier runs made later runs
# stall (librdkafka request timeouts for minutes in a local CI run on a machine's tenth suite).
export JIAXIN_BROKER_DIR="${JIAXIN_BROKER_DIR:-$JIAXIN_CLUSTER_DIR/broker}"
cleanup() {
  status=$?
  scripts/dev-cluster.sh stop >/dev/null 2>&1 || true
  if [ "$status" -eq 0 ]; then
    rm -rf "$JIAXIN_CLUSTER_DIR"
  else
    echo "distributed suite failed; cluster logs kept in $JIAXIN_CLUSTER_DIR:" >&2
    for log in "$JIAXIN_CLUSTER_DIR"/*.log; do
      echo "--- $log (last lines)" >&2
      grep -v '"level":"INFO"' "$log" | tail -n 15 >&2 || true
    done
  fi
}
trap cleanup EXIT
# Build the tests first: that build also produces the jiaxin binary the cluster runs, so the
# cluster and the tests use one build and nothing rewrites the binary under running processes.
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-run
else
  cargo test --workspace --locked --no-run
fi
mkdir -p "$JIAXIN_CLUSTER_DIR/bin"
cp target/debug/jiaxin "$JIAXIN_CLUSTER_DIR/bin/jiaxin"
JIAXIN_BIN="$JIAXIN_CLUSTER_DIR/bin/jiaxin" scripts/dev-cluster.sh start >&2
# shellcheck disable=SC1091
source "$JIAXIN_CLUSTER_DIR/cluster.env"
if command -v cargo-nextest >/dev/null 2>&1; then
  # Integration tests only (unit tests have no I/O and ran already); ignored ones included: they
  # are the tests that need PostgreSQL and a broker.
  # The crash campaign runs on its own afterwards (scripts/test-campaign.sh).
  cargo nextest run --workspace --locked --no-fail-fast -E 'kind(test) and not binary(campaign)' --run-ignored all "$@"
else
  cargo test --workspace --locked --no-fail-fast --tests "$@" -- --include-ignored --skip the_whole_loop
fi
