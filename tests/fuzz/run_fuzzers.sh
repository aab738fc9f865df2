#!/usr/bin/env bash
# Runs every fuzz harness of a build for a bounded time and reports, per harness, the
# executions, the new coverage units and whether anything was found (docs/fuzzing.md).
#   tests/fuzz/run_fuzzers.sh BUILD_DIR SECONDS [HARNESS...]
# BUILD_DIR is a tree configured with -DSTRATA_BUILD_FUZZERS=ON and built (target
# strata_fuzzers); harnesses default to all of BUILD_DIR/fuzz/*_fuzz. Each runs over its
# seed corpus (tests/fuzz/corpus/<name>, read only) with a fresh output corpus, up to
# nproc at a time. Crashes, leaks, timeouts and out-of-memory inputs are kept in
# BUILD_DIR/fuzz-out/<name>/; the exit status is 1 when any harness found something.
set -euo pipefail

if (($# < 2)); then
  echo "usage: $0 BUILD_DIR SECONDS [HARNESS...]" >&2
  exit 2
fi
BUILD="$(cd "$1" && pwd)"
SECONDS_EACH="$2"
shift 2
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="$BUILD/fuzz-out"
JOBS="${FUZZ_JOBS:-$(nproc)}"

harnesses=("$@")
if ((${#harnesses[@]} == 0)); then
  for bin in "$BUILD"/fuzz/*_fuzz; do
    [[ -x "$bin" ]] && harnesses+=("$(basename "$bin" _fuzz)")
  done
fi
if ((${#harnesses[@]} == 0)); then
  echo "run_fuzzers: no harness in $BUILD/fuzz (build the strata_fuzzers target)" >&2
  exit 2
fi

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

# run_one NAME: the fuzzer's log goes to OUT/NAME/log.
run_one() {
  local name="$1" dir="$OUT/$1"
  rm -rf "$dir"
  mkdir -p "$dir/corpus"
  local args=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048
              -print_final_stats=1 -artifact_prefix="$dir/")
  local rc=0
  "$BUILD/fuzz/${name}_fuzz" "${args[@]}" "$dir/corpus" "$HERE/corpus/$name" \
    >"$dir/log" 2>&1 || rc=$?
  echo "$rc" >"$dir/rc"
}

running=0
for name in "${harnesses[@]}"; do
  if [[ ! -x "$BUILD/fuzz/${name}_fuzz" ]]; then
    echo "run_fuzzers: $BUILD/fuzz/${name}_fuzz is not built" >&2
    exit 2
  fi
  run_one "$name" &
  if ((++running >= JOBS)); then
    wait -n
    ((running--))
  fi
done
wait

failed=0
printf '%-18s %12s %10s  %s\n' harness executions new_units result
for name in "${harnesses[@]}"; do
  dir="$OUT/$name"
  execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)"
  units="$(sed -n 's/^stat::new_units_added: *//p' "$dir/log" | tail -1)"
  found="$(find "$dir" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o \
    -name 'timeout-*' -o -name 'oom-*' \) | sort | tr '\n' ' ')"
  result="nothing found"
  if [[ -n "$found" || "$(cat "$dir/rc")" != 0 ]]; then
    result="FOUND (exit $(cat "$dir/rc")): ${found:-see $dir/log}"
    failed=1
  fi
  printf '%-18s %12s %10s  %s\n' "$name" "${execs:-?}" "${units:-?}" "$result"
done
if ((failed)); then
  echo "run_fuzzers: findings above; logs and inputs in $OUT" >&2
  for name in "${harnesses[@]}"; do
    if [[ "$(cat "$OUT/$name/rc")" != 0 ]]; then
      echo "--- $name (tail of $OUT/$name/log)" >&2
      tail -40 "$OUT/$name/log" >&2
    fi
  done
fi
exit "$failed"
