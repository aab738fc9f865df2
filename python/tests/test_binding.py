"""strata.Manager from Python: configuration, tensor layouts, match/load/store with real
torch tensors, handles, errors, stats and metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import strata

LAYOUT = dict(layout_num_layers=2, layout_num_kv_heads=2, layout_head_dim=16,
              layout_dtype="fp16", layout_tokens_per_block=4)


def manager(**kw) -> strata.Manager:
    args = dict(model_fingerprint="py-test", host_capacity_gb=0.01, disk_capacity_gb=0,
                use_env=False, **LAYOUT)
    args.update(kw)
    return strata.Manager(**args)


def fa_caches(num_blocks=32, dtype=torch.float16, fill=None):
    return {f"layer.{i}": (torch.randn(2, num_blocks, 4, 2, 16).to(dtype) if fill is None
                           else torch.full((2, num_blocks, 4, 2, 16), fill, dtype=dtype))
            for i in range(2)}


def test_config_overrides_and_errors(tmp_path):
    m = manager()
    assert m.layout["num_layers"] == 2 and m.layout["dtype"] == "fp16"
    assert m.tokens_per_block == 4 and m.rank == 0 and m.world_size == 1
    with pytest.raises(strata.InvalidArgumentError) as e:
        manager(host_capacity_gb=-1)
    assert e.value.code == "invalid_argument" and "host.capacity_gb" in str(e.value)
    with pytest.raises(ValueError):  # the error classes are also the built-in kinds
        manager(layout_dtype="int4")
    with pytest.raises(TypeError, match="unknown Strata setting"):
        manager(capacity=3)
    with pytest.raises(strata.InvalidArgumentError, match="nosuch"):
        manager(**{"host.nosuch": 1})
    with pytest.raises(strata.IoError):
        strata.Manager(str(tmp_path / "missing.toml"))
    cfg = tmp_path / "s.toml"
    cfg.write_text('[model]\nfingerprint = "from-file"\n[layout]\nnum_layers = 2\n'
                   'num_kv_heads = 2\nhead_dim = 16\ndtype = "fp16"\ntokens_per_block = 4\n'
                   '[host]\ncapacity_gb = 0.01\n[disk]\ncapacity_gb = 0\n')
    assert strata.Manager(str(cfg), use_env=False).model_fingerprint == "from-file"
    # A dict, then overrides win over it.
    m2 = strata.Manager({"model": {"fingerprint": "d"}, "layout": {"num_layers": 3},
                         "disk": {"capacity_gb": 0}}, use_env=False, layout_num_layers=2)
    assert m2.layout["num_layers"] == 2 and m2.model_fingerprint == "d"
    assert "host.capacity_gb" in strata.describe_config(use_env=False, host_capacity_gb=1,
                                                        disk_capacity_gb=0)
    # The environment applies unless use_env=False.
    import os
    os.environ["STRATA_MODEL_FINGERPRINT"] = "from-env"
    try:
        assert strata.Manager(disk_capacity_gb=0, host_capacity_gb=0.01).model_fingerprint \
            == "from-env"
    finally:
        del os.environ["STRATA_MODEL_FINGERPRINT"]


@pytest.mark.parametrize("kind", ["flash_attn", "flash_infer", "flash_attn_hnd", "padded"])
def test_round_trip_bit_exact_in_every_layout(kind):
    chunk_order = "hnd" if kind == "flash_attn_hnd" else "nhd"
    m = manager(layout_chunk_order=chunk_order, layout_dtype="bf16")
    n = 24
    if kind == "flash_attn":
        kv = {f"l{i}": torch.randn(2, n, 4, 2, 16).to(torch.bfloat16) for i in range(2)}
        blk = lambda t, b: t[:, b]  # noqa: E731
    elif kind == "flash_infer":
        kv = {f"l{i}": torch.randn(n, 2, 4, 2, 16).to(torch.bfloat16) for i in range(2)}
        blk = lambda t, b: t[b]  # noqa: E731
    elif kind == "flash_attn_hnd":
        kv = {f"l{i}": torch.randn(2, n, 2, 4, 16).to(torch.bfloat16).transpose(2, 3)
              for i in range(2)}
        blk = lambda t, b: t[:, b]  # noqa: E731
    else:  # K/V and blocks padded apart inside a bigger allocation
        big = [torch.randn(2, n + 3, 5, 4, 2, 16).to(torch.bfloat16) for _ in range(2)]
        kv = {f"l{i}": big[i][:, :n, 1] for i in range(2)}
        blk = lambda t, b: t[:, b]  # noqa: E731
    spec = m.register_kv_caches(kv)
    assert spec.kind == ("flash_infer" if kind == "flash_infer" else "flash_attn")
    assert spec.layout["chunk_order"] == chunk_order
    tokens = list(range(100, 140))  # 10 blocks
    match = m.match(tokens, "a")
    assert match.num_matched_tokens == 0 and len(match.keys) == 10
    src = [0, 3, 5, 7, 9, 11, 13, 15, 17, 19]
    saved = [[blk(t, b).clone() for b in src] for t in kv.values()]
    h = m.store("a", match.keys, src)
    assert h.wait(10) and h.states() == ["done"] * 10 and h.errors() == [None] * 10
    m.release("a")
    for t in kv.values():  # the engine reuses the blocks
        t.fill_(0)
    match = m.match(tokens + [1, 2], "b")
    assert match.num_matched_tokens == 40 and match.tiers == [2] * 10
    dst = [1, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    load = m.load(match, dst[3:], first_block=3)
    assert load.wait(10) and load.usable_blocks == 7 and load.usable_tokens == 28
    for layer, t in enumerate(kv.values()):
        for i in range(3, 10):
            assert torch.equal(blk(t, dst[i]), saved[layer][i]), (layer, i)
    m.release("b")
    st = m.stats()
    assert st["stored_blocks"] == 10 and st["loaded_blocks"] == 7 and st["active_requests"] == 0


def test_layout_mismatch_is_a_clear_error():
    m = manager()
    with pytest.raises(strata.InvalidArgumentError, match="layout.num_kv_heads: configured 2"):
        m.register_kv_caches({f"l{i}": torch.zeros(2, 8, 4, 4, 16, dtype=torch.float16)
                              for i in range(2)})
    with pytest.raises(strata.InvalidArgumentError, match="layout.dtype: configured 'fp16'"):
        m.register_kv_caches(fa_caches(dtype=torch.float32))
    with pytest.raises(strata.InvalidArgumentError, match="layout.num_layers"):
        m.register_kv_caches(list(fa_caches().values())[:1])
    with pytest.raises(strata.InvalidArgumentError, match="fits both"):
        m.register_kv_caches([torch.zeros(2, 2, 4, 2, 16, dtype=torch.float16)] * 2)
    with pytest.raises(strata.InvalidArgumentError, match="dense"):
        m.register_kv_caches([torch.zeros(2, 8, 4, 2, 32, dtype=torch.float16)[..., ::2]] * 2)
    with pytest.raises(strata.InvalidArgumentError, match="differs from"):
        m.register_kv_caches([torch.zeros(2, 8, 4, 2, 16, dtype=torch.float16),
                              torch.zeros(2, 9, 4, 2, 16, dtype=torch.float16)])
    with pytest.raises(strata.InvalidArgumentError, match="cross-layer"):
        m.register_kv_caches([torch.zeros(8, 2, 2, 4, 2, 16, dtype=torch.float16)] * 2)
    with pytest.raises(strata.InvalidArgumentError, match="tokens per block"):
        m.register_kv_caches([torch.zeros(2, 8, 8, 2, 16, dtype=torch.float16)] * 2,
                             layout="flash_attn")
    with pytest.raises(strata.InvalidArgumentError, match="int64"):
        m.register_kv_caches([torch.zeros(2, 8, 4, 2, 16, dtype=torch.int64)] * 2)


def test_mla_latent_cache_and_numpy():
    m = manager(layout_kv_format="latent", layout_num_kv_heads=1, layout_head_dim=24,
                layout_dtype="fp32")
    kv = [np.random.rand(16, 4, 24).astype(np.float32) for _ in range(2)]
    spec = m.register_kv_caches(kv)
    assert spec.kind == "mla" and spec.layout["kv_format"] == "latent"
    tokens = np.arange(16, dtype=np.int32)  # a numpy prompt works too
    match = m.match(tokens, "x")
    assert m.store("x", match.keys, [5, 6, 7, 8]).wait(10)
    want = [a[5:9].copy() for a in kv]
    for a in kv:
        a[:] = 0
    match = m.match(tokens, "y")
    load = m.load(match, [0, 1, 2, 3])
    assert load.wait(10) and load.usable_blocks == 4
    for a, w in zip(kv, want):
        assert np.array_equal(a[0:4], w)


def test_keys_and_tenants():
    m = manager()
    m.register_kv_caches(fa_caches())
    toks = list(range(32))
    a = m.compute_keys(toks)
    assert len(a) == 8 and len(a[0]) == 32 and a == m.compute_keys(toks)
    assert m.compute_keys(toks, cache_salt="t2")[0] != a[0]
    assert m.compute_keys(toks, lora_id="lora-a")[0] != a[0]
    assert a[2:5] == strata.KeyList(a.to_list()[2:5]) and a.hex(-1) == a[7].hex()
    with pytest.raises(IndexError):
        a[8]
    assert m.store("s", a, list(range(8)), cache_salt="").wait(10)
    assert m.match(toks, "t1", cache_salt="other").num_matched_tokens == 0
    assert m.match(toks, "t2", lora_id="lora-a").num_matched_tokens == 0
    assert m.match(toks, "t3").num_matched_tokens == 32
    for r in ("s", "t1", "t2", "t3"):
        m.release(r)
    with pytest.raises(ValueError, match="32 bytes"):
        m.store("s", [b"short"], [0])
    with pytest.raises(TypeError, match=r"tokens\[1\] is not an int"):
        m.match([1, "x"], "bad")
    with pytest.raises(ValueError, match="out of range"):
        m.store("s", a[:1], [-1])


def test_load_into_bad_blocks_and_cancel():
    m = manager()
    m.register_kv_caches(fa_caches(num_blocks=8))
    toks = list(range(16))
    match = m.match(toks, "a")
    with pytest.raises(strata.InvalidArgumentError):
        m.store("a", match.keys, [0, 1, 2, 99])  # block 99 does not exist
    assert m.store("a", match.keys, [0, 1, 2, 3]).wait(10)
    match = m.match(toks, "b")
    with pytest.raises(strata.InvalidArgumentError):
        m.load(match, [4, 5, 6, 7, 0])  # more blocks than matched
    m.cancel("b")
    assert m.stats()["active_requests"] in (0, 1)
    m.release("a")
    m.close()
    with pytest.raises(strata.InvalidArgumentError, match="closed"):
        m.match(toks, "c")
    m.close()  # idempotent


def test_stats_and_metrics_text():
    m = manager()
    m.register_kv_caches(fa_caches())
    match = m.match(list(range(16)), "a")
    m.store("a", match.keys, [0, 1, 2, 3]).wait(10)
    m.release("a")
    m.match(list(range(16)), "b")
    m.release("b")
    st = m.stats()
    assert st["match_calls"] == 2 and st["match_hit_blocks"] == 4 and st["stored_blocks"] == 4
    assert isinstance(st["disk_direct_io"], bool)
    text = m.metrics_text()
    assert "kvbm_matched_tokens" in text or "strata_" in text
    assert "# TYPE" in text


def test_reference_model_kv_is_zero_copy():
    r = strata.ReferenceModel("tiny", 1, 16)
    layers = [torch.from_numpy(np.asarray(k)) for k in r.kv_layers()]
    assert layers[0].shape == (16, 2, r.tokens_per_block, r.num_kv_heads, r.head_dim)
    layers[0].fill_(0)
    logits = r.forward(list(range(1, 9)), 0, [3, 4])
    assert logits.shape == (r.vocab_size,)
    assert layers[0][3].abs().sum() > 0  # the model wrote K/V into block 3 of our view
    del r  # the views keep the model alive
    assert float(layers[0][3].abs().sum()) > 0


def test_serve_metrics_over_http():
    import urllib.request
    m = manager()
    m.register_kv_caches(fa_caches())
    m.match(list(range(16)), "a")
    m.release("a")
    port = m.serve_metrics(0)
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    assert body == m.metrics_text() or "# TYPE" in body
    assert "kvbm_" in body or "strata_" in body
    m.close()
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_token_conversion_edges_agree_between_lists_and_arrays():
    m = manager()
    for v in (0, 1, -5, 2**30 - 1, 2**30, -2**30, -2**31, 2**31 - 1):
        assert m.compute_keys([v] * 4)[0] == m.compute_keys(np.array([v] * 4, np.int64))[0], v
    assert m.compute_keys((7,) * 4)[0] == m.compute_keys(np.full(4, 7, np.int16))[0]
    for bad in (2**31, -2**31 - 1, 2**70):
        with pytest.raises(ValueError, match="out of range"):
            m.compute_keys([bad] * 4)
    with pytest.raises(ValueError, match="out of range"):
        m.compute_keys(np.array([2**31] * 4, np.int64))
    with pytest.raises(TypeError, match="buffer format"):
        m.compute_keys(np.zeros(4, np.float32))
    assert len(m.compute_keys(x for x in range(8))) == 2  # any iterable, the slow path
