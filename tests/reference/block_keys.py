#!/usr/bin/env python3
"""Independent reference implementation of Strata's block-key spec (docs/block_keys.md).

Prints the golden vectors that src/keys/block_key_test.cc checks, so the C++ code and
the written spec are verified against each other. SHA-256 only (hashlib); XXH3 vectors
are checked when the python3-xxhash module is present.
"""
import hashlib
import struct
import sys

NS_TAG = b"strata.ns.v1"


def layout_canonical(layers=32, fmt="kv", kv_heads=8, head_dim=128, dtype="bf16", tpb=16, order="nhd"):
    return (f"strata.layout.v1;layers={layers};format={fmt};kv_heads={kv_heads};head_dim={head_dim};"
            f"dtype={dtype};tokens_per_block={tpb};chunk_order={order}")


def field(b):
    return struct.pack("<I", len(b)) + b


def h(alg, data):
    if alg == "sha256":
        return hashlib.sha256(data).digest()
    import xxhash  # python3-xxhash
    return xxhash.xxh3_128_digest(data) + bytes(16)


def keys(alg, model, layout, rank, world, lora, salt, tokens, tpb=16):
    ns = (NS_TAG + field(alg.encode()) + field(model.encode()) + field(layout.encode()) +
          struct.pack("<II", rank, world) + field(lora.encode()) + field(salt.encode()))
    root = h(alg, ns)
    out = [root]
    parent = root
    plen = 32 if alg == "sha256" else 16
    for i in range(len(tokens) // tpb):
        blk = struct.pack(f"<{tpb}i", *tokens[i * tpb:(i + 1) * tpb])
        parent = h(alg, parent[:plen] + blk)
        out.append(parent)
    return out


CASES = [
    ("base", "sha256", "llama-3-8b@golden", layout_canonical(), 0, 1, "", ""),
    ("salted", "sha256", "llama-3-8b@golden", layout_canonical(), 1, 2, "adapter-x", "tenant-a"),
    ("xxh3", "xxh3_128", "llama-3-8b@golden", layout_canonical(), 0, 1, "", ""),
]


def main():
    tokens = list(range(48)) + [7] * 5  # 3 full blocks and a partial one
    tokens[20] = -1  # a negative id hashes as its two's-complement u32
    for name, alg, model, layout, rank, world, lora, salt in CASES:
        if alg != "sha256":
            try:
                import xxhash  # noqa: F401
            except ImportError:
                continue
        for i, k in enumerate(keys(alg, model, layout, rank, world, lora, salt, tokens)):
            print(f"{name} {'root' if i == 0 else i - 1} {k.hex()}")


if __name__ == "__main__":
    sys.exit(main())
