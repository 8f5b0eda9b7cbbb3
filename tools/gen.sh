#!/usr/bin/env bash
# Regenerate gen/ (python, ts, go) from proto/. One command: `make gen`.
#
#   GEN_OUT=/some/dir tools/gen.sh   generate into /some/dir/{python,ts,go}
#                                    instead of gen/ (used by the stale check)
#   GEN_GO_BUILD=0 tools/gen.sh      skip the `go build ./...` verification
#
# Deterministic: running it twice gives no diff. Installs what it needs
# (Go plugins into .cache/bin, npm tooling into node_modules, Python plugins
# into .venv) and is fast when they are already there.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# --- pinned tool versions ----------------------------------------------------
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
GRPCIO_TOOLS_VERSION=1.85.1
MYPY_PROTOBUF_VERSION=5.1.0
# gen/go module requirements (go mod tidy resolves the rest into go.sum).
GO_MOD_GO=1.26.0
GO_REQ_PROTOBUF=v1.36.12
GO_REQ_GRPC=v1.85.0
GO_REQ_GENPROTO=v0.0.0-20261110000943-09e21b237f2c
# gen/ts package: runtime dependency range (the generator is pinned in the root
# package.json / package-lock.json).
TS_RUNTIME_RANGE="^2.13.0"

OUT="${GEN_OUT:-$ROOT/gen}"
GO_BUILD="${GEN_GO_BUILD:-1}"

PY="$ROOT/.venv/bin/python"
BUF="$ROOT/.venv/bin/buf"

if ! command -v go >/dev/null && [[ -x /usr/local/go/bin/go ]]; then
  export PATH="/usr/local/go/bin:$PATH"
fi
export BUF_CACHE_DIR="$ROOT/.cache/buf"
export GOPATH="$ROOT/.cache/go"
export GOCACHE="$ROOT/.cache/go-build"
export GOMODCACHE="$ROOT/.cache/go/pkg/mod"
export GOBIN="$ROOT/.cache/bin"
export GOFLAGS=-mod=mod
export GOTOOLCHAIN=local
export npm_config_cache="$ROOT/.cache/npm"

log() { printf 'gen: %s\n' "$*" >&2; }

# --- tools (idempotent) -------------------------------------------------------
ensure_python_tools() {
  if [[ ! -x "$PY" ]]; then
    log "creating .venv"
    python3 -m venv "$ROOT/.venv"
  fi
  if ! "$PY" -c 'import grpc_tools.protoc' 2>/dev/null \
    || [[ ! -x "$ROOT/.venv/bin/protoc-gen-mypy" || ! -x "$ROOT/.venv/bin/protoc-gen-mypy_grpc" || ! -x "$BUF" ]]; then
    log "installing grpcio-tools, mypy-protobuf and buf into .venv"
    "$PY" -m pip install --quiet "grpcio-tools==$GRPCIO_TOOLS_VERSION" \
      "mypy-protobuf==$MYPY_PROTOBUF_VERSION" "buf-bin==1.75.0"
  fi
}

go_plugin_version() { "$1" --version 2>/dev/null | awk '{print $2}'; }

ensure_go_plugins() {
  mkdir -p "$GOBIN"
  if [[ "$(go_plugin_version "$GOBIN/protoc-gen-go")" != "$PROTOC_GEN_GO_VERSION" ]]; then
    log "installing protoc-gen-go $PROTOC_GEN_GO_VERSION"
    go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO_VERSION"
  fi
  # protoc-gen-go-grpc prints "protoc-gen-go-grpc 1.6.2" (no "v").
  if [[ "v$(go_plugin_version "$GOBIN/protoc-gen-go-grpc")" != "$PROTOC_GEN_GO_GRPC_VERSION" ]]; then
    log "installing protoc-gen-go-grpc $PROTOC_GEN_GO_GRPC_VERSION"
    go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC_VERSION"
  fi
}

ensure_node_tools() {
  local want have
  want="$(node -p 'require("./package-lock.json").packages["node_modules/@bufbuild/protoc-gen-es"].version')"
  have="$(node -p 'try { require("./node_modules/@bufbuild/protoc-gen-es/package.json").version } catch { "" }')"
  if [[ "$want" != "$have" || ! -x node_modules/.bin/protoc-gen-es ]]; then
    log "installing npm tooling (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error >&2
  fi
}

ensure_python_tools
ensure_go_plugins
ensure_node_tools

# --- generate into a staging dir, then swap ----------------------------------
STAGE="$(mktemp -d "${TMPDIR:-/tmp}/trade2026-gen.XXXXXX")"
trap 'rm -rf "$STAGE"' EXIT

mapfile -t PROTOS < <(cd proto && find trade -name '*.proto' | LC_ALL=C sort)
if [[ ${#PROTOS[@]} -eq 0 ]]; then
  echo "gen: no .proto files under proto/trade" >&2
  exit 1
fi

log "buf generate (go, ts): ${#PROTOS[@]} files"
"$BUF" generate --output "$STAGE"
# TypeScript for every vendored googleapis file too (not only the imported
# ones): clients need google/rpc/error_details (ErrorInfo, BadRequest) to read
# error details. Go and Python take these from genproto / googleapis-common-protos.
"$BUF" generate third_party/googleapis --output "$STAGE" --template '{
  "version": "v2",
  "plugins": [{"local": "node_modules/.bin/protoc-gen-es", "out": "gen/ts", "strategy": "all",
               "opt": ["target=ts", "import_extension=js"]}]}'
# buf writes to $STAGE/gen/{go,ts}
mv "$STAGE/gen/go" "$STAGE/go"
mv "$STAGE/gen/ts" "$STAGE/ts"
rmdir "$STAGE/gen"

log "grpc_tools.protoc (python)"
mkdir -p "$STAGE/python"
"$PY" -m grpc_tools.protoc \
  -I proto -I third_party/googleapis \
  --plugin=protoc-gen-mypy="$ROOT/.venv/bin/protoc-gen-mypy" \
  --plugin=protoc-gen-mypy_grpc="$ROOT/.venv/bin/protoc-gen-mypy_grpc" \
  --python_out="$STAGE/python" \
  --grpc_python_out="$STAGE/python" \
  --mypy_out=quiet:"$STAGE/python" \
  --mypy_grpc_out=quiet:"$STAGE/python" \
  "${PROTOS[@]}"

# gen/python/trade is a namespace package tree (no __init__.py), importable
# with gen/python on sys.path; google.* comes from googleapis-common-protos.
cat > "$STAGE/python/README.md" <<'MD'
# Generated Python code

Generated by `make gen` (tools/gen.sh) from `proto/`. Do not edit.
Put `gen/python` on `sys.path` (the project's editable install does) and
import e.g. `trade.oms.v1.oms_pb2` / `trade.oms.v1.oms_pb2_grpc`.
MD

# --- TypeScript package --------------------------------------------------------
cat > "$STAGE/ts/package.json" <<JSON
{
  "name": "@trade2026/api",
  "version": "0.0.0",
  "private": true,
  "description": "Generated protobuf-es v2 code for the Trade2026 API (use with @connectrpc/connect-web v2). Generated by make gen; do not edit.",
  "type": "module",
  "sideEffects": false,
  "dependencies": {
    "@bufbuild/protobuf": "$TS_RUNTIME_RANGE"
  }
}
JSON
cat > "$STAGE/ts/tsconfig.json" <<'JSON'
{
  "compilerOptions": {
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "strict": true,
    "noEmit": true,
    "skipLibCheck": true,
    "isolatedModules": true,
    "verbatimModuleSyntax": true
  },
  "include": ["**/*.ts"]
}
JSON

# --- Go module -----------------------------------------------------------------
cat > "$STAGE/go/go.mod" <<MOD
module github.com/trade2026/trade2026/gen/go

go $GO_MOD_GO

require (
	google.golang.org/genproto/googleapis/api $GO_REQ_GENPROTO
	google.golang.org/genproto/googleapis/rpc $GO_REQ_GENPROTO
	google.golang.org/grpc $GO_REQ_GRPC
	google.golang.org/protobuf $GO_REQ_PROTOBUF
)
MOD
log "go mod tidy"
(cd "$STAGE/go" && go mod tidy)
if [[ "$GO_BUILD" == "1" ]]; then
  log "go build ./..."
  (cd "$STAGE/go" && go build ./...)
fi

# --- swap into place -------------------------------------------------------------
mkdir -p "$OUT"
for lang in python ts go; do
  rm -rf "$OUT/$lang"
  mv "$STAGE/$lang" "$OUT/$lang"
done
log "done -> $OUT"
