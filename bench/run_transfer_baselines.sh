#!/usr/bin/env bash
# Runs the transfer engine beside its baselines in one session: fio (io_uring, and psync
# with numjobs=QD for the posix backend) against strata-xferbench on the same file, block
# size, queue depth and direction; the same io_uring reads with the host buffer on
# differently faulted pages; the host<->host memcpy sweep with its std::memcpy baseline;
# and the per-request overhead against raw pread/pwrite and raw io_uring.
# Results and their reading: docs/benchmarks.md.
#
#   bench/run_transfer_baselines.sh [--quick] [--bin PATH] [--file PATH] [--out DIR]
#                                   [--only SECTIONS] [--pages thp|populate]
#
#   --quick   QD 1 and 32, one 1 s run per point (about 5 minutes instead of about 12)
#   --bin     strata-xferbench binary (default: build/bin, then build-bench/bin)
#   --file    benchmark file, 2 GiB, created and deleted here (default /var/tmp/...;
#             it must not be on tmpfs: O_DIRECT)
#   --out     directory for the raw JSON results and summary.md (default: a temp dir)
#   --only    comma-separated sections to run: fio, pages, mem, raw (default: all)
#   --pages   host buffer pages of both sides (default thp): thp = fio on 2 MiB hugetlb
#             pages (--iomem=mmaphuge --hugepage-size=2M, anonymous MAP_HUGETLB) and
#             strata-xferbench --host-memory thp (2 MiB transparent huge pages, as the G2
#             host tier); populate = fio's malloc'd buffers and --host-memory populate.
#
# Page backing decides large O_DIRECT reads on a virtio disk (docs/benchmarks.md), so both
# sides run on 2 MiB pages by default: the script reserves enough 2 MiB hugetlb pages for
# fio (largest QD x block size; for psync, per job) at start and restores the previous
# nr_hugepages on exit. Without them (not root, memory short) both sides fall back to
# 4 KiB pages (fio malloc, --host-memory populate), with a note; summary.md records the
# backing each side used, and which submission path strata used per row (strata-
# xferbench --submit auto: Execute at QD 1, Post + Wait otherwise). Each point at QD > 1
# also runs strata's synchronous path of fio's shape, reported in a second table after the
# fio one: posix --submit execute-threads (QD caller threads, each calling Execute on its
# own slice: fio psync --numjobs=QD), io_uring --submit execute --batch 16xQD (one thread,
# its caller ring keeping QD I/Os in flight: fio io_uring --iodepth=QD).
#
# Needs fio (apt-get install -y fio) and python3. Installs nothing; run as root for the
# hugetlb reservation. Run nothing else meanwhile: Strata's host tier (G2) takes
# MAP_HUGETLB pages when any are free, so a test or `strata serve` started during the
# run takes the pages reserved for fio.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
QUICK=0
BIN=""
FILE=/var/tmp/strata-transfer-baselines.dat
OUT=""
ONLY="fio,pages,mem,raw"
PAGES=thp
while (($#)); do
  case "$1" in
    --quick) QUICK=1 ;;
    --bin) BIN="$2"; shift ;;
    --file) FILE="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --only) ONLY="$2"; shift ;;
    --pages) PAGES="$2"; shift ;;
    -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
[[ "$PAGES" == thp || "$PAGES" == populate ]] || { echo "--pages: thp or populate, not '$PAGES'" >&2; exit 2; }

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

want() { [[ ",$ONLY," == *",$1,"* ]]; }

# 2 MiB hugetlb pages for fio's buffers. HP_PREV is set once nr_hugepages was changed;
# the EXIT trap (also taken on Ctrl-C / SIGTERM) then puts the old value back.
HP_DIR=/sys/kernel/mm/hugepages/hugepages-2048kB
HP_PREV=""
cleanup() {
  rm -f "$FILE"
  if [[ -n "$HP_PREV" ]]; then
    if echo "$HP_PREV" >"$HP_DIR/nr_hugepages" 2>/dev/null; then
      echo "# restored nr_hugepages (2 MiB) to $(cat "$HP_DIR/nr_hugepages") (was $HP_PREV before this run)"
    else
      echo "# warning: could not restore $HP_DIR/nr_hugepages to $HP_PREV" >&2
    fi
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

to_bytes() {  # 64K, 1M, 4M -> bytes
  local v="${1%[KMG]}"
  case "$1" in
    *K) echo $((v << 10)) ;;
    *M) echo $((v << 20)) ;;
    *G) echo $((v << 30)) ;;
    *) echo "$1" ;;
  esac
}

# fio's hugetlb buffer per job, in 2 MiB pages: fio 3.33 rounds units x block size up
# past the next 2 MiB boundary, adds 4 KiB - 1 for O_DIRECT alignment and maps that
# rounded up to 2 MiB (--debug=mem: 4 MiB blocks at QD 1 map 8 MiB), so
# floor(units x bs / 2 MiB) + 2; units = iodepth for io_uring (one job), 1 for each of
# the QD psync jobs. The pages section adds 1M/4M io_uring reads. Too few pages do not
# fail fio's mmap: jobs then fail I/Os with EFAULT ("Bad address") or crash.
fio_hugetlb_pages() {  # units bs_bytes
  echo $(($1 * $2 / (2 << 20) + 2))
}
hugetlb_need() {
  local need=0 bs b qd u p point
  for bs in "${BLOCKS[@]}"; do
    b="$(to_bytes "$bs")"
    for qd in "${QDS[@]}"; do
      u="$(fio_hugetlb_pages "$qd" "$b")"
      p=$((qd * $(fio_hugetlb_pages 1 "$b")))
      ((u > need)) && need=$u
      ((p > need)) && need=$p
    done
  done
  for point in "1M 32" "4M 8"; do
    read -r bs qd <<<"$point"
    u="$(fio_hugetlb_pages "$qd" "$(to_bytes "$bs")")"
    ((u > need)) && need=$u
  done
  echo $((need + need / 10 + 4))  # margin
}

# Makes `need` 2 MiB pages free; 1 with HP_FAIL set when it cannot.
HP_FAIL=""
reserve_hugepages() {
  local need="$1" total free
  if [[ ! -r "$HP_DIR/nr_hugepages" ]]; then
    HP_FAIL="no 2 MiB hugetlb support ($HP_DIR missing)"
    return 1
  fi
  total="$(cat "$HP_DIR/nr_hugepages")"
  free="$(cat "$HP_DIR/free_hugepages")"
  ((free >= need)) && return 0
  HP_PREV="$total"  # before the write: a signal right after it still restores
  if ! (echo $((total + need - free)) >"$HP_DIR/nr_hugepages") 2>/dev/null; then
    HP_PREV=""
    HP_FAIL="cannot write $HP_DIR/nr_hugepages (not root?)"
    return 1
  fi
  free="$(cat "$HP_DIR/free_hugepages")"
  if ((free < need)); then
    HP_FAIL="asked for $need free 2 MiB pages, the kernel found only $free (memory short or fragmented)"
    echo "$HP_PREV" >"$HP_DIR/nr_hugepages" && HP_PREV=""
    return 1
  fi
}

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

# Page backing of both sides' host buffers (see --pages).
FIO_IOMEM=()
FIO_PAGES="malloc (4 KiB pages)"
STRATA_PAGES=populate
PAGES_NOTE=""
if [[ "$PAGES" == thp ]]; then
  if ! want fio && ! want pages; then
    STRATA_PAGES=thp  # no fio run: nothing to reserve
  elif HP_NEED="$(hugetlb_need)" && reserve_hugepages "$HP_NEED"; then
    FIO_IOMEM=(--iomem=mmaphuge --hugepage-size=2M)
    FIO_PAGES="hugetlb 2 MiB (--iomem=mmaphuge --hugepage-size=2M)"
    STRATA_PAGES=thp
    PAGES_NOTE="$(cat "$HP_DIR/free_hugepages") of $(cat "$HP_DIR/nr_hugepages") 2 MiB hugetlb pages free for fio (needs up to $HP_NEED)${HP_PREV:+; nr_hugepages raised from $HP_PREV, restored on exit}"
  else
    PAGES_NOTE="NOTE: no 2 MiB hugetlb pages for fio: $HP_FAIL. Both sides fall back to 4 KiB pages (fio malloc, strata-xferbench --host-memory populate); run as root with free memory for the 2 MiB comparison."
  fi
else
  PAGES_NOTE="--pages populate: both sides on 4 KiB pages"
fi
echo "# host buffer pages: fio $FIO_PAGES, strata-xferbench --host-memory $STRATA_PAGES${PAGES_NOTE:+ | $PAGES_NOTE}"

# The file: created with fallocate and filled once by strata-xferbench's write pass (an
# unwritten extent would read as zeros without touching the disk).
"$BIN" --file "$FILE" --file-size "$SIZE" --keep-file --backend posix --op read \
  --block-size 4M --batch 1 --qd 1 --seconds 0.1 --warmup 0 --host-memory "$STRATA_PAGES" >/dev/null

run_fio() {  # engine op bs qd rep [iomem args...] -> json file path on stdout
  local engine="$1" op="$2" bs="$3" qd="$4" out="$OUT/fio-$1-$2-$3-qd$4-r$5.json"
  shift 5
  local iomem=("${FIO_IOMEM[@]}")
  (($#)) && iomem=("$@")
  local args=(--name=strata-baseline --filename="$FILE" --direct=1 --rw="$op" --bs="$bs"
              --runtime="${RT_MS}ms" --time_based --ramp_time="${WARMUP_MS}ms" --output-format=json
              --output="$out" "${iomem[@]}")
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
  if ! fio "${args[@]}" >/dev/null || ! fio_ok "$out"; then
    echo "fio failed: $engine $op $bs QD $qd ${iomem[*]}; its JSON: $out" >&2
    if [[ "${iomem[*]}" == *mmaphuge* ]]; then
      echo "  (with --iomem=mmaphuge, too few 2 MiB hugetlb pages show as 'Bad address' or a" \
        "crashed job: $(cat "$HP_DIR/free_hugepages") of $(cat "$HP_DIR/nr_hugepages") free now;" \
        "or run with --pages populate)" >&2
    fi
    exit 1
  fi
  echo "$out"
}

fio_ok() {  # fio JSON -> 0 when it parses and its job reported no error
  python3 -c 'import json, sys; sys.exit(json.load(open(sys.argv[1]))["jobs"][0]["error"] != 0)' \
    "$1" 2>/dev/null
}

run_strata() {  # backend op bs qd rep [submit] -> json file path on stdout
  local backend="$1" op="$2" bs="$3" qd="$4" submit="${6:-auto}"
  local out="$OUT/strata-$1-$2-$3-qd$4-r$5.json"
  [[ "$submit" == auto ]] || out="$OUT/strata-$submit-$1-$2-$3-qd$4-r$5.json"
  local batch=1 reqs="$qd" cap=()
  if [[ "$submit" == execute-batch ]]; then
    # One thread, one request of 16 x QD blocks at a time through Execute: the caller's
    # ring keeps QD I/Os in flight and refills as each completes (fio io_uring
    # --iodepth=QD), draining only at the end of each request. Host slots beyond 256 MiB
    # are reused (for throughput it does not matter which slot a block lands in).
    submit=execute
    batch=$((16 * qd))
    reqs=1
    cap=(--host-mem 256M)
  fi
  local args=(--file "$FILE" --file-size "$SIZE" --keep-file --backend "$backend" --op "$op"
              --block-size "$bs" --batch "$batch" --qd "$reqs" --direct on --pattern seq
              --submit "$submit" --seconds "$RT" --warmup "$WARMUP_S" "${cap[@]}"
              --host-memory "$STRATA_PAGES" --quiet --json "$out")
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
          # At QD > 1 strata also runs its synchronous shape of fio's: posix with
          # --submit execute-threads (QD caller threads, each Executing one request at a
          # time over its own slice: fio psync --numjobs=QD), io_uring with execute-batch
          # (one thread Executing a 16 x QD-block request with QD I/Os in flight: fio
          # io_uring --iodepth=QD). Same alternation: fio, post, extra on odd reps, the
          # reverse on even ones.
          x=""
          extra=execute-threads
          [[ "$backend" == io_uring ]] && extra=execute-batch
          if ((rep % 2)); then
            f="$(run_fio "$fio_engine" "$op" "$bs" "$qd" "$rep")"
            s="$(run_strata "$backend" "$op" "$bs" "$qd" "$rep")"
            if ((qd > 1)); then
              x="$(run_strata "$backend" "$op" "$bs" "$qd" "$rep" "$extra")"
            fi
          else
            if ((qd > 1)); then
              x="$(run_strata "$backend" "$op" "$bs" "$qd" "$rep" "$extra")"
            fi
            s="$(run_strata "$backend" "$op" "$bs" "$qd" "$rep")"
            f="$(run_fio "$fio_engine" "$op" "$bs" "$qd" "$rep")"
          fi
          printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$backend" "$fio_engine" "$op" "$bs" "$qd" "$f" "$s" \
            "$others" "$x" >>"$pairs"
        done
      done
      echo "#   done $op $bs qd $qd"
    done
  done
done
fi

# The host buffer's pages change what the virtio disk delivers for large reads: the
# same io_uring point with fio on malloc'd and on hugetlb buffers, and strata's buffer
# populated by page faults, left for the registration to pin (as fio's malloc'd buffers
# are), on 2 MiB transparent huge pages and (when reserved) on 2 MiB hugetlb pages.
# Rows of memfx.tsv: block, QD, side, backing, JSON path.
if want pages; then
echo "# host buffer pages: io_uring reads, $REPS alternating runs"
fio_variants=("malloc --iomem=malloc")
strata_variants=(populate lazy thp)
if ((${#FIO_IOMEM[@]})); then
  fio_variants+=("hugetlb ${FIO_IOMEM[*]}")
  strata_variants+=(hugetlb)
fi
for point in "1M 32" "4M 8"; do
  read -r bs qd <<<"$point"
  for ((rep = 1; rep <= REPS; rep++)); do
    for v in "${fio_variants[@]}"; do
      read -r name iomem <<<"$v"
      read -ra iomem <<<"$iomem"
      f="$(run_fio io_uring read "$bs" "$qd" "$name$rep" "${iomem[@]}")"
      printf '%s\t%s\tfio\t%s\t%s\n' "$bs" "$qd" "$name" "$f" >>"$memfx"
    done
    for hm in "${strata_variants[@]}"; do
      out="$OUT/strata-memfx-$hm-$bs-qd$qd-r$rep.json"
      "$BIN" --file "$FILE" --file-size "$SIZE" --keep-file --backend io_uring --op read \
        --block-size "$bs" --batch 1 --qd "$qd" --uring-depth "$qd" --direct on --seconds "$RT" \
        --warmup "$WARMUP_S" --host-memory "$hm" --quiet --json "$out" >/dev/null
      printf '%s\t%s\tstrata\t%s\t%s\n' "$bs" "$qd" "$hm" "$out" >>"$memfx"
    done
  done
done
fi

if want mem; then
echo "# host<->host: memcpy backend vs single-thread std::memcpy"
"$BIN" --mode mem --block-size 256K,1M,4M,16M,64M --batch 1,16 --qd 1 --op both \
  --seconds "$MEM_RT" --warmup 0.2 --host-memory "$STRATA_PAGES" --quiet --json "$OUT/mem.json"
fi

if want raw; then
echo "# per-request overhead at QD1, batch 1"
"$BIN" --mode raw-overhead --file "$FILE" --file-size "$SIZE" --keep-file --op both \
  --block-size 4K,64K --direct both --seconds "$RAW_RT" --warmup 0.2 --host-memory "$STRATA_PAGES" \
  --quiet --json "$OUT/raw.json"
fi

FIO_PAGES="$FIO_PAGES" STRATA_PAGES="$STRATA_PAGES" PAGES_NOTE="$PAGES_NOTE" \
python3 - "$pairs" "$OUT/mem.json" "$OUT/raw.json" "$memfx" >"$OUT/summary.md" <<'EOF'
import json, os, statistics, sys

pairs, mem_path, raw_path, memfx_path = sys.argv[1:5]
def span(v):
    if not v:
        return "–"
    m = statistics.median(v)
    return f"{m:.3f}" if len(v) == 1 else f"{m:.3f} [{min(v):.2f}–{max(v):.2f}]"
def size(b):
    for s, n in ((30, "G"), (20, "M"), (10, "K")):
        if b >= 1 << s and b % (1 << s) == 0:
            return f"{b >> s}{n}"
    return str(b)
def fio_pages(fj):  # the backing fio's job used, from its own record of its options
    o = fj["job options"]
    mem = o.get("mem", o.get("iomem", "malloc"))
    return f"{mem} {o['hugepage-size']}" if "hugepage-size" in o else mem
def strata_pages(top):  # --host-memory and the share of the host buffer on huge pages
    hm, size_, huge = top.get("host_memory", "?"), top.get("host_buffer_bytes", 0), top.get("host_buffer_huge_bytes", -1)
    return f"{hm} ({100 * huge / size_:.0f}% huge)" if size_ > 0 and huge >= 0 else hm
def joined(values):
    return ", ".join(sorted(set(values)))

print("### Host buffer pages and submission path\n")
print(f"- fio: {os.environ['FIO_PAGES']}; strata-xferbench: --host-memory {os.environ['STRATA_PAGES']}.")
if os.environ.get("PAGES_NOTE"):
    print(f"- {os.environ['PAGES_NOTE']}")
print("- Per row below, as each side recorded it: fio's `mem` job option, strata's `--host-memory` "
      "with the share of its host buffer on huge pages after the run, and strata's submission path: "
      "`execute` = `TransferEngine::Execute` per request (QD 1; post and wait in one call, which "
      "may run the request on the calling thread, so the backend named is the request's, not "
      "necessarily the path that moved it; latency = the Execute call), `post` = `Post` + `Wait` "
      "with QD requests in flight.\n")

rows, disturbed, runs = {}, 0, 0
for line in open(pairs):
    backend, engine, op, bs, qd, fpath, spath, others, xpath = (line.rstrip("\n").split("\t") + [""])[:9]
    fall = json.load(open(fpath))["jobs"][0]
    fj = fall[op]
    stop = json.load(open(spath))
    sj = stop["points"][0]
    r = rows.setdefault((backend, engine, op, bs, qd),
                        {"fio": [], "strata": [], "flat": [], "slat": [], "ratio": [],
                         "submit": [], "fpages": [], "spages": []})
    r["fio"].append(fj["bw_bytes"] / 1e9)
    r["flat"].append(fj["lat_ns"]["mean"] / 1e3)
    r["strata"].append(sj["gbps"])
    r["slat"].append(sj["completion_us_mean"])
    r["ratio"].append(r["strata"][-1] / r["fio"][-1])
    r["submit"].append(sj.get("submit", "post"))
    r["fpages"].append(fio_pages(fall))
    r["spages"].append(strata_pages(stop))
    if xpath:  # strata execute-threads / execute-batch, run beside this pair
        xj = json.load(open(xpath))["points"][0]
        r.setdefault("xsubmit", []).append(
            xj["submit"] if xj["batch"] == 1 else f"execute, batch {xj['batch']}")
        r.setdefault("xgbps", []).append(xj["gbps"])
        r.setdefault("xlat", []).append(xj["completion_us_mean"])
        r.setdefault("xratio", []).append(xj["gbps"] / r["fio"][-1])
        r.setdefault("sratio", []).append(r["ratio"][-1])
    runs += 1
    disturbed += int(others) > 0
reps = max((len(r["fio"]) for r in rows.values()), default=0)
if rows:
  print(f"### fio vs strata (O_DIRECT, batch 1, sequential; median of {reps} alternating runs [min–max])\n")
  print(f"Pairs started while a compiler or test binary was running: {disturbed} of {runs}\n")
  print("| backend (fio engine) | op | block | QD | strata submit | fio pages | strata pages | fio GB/s | strata GB/s | strata/fio (median of pairs) | fio mean lat µs | strata mean compl µs |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for (backend, engine, op, bs, qd), r in rows.items():
    print(f"| {backend} ({engine}) | {op} | {bs} | {qd} | {joined(r['submit'])} | {joined(r['fpages'])} | "
          f"{joined(r['spages'])} | {span(r['fio'])} | {span(r['strata'])} | "
          f"{statistics.median(r['ratio']):.3f} | {statistics.median(r['flat']):.1f} | "
          f"{statistics.median(r['slat']):.1f} |")
xrows = [(k, r) for k, r in rows.items() if r.get("xgbps")]
if xrows:
  print(f"\n### QD > 1: fio vs strata Post + Wait and vs strata's synchronous path of the same shape\n")
  print("posix: fio's psync engine at QD N is N threads, each doing synchronous pread/pwrite on "
        "its own 1/N slice of the file. `strata-xferbench --submit execute-threads` is the same "
        "shape: N caller threads, each with its own requests over its own slice and its own host "
        "slots, calling `TransferEngine::Execute` on one request at a time (pread/pwrite on the "
        "caller up to inline_io_bytes = 1 MiB; 4M blocks are handed to the posix workers, "
        "--threads N). io_uring: fio --iodepth=N is one thread keeping N I/Os in flight; strata "
        "`--submit execute --batch 16N --uring-depth N` is one thread calling Execute on one "
        "request of 16N blocks at a time, whose caller ring keeps N I/Os in flight and refills "
        "as each completes (draining at the end of each request). The post columns repeat the "
        "table above (one thread keeping N requests in flight). Same runs, same alternation; "
        "ratios are medians of the per-run ratios to the fio run beside them.\n")
  print("| backend | op | block | QD | sync submit | fio GB/s | strata post GB/s | strata sync GB/s | post/fio | sync/fio | fio mean lat µs | post mean compl µs | sync mean compl µs (per request) |")
  print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
for (backend, engine, op, bs, qd), r in xrows:
    print(f"| {backend} | {op} | {bs} | {qd} | {joined(r['xsubmit'])} | {span(r['fio'])} | {span(r['strata'])} | "
          f"{span(r['xgbps'])} | {statistics.median(r['sratio']):.3f} | "
          f"{statistics.median(r['xratio']):.3f} | {statistics.median(r['flat']):.1f} | "
          f"{statistics.median(r['slat']):.1f} | {statistics.median(r['xlat']):.1f} |")

fx, fio_cols, strata_cols = {}, [], []
for line in open(memfx_path):
    bs, qd, side, backing, path = line.rstrip("\n").split("\t")
    j = json.load(open(path))
    r = fx.setdefault((bs, qd), {"fio": {}, "strata": {}, "spages": {}})
    if side == "fio":
        r["fio"].setdefault(backing, []).append(j["jobs"][0]["read"]["bw_bytes"] / 1e9)
        fio_cols += [backing] if backing not in fio_cols else []
    else:
        r["strata"].setdefault(backing, []).append(j["points"][0]["gbps"])
        r["spages"].setdefault(backing, []).append(strata_pages(j))
        strata_cols += [backing] if backing not in strata_cols else []
if fx:
  print("\n### host buffer pages (io_uring, O_DIRECT read, batch 1, strata submit post; median [min–max])\n")
  print("fio malloc = its default buffers (4 KiB pages, faulted when first used); fio hugetlb = "
        "--iomem=mmaphuge --hugepage-size=2M. strata: --host-memory; the share of its buffer on "
        "huge pages after each run is listed below the table.\n")
  print("| block | QD | " + " | ".join(f"fio {c} GB/s" for c in fio_cols) + " | "
        + " | ".join(f"strata {c} GB/s" for c in strata_cols) + " |")
  print("|---|---|" + "---|" * (len(fio_cols) + len(strata_cols)))
for (bs, qd), r in fx.items():
    cells = [span(r["fio"].get(c, [])) for c in fio_cols] + [span(r["strata"].get(c, [])) for c in strata_cols]
    print(f"| {bs} | {qd} | " + " | ".join(cells) + " |")
if fx:
  print()
  for (bs, qd), r in fx.items():
    print(f"- {bs} QD {qd}: strata buffers " + "; ".join(joined(v) for v in r["spages"].values()))

if os.path.exists(mem_path):
  mj = json.load(open(mem_path))
  print("\n### host<->host: memcpy backend vs single-thread std::memcpy\n")
  print(f"Both buffers and the std::memcpy baseline (which copies between the same two buffers): "
        f"--host-memory {mj.get('host_memory', '?')} ({strata_pages(mj)} local; remote "
        f"{100 * mj.get('remote_buffer_huge_bytes', 0) / max(mj.get('remote_buffer_bytes', 1), 1):.0f}% huge).\n")
  print("| op | block | batch | QD | submit | engine GB/s | std::memcpy GB/s | engine/memcpy | post µs mean | compl µs mean |")
  print("|---|---|---|---|---|---|---|---|---|---|")
for p in (json.load(open(mem_path))["points"] if os.path.exists(mem_path) else []):
    post = "–" if p["post_us_mean"] is None else f"{p['post_us_mean']:.1f}"
    print(f"| {p['op']} | {size(p['block_size'])} | {p['batch']} | {p['qd']} | {p.get('submit', 'post')} | "
          f"{p['gbps']:.2f} | {p['memcpy_gbps']:.2f} | {p['ratio']:.3f} | {post} | {p['completion_us_mean']:.1f} |")

if os.path.exists(raw_path):
  rj = json.load(open(raw_path))
  print("\n### per-request overhead (QD1, batch 1)\n")
  print(f"Host buffer: {strata_pages(rj)}. Each engine backend runs twice: Post + Wait, and Execute (`… execute`).\n")
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
