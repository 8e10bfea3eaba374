#!/usr/bin/env bash
# The crash campaign of issue 11 (tests/campaign.rs), on its own: a PostgreSQL and a broker of its
# own and nothing else running beside them, because the test broker (tansu, SQLite storage) is
# the limit on a small machine. 100,000 records, paced over ten minutes, take about sixteen
# (docs/reliability.md). Run after the distributed suite by scripts/test.sh.
#   JIAXIN_CAMPAIGN_RECORDS  records streamed (default 100000)
#   JIAXIN_CAMPAIGN_SEED     reproduces a run (printed by every run)
set -euo pipefail
cd "$(dirname "$0")/.."
export JIAXIN_PG_PORT="${JIAXIN_CAMPAIGN_PG_PORT:-26432}"
export JIAXIN_PG_DIR="/tmp/jiaxin-pg-campaign-$$"
cleanup() {
  scripts/postgres.sh stop >/dev/null 2>&1 || true
  rm -rf "$JIAXIN_PG_DIR"
}
trap cleanup EXIT
url=$(scripts/postgres.sh start)
# The campaign starts its own broker; the harness only wants the variable set.
export JIAXIN_TEST_DATABASE_URL="$url" JIAXIN_TEST_BUS="kafka://127.0.0.1:1"
export JIAXIN_CAMPAIGN_RECORDS="${JIAXIN_CAMPAIGN_RECORDS:-100000}"
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --locked --test campaign --run-ignored only --no-capture
else
  cargo test --locked --test campaign -- --ignored --nocapture
fi
