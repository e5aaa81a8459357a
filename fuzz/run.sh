#!/usr/bin/env bash
# make fuzz: every fuzz target (or FUZZ_TARGETS) for FUZZ_SECONDS (default 60) each, with cargo-afl
# (AFL++ built by cargo-afl itself, stable toolchain), from the seeds in fuzz/corpus/<target>/.
# Findings go to target/fuzz/out/<target>/default/{crashes,hangs}; one summary line per target
# (executions, crashes, hangs). Exit status 1 when anything crashed or hung: copy the input to
# fuzz/crashes/<target>/, fix the bug with a unit test, and `cargo test -p fuzz` replays it.
# The layer target needs root (it makes itself a jail: mount namespace, tmpfs, chroot).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-60}
TARGETS=${FUZZ_TARGETS:-config seccomp reference manifest auth layer}
OUT=$PWD/target/fuzz/out
if ! command -v cargo-afl >/dev/null; then
    echo "installing cargo-afl (it builds its AFL++ once)"
    cargo install --locked cargo-afl
fi
# A target dir of its own: the instrumented build must not replace the normal one's artifacts.
# No LTO (the release profile's): it would cost minutes per target and gains a fuzzer little.
CARGO_TARGET_DIR=$PWD/target/fuzz/build CARGO_PROFILE_RELEASE_LTO=false \
    cargo afl build --release -p fuzz --features afl
BIN=$PWD/target/fuzz/build/release
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 \
    AFL_SKIP_CRASHES=0 AFL_FORKSRV_INIT_TMOUT=20000
jail=$OUT/layer-jail
cleanup() { rmdir "$jail" 2>/dev/null || true; }
trap cleanup EXIT
failed=0
for t in $TARGETS; do
    rm -rf "${OUT:?}/$t"
    mkdir -p "$OUT/$t" "$jail"
    log=$OUT/$t.log
    # -V: stop after SECS; -t: a slow input (a big layer) is not a hang below 2 s.
    if ! FUZZ_JAIL=$jail cargo afl fuzz -i "fuzz/corpus/$t" -o "$OUT/$t" -V "$SECS" -t 2000 \
        -- "$BIN/$t" >"$log" 2>&1; then
        echo "$t: afl-fuzz failed, see $log:"; tail -n 20 "$log"; failed=1; continue
    fi
    stats=$OUT/$t/default/fuzzer_stats
    get() { sed -n "s/^$1 *: *//p" "$stats"; }
    crashes=$(get saved_crashes); hangs=$(get saved_hangs)
    echo "$t: $(get execs_done) executions in $(get run_time) s, $(get corpus_count) inputs in the queue, $(get bitmap_cvg) coverage, $crashes crashes, $hangs hangs"
    if [ "$crashes" != 0 ] || [ "$hangs" != 0 ]; then
        ls "$OUT/$t/default/crashes" "$OUT/$t/default/hangs" | sed 's/^/    /'
        failed=1
    fi
done
exit $failed
