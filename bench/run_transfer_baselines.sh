#!/usr/bin/env bash
# Runs the transfer engine beside its baselines in one session: fio (io_uring, and psync
# with numjobs=QD for the posix backend) against strata-xferbench on the same file, block
# size, queue depth and direction; the same io_uring reads with the host buffer on
# differently faulted pages; the host<->host memcpy sweep with its std::memcpy baseline;
# and the per-request overhead against raw pread/pwrite and raw io_uring.
# Results and their reading: docs/benchmarks.md.
#
#   bench/run_transfer_baselines.sh [--quick] [--bin PATH] [--file PATH] [--out DIR]
#
#   --quick   QD 1 and 32, one 1 s run per point (about 2 minutes instead of about 8.5)
#   --bin     strata-xferbench binary (default: build/bin, then build-bench/bin)
#   --file    benchmark file, 2 GiB, created and deleted here (default /var/tmp/...;
#             it must not be on tmpfs: O_DIRECT)
#   --out     directory for the raw JSON results and summary.md (default: a temp dir)
#   --only    comma-separated sections to run: fio, pages, mem, raw (default: all)
#
# Needs fio (apt-get install -y fio) and python3. Installs nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QUICK=0
BIN=""
FILE=/var/tmp/strata-transfer-baselines.dat
OUT=""
ONLY="fio,pages,mem,raw"
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --bin) BIN="$2"; shift ;;
    --file) FILE="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
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
  for b in "$ROOT/build/bin/strata-xferbench" "$ROOT/build-bench/bin/strata-xferbench"; do
    [[ -x "$b" ]] && { BIN="$b"; break; }
  done
fi
[[ -x "$BIN" ]] || { echo "strata-xferbench not found; build the target strata-xferbench or pass --bin" >&2; exit 1; }
OUT="${OUT:-$(mktemp -d /tmp/strata-baselines.XXXXXX)}"
mkdir -p "$OUT"

# The virtio disk's throughput drifts from second to second, so every fio/strata pair
# runs REPS times back to back, alternating which goes first, and the summary reports
# medians, ranges and the median of the paired ratios.
if ((QUICK)); then
  QDS=(1 32); REPS=1; RT_MS=1000; MEM_RT=0.5; RAW_RT=0.5
else
  QDS=(1 8 32); REPS=3; RT_MS=1000; MEM_RT=1; RAW_RT=2
fi
RT="$(python3 -c "print($RT_MS / 1000)")"
BLOCKS=(64K 1M 4M)
OPS=(read write)
SIZE=2G
SIZE_BYTES=$((2 << 30))
WARMUP_MS=250
WARMUP_S=0.25

trap 'rm -f "$FILE"' EXIT

# Two cores: anything else running shows up in the numbers. Wait (up to 5 minutes) for
# the 1-minute load average to fall below 1.5.
load_ok() { python3 -c "import sys; sys.exit(0 if float(open('/proc/loadavg').read().split()[0]) < 1.5 else 1)"; }
for ((i = 0; i < 60; i++)); do
  load_ok && break
  ((i == 0)) && echo "# waiting for the load average to fall below 1.5 ($(cut -d' ' -f1 /proc/loadavg))"
  sleep 5
done
load="$(cut -d' ' -f1 /proc/loadavg)"
echo "# $(date -Is) | $(uname -r) | $(nproc) CPUs | load $load | fio $(fio --version) | $BIN"
if python3 -c "import sys; sys.exit(0 if float('$load') < 1.5 else 1)"; then :; else
  echo "# warning: load average $load >= 1.5; numbers will be disturbed" >&2
fi
echo "# results in $OUT"

# The file: created with fallocate and filled once by strata-xferbench's write pass (an
# unwritten extent would read as zeros without touching the disk).
"$BIN" --file "$FILE" --file-size "$SIZE" --keep-file --backend posix --op read \
  --block-size 4M --batch 1 --qd 1 --seconds 0.1 --warmup 0 >/dev/null

want() { [[ ",$ONLY," == *",$1,"* ]]; }

run_fio() {  # engine op bs qd rep -> json file path on stdout
  local engine="$1" op="$2" bs="$3" qd="$4" out="$OUT/fio-$1-$2-$3-qd$4-r$5.json"
  local args=(--name=strata-baseline --filename="$FILE" --direct=1 --rw="$op" --bs="$bs"
              --runtime="${RT_MS}ms" --time_based --ramp_time="${WARMUP_MS}ms" --output-format=json
              --output="$out")
  if [[ "$engine" == io_uring ]]; then
    # Registered files and buffers, as the strata io_uring backend uses.
    args+=(--ioengine=io_uring --iodepth="$qd" --numjobs=1 --size="$SIZE"
           --fixedbufs=1 --registerfiles=1)
  else
    # QD synchronous jobs, each sequential over its own slice of the file.
    local slice=$((SIZE_BYTES / qd))
    args+=(--ioengine=psync --iodepth=1 --numjobs="$qd" --group_reporting
           --size="$slice" --offset_increment="$slice")
  fi
  fio "${args[@]}" >/dev/null
  echo "$out"
}

run_strata() {  # backend op bs qd rep -> json file path on stdout
  local backend="$1" op="$2" bs="$3" qd="$4" out="$OUT/strata-$1-$2-$3-qd$4-r$5.json"
  local args=(--file "$FILE" --file-size "$SIZE" --keep-file --backend "$backend" --op "$op"
              --block-size "$bs" --batch 1 --qd "$qd" --direct on --pattern seq
              --seconds "$RT" --warmup "$WARMUP_S" --quiet --json "$out")
  if [[ "$backend" == io_uring ]]; then
    args+=(--uring-depth "$qd")
  else
    args+=(--threads "$qd")
  fi
  "$BIN" "${args[@]}" >/dev/null
  echo "$out"
}

pairs="$OUT/pairs.tsv"
memfx="$OUT/memfx.tsv"
: >"$pairs"
: >"$memfx"
if want fio; then
echo "# fio vs strata-xferbench, O_DIRECT, batch 1, sequential, ${RT}s per run, $REPS alternating runs"
for op in "${OPS[@]}"; do
  for bs in "${BLOCKS[@]}"; do
    for qd in "${QDS[@]}"; do
      for ((rep = 1; rep <= REPS; rep++)); do
        for pair in "io_uring io_uring" "psync posix"; do
          read -r fio_engine backend <<<"$pair"
          # The load average counts this benchmark's own threads blocked on I/O, so record
          # instead whether a compiler or a test binary was running next to it.
          others="$(ps -eo comm= | grep -cE '^(cc1plus|ld|ninja|make|ctest|strata_.*|.*test.*)$' || true)"
          if ((rep % 2)); then
            f="$(run_fio "$fio_engine" "$op" "$bs" "$qd" "$rep")"
            s="$(run_strata "$backend" "$op" "$bs" "$qd" "$rep")"
          else
            s="$(run_strata "$backend" "$op" "$bs" "$qd" "$rep")"
            f="$(run_fio "$fio_engine" "$op" "$bs" "$qd" "$rep")"
          fi
          printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$fio_engine" "$op" "$bs" "$qd" "$f" "$s" \
            "$others" >>"$pairs"
        done
      done
      echo "#   done $op $bs qd $qd"
    done
  done
done
fi

# The host buffer's pages change what the virtio disk delivers for large reads: the
# same io_uring point with the buffer populated by page faults, left for the
# registration to pin (as fio's malloc'd buffers are), and on 2 MiB huge pages.
if want pages; then
echo "# host buffer pages: io_uring reads, $REPS alternating runs"
for point in "1M 32" "4M 8"; do
  read -r bs qd <<<"$point"
  for ((rep = 1; rep <= REPS; rep++)); do
    f="$(run_fio io_uring read "$bs" "$qd" "mem$rep")"
    for hm in populate lazy thp; do
      out="$OUT/strata-memfx-$hm-$bs-qd$qd-r$rep.json"
      "$BIN" --file "$FILE" --file-size "$SIZE" --keep-file --backend io_uring --op read \
        --block-size "$bs" --batch 1 --qd "$qd" --uring-depth "$qd" --direct on --seconds "$RT" \
        --warmup "$WARMUP_S" --host-memory "$hm" --quiet --json "$out" >/dev/null
      printf '%s\t%s\t%s\t%s\t%s\n' "$bs" "$qd" "$hm" "$f" "$out" >>"$memfx"
    done
  done
done
fi

if want mem; then
echo "# host<->host: memcpy backend vs single-thread std::memcpy"
"$BIN" --mode mem --block-size 256K,1M,4M,16M,64M --batch 1,16 --qd 1 --op both \
  --seconds "$MEM_RT" --warmup 0.2 --quiet --json "$OUT/mem.json"
fi

if want raw; then
echo "# per-request overhead at QD1, batch 1"
"$BIN" --mode raw-overhead --file "$FILE" --file-size "$SIZE" --keep-file --op both \
  --block-size 4K,64K --direct both --seconds "$RAW_RT" --warmup 0.2 --quiet --json "$OUT/raw.json"
fi

python3 - "$pairs" "$OUT/mem.json" "$OUT/raw.json" "$memfx" >"$OUT/summary.md" <<'EOF'
import json, os, statistics, sys

pairs, mem_path, raw_path, memfx_path = sys.argv[1:5]
def span(v):
    m = statistics.median(v)
    return f"{m:.3f}" if len(v) == 1 else f"{m:.3f} [{min(v):.2f}–{max(v):.2f}]"
def size(b):
    for s, n in ((30, "G"), (20, "M"), (10, "K")):
        if b >= 1 << s and b % (1 << s) == 0:
            return f"{b >> s}{n}"
    return str(b)
rows, disturbed, runs = {}, 0, 0
for line in open(pairs):
    backend, engine, op, bs, qd, fpath, spath, others = line.rstrip("\n").split("\t")
    fj = json.load(open(fpath))["jobs"][0][op]
    sj = json.load(open(spath))["points"][0]
    r = rows.setdefault((backend, engine, op, bs, qd),
                        {"fio": [], "strata": [], "flat": [], "slat": [], "ratio": []})
    r["fio"].append(fj["bw_bytes"] / 1e9)
    r["flat"].append(fj["lat_ns"]["mean"] / 1e3)
    r["strata"].append(sj["gbps"])
    r["slat"].append(sj["completion_us_mean"])
    r["ratio"].append(r["strata"][-1] / r["fio"][-1])
    runs += 1
    disturbed += int(others) > 0
reps = max((len(r["fio"]) for r in rows.values()), default=0)
if rows:
  print(f"### fio vs strata (O_DIRECT, batch 1, sequential; median of {reps} alternating runs [min–max])\n")
  print(f"Pairs started while a compiler or test binary was running: {disturbed} of {runs}\n")
  print("| backend (fio engine) | op | block | QD | fio GB/s | strata GB/s | strata/fio (median of pairs) | fio mean lat µs | strata mean compl µs |")
  print("|---|---|---|---|---|---|---|---|---|")
for (backend, engine, op, bs, qd), r in rows.items():
    print(f"| {backend} ({engine}) | {op} | {bs} | {qd} | {span(r['fio'])} | {span(r['strata'])} | "
          f"{statistics.median(r['ratio']):.3f} | {statistics.median(r['flat']):.1f} | "
          f"{statistics.median(r['slat']):.1f} |")

fx = {}
for line in open(memfx_path):
    bs, qd, hm, fpath, spath = line.rstrip("\n").split("\t")
    r = fx.setdefault((bs, qd), {"fio": {}, "strata": {}})
    r["fio"][fpath] = json.load(open(fpath))["jobs"][0]["read"]["bw_bytes"] / 1e9
    r["strata"].setdefault(hm, []).append(json.load(open(spath))["points"][0]["gbps"])
if fx:
  print("\n### host buffer pages (io_uring, O_DIRECT read, batch 1; median [min–max])\n")
  print("| block | QD | fio GB/s | strata populate GB/s | strata lazy GB/s | strata thp GB/s |")
  print("|---|---|---|---|---|---|")
for (bs, qd), r in fx.items():
    cells = [span(list(r["fio"].values()))] + [span(r["strata"][hm]) for hm in ("populate", "lazy", "thp")]
    print(f"| {bs} | {qd} | " + " | ".join(cells) + " |")

if os.path.exists(mem_path):
  print("\n### host<->host: memcpy backend vs single-thread std::memcpy\n")
  print("| op | block | batch | QD | engine GB/s | std::memcpy GB/s | engine/memcpy | post µs mean | compl µs mean |")
  print("|---|---|---|---|---|---|---|---|---|")
for p in (json.load(open(mem_path))["points"] if os.path.exists(mem_path) else []):
    print(f"| {p['op']} | {size(p['block_size'])} | {p['batch']} | {p['qd']} | {p['gbps']:.2f} | "
          f"{p['memcpy_gbps']:.2f} | {p['ratio']:.3f} | {p['post_us_mean']:.1f} | {p['completion_us_mean']:.1f} |")

if os.path.exists(raw_path):
  print("\n### per-request overhead (QD1, batch 1)\n")
  print("| op | block | O_DIRECT | method | samples | mean µs | p50 µs | p99 µs | engine − syscall µs | engine − raw io_uring µs |")
  print("|---|---|---|---|---|---|---|---|---|---|")
for r in (json.load(open(raw_path))["raw_overhead"] if os.path.exists(raw_path) else []):
    o1 = f"{r['overhead_vs_syscall_us']:.2f}" if "overhead_vs_syscall_us" in r else ""
    o2 = f"{r['overhead_vs_raw_uring_us']:.2f}" if "overhead_vs_raw_uring_us" in r else ""
    print(f"| {r['op']} | {size(r['block_size'])} | {r['direct']} | {r['method']} | {r['samples']} | "
          f"{r['mean_us']:.2f} | {r['p50_us']:.2f} | {r['p99_us']:.2f} | {o1} | {o2} |")
EOF
cat "$OUT/summary.md"
echo "# load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
