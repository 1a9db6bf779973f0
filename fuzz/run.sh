#!/usr/bin/env bash
# Build every cargo-fuzz target and run each for a bounded time, seeded from examples/ and
# fuzz/seeds/. Usage: bash fuzz/run.sh [SECONDS_PER_TARGET] (default 25).
#
# Stable Rust is enough: cargo-fuzz's compiler flags need RUSTC_BOOTSTRAP=1. No sanitizer (the
# code under test is safe Rust: the targets look for panics and broken properties), release
# build with debug assertions and overflow checks. cargo-fuzz is installed if missing. A crash
# fails the run; libFuzzer prints the input and saves it under fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-25}"
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
target_dir="${SLOTBRIDGE_FUZZ_TARGET_DIR:-target}"
flags=(-s none --debug-assertions --target-dir "$target_dir")
cargo fuzz build "${flags[@]}"

corpus="$(mktemp -d)"
trap 'rm -rf "$corpus"' EXIT
for t in pms_responses market_payloads snapshot matcher; do
    mkdir -p "$corpus/$t"
    if [ -d "seeds/$t" ]; then cp seeds/"$t"/* "$corpus/$t/"; fi
done
cp ../examples/*.json "$corpus/snapshot/"
for booking in ../examples/matching/booking*.json; do
    printf '{"booking": %s, "patients": %s}\n' "$(cat "$booking")" \
        "$(cat ../examples/matching/patients.json)" >"$corpus/matcher/$(basename "$booking")"
done

log="$corpus/run.log"
for t in pms_responses market_payloads snapshot matcher; do
    echo "fuzz: $t for ${seconds}s"
    status=0
    cargo fuzz run "${flags[@]}" "$t" "$corpus/$t" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        >"$log" 2>&1 || status=$?
    if [ "$status" -ne 0 ]; then
        tail -n 80 "$log"
        echo "fuzz: $t failed (status $status); the input is under fuzz/artifacts/$t/"
        exit "$status"
    fi
    grep -E '^(INFO: seed corpus|stat::number_of_executed_units|stat::new_units_added|Done )' "$log" || true
done
echo "fuzz: every target ran ${seconds}s without a crash"
