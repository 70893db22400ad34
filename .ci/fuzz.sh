#!/usr/bin/env bash
# Runs every libFuzzer target of fuzz/ for the given number of seconds each (20 in CI; 600 for a
# long run), starting from the committed corpus. New inputs and any crash go to a scratch
# directory, so the clone stays clean; a finding fails the run and is left there to reproduce
# (`cargo fuzz run <target> <file>`). Only the stable toolchain is needed: RUSTC_BOOTSTRAP lets
# cargo-fuzz pass the unstable flags it needs (-Zsanitizer, ...). See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-20}"
shift || true
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/parlor-target}"
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
# cargo fuzz has no --locked: check that fuzz/Cargo.lock needs no change first.
cargo metadata --locked --format-version 1 --manifest-path fuzz/Cargo.toml >/dev/null

targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
fi
scratch="$(mktemp -d)"
cargo fuzz build --fuzz-dir fuzz
for t in "${targets[@]}"; do
    dict=()
    case "$t" in
        ws_frame | rest_bodies) dict=(-dict=fuzz/dicts/json.dict) ;;
        render) dict=(-dict=fuzz/dicts/markdown.dict) ;;
    esac
    mkdir -p "$scratch/$t/new" "$scratch/$t/artifacts"
    echo "-- $t (${seconds} s; findings in $scratch/$t/artifacts)"
    log="$scratch/$t/log"
    if ! cargo fuzz run --fuzz-dir fuzz "$t" "$scratch/$t/new" "fuzz/corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -print_final_stats=1 "${dict[@]}" \
        -artifact_prefix="$scratch/$t/artifacts/" >"$log" 2>&1; then
        tail -n 60 "$log"
        echo "fuzz target $t found something: $scratch/$t/artifacts"
        exit 1
    fi
    grep -E '^(Done |stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log" || true
    grep -E '^#[0-9]+ +DONE' "$log" || true
done
rm -rf "$scratch"
