#!/usr/bin/env bash
# Runs strata-redisbench (RedisStore PutBatch / GetBatch) beside redis-benchmark against one
# throwaway redis-server on a free loopback port, at the same value size and pipeline depth,
# one connection each, one after the other, REPS times alternating which goes first, and
# prints the median MB/s (decimal) of each with their ratio. Results: docs/redis_tier.md.
#
#   bench/run_redis_baselines.sh [--bin PATH] [--sizes "65536 262144 1048576 2097152"]
#                                [--depths "1 16"] [--mb N] [--reps N]
#
#   --bin     strata-redisbench binary (default: build/bin, then build-redis/bin)
#   --sizes   block payload sizes in bytes; the value is the object, 128 bytes more
#   --depths  pipeline depths: RedisStore pipeline_depth and redis-benchmark -P
#   --mb      object MB written and read per run (default 512)
#   --reps    runs per tool and configuration (default 3)
#
# Like with like: both tools move the same value (128-byte object header + payload) over one
# connection (-c 1, connections_per_node 1) with the same pipeline depth. SETs store new
# keys on both sides (strata's SET NX keys are new; redis-benchmark -r 2^31 draws random
# keys, nearly all new). GETs read as many keys as they get, written at the same pipeline
# depth and read once before (unmeasured): strata its own (--warmup-passes 1),
# redis-benchmark -r N over N keys that strata-redisbench --fill-baseline-keys stores, after
# one unmeasured redis-benchmark pass. Redis serves a value much faster once it has been
# read, and values SET one at a time slower than values SET in pipelines (docs/redis_tier.md),
# so a small, hot or differently prepared keyspace would flatter one side. The server is
# flushed between runs.
# Needs redis-server, redis-benchmark, redis-cli (Debian: redis-server, redis-tools) and
# python3. Installs nothing.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN=""
SIZES="65536 262144 1048576 2097152"
DEPTHS="1 16"
MB=512
REPS=3
BATCH=32
while (($#)); do
  case "$1" in
    --bin) BIN="$2"; shift ;;
    --sizes) SIZES="$2"; shift ;;
    --depths) DEPTHS="$2"; shift ;;
    --mb) MB="$2"; shift ;;
    --reps) REPS="$2"; shift ;;
    -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
for tool in redis-server redis-benchmark redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "$tool is not installed" >&2; exit 1; }
done
if [[ -z "$BIN" ]]; then
  for b in "$ROOT/build/bin/strata-redisbench" "$ROOT/../build-redis/bin/strata-redisbench"; do
    [[ -x "$b" ]] && { BIN="$b"; break; }
  done
fi
[[ -x "$BIN" ]] || { echo "strata-redisbench not found; build it or pass --bin" >&2; exit 1; }

OUT="$(mktemp -d /tmp/strata-redis-baselines.XXXXXX)"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$PORT" --save "" --appendonly no --dir "$OUT" \
  --daemonize yes --pidfile "$OUT/redis.pid" --logfile "$OUT/redis.log"
trap 'kill "$(cat "$OUT/redis.pid")" 2>/dev/null || true' EXIT
for _ in $(seq 100); do redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.05; done
CLI=(redis-cli -p "$PORT")

strata_run() {  # strata_run payload depth rep -> "put_MBps get_MBps put_p99_ms get_p99_ms"
  "$BIN" --endpoint "127.0.0.1:$PORT" --sizes "$1" --depths "$2" --total-mb "$MB" \
    --batch "$BATCH" --warmup-passes 1 --csv >"$OUT/strata-$1-$2-$3.csv" 2>"$OUT/strata-$1-$2-$3.log"
  if grep -q failures "$OUT/strata-$1-$2-$3.log"; then
    echo "strata-redisbench reported failures: $(grep failures "$OUT/strata-$1-$2-$3.log")" >&2
  fi
  awk -F, '$1=="put"{p=$5; pp=$7} $1=="get"{g=$5; gp=$7} END{print p, g, pp, gp}' \
    "$OUT/strata-$1-$2-$3.csv"
}

rb_run() {  # rb_run object_bytes depth ops rep -> "set_MBps get_MBps"
  local obj="$1" depth="$2" n="$3" rep="$4" set get
  "${CLI[@]}" flushall >/dev/null
  set=$(redis-benchmark -p "$PORT" -t set -d "$obj" -P "$depth" -n "$n" -c 1 -r 2147483647 --csv \
    | tee "$OUT/rb-set-$obj-$depth-$rep.csv" | awk -F'"' '$2=="SET"{print $4}')
  "${CLI[@]}" flushall >/dev/null
  "$BIN" --endpoint "127.0.0.1:$PORT" --fill-baseline-keys "$n" --fill-bytes "$obj" \
    --fill-depth "$depth"
  redis-benchmark -p "$PORT" -t get -d "$obj" -P "$depth" -n "$n" -c 1 -r "$n" --csv \
    >"$OUT/rb-warmup-$obj-$depth-$rep.csv"
  get=$(redis-benchmark -p "$PORT" -t get -d "$obj" -P "$depth" -n "$n" -c 1 -r "$n" --csv \
    | tee "$OUT/rb-get-$obj-$depth-$rep.csv" | awk -F'"' '$2=="GET"{print $4}')
  "${CLI[@]}" flushall >/dev/null
  python3 -c "print(f'{$set * $obj / 1e6:.1f} {$get * $obj / 1e6:.1f}')"
}

median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.1f}')" "$@"; }

echo "# $(date -u +%FT%TZ) $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p')); redis $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'); ${MB} MB per run; batch $BATCH; reps $REPS; load $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%9s %5s | %10s %10s %6s | %10s %10s %6s | %s\n' payload depth "strata put" "r-b SET" ratio \
  "strata get" "r-b GET" ratio "strata p99 batch ms put/get"
for size in $SIZES; do
  for depth in $DEPTHS; do
    obj=$((size + 128))
    n=$(python3 -c "print(max(1, int($MB * 1e6 / $obj) // $BATCH) * $BATCH)")
    sp=(); sg=(); rp=(); rg=(); p99=""
    for ((r = 1; r <= REPS; r++)); do
      if ((r % 2)); then
        read -r a b c d < <(strata_run "$size" "$depth" "$r")
        read -r e f < <(rb_run "$obj" "$depth" "$n" "$r")
      else
        read -r e f < <(rb_run "$obj" "$depth" "$n" "$r")
        read -r a b c d < <(strata_run "$size" "$depth" "$r")
      fi
      sp+=("$a"); sg+=("$b"); rp+=("$e"); rg+=("$f"); p99+="$c/$d "
    done
    msp=$(median "${sp[@]}"); msg=$(median "${sg[@]}"); mrp=$(median "${rp[@]}"); mrg=$(median "${rg[@]}")
    printf '%9s %5s | %10s %10s %6s | %10s %10s %6s | %s\n' "$size" "$depth" "$msp" "$mrp" \
      "$(python3 -c "print(f'{$msp / $mrp:.2f}')")" "$msg" "$mrg" \
      "$(python3 -c "print(f'{$msg / $mrg:.2f}')")" "$p99"
  done
done
echo "raw results: $OUT"
