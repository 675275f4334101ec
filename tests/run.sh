#!/usr/bin/env bash
# Runs Kassa's whole test suite, every test on SQLite and on PostgreSQL.
# On a fresh machine it installs what the tests need first (as root, with apt-get):
# PostgreSQL. It starts a throwaway PostgreSQL server of its own under target/ and
# stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "== installing PostgreSQL from Debian's packages"
  if [ "$(id -u)" != 0 ]; then
    echo "PostgreSQL is missing and installing it needs root (apt-get)." >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# A private cluster: its own directory, port and socket, trusted local connections.
pg_dir="$root/target/test-postgres"
pg_port=${KASSA_TEST_PG_PORT:-54329}
run_as=()
if [ "$(id -u)" = 0 ]; then run_as=(runuser -u postgres --); fi
rm -rf "$pg_dir"
mkdir -p "$pg_dir"
if [ "$(id -u)" = 0 ]; then chown postgres "$pg_dir"; fi
"${run_as[@]}" "$pg_bin/initdb" -D "$pg_dir/data" -U kassa --auth=trust --no-sync -E UTF8 >/dev/null
"${run_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" start >/dev/null
stop_pg() { "${run_as[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true; }
trap stop_pg EXIT
export KASSA_TEST_POSTGRES_URL="postgres://kassa@127.0.0.1:$pg_port/postgres"

echo "== cargo test (SQLite and PostgreSQL)"
cargo test --workspace --all-targets "$@"
