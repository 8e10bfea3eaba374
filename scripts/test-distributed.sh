#!/usr/bin/env bash
# The distributed suite: the same end-to-end tests against a running cluster (PostgreSQL, a
# Kafka-protocol broker, one process per service; scripts/dev-cluster.sh), plus the store, bus
# and process tests that need PostgreSQL and a broker of their own namespace. Starts the cluster
# itself and stops it afterwards, leaving nothing running.
set -euo pipefail
cd "$(dirname "$0")/.."
export JIAXIN_CLUSTER_DIR="${JIAXIN_CLUSTER_DIR:-$(mktemp -d /tmp/jiaxin-test-cluster.XXXXXX)}"
cleanup() { scripts/dev-cluster.sh stop >/dev/null 2>&1 || true; rm -rf "$JIAXIN_CLUSTER_DIR"; }
trap cleanup EXIT
scripts/dev-cluster.sh start >&2
# shellcheck disable=SC1091
source "$JIAXIN_CLUSTER_DIR/cluster.env"
if command -v cargo-nextest >/dev/null 2>&1; then
  # Integration tests only (unit tests have no I/O and ran already); ignored ones included: they
  # are the tests that need PostgreSQL and a broker.
  cargo nextest run --workspace --locked --no-fail-fast -E 'kind(test)' --run-ignored all "$@"
else
  cargo test --workspace --locked --no-fail-fast --tests "$@" -- --include-ignored
fi
