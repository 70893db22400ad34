#!/usr/bin/env bash
# Contract fuzzing of the REST API from its own OpenAPI document (docs/testing.md).
#
# Starts the debug `parlor` binary on a free port with a fresh data directory (SQLite, then
# PostgreSQL when PARLOR_FUZZ_POSTGRES_URL or the default server answers), registers a user, and
# runs schemathesis with the checks not_a_server_error, status_code_conformance,
# content_type_conformance and response_schema_conformance. Exits non-zero on any failure, and on
# anything missing: it never skips.
#
#   PARLOR_BIN                 the binary to fuzz (default: build and use target/debug/parlor)
#   FUZZ_EXAMPLES              examples per operation (default 40)
#   PARLOR_FUZZ_POSTGRES_URL   an admin URL of a PostgreSQL server, or "none" to fuzz SQLite only
#                              (default postgres://postgres@127.0.0.1:5432/postgres)
set -euo pipefail
cd "$(dirname "$0")/.."

EXAMPLES="${FUZZ_EXAMPLES:-40}"
PG_ADMIN="${PARLOR_FUZZ_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance

if ! command -v schemathesis >/dev/null 2>&1; then
    echo "schemathesis is missing: installing it (python3 -m pip install schemathesis)"
    python3 -m pip install --quiet "schemathesis>=4.32,<5" || {
        echo "FAILED: schemathesis could not be installed; install it with: python3 -m pip install schemathesis" >&2
        exit 1
    }
fi
schemathesis --version

if [ -z "${PARLOR_BIN:-}" ]; then
    export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parlor-target}"
    cargo build -p parlor --locked
    PARLOR_BIN="$CARGO_TARGET_DIR/debug/parlor"
fi
[ -x "$PARLOR_BIN" ] || { echo "FAILED: no parlor binary at $PARLOR_BIN" >&2; exit 1; }

WORK="$(mktemp -d)"
SERVER_PID=""
PG_DB=""
cleanup() {
    if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
    if [ -n "$PG_DB" ]; then psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# Starts the server with extra flags; sets SERVER_PID and BASE.
start() {
    local log="$WORK/server-$1.log"; shift
    # Rate limits raised for the run: with the defaults (1 auth call a second, 10 sends) 429s
    # would answer most of the generated calls and hide what lies behind them.
    env -u PARLOR_DATABASE_URL RUST_LOG=info "$PARLOR_BIN" serve --listen 127.0.0.1:0 --data-dir "$WORK/data-$RANDOM" \
        --auth-rate 100000 --auth-burst 100000 --send-rate 100000 --send-burst 100000 "$@" >"$log" 2>&1 &
    SERVER_PID=$!
    local addr=""
    for _ in $(seq 1 200); do
        addr="$(grep -o 'listening on [0-9.:]*' "$log" | head -1 | cut -d' ' -f3 || true)"
        [ -n "$addr" ] && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$log" >&2; echo "FAILED: the server exited" >&2; exit 1; }
        sleep 0.1
    done
    [ -n "$addr" ] || { cat "$log" >&2; echo "FAILED: the server never listened" >&2; exit 1; }
    BASE="http://$addr"
    for _ in $(seq 1 100); do
        curl -fsS "$BASE/readyz" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "FAILED: the server never became ready" >&2
    exit 1
}

stop() {
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# A new user's access token.
token() {
    curl -fsS -X POST "$BASE/api/v1/auth/register" -H 'content-type: application/json' \
        -d "{\"username\":\"$1\",\"password\":\"fuzz-password-$1\"}" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}

# schemathesis runs in the temporary directory: it keeps a cache of crashes where it runs.
st() { (cd "$WORK" && schemathesis "$@"); }

# schemathesis against the running server. Two passes: every operation but the two that end the
# caller's own session (logout, ending a session), whose success would leave the rest of the run
# with a dead token; then those two, with a token of their own.
fuzz() {
    local name="$1" failed=0 tok
    tok="$(token "fuzzer")"
    st run "$BASE/api/v1/openapi.json" --url "$BASE" \
        -H "Authorization: Bearer $tok" --checks "$CHECKS" --max-examples "$EXAMPLES" \
        --exclude-path /api/v1/auth/logout --exclude-path '/api/v1/auth/sessions/{id}' \
        --no-color --output-truncate false --seed "${FUZZ_SEED:-20261122}" --generation-allow-x00 true --generation-database none \
        --report junit --report-junit-path "$WORK/junit-$name.xml" || failed=1
    tok="$(token "ender")"
    st run "$BASE/api/v1/openapi.json" --url "$BASE" \
        -H "Authorization: Bearer $tok" --checks "$CHECKS" --max-examples "$EXAMPLES" \
        --include-path /api/v1/auth/logout --include-path '/api/v1/auth/sessions/{id}' \
        --no-color --output-truncate false --seed "${FUZZ_SEED:-20261122}" --generation-database none || failed=1
    if grep -q 'status=5' "$WORK/server-$name.log"; then
        echo "FAILED: the server answered 5xx ($name):" >&2
        grep 'status=5' "$WORK/server-$name.log" | head -20 >&2
        failed=1
    fi
    return "$failed"
}

status=0
echo "== schemathesis: SQLite"
start sqlite
fuzz sqlite || status=1
stop

if [ "$PG_ADMIN" != "none" ]; then
    echo "== schemathesis: PostgreSQL"
    command -v psql >/dev/null || { echo "FAILED: psql is missing (or set PARLOR_FUZZ_POSTGRES_URL=none)" >&2; exit 1; }
    PG_DB="parlor_fuzz_$$_$RANDOM"
    psql "$PG_ADMIN" -qc "CREATE DATABASE $PG_DB" || { echo "FAILED: PostgreSQL at $PG_ADMIN" >&2; exit 1; }
    start postgres --database-url "${PG_ADMIN%/*}/$PG_DB"
    fuzz postgres || status=1
    stop
fi

if [ "$status" -ne 0 ]; then
    echo "FAILED: contract fuzzing found failures (above)" >&2
    exit 1
fi
echo "contract fuzzing: no failures"
