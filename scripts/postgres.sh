#!/usr/bin/env bash
# Starts (or stops) a throwaway PostgreSQL for the distributed test suite, on 127.0.0.1 only.
#   scripts/postgres.sh start   -> prints the admin URL on stdout
#   scripts/postgres.sh stop
# Uses the PostgreSQL server binaries of the machine (Debian's postgresql-15 or newer), installing
# them with apt-get when missing. The server refuses to run as root, so it runs as `postgres`.
set -euo pipefail
# Below the ephemeral port range, so no outgoing connection can hold it first.
port="${JIAXIN_PG_PORT:-25432}"
dir="${JIAXIN_PG_DIR:-/tmp/jiaxin-pg-$port}"

bindir() {
  local found
  found=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$found" ]; then
    echo "installing postgresql server binaries" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$found"
}

as_pg() {
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql --shell /bin/bash postgres
    su postgres -s /bin/bash -c "$*"
  else
    bash -c "$*"
  fi
}

case "${1:-start}" in
  start)
    bin=$(bindir)
    if ! "$bin/pg_isready" -q -h 127.0.0.1 -p "$port"; then
      if [ ! -s "$dir/PG_VERSION" ]; then
        rm -rf "$dir"; mkdir -p "$dir"
        [ "$(id -u)" = 0 ] && chown postgres "$dir"
        as_pg "'$bin/initdb' -D '$dir' -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null"
      fi
      # Fast and throwaway: no fsync. Never use these settings for real data.
      as_pg "'$bin/pg_ctl' -D '$dir' -l '$dir/server.log' -w -t 60 \
        -o \"-h 127.0.0.1 -p $port -k /tmp -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300\" start >/dev/null"
    fi
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    ;;
  stop)
    bin=$(bindir)
    if [ -s "$dir/PG_VERSION" ]; then
      as_pg "'$bin/pg_ctl' -D '$dir' -m fast stop >/dev/null" || true
    fi
    ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
