#!/usr/bin/env bash
# Minimises the corpus of each given target (all when none) after a long run: one input per
# covered edge (libFuzzer's set-cover merge without hit counts, a few hundred files at most),
# plus every named file (hand-written seeds and regression-* inputs of past findings), which
# are always kept. Run from anywhere; needs cargo-fuzz (docs/fuzzing.md).
set -euo pipefail
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
for t in "${targets[@]}"; do
    keep="$(mktemp -d)"
    find "corpus/$t" -type f ! -regex '.*/[0-9a-f]\{40\}' -exec cp {} "$keep/" \;
    cargo fuzz cmin "$t" -- -set_cover_merge=1 -use_counters=0 2>&1 | grep -E 'MERGE-OUTER: [0-9]+ new files' || true
    cp "$keep"/* "corpus/$t/"
    rm -rf "$keep"
    echo "$t: $(find "corpus/$t" -type f | wc -l) files, $(cat "corpus/$t"/* | wc -c) bytes"
done
