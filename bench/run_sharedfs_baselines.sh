#!/usr/bin/env bash
# Runs strata-sharedfsbench (FsStore put then get of GIB GiB of blocks) beside fio on the
# same directory, one after the other, for each block size x thread count x O_DIRECT
# mode, and prints a table with the ratios. Results: docs/shared_fs_tier.md.
#
#   bench/run_sharedfs_baselines.sh [--bin PATH] [--dir DIR] [--gib N] [--bs "256 2048"]
#                                   [--threads "1 4 8"] [--direct "1 0"] [--fsync 1|0]
#                                   [--reps N]
#
#   --bin      strata-sharedfsbench (default: build/bin, build-fs/bin, build-bench/bin)
#   --dir      directory on the filesystem under test (default /var/tmp/strata-sharedfsbench)
#   --gib      GiB per run (default 1)
#   --bs       block sizes in KiB (default "256 2048")
#   --threads  client threads = FsStore io_threads = fio numjobs (default "1 4 8")
#   --direct   O_DIRECT modes, 1 and/or 0 (default "1 0")
#   --fsync    fdatasync every object / file before publishing (default 1)
#   --reps     rows per configuration, alternating which of strata and fio runs first
#              (default 2)
#
# fio mirrors the store's I/O pattern: ioengine psync, numjobs = threads, bs = block size,
# one file per object (--nrfiles, --filesize = bs, created during the run), fdatasync after
# each file's single write; the page cache is dropped before each read phase, as the
# benchmark does. fio opens and closes each file per I/O too. fio's files hold the payload
# only (the store adds a 128-byte header); fio neither checksums nor renames; the store's
# own checksum verification stays on, the benchmark's extra byte comparison is off. Needs fio (apt-get install -y fio), python3 and root
# (drop_caches). Installs nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=""
DIR=/var/tmp/strata-sharedfsbench
GIB=1
BS="256 2048"
THREADS="1 4 8"
DIRECT="1 0"
FSYNC=1
REPS=2
while (($#)); do
  case "$1" in
    --bin) BIN="$2"; shift ;;
    --dir) DIR="$2"; shift ;;
    --gib) GIB="$2"; shift ;;
    --bs) BS="$2"; shift ;;
    --threads) THREADS="$2"; shift ;;
    --direct) DIRECT="$2"; shift ;;
    --fsync) FSYNC="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
command -v fio >/dev/null || { echo "fio is not installed; apt-get install -y fio" >&2; exit 1; }
if [[ -z "$BIN" ]]; then
  for b in "$ROOT/build/bin" "$ROOT/../build-fs/bin" "$ROOT/build-bench/bin"; do
    [[ -x "$b/strata-sharedfsbench" ]] && { BIN="$b/strata-sharedfsbench"; break; }
  done
fi
[[ -x "$BIN" ]] || { echo "strata-sharedfsbench not found; build it or pass --bin" >&2; exit 1; }
OUT="$(mktemp -d /tmp/strata-sharedfs-baselines.XXXXXX)"
FIODIR="$DIR/fio"
mkdir -p "$DIR"
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches 2>/dev/null || echo "(page cache not dropped)" >&2; }

# fio_run bs_kib threads direct -> "write_gbps write_mean_ms write_p99_ms read_gbps read_mean_ms read_p99_ms"
fio_run() {
  local bs="$1" t="$2" d="$3"
  local files=$(( GIB * 1024 * 1024 / bs / t ))
  local common=(--directory="$FIODIR" --name=obj --ioengine=psync --numjobs="$t" --bs="${bs}k"
    --filesize="${bs}k" --nrfiles="$files" --direct="$d" --group_reporting --output-format=json)
  rm -rf "$FIODIR"; mkdir -p "$FIODIR"
  fio "${common[@]}" --rw=write --create_on_open=1 --fdatasync="$FSYNC" \
    --output="$OUT/fio-w-$bs-$t-$d.json" >/dev/null
  drop_caches
  fio "${common[@]}" --rw=read --output="$OUT/fio-r-$bs-$t-$d.json" >/dev/null
  rm -rf "$FIODIR"
  python3 - "$OUT/fio-w-$bs-$t-$d.json" "$OUT/fio-r-$bs-$t-$d.json" "$t" "$files" <<'PY'
import json, sys
out = []
for path, rw in ((sys.argv[1], "write"), (sys.argv[2], "read")):
    j = json.load(open(path))["jobs"][0]
    d = j[rw]
    # Per-object time as the store measures it (open, write, sync, close): each job's
    # runtime over its files; fio's clat p99 covers the data I/O only.
    per_obj_ms = d["runtime"] / int(sys.argv[4])
    p99 = d["clat_ns"]["percentile"]["99.000000"] / 1e6
    out += [f'{d["bw_bytes"] / 1e9:.3f}', f"{per_obj_ms:.2f}", f"{p99:.2f}"]
print(" ".join(out))
PY
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs; ${GIB} GiB per run; fsync $FSYNC; dir $DIR ($(df -T "$DIR" | awk 'NR==2 {print $2}')); load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-6s %-3s %-3s | %-23s %-23s %-6s | %-23s %-23s %-6s\n' bs thr dio \
  "strata put GB/s mean/p99" "fio write GB/s mean/p99" ratio \
  "strata get GB/s mean/p99" "fio read GB/s mean/p99" ratio
strata_run() {  # strata_run bs threads direct json
  "$BIN" --dir "$DIR/strata" --total-gib "$GIB" --block-kib "$1" --threads "$2" \
    --direct "$([[ $3 == 1 ]] && echo on || echo off)" \
    --fsync "$([[ $FSYNC == 1 ]] && echo on || echo off)" --no-verify --json "$4" \
    >>"$4.log" 2>&1 || { echo "strata-sharedfsbench failed:" >&2; cat "$4.log" >&2; exit 1; }
}
for d in $DIRECT; do
  for bs in $BS; do
    for t in $THREADS; do
      for ((r = 1; r <= REPS; r++)); do
        json="$OUT/strata-$bs-$t-$d-$r.json"
        if ((r % 2)); then
          strata_run "$bs" "$t" "$d" "$json"
          read -r fw fwm fwp fr frm frp < <(fio_run "$bs" "$t" "$d")
        else
          read -r fw fwm fwp fr frm frp < <(fio_run "$bs" "$t" "$d")
          strata_run "$bs" "$t" "$d" "$json"
        fi
        python3 - "$json" "$bs" "$t" "$d" "$fw" "$fwm" "$fwp" "$fr" "$frm" "$frp" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().splitlines()[-1])
bs, t, d, fw, fwm, fwp, fr, frm, frp = sys.argv[2:]
fw, fr = float(fw), float(fr)
dio = ("yes" if s["direct"] else "NO") if d == "1" else "no"
cols = [
    f"{bs}K".ljust(6), t.ljust(3), dio.ljust(3), "|",
    f'{s["put_gbps"]:.3f} {s["put_mean_ms"]:.2f}/{s["put_p99_ms"]:.2f}'.ljust(23),
    f"{fw:.3f} {fwm}/{fwp}".ljust(23), f'{s["put_gbps"] / fw if fw else 0:.2f}'.ljust(6), "|",
    f'{s["get_gbps"]:.3f} {s["get_mean_ms"]:.2f}/{s["get_p99_ms"]:.2f}'.ljust(23),
    f"{fr:.3f} {frm}/{frp}".ljust(23), f'{s["get_gbps"] / fr if fr else 0:.2f}',
]
print(" ".join(cols), flush=True)
PY
      done
    done
  done
done
echo "# load after $(cut -d' ' -f1-3 /proc/loadavg); raw results: $OUT"
