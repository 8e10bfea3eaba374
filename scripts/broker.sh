#!/usr/bin/env bash
# Starts (or stops) tansu — an Apache Kafka-compatible broker written in Rust, installed from
# crates.io — for the distributed suite, on 127.0.0.1 only. Its storage is a SQLite file (tansu's
# libSQL engine), so a broker restart keeps every topic, offset and consumer group.
# JIAXIN_BROKER_STORAGE overrides it (e.g. memory://tansu/ for a benchmark cluster, which needs a
# tansu built with the dynostore feature: see docs/benchmarks.md).
#   scripts/broker.sh start   -> prints host:port on stdout
#   scripts/broker.sh stop
#   scripts/broker.sh restart
#   scripts/broker.sh install  -> only builds it
set -euo pipefail
TANSU_VERSION=0.6.0
# Below the ephemeral port range, so no outgoing connection can hold it first.
port="${JIAXIN_BROKER_PORT:-29092}"
dir="${JIAXIN_BROKER_DIR:-/tmp/jiaxin-broker-$port}"
# Outside the work tree, so clean clones on the same machine reuse the (slow) build.
tools="${JIAXIN_TOOLS_DIR:-$HOME/.cache/jiaxin-tools}"
tansu="$tools/bin/tansu"
root="$(cd "$(dirname "$0")/.." && pwd)"

# tansu from crates.io with jiaxin's patches (scripts/tansu/*.patch) applied to its broker crate:
# fixes for faults our suites found in tansu 0.6.0, each explained in its patch. A build is
# reused while the version, features and patches are unchanged (kept beside the binary).
# JIAXIN_TANSU_FEATURES adds storage engines (e.g. libsql,dynostore for memory://).
features="${JIAXIN_TANSU_FEATURES:-libsql}"
patches_hash() { cat "$root"/scripts/tansu/*.patch | sha256sum | cut -c1-16; }

install() {
  local want
  want="$TANSU_VERSION+$(patches_hash) features=$features"
  if [ -x "$tansu" ] && [ "$(cat "$tools/tansu.build" 2>/dev/null)" = "$want" ]; then
    return
  fi
  echo "building tansu $TANSU_VERSION with jiaxin's patches (takes a while once per machine)" >&2
  local build="$tools/tansu-src"
  rm -rf "$build" && mkdir -p "$build/fetch/src"
  # Fetch the published crates through cargo (the registry is the only source we may use).
  cat >"$build/fetch/Cargo.toml" <<TOML
[package]
name = "jiaxin-tansu-fetch"
version = "0.0.0"
edition = "2021"
[dependencies]
tansu = "=$TANSU_VERSION"
TOML
  : >"$build/fetch/src/lib.rs"
  (cd "$build/fetch" && cargo fetch -q >&2)
  local cache
  cache="$(dirname "$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"tansu-$TANSU_VERSION.crate" | head -n 1)")"
  tar xzf "$cache/tansu-$TANSU_VERSION.crate" -C "$build"
  tar xzf "$cache/tansu-broker-$TANSU_VERSION.crate" -C "$build"
  command -v patch >/dev/null 2>&1 || apt-get install -y -qq patch >&2
  for file in "$root"/scripts/tansu/*.patch; do
    patch -s -p1 -d "$build/tansu-broker-$TANSU_VERSION" <"$file"
  done
  printf '\n[patch.crates-io]\ntansu-broker = { path = "../tansu-broker-%s" }\n' "$TANSU_VERSION" \
    >>"$build/tansu-$TANSU_VERSION/Cargo.toml"
  # `cargo build` in the package keeps tansu's published lock file (`cargo install --path` would
  # resolve afresh); the patch changes one entry of it, tansu-broker's source, and no other.
  (cd "$build/tansu-$TANSU_VERSION" && CARGO_TARGET_DIR="$tools/target" cargo build -q --release \
    --features "$features" >&2)
  # Renamed into place: a broker still running the old binary keeps it.
  mkdir -p "$tools/bin"
  cp "$tools/target/release/tansu" "$tansu.new" && mv -f "$tansu.new" "$tansu"
  echo "$want" >"$tools/tansu.build"
  # Only the binary is reused; its build (gigabytes) would sit on a CI machine's disk for the
  # whole run.
  rm -rf "$tools/target" "$build"
}

# tansu 0.6.0's SQLite schema has no index on a record's headers, and it reads each fetched
# record's headers with a join on (topition, offset_id): a scan of every header in the broker per
# record delivered, so a consumer's cost grows with the square of the topics' length. jiaxin's
# events carry headers (event id and type, trace context); at 10,000 campaign records the broker
# held a whole core scanning and consumers' sessions timed out. One index makes the lookup a
# search. Made once the broker has created its schema; a restart keeps it.
index_headers() {
  case "${JIAXIN_BROKER_STORAGE:-sqlite://tansu.db}" in
    sqlite://tansu.db) ;;
    *) return ;;
  esac
  if ! command -v python3 >/dev/null 2>&1; then
    echo "installing python3 (to index the broker's headers)" >&2
    apt-get install -y -qq python3 >&2
  fi
  python3 - "$dir/tansu.db" <<'PY' >&2
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30)
for _ in range(150):
    if db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'header'").fetchone():
        db.execute("CREATE INDEX IF NOT EXISTS jiaxin_header_record ON header (topition, offset_id)")
        db.commit()
        break
    time.sleep(0.2)
else:
    sys.exit("tansu made no header table in 30 s; its schema changed? (scripts/broker.sh)")
PY
}

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  install
  if listening; then
    echo "127.0.0.1:$port"
    return
  fi
  mkdir -p "$dir"
  (
    cd "$dir"
    nohup "$tansu" broker \
      --cluster-id jiaxin-test \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "${JIAXIN_BROKER_STORAGE:-sqlite://tansu.db}" >>"$dir/broker.log" 2>&1 &
    echo $! >"$dir/pid"
  )
  for _ in $(seq 1 150); do
    if listening; then
      index_headers
      echo "127.0.0.1:$port"
      return
    fi
    sleep 0.2
  done
  echo "tansu did not start; see $dir/broker.log" >&2
  tail -n 20 "$dir/broker.log" >&2 || true
  exit 1
}

stop() {
  if [ -s "$dir/pid" ]; then
    local pid
    pid=$(cat "$dir/pid")
    kill "$pid" 2>/dev/null || true
    # Until the process is gone, not only its port: a restart whose start() still found the old
    # process listening would take it for running, and be left with no broker once it exited.
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do listening || break; sleep 0.1; done
    rm -f "$dir/pid"
  fi
}

case "${1:-start}" in
  start) start ;;
  install) install ;;
  stop) stop ;;
  restart) stop; start ;;
  *) echo "usage: $0 start|stop|restart|install" >&2; exit 2 ;;
esac
