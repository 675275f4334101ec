#!/usr/bin/env bash
# Runs Kassa's whole test suite, every test on SQLite and on PostgreSQL.
# On a fresh machine it installs what the tests need first (as root, with apt-get):
# PostgreSQL, and for the browser tests Debian's Chromium and tests/browser's npm
# packages (playwright-core, axe-core). It starts a throwaway PostgreSQL server of its
# own under target/ and stops it afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

# apt-get install, as root, running `apt-get update` at most once per run.
apt_updated=
apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "$* is missing and installing it needs root (apt-get)." >&2
    exit 1
  fi
  if [ -z "$apt_updated" ]; then
    apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$pg_bin" ] || [ ! -x "$pg_bin/initdb" ]; then
  echo "== installing PostgreSQL from Debian's packages"
  apt_install postgresql
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi

# Browser tests: Debian's Chromium (no browser downloads here: playwright-core drives
# /usr/bin/chromium) and tests/browser's locked npm packages (playwright-core, and
# axe-core for the accessibility check).
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Chromium from Debian's packages"
  apt_install chromium
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "npm is missing: the browser tests need Node.js 20 or later with npm." >&2
  exit 1
fi
# npm ci leaves node_modules/.package-lock.json behind: reinstall when it is missing
# or older than the committed lock file.
if [ ! -f tests/browser/node_modules/.package-lock.json ] ||
  [ tests/browser/package-lock.json -nt tests/browser/node_modules/.package-lock.json ]; then
  echo "== npm ci (tests/browser)"
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
fi
# kassa-payments' Stripe tests run against a local stand-in of Stripe's API written by
# others (stripe-stateful-mock), from tests/stripe's locked npm packages.
if [ ! -f tests/stripe/node_modules/.package-lock.json ] ||
  [ tests/stripe/package-lock.json -nt tests/stripe/node_modules/.package-lock.json ]; then
  echo "== npm ci (tests/stripe)"
  npm ci --prefix tests/stripe --no-audit --no-fund --loglevel=error >/dev/null
fi
# The webhook tests verify every delivery with the official Standard Webhooks library.
if ! python3 -c "import standardwebhooks" 2>/dev/null; then
  echo "== pip install standardwebhooks"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "standardwebhooks==1.1.0"
fi
# The email tests send to a real SMTP server on loopback (aiosmtpd).
if ! python3 -c "import aiosmtpd" 2>/dev/null; then
  echo "== pip install aiosmtpd"
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore "aiosmtpd==1.4.6"
fi
export KASSA_WEBHOOK_RECEIVER="$root/tests/webhooks/receiver.py"
export KASSA_SMTP_SINK="$root/tests/email/smtp_sink.py"
export KASSA_BROWSER_SCRIPT="$root/tests/browser/checkout.mjs"
export KASSA_STRIPE_STAND_IN="$root/tests/stripe/node_modules/stripe-stateful-mock/dist/cli.js"
export KASSA_CHROMIUM=/usr/bin/chromium

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

# The plugin tests run real WebAssembly components built from plugins/.
if ! rustup target list --installed | grep -qx wasm32-wasip2; then
  echo "== rustup target add wasm32-wasip2"
  rustup target add wasm32-wasip2
fi
echo "== plugins (wasm32-wasip2)"
cargo build --quiet --manifest-path plugins/Cargo.toml --target wasm32-wasip2 --release
export KASSA_PLUGINS_DIR="${CARGO_TARGET_DIR:-$root/plugins/target}/wasm32-wasip2/release"

echo "== cargo test (SQLite and PostgreSQL)"
cargo test --workspace --all-targets "$@"
