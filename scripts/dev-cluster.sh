#!/usr/bin/env bash
# A local distributed jiaxin: PostgreSQL, a Kafka-protocol broker (tansu) and one
# `jiaxin serve --service <name>` process per service, all on 127.0.0.1.
#
#   scripts/dev-cluster.sh          start, print where everything listens, stop all on Ctrl-C
#   scripts/dev-cluster.sh start    start in the background; writes $dir/cluster.env for tests
#   scripts/dev-cluster.sh stop     stop the services, the broker and PostgreSQL
#
# The root of the org tree is a city (淮安市), so each test of the distributed suite can make a
# county of its own. Personal-data key and admin password are generated into $dir once.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir="${JIAXIN_CLUSTER_DIR:-/tmp/jiaxin-cluster}"
# Fixed ports below Linux's ephemeral range (32768–60999), so no outgoing connection can hold
# one of them first.
base_port="${JIAXIN_CLUSTER_PORT:-21061}"
# Three partitions a topic, not the services' production default of twelve: the test broker
# (tansu) spends CPU on every partition a consumer polls, and at twelve an idle cluster's polling
# alone kept it near a full core (docs/benchmarks.md, distributed mode). Override to measure.
export JIAXIN_KAFKA_PARTITIONS="${JIAXIN_KAFKA_PARTITIONS:-3}"
bin="${JIAXIN_BIN:-$root/target/debug/jiaxin}"

services() { "$bin" services; }

listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

start() {
  mkdir -p "$dir"
  if [ -z "${JIAXIN_BIN:-}" ]; then
    # Run a copy: a later cargo build must not swap the file under running processes.
    (cd "$root" && cargo build --quiet --bin jiaxin)
    mkdir -p "$dir/bin"
    cp "$root/target/debug/jiaxin" "$dir/bin/jiaxin"
    bin="$dir/bin/jiaxin"
  fi
  [ -s "$dir/field.key" ] || head -c 32 /dev/urandom | base64 >"$dir/field.key"
  [ -s "$dir/admin.password" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$dir/admin.password"
  # A fresh schema and topic namespace per cluster directory: its data, its bootstrap.
  [ -s "$dir/prefix" ] || echo "c$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')_" >"$dir/prefix"
  local prefix pg broker identity_url
  prefix=$(cat "$dir/prefix")
  pg=$("$root/scripts/postgres.sh" start)
  broker=$("$root/scripts/broker.sh" start)
  identity_url="http://127.0.0.1:$base_port"
  local i=0
  : >"$dir/listening"
  : >"$dir/endpoints.env"
  for service in $(services); do
    local port=$((base_port + i)) metrics=$((base_port + 100 + i))
    if [ -s "$dir/$service.pid" ] && kill -0 "$(cat "$dir/$service.pid")" 2>/dev/null; then
      echo "$service already running" >&2
    else
      JIAXIN_FIELD_KEY="$(cat "$dir/field.key")" \
      JIAXIN_BOOTSTRAP_ADMIN_PASSWORD="$(cat "$dir/admin.password")" \
      nohup "$bin" serve --service "$service" \
        --grpc-listen "127.0.0.1:$port" --admin-listen "127.0.0.1:$metrics" \
        --database-url "$pg" --database-schema-prefix "$prefix" \
        --kafka-brokers "$broker" --kafka-topic-prefix "${prefix%_}." \
        --peer "identity=$identity_url" \
        --bootstrap-org-kind city --bootstrap-org-name 淮安市 --bootstrap-org-code 320800 \
        --data-dir "$dir/data-$service" --log-format json >>"$dir/$service.log" 2>&1 &
      echo $! >"$dir/$service.pid"
    fi
    for _ in $(seq 1 300); do
      listening "$port" && break
      kill -0 "$(cat "$dir/$service.pid")" 2>/dev/null || { echo "$service exited; see $dir/$service.log" >&2; tail -n 20 "$dir/$service.log" >&2; exit 1; }
      sleep 0.2
    done
    listening "$port" || { echo "$service did not start; see $dir/$service.log" >&2; exit 1; }
    printf '%-10s grpc 127.0.0.1:%s   metrics http://127.0.0.1:%s/metrics\n' "$service" "$port" "$metrics" >>"$dir/listening"
    echo "export JIAXIN_TEST_ENDPOINT_$(echo "$service" | tr '[:lower:]' '[:upper:]')=http://127.0.0.1:$port" >>"$dir/endpoints.env"
    i=$((i + 1))
  done
  cat >"$dir/cluster.env" <<ENV
export JIAXIN_TEST_CLUSTER=$identity_url
export JIAXIN_TEST_CLUSTER_ADMIN_PASSWORD=$(cat "$dir/admin.password")
export JIAXIN_TEST_FIELD_KEY=$(cat "$dir/field.key")
export JIAXIN_TEST_DATABASE_URL=$pg
export JIAXIN_TEST_PG_DIR=${JIAXIN_PG_DIR:-/tmp/jiaxin-pg-${JIAXIN_PG_PORT:-25432}}
export JIAXIN_TEST_DATABASE_SCHEMA_PREFIX=$prefix
export JIAXIN_TEST_BUS=kafka://$broker
export JIAXIN_TEST_KAFKA_TOPIC_PREFIX=${prefix%_}.
ENV
  cat "$dir/endpoints.env" >>"$dir/cluster.env"
}

print() {
  echo "jiaxin 分布式集群 / distributed cluster"
  echo "  PostgreSQL  $(grep DATABASE_URL "$dir/cluster.env" | cut -d= -f2-)"
  echo "  broker      $(grep TEST_BUS "$dir/cluster.env" | cut -d= -f2-)"
  sed 's/^/  /' "$dir/listening"
  echo "  管理员 / admin: admin / $(cat "$dir/admin.password")"
  echo "  日志 / logs: $dir/*.log"
}

stop() {
  for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
  done
  for pidfile in "$dir"/*.pid; do
    [ -e "$pidfile" ] || continue
    for _ in $(seq 1 100); do kill -0 "$(cat "$pidfile")" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
  done
  "$root/scripts/broker.sh" stop
  "$root/scripts/postgres.sh" stop
}

case "${1:-run}" in
  run)
    start
    print
    echo "按 Ctrl-C 停止 / Ctrl-C stops everything"
    trap 'stop; exit 0' INT TERM
    while sleep 3600; do :; done
    ;;
  start) start; print ;;
  stop) stop ;;
  *) echo "usage: $0 [run|start|stop]" >&2; exit 2 ;;
esac
