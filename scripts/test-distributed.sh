#!/usr/bin/env bash
# The distributed suite: the same end-to-end, store and bus tests, on PostgreSQL (a schema per
# service and test) and a real Kafka-protocol broker (a topic prefix and consumer groups per test).
# Starts both servers itself and stops them afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
pg_url=$(scripts/postgres.sh start)
broker=$(scripts/broker.sh start)
cleanup() { scripts/broker.sh stop; scripts/postgres.sh stop; }
trap cleanup EXIT
export JIAXIN_TEST_DATABASE_URL="$pg_url"
export JIAXIN_TEST_BUS="kafka://$broker"
echo "distributed suite: PostgreSQL $pg_url, broker $broker" >&2
if command -v cargo-nextest >/dev/null 2>&1; then
  # Integration tests only (unit tests have no I/O and ran already), ignored ones included: they
  # are the tests that need a broker.
  cargo nextest run --workspace --locked --no-fail-fast -E 'kind(test)' --run-ignored all "$@"
else
  cargo test --workspace --locked --no-fail-fast --tests "$@" -- --include-ignored
fi
