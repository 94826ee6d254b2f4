#!/usr/bin/env bash
# Bounded fuzzing for CI: builds and runs every cargo-fuzz target of the repository
# (parser-workers/fuzz: http1 http2 grpc postgres tls; probe/fuzz: pcap) for FUZZ_SECONDS each,
# starting from the committed seeds in parser-workers/fuzz/corpus/<target>/. Fails when a target
# crashes (panic, sanitizer report, leak, timeout or OOM) and prints the reproducer.
#
# Usage: parser-workers/fuzz/run.sh [TARGET ...]        (default: every target)
# Env:   FUZZ_SECONDS     seconds per target (default 20)
#        FUZZ_TARGET_DIR  cargo target dir (default /var/cache/chainwatch/target-fuzz)
#        FUZZ_TOOLCHAIN   e.g. "nightly" to use `cargo +nightly`; by default the active (stable)
#                         toolchain is used with RUSTC_BOOTSTRAP=1, which lets stable rustc accept
#                         the -Z flags cargo-fuzz passes (-Zsanitizer=address, sancov options).
#        FUZZ_RSS_MB      libFuzzer memory limit per target (default 2048)
#        FUZZ_CRATES      cargo-fuzz crate dirs to run (default: the two above)
#
# On a crash it prints the reproducer's path (under $FUZZ_TARGET_DIR/work/artifacts/<target>/),
# its base64 when small, and the exact `cargo fuzz run … <target> <file>` that replays it.
# New corpus inputs accumulate in $FUZZ_TARGET_DIR/work/corpus/<target>/ across runs.
# (cargo fuzz creates empty fuzz/artifacts/<target>/ folders beside the crates; git ignores them.)
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
FUZZ_TARGET_DIR="${FUZZ_TARGET_DIR:-/var/cache/chainwatch/target-fuzz}"
FUZZ_RSS_MB="${FUZZ_RSS_MB:-2048}"
SEEDS="$ROOT/parser-workers/fuzz/corpus"
WORK="$FUZZ_TARGET_DIR/work"
# The cargo-fuzz crates (FUZZ_CRATES, space-separated, overrides: used to test this script).
read -r -a CRATES <<<"${FUZZ_CRATES:-$ROOT/parser-workers/fuzz $ROOT/probe/fuzz}"

if [ -n "${FUZZ_TOOLCHAIN:-}" ]; then
  CARGO=(cargo "+$FUZZ_TOOLCHAIN")
else
  CARGO=(cargo)
  export RUSTC_BOOTSTRAP=1
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

wanted=("$@")
is_wanted() {
  [ "${#wanted[@]}" -eq 0 ] && return 0
  local w
  for w in "${wanted[@]}"; do [ "$w" = "$1" ] && return 0; done
  return 1
}

# -O: optimised (fast enough to find things in seconds); -a: with debug assertions, so integer
# overflows and debug_assert!s are crashes too. Both build and run use the same flags.
FLAGS=(-O -a --target-dir "$FUZZ_TARGET_DIR")

failed=()
summary=()
start_all=$(date +%s)
for crate in "${CRATES[@]}"; do
  name="$(basename "$(dirname "$crate")")"
  targets=()
  for t in $("${CARGO[@]}" fuzz list --fuzz-dir "$crate"); do
    is_wanted "$t" && targets+=("$t")
  done
  [ "${#targets[@]}" -eq 0 ] && continue
  echo "fuzz: building $name/fuzz (${targets[*]})"
  t0=$(date +%s)
  (cd "$(dirname "$crate")" && "${CARGO[@]}" fuzz build "${FLAGS[@]}" --fuzz-dir "$crate")
  echo "fuzz: built $name/fuzz in $(( $(date +%s) - t0 )) s"
  for t in "${targets[@]}"; do
    corpus="$WORK/corpus/$t"
    artifacts="$WORK/artifacts/$t"
    log="$WORK/logs/$t.log"
    mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
    rm -f "$artifacts"/*
    seed_args=()
    [ -d "$SEEDS/$t" ] && seed_args=("$SEEDS/$t")
    echo "fuzz: running $t for ${FUZZ_SECONDS}s"
    set +e
    # The working corpus comes first: libFuzzer writes new inputs there, never into the seeds.
    (cd "$(dirname "$crate")" && "${CARGO[@]}" fuzz run "${FLAGS[@]}" --fuzz-dir "$crate" "$t" \
      "$corpus" "${seed_args[@]}" -- \
      -max_total_time="$FUZZ_SECONDS" -timeout=20 -rss_limit_mb="$FUZZ_RSS_MB" \
      -artifact_prefix="$artifacts/" -print_final_stats=1) >"$log" 2>&1
    rc=$?
    set -e
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -Eo '#[0-9]+.*cov: [0-9]+' "$log" | tail -1 | grep -Eo 'cov: [0-9]+' || true)
    if [ "$rc" -ne 0 ]; then
      failed+=("$t")
      summary+=("$t: FAILED (exit $rc), ${execs:-?} execs")
      echo "fuzz: $t FAILED (exit $rc); last lines of $log:"
      tail -n 40 "$log"
      for a in "$artifacts"/*; do
        [ -e "$a" ] || continue
        echo "fuzz: reproducer: $a ($(wc -c <"$a") bytes)"
        if [ "$(wc -c <"$a")" -le 4096 ]; then
          echo "      base64: $(base64 -w0 "$a")"
        fi
        echo "      reproduce: (cd $(dirname "$crate") && ${RUSTC_BOOTSTRAP:+RUSTC_BOOTSTRAP=1 }${CARGO[*]} fuzz run ${FLAGS[*]} --fuzz-dir $crate $t $a)"
      done
    else
      summary+=("$t: ok, ${execs:-?} execs in ${FUZZ_SECONDS}s, ${cov:-cov: ?}, corpus $(ls "$corpus" | wc -l) inputs")
    fi
  done
done

echo "fuzz: summary ($(( $(date +%s) - start_all )) s in all)"
for line in "${summary[@]}"; do echo "  $line"; done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "fuzz: crashing targets: ${failed[*]}"
  exit 1
fi
