#!/usr/bin/env python3
"""What the Python binding adds to each Match / Load / Store call, measured against the same
calls made from C++ in the same process and run (strata._strata._time_calls).

Per iteration, on both sides: Match of an N-token prompt whose every full block is in G2
(leased to one request id), Load of all matched blocks into device blocks, wait, Store of the
prompt's keys from the same blocks (present, so 'skipped'), wait, Release. Only the three
calls are timed, not the copies they start nor the waits. The C++ side converts the tokens
and block ids once, before its loop; the Python side passes them on every call, as an engine
does, so their conversion is part of the overhead measured.

Python variants, each timed with time.perf_counter_ns:
  native/list    strata._strata.Manager (m._native), tokens and block ids as Python lists
                 (what vLLM passes)
  native/numpy   the same with numpy int32 arrays
  wrapper/list   strata.Manager (the documented class, one more Python frame per call)
  wrapper/numpy

Rounds alternate the C++ loop and the four Python loops (the order rotates each round).
Reported: the median of the per-round medians [min-max], and the overhead per call as the
median of the per-round differences python - C++ (each the same round's medians).

usage: PYTHONPATH=build/python /usr/bin/python3 python/bench/overhead_bench.py
           [--tokens 8192] [--iterations 200] [--rounds 5] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np
import torch

import strata
from strata import _strata

TARGET_US = 50.0
CALLS = ("match", "load", "store")
VARIANTS = ("native/list", "native/numpy", "wrapper/list", "wrapper/numpy")

# A small layout so G2 holds the prompt many times over: 4 layers x K/V x 2 heads x 64 dim,
# fp16, 16 tokens per block = 32 KiB per block.
LAYOUT = dict(num_layers=4, num_kv_heads=2, head_dim=64, dtype="fp16", tokens_per_block=16)


def make_manager(prompt_blocks: int) -> tuple[strata.Manager, dict[str, torch.Tensor]]:
    block_bytes = (LAYOUT["num_layers"] * 2 * LAYOUT["tokens_per_block"] *
                   LAYOUT["num_kv_heads"] * LAYOUT["head_dim"] * 2)
    host_gb = max(1, math.ceil(2 * prompt_blocks * block_bytes / 2**30))
    m = strata.Manager(use_env=False, model_fingerprint="overhead-bench",
                       **{f"layout_{k}": v for k, v in LAYOUT.items()},
                       host_capacity_gb=host_gb, disk_capacity_gb=0)
    num_blocks = max(1024, prompt_blocks + 64)
    shape = (2, num_blocks, LAYOUT["tokens_per_block"], LAYOUT["num_kv_heads"],
             LAYOUT["head_dim"])  # FlashAttention's [2, num_blocks, block_size, heads, dim]
    gen = torch.Generator().manual_seed(7)
    kv = {f"model.layers.{i}.self_attn.attn": torch.randn(shape, generator=gen).half()
          for i in range(LAYOUT["num_layers"])}
    spec = m.register_kv_caches(kv)
    assert spec.kind == "flash_attn" and spec.order == "kv_major", spec
    return m, kv


def seed_and_check(m: strata.Manager, tokens: list[int], blocks: list[int]) -> None:
    """Stores the prompt once and checks that the timed sequence does what it should: every
    block matched in G2, loaded, and the store skipped (keys present)."""
    n = len(blocks)
    h = m.store("seed", m.compute_keys(tokens), blocks)
    if not h.wait(60) or set(h.states()) != {"done"}:
        sys.exit(f"seeding store failed: {sorted(set(h.states()))} {h.errors()[:3]}")
    m.release("seed")
    match = m.match(tokens, "check")
    if match.num_matched_blocks != n or set(match.tiers) != {2}:
        sys.exit(f"match hit {match.num_matched_blocks} of {n} blocks, tiers {set(match.tiers)}")
    load = m.load(match, blocks)
    load.wait(60)
    if load.usable_blocks != n:
        sys.exit(f"load: {load.usable_blocks} of {n} usable, {load.errors()[:3]}")
    store = m.store("check", match.keys, blocks)
    store.wait(60)
    if set(store.states()) != {"skipped"}:
        sys.exit(f"store of present keys: states {sorted(set(store.states()))}")
    m.release("check")


def time_python(mgr, tokens, blocks, rid: str, iterations: int) -> dict[str, float]:
    """Median µs of each call, over `iterations` of the sequence _time_calls runs."""
    clock = time.perf_counter_ns
    match_ns, load_ns, store_ns = [], [], []
    for _ in range(iterations):
        t0 = clock()
        match = mgr.match(tokens, rid)
        t1 = clock()
        load = mgr.load(match, blocks)
        t2 = clock()
        load.wait()
        keys = match.keys
        t3 = clock()
        store = mgr.store(rid, keys, blocks)
        t4 = clock()
        store.wait()
        mgr.release(rid)
        # Dropped here, untimed, as _time_calls's objects die at the end of its iteration;
        # otherwise the next assignment would run the previous objects' destructors inside
        # the timed call.
        del match, load, keys, store
        match_ns.append(t1 - t0)
        load_ns.append(t2 - t1)
        store_ns.append(t4 - t3)
    return {f"{c}_us": statistics.median(v) / 1000.0
            for c, v in zip(CALLS, (match_ns, load_ns, store_ns))}


def time_cpp(m: strata.Manager, tokens, blocks, rid: str, iterations: int) -> dict[str, float]:
    return dict(_strata._time_calls(m._native, tokens, blocks, rid, iterations))


def machine() -> dict[str, str]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                         "")
    except OSError:
        pass
    return {"cpu": model, "nproc": str(os.cpu_count()), "python": platform.python_version(),
            "numpy": np.__version__, "torch": torch.__version__, "strata": strata.__version__,
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tokens", type=int, default=8192, help="prompt length (default 8192)")
    ap.add_argument("--iterations", type=int, default=200,
                    help="iterations per round and variant (default 200)")
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds (default 5)")
    ap.add_argument("--json", nargs="?", const="-", metavar="PATH",
                    help="also write the results as JSON to PATH; without PATH, print the JSON to "
                         "stdout and the table to stderr")
    args = ap.parse_args()
    bs = LAYOUT["tokens_per_block"]
    if args.tokens < bs or args.iterations < 1 or args.rounds < 1:
        ap.error(f"--tokens must be >= {bs}, --iterations and --rounds >= 1")

    prompt_blocks = args.tokens // bs
    rng = np.random.default_rng(1)
    tokens_np = rng.integers(0, 128_000, size=args.tokens, dtype=np.int32)
    tokens_list = [int(t) for t in tokens_np]
    blocks_list = list(range(prompt_blocks))
    blocks_np = np.arange(prompt_blocks, dtype=np.int32)

    if args.json == "-":
        # Strata's C++ log lines (spdlog's default logger) go to fd 1; keep stdout JSON-only.
        sys.stdout.flush()
        saved = os.dup(1)
        os.dup2(2, 1)
        try:
            m, kv = make_manager(prompt_blocks)
        finally:
            os.dup2(saved, 1)
            os.close(saved)
    else:
        m, kv = make_manager(prompt_blocks)
    seed_and_check(m, tokens_list, blocks_list)
    targets = {
        "native/list": (m._native, tokens_list, blocks_list),
        "native/numpy": (m._native, tokens_np, blocks_np),
        "wrapper/list": (m, tokens_list, blocks_list),
        "wrapper/numpy": (m, tokens_np, blocks_np),
    }
    rid = "bench"
    # Warm-up (not reported): caches, branch predictors, the allocator's free lists.
    warm = max(10, args.iterations // 10)
    time_cpp(m, tokens_list, blocks_list, rid, warm)
    for mgr, t, b in targets.values():
        time_python(mgr, t, b, rid, warm)

    order = ["c++"] + list(VARIANTS)
    rounds: list[dict[str, dict[str, float]]] = []
    t_start = time.time()
    for r in range(args.rounds):
        res: dict[str, dict[str, float]] = {}
        for name in order[r % len(order):] + order[:r % len(order)]:
            gc.collect()
            if name == "c++":
                res[name] = time_cpp(m, tokens_list, blocks_list, rid, args.iterations)
            else:
                mgr, t, b = targets[name]
                res[name] = time_python(mgr, t, b, rid, args.iterations)
        rounds.append(res)
    elapsed = time.time() - t_start
    m.close()
    del kv

    def summary(name: str, call: str) -> dict[str, float]:
        v = [rd[name][f"{call}_us"] for rd in rounds]
        return {"median": statistics.median(v), "min": min(v), "max": max(v)}

    results: dict[str, dict[str, dict[str, float]]] = {}
    for name in order:
        results[name] = {}
        for call in CALLS:
            s = summary(name, call)
            if name != "c++":
                d = [rd[name][f"{call}_us"] - rd["c++"][f"{call}_us"] for rd in rounds]
                s["overhead"] = statistics.median(d)
                s["overhead_min"], s["overhead_max"] = min(d), max(d)
                s["under_target"] = s["overhead"] < TARGET_US
            results[name][call] = s

    info = machine()
    out = sys.stderr if args.json == "-" else sys.stdout  # stdout: the JSON alone

    def say(*a: object) -> None:
        print(*a, file=out)

    say(f"Python binding overhead per call: {args.tokens}-token prompt ({prompt_blocks} blocks "
          f"of {bs}, all in G2), {args.rounds} rounds x {args.iterations} iterations per side, "
          f"{elapsed:.1f} s")
    say(f"machine: {info['cpu']}, {info['nproc']} CPUs, load average {info['loadavg']}; "
          f"Python {info['python']}, numpy {info['numpy']}, torch {info['torch']}, "
          f"strata {info['strata']}")
    say()
    say("median of per-round medians, µs [min-max]; overhead = median over rounds of "
          "(python - C++ of the same round)")
    say()
    hdr = f"| {'side':<14} | " + " | ".join(f"{c:<30}" for c in CALLS) + " |"
    say(hdr)
    say("|" + "|".join("-" * len(x) for x in hdr.split("|")[1:-1]) + "|")
    for name in order:
        cells = []
        for call in CALLS:
            s = results[name][call]
            cell = f"{s['median']:.1f} [{s['min']:.1f}-{s['max']:.1f}]"
            if name != "c++":
                cell += f" +{s['overhead']:.1f}" if s["overhead"] >= 0 else f" {s['overhead']:.1f}"
            cells.append(f"{cell:<30}")
        say(f"| {name:<14} | " + " | ".join(cells) + " |")
    say()
    worst = max((results[n][c]["overhead"], n, c) for n in VARIANTS for c in CALLS)
    ok = all(results[n][c]["under_target"] for n in VARIANTS for c in CALLS)
    say(f"largest overhead: +{worst[0]:.1f} µs ({worst[1]} {worst[2]}); target < "
          f"{TARGET_US:.0f} µs per call: {'met' if ok else 'NOT met'}")
    for n in VARIANTS:
        bad = [c for c in CALLS if not results[n][c]["under_target"]]
        if bad:
            say(f"  {n}: over target on {', '.join(bad)}")

    if args.json:
        doc = {"tokens": args.tokens, "blocks": prompt_blocks, "iterations": args.iterations,
               "rounds": args.rounds, "layout": LAYOUT, "target_us": TARGET_US,
               "machine": info, "elapsed_s": elapsed, "results": results,
               "per_round": rounds}
        text = json.dumps(doc, indent=2)
        if args.json == "-":
            print(text)
        else:
            with open(args.json, "w") as f:
                f.write(text + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
