"""StrataConnector against vLLM's call sequence (vllm_driver.py), tensor-parallel size 1:
scheduler and worker in this process sharing one in-process Manager."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import torch

import strata
from strata.vllm import KVConnectorRole, StrataConnector
import vllm_driver as vd
import vllm_fakes as vf

BS = 16


def make(extra=None, *, prefix_caching=False, num_blocks=96, chunk=64, model=None, **cfg):
    config = vd.make_config(1, extra, **cfg)
    factory = model or vd.FakeModelFactory(num_layers=config.model_config.num_layers,
                                           heads_per_rank=config.model_config.num_kv_heads,
                                           head_dim=config.model_config.head_size,
                                           dtype=cfg.get("dtype", "fp16"),
                                           num_blocks=num_blocks, block_size=BS)
    worker = vd.Worker(config, 0, factory)
    driver = vd.Driver(config, [worker], num_blocks, chunk=chunk, prefix_caching=prefix_caching)
    return driver, worker


def prompt(seed: int, n: int) -> list[int]:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 30000, (n,), generator=g).tolist()


def test_second_request_loads_bit_exact_blocks_and_counts_agree():
    d, w = make()
    p = prompt(1, 100)  # 6 full blocks
    d.add(vf.Request("a", p, max_tokens=3))
    d.run()
    assert d.external_tokens.get("a", 0) == 0
    d.add(vf.Request("b", p + prompt(2, 20), max_tokens=2))
    d.run()
    assert d.external_tokens["b"] == 6 * BS
    assert d.verified_blocks == 6 and d.mismatched == [] and d.failed_blocks == {}
    st = w.connector._m.worker.stats()
    assert st["loaded_blocks"] == 6 and st["active_requests"] == 0
    assert st["host_leased_blocks"] == 0
    # vLLM's stats hook saw the load and the stores.
    total = vf.KVConnectorOutput().kv_connector_stats
    for s in d.stats:
        total = s if total is None else total.aggregate(s)
    assert total.reduce()["loaded_blocks"] == 6 and total.reduce()["stored_blocks"] >= 6
    d.shutdown()


def test_get_num_new_matched_tokens_is_idempotent_and_never_the_whole_prompt():
    d, w = make()
    p = prompt(3, 6 * BS)  # exactly 6 blocks
    d.add(vf.Request("a", p, max_tokens=1))
    d.run()
    sched = d.connector
    req = vf.Request("b", list(p))
    first = sched.get_num_new_matched_tokens(req, 0)
    leased = w.connector._m.worker.stats()["host_leased_blocks"]
    for _ in range(3):
        assert sched.get_num_new_matched_tokens(req, 0) == first
    assert w.connector._m.worker.stats()["host_leased_blocks"] == leased  # no second lease
    # The whole prompt is cached, but the last token must be computed: 5 blocks, not 6.
    assert first == (5 * BS, True)
    # A local (vLLM prefix cache) hit counts against it; a hit covering it all is 0, False.
    assert sched.get_num_new_matched_tokens(req, 2 * BS) == (3 * BS, True)
    assert sched.get_num_new_matched_tokens(req, 5 * BS) == (0, False)
    assert w.connector._m.worker.stats()["host_leased_blocks"] == leased
    # vLLM allocated without an external load (its own cache had it all): leases end now.
    sched.update_state_after_alloc(req, vf.KVCacheBlocks(list(range(6))), 0)
    assert w.connector._m.worker.stats()["host_leased_blocks"] == 0
    sched.request_finished(req, [])
    # A prompt shorter than a block has nothing to match.
    short = vf.Request("c", p[:10])
    assert sched.get_num_new_matched_tokens(short, 0) == (0, False)
    sched.request_finished(short, [])
    d.shutdown()


def test_chunked_prefill_and_a_prefix_partly_in_vllms_own_cache():
    d, w = make(prefix_caching=True, chunk=24)  # chunks do not align with blocks
    p = prompt(4, 8 * BS + 5)
    d.add(vf.Request("a", p, max_tokens=2))
    d.run()
    st = w.connector._m.worker.stats()
    assert st["stored_blocks"] == 8  # every full prompt block, stored as chunks completed
    # vLLM still caches blocks 0-3 of the prompt; blocks 4-7 were evicted from its pool.
    for i in range(4, 8):
        h = vd.prefix_digest(p, (i + 1) * BS)
        d.pool.hash_of.pop(d.pool.block_of.pop(h))
    d.add(vf.Request("b", p + prompt(5, 30), max_tokens=2))
    d.run()
    assert d.local_tokens["b"] == 4 * BS
    assert d.external_tokens["b"] == 4 * BS  # only what vLLM lacked
    assert d.verified_blocks == 4 and d.mismatched == []
    d.shutdown()


def test_preemption_fences_stores_before_blocks_are_reused():
    # Big blocks and one Strata worker thread, so a's stores are likely still queued or
    # copying when a is preempted and b's next chunk gets a's blocks and writes them.
    d, w = make({"manager_worker_threads": 1, "host_capacity_gb": 0.25}, num_blocks=100,
                chunk=48 * BS, head=128, kv_heads=8, layers=4)
    a = prompt(6, 48 * BS + 3)
    b = prompt(7, 96 * BS + 3)
    d.add(vf.Request("a", a, max_tokens=2))
    d.add(vf.Request("b", b, max_tokens=2))
    d.step()  # a's 48 blocks computed and their stores started; b's first 48 blocks too
    handles = list(w.connector._stores["a"])
    in_flight = sum(not h.done() for h in handles)
    a_blocks = set(d.reqs["a"].blocks)
    d.preempt("a")
    d.step()  # a's blocks are freed; b's second chunk gets most of them and writes them
    assert len(a_blocks & set(d.reqs["b"].blocks)) >= 40
    assert "a" not in w.connector._stores  # fenced before the forward
    assert all(h.done() for h in handles)
    print(f"a's stores still running at preemption: {in_flight} of {len(handles)}")
    d.run()
    # Whatever Strata holds under a's keys must be a's KV.
    d.add(vf.Request("c", a + prompt(8, 7), max_tokens=1))
    d.run()
    assert d.external_tokens.get("c", 0) > 0
    assert d.mismatched == [], f"wrong KV loaded for {d.mismatched[:5]}"
    assert d.reqs == {} and len(d.pool.free) == 100
    d.shutdown()


def test_a_request_finishing_while_its_saves_run_keeps_its_blocks():
    d, w = make({"manager_worker_threads": 1, "host_capacity_gb": 0.25}, num_blocks=80,
                 head=128, kv_heads=8, layers=4, chunk=33 * BS)
    p = prompt(9, 32 * BS + 1)
    d.add(vf.Request("a", p, max_tokens=1))
    d.step()  # prompt computed and finished in one step: stores run, request finishes
    assert "a" in d.done
    assert "a" in d.delayed, "the connector must keep the blocks while saves may run"
    kept = list(d.delayed["a"].blocks)
    assert kept and all(d.pool.refs[b] == 1 for b in kept)
    d.run()
    assert d.delayed == {} and len(d.pool.free) == 80
    # Reported once, after the worker saw the id among finished_req_ids.
    st = w.connector._m.worker.stats()
    assert st["stored_blocks"] == 32
    d.shutdown()


class HeldLoad:
    """A load handle that reads as running until the test lets it finish."""

    def __init__(self, handle, gate):
        self.handle, self.gate = handle, gate

    def done(self):
        return self.gate["open"] and self.handle.done()

    def __getattr__(self, name):
        return getattr(self.handle, name)


def hold_loads(connector):
    gate = {"open": False}
    real = connector._start_load

    def start(spec):
        real(spec)
        load = connector._loads[spec.req_id]
        load.handle = HeldLoad(load.handle, gate)

    connector._start_load = start
    return gate


def test_abort_while_loading_frees_on_finished_recving():
    d, w = make()
    p = prompt(10, 10 * BS)
    d.add(vf.Request("a", p, max_tokens=1))
    d.run()
    gate = hold_loads(w.connector)
    d.add(vf.Request("b", p + [5], max_tokens=4))
    d.step()
    assert "b" in d.loading  # waiting for its asynchronous load
    d.abort("b")
    d.step()  # the worker sees b among finished_req_ids while its load runs
    assert "b" in d.loading and "b" in d.done
    gate["open"] = True
    d.run()
    assert d.reqs == {} and len(d.pool.free) == 96
    st = w.connector._m.worker.stats()
    assert st["active_requests"] == 0 and st["host_leased_blocks"] == 0
    d.shutdown()


def _corrupt_records(directory: Path, keys: set[bytes]) -> int:
    """Flips a payload byte of every G3 record holding one of `keys` (docs/disk_format.md)."""
    n = 0
    for seg in sorted(directory.glob("strata-g3-*.seg")):
        with open(seg, "r+b") as f:
            data = f.read()
            off = data.find(b"STRATAG3")
            while off >= 0:
                if off % 4096 == 0 and data[off + 72:off + 104] in keys:
                    f.seek(off + 4096)
                    f.write(bytes([data[off + 4096] ^ 0xFF]))
                    n += 1
                off = data.find(b"STRATAG3", off + 8)
    return n


def test_injected_load_failure_is_reported_as_block_ids_and_recomputed(tmp_path):
    extra = {"host_capacity_gb": 0.0005, "disk_capacity_gb": 0.03,
             "disk_directory": str(tmp_path / "g3"), "disk_min_regions": 4}
    d, w = make(extra)
    p = prompt(11, 10 * BS)
    d.add(vf.Request("a", p, max_tokens=1))
    d.run()
    for i in range(6):  # push a's blocks out of G2 (they stay on disk)
        d.add(vf.Request(f"fill{i}", prompt(100 + i, 10 * BS), max_tokens=1))
        d.run()
    m = w.connector._m.worker
    m.flush_disk()
    keys = m.compute_keys(p)
    bad = {keys[i] for i in range(4, 10)}
    assert _corrupt_records(tmp_path / "g3", bad) == 6
    d.add(vf.Request("b", p + [7], max_tokens=1))
    d.run()
    promised = d.external_tokens["b"] // BS
    assert promised >= 6
    # Blocks 4.. failed; they were reported by vLLM block id and recomputed, never used.
    assert d.failed_blocks["b"] == promised - 4
    assert d.recomputed_tokens["b"] == (promised - 4) * BS
    assert d.mismatched == [] and d.verified_blocks == 4
    assert m.stats()["disk_corruptions"] >= 1
    d.shutdown()


def test_async_lookup_answers_none_until_the_lookup_finishes():
    d, w = make({"async_lookup": True})
    p = prompt(12, 6 * BS)
    d.add(vf.Request("a", p, max_tokens=1))
    d.run()
    real = d.connector._lookup_now

    def slow(*args):
        time.sleep(0.2)
        return real(*args)

    d.connector._lookup_now = slow
    d.add(vf.Request("b", p + [1, 2], max_tokens=1))
    deadline = time.monotonic() + 30
    while not d.idle() and time.monotonic() < deadline:
        d.step()
        time.sleep(0.01)  # an engine step takes time; the lookup runs meanwhile
    assert d.idle()
    calls = d.matched_calls["b"]
    assert calls[0] == (0, None, False), calls
    assert calls[-1] == (0, 6 * BS, True)
    assert d.verified_blocks == 6 and d.mismatched == []
    d.shutdown()


def test_cache_salt_and_lora_keep_tenants_apart():
    d, w = make()
    p = prompt(13, 6 * BS)
    d.add(vf.Request("a", p, max_tokens=1, cache_salt="tenant-1"))
    d.add(vf.Request("l", p, max_tokens=1, lora_request=vf.LoRARequest("adapter-x")))
    d.run()
    d.add(vf.Request("b", p + [1], max_tokens=1, cache_salt="tenant-2"))
    d.add(vf.Request("c", p + [1], max_tokens=1))
    d.run()
    assert d.external_tokens.get("b", 0) == 0 and d.external_tokens.get("c", 0) == 0
    d.add(vf.Request("e", p + [1], max_tokens=1, cache_salt="tenant-1"))
    d.add(vf.Request("f", p + [1], max_tokens=1, lora_request=vf.LoRARequest("adapter-x")))
    d.run()
    assert d.external_tokens["e"] == 6 * BS and d.external_tokens["f"] == 6 * BS
    assert d.mismatched == []
    d.shutdown()


@pytest.mark.parametrize("layout,hnd,mla", [("flash_infer", False, False),
                                            ("flash_attn", True, False),
                                            ("mla", False, True)])
def test_other_vllm_layouts(layout, hnd, mla):
    extra = {"kv_cache_layout": "HND"} if hnd else {}
    config = vd.make_config(1, extra, mla=mla, head=48 if mla else 32,
                            kv_heads=1 if mla else 4)
    factory = vd.FakeModelFactory(heads_per_rank=1 if mla else 4, head_dim=48 if mla else 32,
                                  layout=layout, num_blocks=64, block_size=BS, hnd=hnd)
    w = vd.Worker(config, 0, factory)
    assert w.connector._m.worker.cache_spec.kind == layout
    d = vd.Driver(config, [w], 64, prefix_caching=False)
    p = prompt(14, 5 * BS + 3)
    d.add(vf.Request("a", p, max_tokens=1))
    d.run()
    d.add(vf.Request("b", p, max_tokens=1))
    d.run()
    assert d.external_tokens["b"] == 5 * BS and d.verified_blocks == 5 and d.mismatched == []
    d.shutdown()


def test_worker_rejects_tensors_that_do_not_fit_the_model():
    config = vd.make_config(1)
    factory = vd.FakeModelFactory(heads_per_rank=8)  # the model has 4 KV heads
    with pytest.raises(strata.InvalidArgumentError, match="num_kv_heads: configured 4"):
        vd.Worker(config, 0, factory)


def test_tensor_parallel_without_a_daemon_is_refused():
    with pytest.raises(strata.InvalidArgumentError, match="needs a `strata daemon`"):
        StrataConnector(vd.make_config(2), KVConnectorRole.SCHEDULER)
    cfg = vd.make_config(1)
    cfg.parallel_config.pipeline_parallel_size = 2
    with pytest.raises(strata.NotSupportedError, match="pipeline"):
        StrataConnector(cfg, KVConnectorRole.SCHEDULER)


class EngineModel:
    """The reference engine's model as the driver's model: real KV, real logits."""

    def __init__(self, num_blocks: int):
        import numpy as np
        self.model = strata.ReferenceModel("tiny", 1, num_blocks)
        self.kv = {f"layer.{i}": torch.from_numpy(np.asarray(k))
                   for i, k in enumerate(self.model.kv_layers())}
        self.num_layers = self.model.num_layers
        self.logits: dict[tuple, Any] = {}

    def forward(self, tokens, start, end, block_ids):
        out = self.model.forward(tokens[start:end], start, block_ids)
        self.logits[(tuple(tokens[:end]))] = out

    def block_matches(self, tokens, index, block_id):
        return True  # checked through the logits


def test_reference_engine_kv_saved_then_loaded_after_restart_gives_identical_logits(tmp_path):
    ref = strata.ReferenceModel("tiny", 1, 8)
    bs = ref.tokens_per_block
    extra = {"disk_capacity_gb": 0.01, "disk_directory": str(tmp_path / "g3"),
             "model_fingerprint": ref.fingerprint}

    def run(p, max_tokens=1):
        config = vd.make_config(1, extra, layers=ref.num_layers, kv_heads=ref.num_kv_heads,
                                head=ref.head_dim, dtype="fp32", block_size=bs)
        model = EngineModel(64)
        w = vd.Worker(config, 0, lambda rank: model)
        d = vd.Driver(config, [w], 64, chunk=13, prefix_caching=False)
        d.add(vf.Request("r", p, max_tokens=max_tokens))
        d.run()
        d.shutdown()  # closes the manager: G3 is what the next run finds
        return d, model.logits[tuple(p)]

    p = [(7 * i + 3) % 250 + 1 for i in range(61)]
    d1, first = run(p)
    assert d1.external_tokens.get("r", 0) == 0
    d2, second = run(p)  # a fresh engine and cache, Strata reopened from disk
    assert d2.external_tokens["r"] == (len(p) - 1) // bs * bs
    assert first.tobytes() == second.tobytes()


def test_rank_overridden_by_the_environment_is_refused(monkeypatch):
    monkeypatch.setenv("STRATA_TP_RANK", "0")
    monkeypatch.setenv("STRATA_TP_WORLD_SIZE", "2")
    with pytest.raises(strata.InvalidArgumentError, match="STRATA_TP_RANK"):
        StrataConnector(vd.make_config(1), KVConnectorRole.SCHEDULER)


def test_fp8_caches_held_as_uint8():
    config = vd.make_config(1)
    config.cache_config.cache_dtype = "fp8"
    c = StrataConnector(config, KVConnectorRole.WORKER)
    kv = {f"l{i}": torch.zeros(2, 8, BS, 4, 32, dtype=torch.uint8) for i in range(2)}
    c.register_kv_caches(kv)
    assert c._m.worker.cache_spec.layout["dtype"] == "fp8_e4m3"
    c.shutdown()


def test_python_side_errors_carry_a_code():
    m = strata.Manager(model_fingerprint="c", disk_capacity_gb=0, host_capacity_gb=0.01,
                       use_env=False, layout_num_layers=1, layout_num_kv_heads=1,
                       layout_head_dim=8, layout_dtype="fp16", layout_tokens_per_block=4)
    with pytest.raises(strata.InvalidArgumentError) as e:
        m.register_kv_caches([torch.zeros(2, 4, 4, 2, 8, dtype=torch.float16)])
    assert e.value.code == "invalid_argument"
    strata.set_log_level("warning")
    with pytest.raises(ValueError):
        strata.set_log_level("loud")
    strata.set_log_level("info")
