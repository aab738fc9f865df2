#!/usr/bin/env bash
# Runs strata-tierbench (2 GiB of 2 MiB blocks through G2 -> G3 and back) beside fio
# O_DIRECT on the same directory, same block size and queue depth, one after the other in
# one session, REPS times alternating which goes first. Results: docs/benchmarks.md.
#
#   bench/run_tier_baselines.sh [--bin PATH] [--dir DIR] [--qd N] [--reps N] [--gib N]
#
#   --bin   strata-tierbench binary (default: build/bin, then build-bench/bin)
#   --dir   directory on the disk under test, not tmpfs (default /var/tmp/strata-tierbench)
#   --qd    records in flight: the disk tier's io_depth and fio's iodepth (default 16)
#   --reps  pairs per direction (default 3)
#   --gib   GiB moved per run (default 2)
#
# Needs fio (apt-get install -y fio) and python3. Installs nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=""
DIR=/var/tmp/strata-tierbench
QD=16
REPS=3
GIB=2
while (($#)); do
  case "$1" in
    --bin) BIN="$2"; shift ;;
    --dir) DIR="$2"; shift ;;
    --qd) QD="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    --gib) GIB="$2"; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
command -v fio >/dev/null || { echo "fio is not installed; apt-get install -y fio" >&2; exit 1; }
if [[ -z "$BIN" ]]; then
  for b in "$ROOT/build/bin/strata-tierbench" "$ROOT/build-bench/bin/strata-tierbench"; do
    [[ -x "$b" ]] && { BIN="$b"; break; }
  done
fi
[[ -x "$BIN" ]] || { echo "strata-tierbench not found; build it or pass --bin" >&2; exit 1; }
OUT="$(mktemp -d /tmp/strata-tier-baselines.XXXXXX)"
FIODIR="$DIR-fio"
mkdir -p "$FIODIR"

fio_run() {  # fio_run rw -> GB/s (decimal), clat p50/p99 ms
  local rw="$1" json="$OUT/fio-$1-$2.json"
  fio --name=tier --directory="$FIODIR" --filename=fio.dat --size="${GIB}G" --bs=2M \
    --rw="$rw" --direct=1 --ioengine=io_uring --iodepth="$QD" --numjobs=1 \
    --output-format=json --output="$json" >/dev/null
  python3 - "$json" "$rw" <<'PY'
import json, sys
j = json.load(open(sys.argv[1]))["jobs"][0]
d = j["read" if sys.argv[2] == "read" else "write"]
pct = d["clat_ns"]["percentile"]
print(f'{d["bw_bytes"] / 1e9:.2f} {pct["50.000000"] / 1e6:.2f} {pct["99.000000"] / 1e6:.2f}')
PY
}

# fio lays its file out once, so its reads never see a hole.
fio --name=layout --directory="$FIODIR" --filename=fio.dat --size="${GIB}G" --bs=2M --rw=write \
  --direct=1 --ioengine=io_uring --iodepth="$QD" >/dev/null

echo "# $(date -u +%FT%TZ) $(nproc) CPUs; QD $QD; ${GIB} GiB; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-4s %-28s %-28s %-28s\n' rep "fio write GB/s p50/p99 ms" "fio read GB/s p50/p99 ms" \
  "strata store/load GB/s, load p50/p99 ms (32 MiB requests)"
for ((r = 1; r <= REPS; r++)); do
  if ((r % 2)); then
    fw=$(fio_run write "$r"); fr=$(fio_run read "$r")
    "$BIN" --dir "$DIR" --total-gib "$GIB" --io-depth "$QD" --json "$OUT/strata-$r.json" >"$OUT/strata-$r.log" 2>&1
  else
    "$BIN" --dir "$DIR" --total-gib "$GIB" --io-depth "$QD" --json "$OUT/strata-$r.json" >"$OUT/strata-$r.log" 2>&1
    fw=$(fio_run write "$r"); fr=$(fio_run read "$r")
  fi
  st=$(python3 -c "import json;j=json.load(open('$OUT/strata-$r.json'));print(f'{j[\"store_gbps\"]:.2f} / {j[\"load_gbps\"]:.2f}, {j[\"load_p50_ms\"]:.1f}/{j[\"load_p99_ms\"]:.1f}, restart {j[\"restart_s\"]:.3f} s, ok={j[\"ok\"]}')")
  printf '%-4s %-28s %-28s %s\n' "$r" "$fw" "$fr" "$st"
done
rm -rf "$FIODIR"
echo "raw results: $OUT"
