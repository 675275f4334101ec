#!/usr/bin/env bash
# Builds the Go example into a Kassa plugin component:
#   build.sh OUT.wasm ADAPTER.wasm GO_PKG_DIR
# with on PATH: go (1.25 or later), wit-bindgen (wit-bindgen-cli 0.63) and wasm-tools.
# ADAPTER.wasm is wasmtime's wasi_snapshot_preview1.reactor.wasm. GO_PKG_DIR is a copy
# of go.bytecodealliance.org/pkg (the Go side of the generated bindings), used
# instead of downloading that module; leave it empty where the Go module proxy is
# reachable.
set -euo pipefail
out=$(realpath -m "$1")
adapter=$(realpath "$2")
pkg=${3:-}
here=$(cd "$(dirname "$0")" && pwd)
wit="$here/../../wit"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# The bindings: go.mod, the export's entry point, and a package per interface.
wit-bindgen go -w fulfillment "$wit" 2>&1 >/dev/null | { grep -v '^Generating' || true; } >&2
mkdir -p export_wit_world
cp "$here/keygen.go" export_wit_world/
if [ -n "$pkg" ]; then
  cp -r "$pkg" gopkg
  printf '\nreplace go.bytecodealliance.org/pkg => ./gopkg\n' >>go.mod
fi
GOOS=wasip1 GOARCH=wasm go build -o core.wasm -buildmode=c-shared -ldflags=-checklinkname=0
wasm-tools component embed -w fulfillment "$wit" core.wasm -o embedded.wasm
wasm-tools component new --adapt wasi_snapshot_preview1="$adapter" embedded.wasm -o "$out"
