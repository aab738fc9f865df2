"""A contract driver for StrataConnector: it plays vLLM's scheduler and workers step by step
(vllm/v1/core/sched/scheduler.py and the worker's KV-connector mixin, as summarised in
../shared/research/vllm_connector.md §1.2) over real torch tensors in vLLM's paged layouts.

The scheduler half keeps vLLM's own prefix cache (full-block hashes -> blocks, LRU reuse of
free blocks), allocates blocks, chunks prefills, preempts and aborts on request, calls the
scheduler-role connector in vLLM's order and frees blocks as vLLM does (delayed while the
connector says its saves run, and on finished_recving for requests aborted while loading).

Workers run in this process or in child processes (one per TP rank). Each owns per-layer KV
tensors and a model that writes the KV of every computed token: a FakeModel whose KV is a
pure function of the prefix up to the token (so any KV from another prompt is detected), or
the reference engine's model. After every load a worker compares the loaded blocks with what
its model computes for those tokens: the driver counts mismatches (must be 0) and the blocks
it reported as failed (which the scheduler then recomputes).
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import torch

import vllm_fakes as vf

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


def prefix_digest(tokens: list[int], upto: int) -> bytes:
    return hashlib.sha256(repr(tokens[:upto]).encode()).digest()


class FakeModel:
    """KV of token p = f(tokens[:p+1], layer, K or V, rank): deterministic, prefix-dependent,
    different on every rank (each holds its own heads)."""

    def __init__(self, rank: int, num_layers: int, heads: int, head_dim: int, dtype: str,
                 layout: str = "flash_attn", num_blocks: int = 64, block_size: int = 16,
                 hnd: bool = False):
        self.rank, self.num_layers, self.heads, self.head_dim = rank, num_layers, heads, head_dim
        self.block_size, self.layout, self.hnd = block_size, layout, hnd
        self.dtype = _DTYPES[dtype]
        self.kv: dict[str, torch.Tensor] = {}
        for layer in range(num_layers):
            name = f"model.layers.{layer}.self_attn.attn"
            if layout == "flash_attn":
                shape = (2, num_blocks, block_size, heads, head_dim)
            elif layout == "flash_infer":
                shape = (num_blocks, 2, block_size, heads, head_dim)
            else:
                shape = (num_blocks, block_size, head_dim)
            if hnd and layout != "mla":
                # vLLM's HND: allocated heads-outer, viewed in the logical NHD shape.
                phys = list(shape)
                phys[-3], phys[-2] = phys[-2], phys[-3]
                t = torch.full(phys, -1.0, dtype=self.dtype).transpose(-3, -2)
            else:
                t = torch.full(shape, -1.0, dtype=self.dtype)
            self.kv[name] = t
        self.layers = list(self.kv.values())

    def _values(self, tokens: list[int], p: int, layer: int, comp: int) -> torch.Tensor:
        seed = int.from_bytes(prefix_digest(tokens, p + 1)[:6], "little")
        base = (seed + 7919 * layer + 104729 * comp + 15485863 * self.rank) % 1000003
        n = self.head_dim if self.layout == "mla" else self.heads * self.head_dim
        v = ((torch.arange(n, dtype=torch.int64) * 2654435761 + base) % 2048).to(torch.float32)
        v = (v - 1024) / 64.0
        shape = (self.head_dim,) if self.layout == "mla" else (self.heads, self.head_dim)
        return v.reshape(shape).to(self.dtype)

    def _slot(self, layer: int, comp: int, block: int, off: int) -> torch.Tensor:
        t = self.layers[layer]
        if self.layout == "flash_attn":
            return t[comp, block, off]
        if self.layout == "flash_infer":
            return t[block, comp, off]
        return t[block, off]

    def comps(self) -> int:
        return 1 if self.layout == "mla" else 2

    def forward(self, tokens: list[int], start: int, end: int, block_ids: list[int]) -> None:
        bs = self.block_size
        # A GPU forward writes all of a step's KV within a kernel launch; this model writes
        # token by token, slowly, so it first marks every block it starts afresh in one go,
        # as fast as a kernel would: a copy still reading such a block sees the marks.
        fresh = [block_ids[i] for i in range(-(-start // bs), -(-end // bs))]
        if fresh:
            idx = torch.tensor(fresh)
            for t in self.layers:
                if self.layout == "flash_attn":
                    t[:, idx] = 7.0
                else:
                    t[idx] = 7.0
        for p in range(start, end):
            b, off = block_ids[p // bs], p % bs
            for layer in range(self.num_layers):
                for c in range(self.comps()):
                    self._slot(layer, c, b, off).copy_(self._values(tokens, p, layer, c))

    def block_matches(self, tokens: list[int], index: int, block_id: int) -> bool:
        bs = self.block_size
        for p in range(index * bs, (index + 1) * bs):
            for layer in range(self.num_layers):
                for c in range(self.comps()):
                    got = self._slot(layer, c, block_id, p % bs)
                    if not torch.equal(got, self._values(tokens, p, layer, c)):
                        return False
        return True


# ====================================== workers ==========================================

@dataclass
class ForwardItem:
    req_id: str
    tokens: list[int]
    start: int
    end: int
    block_ids: list[int]


@dataclass
class StepInput:
    meta: Any
    forwards: list[ForwardItem]
    finished_req_ids: set[str]


@dataclass
class StepResult:
    output: vf.KVConnectorOutput
    mismatched_blocks: list[tuple[str, int]]   # (request, block index) loaded with wrong KV
    verified_blocks: int


class Worker:
    """One rank: a worker-role connector, its KV tensors and model."""

    def __init__(self, vllm_config: vf.VllmConfig, rank: int, model_factory: Callable[[int], Any]):
        from strata.vllm import KVConnectorRole, StrataConnector
        vllm_config.parallel_config.rank = rank
        self.model = model_factory(rank)
        self.connector = StrataConnector(vllm_config, KVConnectorRole.WORKER)
        self.connector.register_kv_caches(self.model.kv)
        self.rank = rank
        self.loading: dict[str, Any] = {}

    def step(self, inp: StepInput) -> StepResult:
        c = self.connector
        c.handle_preemptions(inp.meta)
        c.bind_connector_metadata(inp.meta)
        for spec in inp.meta.loads:
            self.loading[spec.req_id] = spec
        c.start_load_kv(None)
        for f in inp.forwards:
            for layer in range(self.model.num_layers):
                c.wait_for_layer_load(f"layer{layer}")
            self.model.forward(f.tokens, f.start, f.end, f.block_ids)
        c.wait_for_save()
        sending, recving = c.get_finished(inp.finished_req_ids)
        errors = c.get_block_ids_with_load_errors()
        stats = c.get_kv_connector_stats()
        c.clear_connector_metadata()
        mismatched, verified = [], 0
        for rid in recving or ():
            spec = self.loading.pop(rid)
            for i, b in enumerate(spec.block_ids):
                if b in errors:
                    continue
                verified += 1
                if not self.model.block_matches(spec.token_ids, spec.first_block + i, b):
                    mismatched.append((rid, spec.first_block + i))
        return StepResult(vf.KVConnectorOutput(sending, recving, set(errors), stats),
                          mismatched, verified)

    def shutdown(self) -> None:
        self.connector.shutdown()


def worker_metrics_port(w: Worker) -> int:
    """Where a worker serves Strata's /metrics (for RemoteWorker.call)."""
    return w.connector.metrics_port


def _worker_main(conn: Any, vllm_config: vf.VllmConfig, rank: int, factory: Any) -> None:
    try:
        w = Worker(vllm_config, rank, factory)
        conn.send(("ready", None))
        while True:
            msg, arg = conn.recv()
            if msg == "step":
                conn.send(("ok", w.step(arg)))
            elif msg == "call":
                fn, args = arg
                conn.send(("ok", fn(w, *args)))
            elif msg == "stop":
                w.shutdown()
                conn.send(("ok", None))
                return
    except BaseException:  # noqa: BLE001  (the parent re-raises it)
        conn.send(("error", traceback.format_exc()))


class RemoteWorker:
    """A Worker in a child process (spawned: a fresh interpreter, as vLLM's workers are)."""

    def __init__(self, vllm_config: vf.VllmConfig, rank: int, factory: Any):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_worker_main, args=(child, vllm_config, rank, factory),
                                daemon=True)
        self.proc.start()
        self._expect()

    def _expect(self) -> Any:
        if not self.conn.poll(120):
            raise TimeoutError("worker did not answer in 120 s")
        kind, value = self.conn.recv()
        if kind == "error":
            raise RuntimeError("worker failed:\n" + value)
        return value

    def step(self, inp: StepInput) -> StepResult:
        self.conn.send(("step", inp))
        return self._expect()

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        self.conn.send(("call", (fn, args)))
        return self._expect()

    def shutdown(self) -> None:
        self.conn.send(("stop", None))
        self._expect()
        self.proc.join(30)


# ===================================== scheduler =========================================

class BlockPool:
    """vLLM's KV block pool with prefix caching: full blocks are cached by the hash of their
    prefix; freed blocks keep their hash until reused (least recently freed first)."""

    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = True):
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.free: OrderedDict[int, None] = OrderedDict((b, None) for b in range(num_blocks))
        self.refs = [0] * num_blocks
        self.hash_of: dict[int, bytes] = {}
        self.block_of: dict[bytes, int] = {}

    def local_hit(self, tokens: list[int], limit: int) -> list[int]:
        if not self.prefix_caching:
            return []
        out = []
        for i in range(limit // self.block_size):
            b = self.block_of.get(prefix_digest(tokens, (i + 1) * self.block_size))
            if b is None:
                break
            out.append(b)
        return out

    def take(self, blocks: list[int]) -> None:
        for b in blocks:
            self.refs[b] += 1
            self.free.pop(b, None)

    def allocate(self, n: int) -> list[int]:
        if n > len(self.free):
            raise RuntimeError(f"out of KV blocks: {n} wanted, {len(self.free)} free")
        out = []
        for _ in range(n):
            b, _ = self.free.popitem(last=False)
            h = self.hash_of.pop(b, None)
            if h is not None:
                self.block_of.pop(h, None)
            self.refs[b] = 1
            out.append(b)
        return out

    def cache(self, tokens: list[int], blocks: list[int], computed: int) -> None:
        if not self.prefix_caching:
            return
        for i in range(min(computed, len(tokens)) // self.block_size):
            h = prefix_digest(tokens, (i + 1) * self.block_size)
            if h not in self.block_of and blocks[i] not in self.hash_of:
                self.block_of[h] = blocks[i]
                self.hash_of[blocks[i]] = h

    def release(self, blocks: list[int]) -> None:
        for b in blocks:
            self.refs[b] -= 1
            assert self.refs[b] >= 0, f"block {b} freed twice"
            if self.refs[b] == 0:
                self.free[b] = None


@dataclass
class _Req:
    req: vf.Request
    blocks: list[int] = field(default_factory=list)
    load_first: int = 0          # first block of an async load in flight
    load_blocks: list[int] = field(default_factory=list)
    scheduled_before: bool = False
    resumed: bool = False
    sent_blocks: int = 0


class Driver:
    """vLLM's scheduler loop around one scheduler-role connector and N workers."""

    def __init__(self, vllm_config: vf.VllmConfig, workers: list[Any], num_blocks: int,
                 chunk: int = 64, prefix_caching: bool = True):
        from strata.vllm import KVConnectorRole, StrataConnector
        self.cfg = vllm_config
        self.bs = vllm_config.cache_config.block_size
        self.connector = StrataConnector(vllm_config, KVConnectorRole.SCHEDULER)
        self.workers = workers
        self.pool = BlockPool(num_blocks, self.bs, prefix_caching)
        self.chunk = chunk
        self.agg = vf.KVOutputAggregator(len(workers))
        self.waiting: list[_Req] = []
        self.running: list[_Req] = []
        self.loading: dict[str, _Req] = {}
        self.reqs: dict[str, _Req] = {}
        self.finished_req_ids: set[str] = set()
        self.delayed: dict[str, _Req] = {}
        self.preempt_next: set[str] = set()
        self.abort_next: set[str] = set()
        self.done: dict[str, vf.Request] = {}
        # What the test reads.
        self.external_tokens: dict[str, int] = {}   # tokens the connector promised
        self.local_tokens: dict[str, int] = {}      # vLLM's own prefix-cache hits
        self.failed_blocks: dict[str, int] = {}     # promised blocks reported failed
        self.recomputed_tokens: dict[str, int] = {}
        self.mismatched: list[tuple[str, int]] = []
        self.verified_blocks = 0
        self.steps = 0
        self.matched_calls: dict[str, list[Any]] = {}
        self.stats: list[Any] = []
        self.after_schedule: Optional[Callable[["Driver", vf.SchedulerOutput], None]] = None

    # -- requests ------------------------------------------------------------------------
    def add(self, req: vf.Request) -> None:
        r = _Req(req)
        self.reqs[req.request_id] = r
        self.waiting.append(r)

    def preempt(self, req_id: str) -> None:
        self.preempt_next.add(req_id)

    def abort(self, req_id: str) -> None:
        self.abort_next.add(req_id)

    # -- one engine step -----------------------------------------------------------------
    def step(self) -> None:
        self.steps += 1
        so = vf.SchedulerOutput(finished_req_ids=self.finished_req_ids)
        self.finished_req_ids = set()
        for rid in list(self.abort_next):
            self._finish(self.reqs[rid], vf.RequestStatus.FINISHED_ABORTED)
        self.abort_next.clear()
        for r in list(self.running):
            if r.req.request_id in self.preempt_next:
                self._preempt(r, so)
        self.preempt_next.clear()
        # Running requests: the next prefill chunk, or one decode token.
        for r in list(self.running):
            req = r.req
            n = min(self.chunk, req.num_tokens - req.num_computed_tokens)
            if n <= 0:
                continue
            self._grow(r, req.num_computed_tokens + n)
            self._schedule(r, n, so)
        # Waiting requests, in order, unless this step preempted one (vLLM's rule).
        for r in list(self.waiting) if not so.preempted_req_ids else []:
            req = r.req
            if req.status == vf.RequestStatus.WAITING_FOR_REMOTE_KVS:
                continue
            limit = req.num_tokens - 1
            local = self.pool.local_hit(req.all_token_ids, limit)
            num_local = len(local) * self.bs
            ext, is_async = self.connector.get_num_new_matched_tokens(req, num_local)
            self.matched_calls.setdefault(req.request_id, []).append((num_local, ext, is_async))
            if ext is None:
                continue  # lookup not finished: ask again next step
            assert ext == 0 or is_async, "Strata loads are asynchronous"
            assert ext >= 0 and num_local + ext <= req.num_tokens - 1, "never the whole prompt"
            assert (num_local + ext) % self.bs == 0, "loads are whole blocks"
            first_chunk = 0 if ext else min(self.chunk, req.num_tokens - num_local)
            need = -(-(num_local + ext + first_chunk) // self.bs) - len(local)
            if need > len(self.pool.free) - sum(1 for b in local if b in self.pool.free):
                break  # no room: the request waits (its lookup stays cached)
            self.pool.take(local)
            r.blocks = list(local)
            self.local_tokens[req.request_id] = num_local
            self.waiting.remove(r)
            if ext > 0:
                r.blocks += self.pool.allocate(ext // self.bs)
                self.connector.update_state_after_alloc(req, vf.KVCacheBlocks(r.blocks), ext)
                self.external_tokens[req.request_id] = \
                    self.external_tokens.get(req.request_id, 0) + ext
                r.load_first = num_local // self.bs
                r.load_blocks = r.blocks[r.load_first:]
                req.num_computed_tokens = num_local + ext
                req.status = vf.RequestStatus.WAITING_FOR_REMOTE_KVS
                self.loading[req.request_id] = r
                continue
            req.num_computed_tokens = num_local
            n = min(self.chunk, req.num_tokens - num_local)
            self._grow(r, num_local + n)
            self.connector.update_state_after_alloc(req, vf.KVCacheBlocks(r.blocks), 0)
            req.status = vf.RequestStatus.RUNNING
            self.running.append(r)
            self._schedule(r, n, so, new=True)
        meta = self.connector.build_connector_meta(so)
        so.kv_connector_metadata = meta
        if self.after_schedule:
            self.after_schedule(self, so)
        forwards = [ForwardItem(rid, self.reqs[rid].req.all_token_ids,
                                self.reqs[rid].req.num_computed_tokens,
                                self.reqs[rid].req.num_computed_tokens + n,
                                list(self.reqs[rid].blocks))
                    for rid, n in so.num_scheduled_tokens.items()]
        inp = StepInput(meta, forwards, set(so.finished_req_ids))
        results = [w.step(inp) for w in self.workers]
        for res in results:
            self.mismatched += res.mismatched_blocks
            self.verified_blocks += res.verified_blocks
        out = self.agg.aggregate([res.output for res in results])
        if out.kv_connector_stats is not None:
            self.stats.append(out.kv_connector_stats)
        self._update(so, out)

    def _grow(self, r: _Req, tokens: int) -> None:
        need = -(-tokens // self.bs) - len(r.blocks)
        if need > 0:
            r.blocks += self.pool.allocate(need)

    def _schedule(self, r: _Req, n: int, so: vf.SchedulerOutput, new: bool = False) -> None:
        req = r.req
        rid = req.request_id
        so.num_scheduled_tokens[rid] = n
        so.total_num_scheduled_tokens += n
        if not r.scheduled_before:
            so.scheduled_new_reqs.append(vf.NewRequestData(
                rid, list(req.prompt_token_ids), (list(r.blocks),), req.num_computed_tokens,
                req.lora_request))
            r.scheduled_before = True
            r.sent_blocks = len(r.blocks)
            return
        cached = so.scheduled_cached_reqs
        cached.req_ids.append(rid)
        if r.resumed:
            cached.resumed_req_ids.add(rid)
            cached.new_block_ids.append((list(r.blocks),))
            r.resumed = False
        else:
            new_ids = r.blocks[r.sent_blocks:]
            cached.new_block_ids.append((list(new_ids),) if new_ids else None)
        r.sent_blocks = len(r.blocks)
        cached.num_computed_tokens.append(req.num_computed_tokens)
        cached.num_output_tokens.append(len(req.output_token_ids))

    def _preempt(self, r: _Req, so: vf.SchedulerOutput) -> None:
        # vLLM frees the blocks without telling the connector (only preempted_req_ids).
        self.running.remove(r)
        self.pool.release(r.blocks)
        r.blocks = []
        r.req.num_computed_tokens = 0
        r.req.num_preemptions += 1
        r.req.status = vf.RequestStatus.PREEMPTED
        r.resumed = True
        so.preempted_req_ids.add(r.req.request_id)
        self.waiting.insert(0, r)

    def _finish(self, r: _Req, status: vf.RequestStatus) -> None:
        req = r.req
        rid = req.request_id
        was_loading = req.status == vf.RequestStatus.WAITING_FOR_REMOTE_KVS
        if r in self.running:
            self.running.remove(r)
        if r in self.waiting:
            self.waiting.remove(r)
        req.status = status
        delay, _ = self.connector.request_finished(req, list(r.blocks))
        assert not (delay and was_loading), "a loading request's blocks are vLLM's to hold"
        self.finished_req_ids.add(rid)
        self.done[rid] = req
        if was_loading:
            return  # freed when its load is reported (vLLM's finished_recving path)
        if delay:
            self.delayed[rid] = r
        else:
            self._free(r)

    def _free(self, r: _Req) -> None:
        self.pool.release(r.blocks)
        r.blocks = []
        self.reqs.pop(r.req.request_id, None)

    def _update(self, so: vf.SchedulerOutput, out: vf.KVConnectorOutput) -> None:
        # Failed loads first: the request's computed tokens stop at its first failed block
        # (kv_load_failure_policy "recompute").
        if out.invalid_block_ids:
            for rid, r in self.loading.items():
                bad = [i for i, b in enumerate(r.load_blocks) if b in out.invalid_block_ids]
                if bad:
                    first_bad = r.load_first + bad[0]
                    self.failed_blocks[rid] = self.failed_blocks.get(rid, 0) + \
                        len(r.load_blocks) - bad[0]
                    r.req.num_computed_tokens = min(r.req.num_computed_tokens,
                                                    first_bad * self.bs)
                    self.recomputed_tokens[rid] = self.recomputed_tokens.get(rid, 0) + \
                        (len(r.load_blocks) - bad[0]) * self.bs
        self.connector.update_connector_output(out)
        for rid in out.finished_recving or ():
            r = self.loading.pop(rid)
            if r.req.status.finished():
                self._free(r)
                continue
            # vLLM: a full hit leaves the last token to compute.
            r.req.num_computed_tokens = min(r.req.num_computed_tokens, r.req.num_tokens - 1)
            self.pool.cache(r.req.all_token_ids, r.blocks, r.req.num_computed_tokens)
            r.req.status = vf.RequestStatus.RUNNING
            self.running.append(r)
        for rid in out.finished_sending or ():
            assert rid in self.delayed, f"{rid} reported as sent but its free was not delayed"
            self._free(self.delayed.pop(rid))
        # Tokens computed this step; a request that produced its last token finishes.
        for rid, n in so.num_scheduled_tokens.items():
            r = self.reqs.get(rid)
            if r is None or r.req.status != vf.RequestStatus.RUNNING:
                continue
            req = r.req
            req.num_computed_tokens += n
            self.pool.cache(req.all_token_ids, r.blocks, req.num_computed_tokens)
            if req.num_computed_tokens >= req.num_tokens:
                req.output_token_ids.append(1000 + len(req.output_token_ids))
                if len(req.output_token_ids) >= req.max_tokens:
                    self._finish(r, vf.RequestStatus.FINISHED_STOPPED)

    def idle(self) -> bool:
        return not (self.waiting or self.running or self.loading or self.delayed
                    or self.finished_req_ids)

    def run(self, timeout: float = 120.0) -> None:
        """Steps until nothing is left to do; between steps with nothing to compute (loads
        or saves still running) it sleeps a little, as an idle engine would."""
        import time
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.step()
            if self.idle():
                return
            if not self.running:
                time.sleep(0.001)
        raise AssertionError(f"not idle after {timeout} s ({self.steps} steps): waiting "
                             f"{[r.req.request_id for r in self.waiting]}, running "
                             f"{[r.req.request_id for r in self.running]}, loading "
                             f"{list(self.loading)}, delayed {list(self.delayed)}")

    def shutdown(self) -> None:
        self.connector.shutdown()
        for w in self.workers:
            w.shutdown()


def make_config(tp: int = 1, extra: Optional[dict[str, Any]] = None, *, layers: int = 2,
                kv_heads: int = 4, head: int = 32, dtype: str = "fp16", block_size: int = 16,
                mla: bool = False) -> vf.VllmConfig:
    torch_dtype = {"fp16": "torch.float16", "bf16": "torch.bfloat16", "fp32": "torch.float32"}
    base = {"host_capacity_gb": 0.0625, "disk_capacity_gb": 0}
    base.update(extra or {})
    return vf.VllmConfig(
        model_config=vf.ModelConfig(num_layers=layers, num_kv_heads=kv_heads, head_size=head,
                                    dtype=torch_dtype[dtype], use_mla=mla),
        parallel_config=vf.ParallelConfig(tensor_parallel_size=tp),
        cache_config=vf.CacheConfig(block_size=block_size),
        kv_transfer_config=vf.KVTransferConfig(kv_connector_extra_config=base))


@dataclass
class FakeModelFactory:
    """Picklable: builds each rank's FakeModel (also in spawned worker processes)."""
    num_layers: int = 2
    heads_per_rank: int = 4
    head_dim: int = 32
    dtype: str = "fp16"
    layout: str = "flash_attn"
    num_blocks: int = 64
    block_size: int = 16
    hnd: bool = False

    def __call__(self, rank: int) -> FakeModel:
        return FakeModel(rank, self.num_layers, self.heads_per_rank, self.head_dim, self.dtype,
                         self.layout, self.num_blocks, self.block_size, self.hnd)


def env_for_children() -> None:
    """Spawned workers import strata from the same place as this process."""
    import strata
    path = os.path.dirname(os.path.dirname(strata.__file__))
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [path, here] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
