#!/usr/bin/env bash
# Runs strata-ttftbench beside its disk baseline in one session: fio O_DIRECT reads
# (io_uring) on the G3 directory with the block size of a G3 record rounded up to a power
# of two and the tier's I/O depth, reading as many bytes as the cached prefix's KV; the
# median bandwidth goes into strata-ttftbench as the physical bound; fio runs again after
# the bench to show the disk's drift. Results and their reading: docs/benchmarks.md.
#
#   bench/run_ttft_baselines.sh [--bin PATH] [--dir DIR] [--out DIR] [-- BENCH ARGS...]
#
#   --bin     strata-ttftbench binary (default: build-perf/bin, build-bench/bin, build/bin)
#   --dir     G3 directory (default /var/tmp/strata-ttftbench; not tmpfs: O_DIRECT). The
#             bench uses DIR/tier; fio uses DIR/fio.dat (2 GiB, deleted at the end)
#   --out     directory for fio JSON, the bench's JSON and summary (default: a temp dir)
#   --bs      fio block size (default 512k: a demo-preset record is 388 KiB)
#   --qd      fio iodepth (default 16: DiskTierOptions::io_depth)
#   args after -- go to strata-ttftbench (e.g. --prefix-tokens 16384 --suffix-tokens 32)
#
# Needs fio (apt-get install -y fio) and python3. Installs nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=""
DIR=/var/tmp/strata-ttftbench
OUT=""
BS=512k
QD=16
BENCH_ARGS=()
while (($#)); do
  case "$1" in
    --bin) BIN="$2"; shift ;;
    --dir) DIR="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --bs) BS="$2"; shift ;;
    --qd) QD="$2"; shift ;;
    --) shift; BENCH_ARGS=("$@"); break ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

if ! command -v fio >/dev/null; then
  echo "fio is not installed; install it with: apt-get install -y fio" >&2
  exit 1
fi
command -v python3 >/dev/null || { echo "python3 is needed to read the JSON results" >&2; exit 1; }
if [[ -z "$BIN" ]]; then
  for b in "$ROOT/build-perf/bin/strata-ttftbench" "$ROOT/build-bench/bin/strata-ttftbench" \
           "$ROOT/build/bin/strata-ttftbench"; do
    [[ -x "$b" ]] && { BIN="$b"; break; }
  done
fi
[[ -x "$BIN" ]] || { echo "strata-ttftbench not found; build the target strata-ttftbench or pass --bin" >&2; exit 1; }
OUT="${OUT:-$(mktemp -d /tmp/strata-ttft.XXXXXX)}"
mkdir -p "$OUT" "$DIR"
FILE="$DIR/fio.dat"
trap 'rm -f "$FILE"' EXIT

# Bytes the G3 load reads: the prefix's KV (--prefix-tokens, default 16384, of the demo
# preset: 24 KiB a token). fio reads the same amount, so both see the same burst behaviour
# of the virtual disk.
PREFIX=16384
for ((i = 0; i < ${#BENCH_ARGS[@]}; i++)); do
  [[ "${BENCH_ARGS[$i]}" == --prefix-tokens ]] && PREFIX="${BENCH_ARGS[$((i + 1))]}"
done
READ_BYTES=$((PREFIX * 24576))

# Two cores and one virtual disk: anything else running shows up in the numbers. Wait (up
# to 10 minutes) for the 1-minute load average to fall below 1.5 and for no other disk
# benchmark or compiler to be running.
others() { ps -eo comm= | grep -cE '^(cc1plus|ld|ninja|fio|strata-tierbenc.*|strata-xferbenc.*|strata_.*)$' || true; }
quiet() { (($(others) == 0)) && python3 -c "import sys; sys.exit(0 if float(open('/proc/loadavg').read().split()[0]) < 1.5 else 1)"; }
for ((i = 0; i < 120; i++)); do
  quiet && break
  ((i == 0)) && echo "# waiting for a quiet machine (load $(cut -d' ' -f1 /proc/loadavg), $(others) other builds/benchmarks)"
  sleep 5
done
quiet || echo "# warning: machine not quiet (load $(cut -d' ' -f1 /proc/loadavg), $(others) other builds/benchmarks running); numbers will be disturbed" >&2
echo "# $(date -Is) | $(uname -r) | $(nproc) CPUs | load $(cut -d' ' -f1-3 /proc/loadavg) | fio $(fio --version) | $BIN"
echo "# results in $OUT"

# The file is written once (fio lays it out with real writes; an unwritten extent would
# read as zeros without touching the disk).
fio --name=layout --filename="$FILE" --size=2G --rw=write --bs=4M --direct=1 --ioengine=io_uring \
  --iodepth=8 --output-format=json --output="$OUT/fio-layout.json" >/dev/null

run_fio() {  # tag rep -> GB/s on stdout
  local out="$OUT/fio-$1-r$2.json"
  # A different 1/4 of the file each run, so nothing is served from a device-side cache.
  local offset=$(( ($2 % 4) * 512 ))M
  fio --name=strata-ttft-baseline --filename="$FILE" --direct=1 --rw=read --bs="$BS" \
    --ioengine=io_uring --iodepth="$QD" --fixedbufs=1 --registerfiles=1 --size=2G \
    --offset="$offset" --io_size="$READ_BYTES" --output-format=json --output="$out" >/dev/null
  python3 -c "import json,sys; print(json.load(open('$out'))['jobs'][0]['read']['bw_bytes'] / 1e9)"
}

before=()
for rep in 1 2 3; do before+=("$(run_fio before "$rep")"); done
MEDIAN="$(python3 -c "import statistics,sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "${before[@]}")"
echo "# fio before: ${before[*]} GB/s (median $MEDIAN; O_DIRECT io_uring read, bs $BS, iodepth $QD, $READ_BYTES bytes per run)"

echo "# other builds/benchmarks running as the bench starts: $(others)"
"$BIN" --dir "$DIR" --fio-read-gbps "$MEDIAN" \
  --fio-note "fio O_DIRECT io_uring seq read, bs $BS, iodepth $QD, $READ_BYTES B per run, median of ${before[*]} GB/s" \
  --json "$OUT/ttft.json" "${BENCH_ARGS[@]}" 2>"$OUT/bench.log" | tee "$OUT/summary.md"

after=()
for rep in 1 2 3; do after+=("$(run_fio after "$rep")"); done
echo "# fio after: ${after[*]} GB/s"
python3 - "$OUT/ttft.json" "${after[@]}" <<'EOF'
import json, statistics, sys
r = json.load(open(sys.argv[1]))
after = statistics.median(map(float, sys.argv[2:]))
bound = r["kv_bytes"] / (after * 1e9) + r["g3_suffix_forward_s"]
print(f"# with the fio median after the bench ({after:.3f} GB/s): bound {bound:.3f} s, "
      f"TTFT_G3 / bound {r['g3_ttft_median_s'] / bound:.2f}")
EOF
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg); other builds/benchmarks: $(others)"
