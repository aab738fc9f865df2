"""A minimal engine loop over the strata Python package: a paged KV cache in vLLM's
FlashAttention layout (torch tensors), one prompt stored, the blocks overwritten, the prompt
matched and loaded back, bit-exact. Run it with Debian's interpreter:

    PYTHONPATH=build/python /usr/bin/python3 examples/python/engine_loop.py
"""

import torch

import strata

LAYERS, HEADS, DIM, BLOCK, NUM_BLOCKS = 4, 8, 64, 16, 64

manager = strata.Manager(
    model_fingerprint="example-model@rev1", layout_num_layers=LAYERS,
    layout_num_kv_heads=HEADS, layout_head_dim=DIM, layout_dtype="bf16",
    layout_tokens_per_block=BLOCK, host_capacity_gb=0.125, disk_capacity_gb=0, use_env=False)
kv = {f"model.layers.{i}.attn": torch.randn(2, NUM_BLOCKS, BLOCK, HEADS, DIM).to(torch.bfloat16)
      for i in range(LAYERS)}
manager.register_kv_caches(kv)  # detected: flash_attn, NHD

prompt = list(range(1000, 1000 + 5 * BLOCK + 7))  # 5 full blocks and a partial one
match = manager.match(prompt, "req-1")            # a miss: nothing cached yet
blocks = [3, 9, 4, 20, 7]                          # where the engine computed them
saved = {name: t[:, blocks].clone() for name, t in kv.items()}
store = manager.store("req-1", match.keys[:5], blocks)
assert store.wait(10) and store.states() == ["done"] * 5, store.errors()
manager.release("req-1")

for t in kv.values():                              # the engine reuses its cache
    t.zero_()
match = manager.match(prompt, "req-2")
print(f"matched {match.num_matched_tokens} of {match.num_prompt_tokens} tokens")
target = [30, 31, 32, 33, 34]
load = manager.load(match, target)
assert load.wait(10) and load.usable_blocks == 5
manager.release("req-2")
for name, t in kv.items():
    assert torch.equal(t[:, target], saved[name]), name
print("loaded 5 blocks bit-exact;", manager.stats()["loaded_blocks"], "loaded in all")
manager.close()
print("python example: OK")
