#!/usr/bin/env bash
# The test command of the README: the whole suite in both modes.
#   1. embedded: every unit, store, bus and end-to-end test on SQLite and the in-process bus;
#   2. distributed: the same end-to-end tests against PostgreSQL, a Kafka-protocol broker and one
#      process per service (scripts/test-distributed.sh starts and stops them);
#   3. the crash campaign, alone (scripts/test-campaign.sh).
# PostgreSQL's server comes from the machine (apt-get installs it when missing); the broker,
# tansu, is built once with cargo install (~15 minutes the first time). JIAXIN_TEST_EMBEDDED_ONLY=1
# skips step 2 for a quick run — and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "==> embedded suite" >&2
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace --locked --no-fail-fast "$@"
else
  cargo test --workspace --locked --no-fail-fast "$@"
fi
if [ "${JIAXIN_TEST_EMBEDDED_ONLY:-}" = 1 ]; then
  echo "==> distributed suite SKIPPED (JIAXIN_TEST_EMBEDDED_ONLY=1); run scripts/test-distributed.sh" >&2
  exit 0
fi
echo "==> distributed suite" >&2
scripts/test-distributed.sh "$@"
# The crash campaign needs the machine to itself (see the script); a filtered run skips it.
if [ "$#" -eq 0 ]; then
  echo "==> crash campaign (distributed, SIGKILLs, broker restarts, terminated connections)" >&2
  scripts/test-campaign.sh
fi
