"""The paged KV-cache tensors engines register, described in Strata's terms.

vLLM and similar engines keep one tensor per attention layer. Their logical shapes (what
``AttentionBackend.get_kv_cache_shape`` returns) are:

  flash_attn   [2, num_blocks, block_size, kv_heads, head_dim]   K/V first (FlashAttention,
               Flex, Tree, Triton; Strata's "kv_major" device order)
  flash_infer  [num_blocks, 2, block_size, kv_heads, head_dim]   (FlashInfer; "block_major")
  mla          [num_blocks, block_size, latent_dim]              one latent per token (MLA)

The memory order may differ from the logical one: an "HND" cache is a permuted view whose
heads dim is outside the tokens dim. Strata reads the strides, so any padding between blocks
or between K and V is fine, as long as each (block, K or V) chunk is dense in NHD or HND order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

LAYOUTS = ("flash_attn", "flash_infer", "mla")

_TORCH_DTYPES = {
    "torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16",
    "torch.float8_e4m3fn": "fp8_e4m3", "torch.float8_e5m2": "fp8_e5m2",
    "torch.uint8": "u8",  # vLLM's fp8 caches (--kv-cache-dtype fp8): bytes of fp8 values
}
_NUMPY_DTYPES = {"float32": "fp32", "float16": "fp16"}


@dataclass
class CacheSpec:
    """What Manager.register_device_cache takes, plus the layout it implies."""
    layout: dict[str, Any]            # num_layers, kv_format, num_kv_heads, head_dim, dtype,
                                      # tokens_per_block, chunk_order
    kind: str                         # one of LAYOUTS
    num_blocks: int
    order: str                        # "kv_major" | "block_major"
    block_stride_bytes: int
    component_stride_bytes: int
    memory: str                       # "host" | "cuda"
    layer_ptrs: list[int] = field(default_factory=list)
    layer_names: list[str] = field(default_factory=list)


@dataclass
class _Tensor:
    shape: tuple[int, ...]
    strides: tuple[int, ...]  # elements
    itemsize: int
    dtype: str
    ptr: int
    memory: str


def _describe_tensor(name: str, t: Any) -> _Tensor:
    if hasattr(t, "data_ptr") and hasattr(t, "stride"):  # torch.Tensor
        dtype = _TORCH_DTYPES.get(str(t.dtype))
        if dtype is None:
            raise ValueError(f"KV cache {name!r}: dtype {t.dtype} is not a KV dtype Strata "
                             f"knows ({', '.join(_TORCH_DTYPES)})")
        device = t.device.type
        if device not in ("cpu", "cuda"):
            raise ValueError(f"KV cache {name!r}: device {t.device} is neither cpu nor cuda")
        return _Tensor(tuple(t.shape), tuple(t.stride()), t.element_size(), dtype,
                       int(t.data_ptr()), "cuda" if device == "cuda" else "host")
    if hasattr(t, "__array_interface__") or hasattr(t, "ctypes"):  # numpy.ndarray
        import numpy as np
        a = np.asarray(t)
        dtype = _NUMPY_DTYPES.get(str(a.dtype))
        if dtype is None:
            raise ValueError(f"KV cache {name!r}: numpy dtype {a.dtype} is not fp32 or fp16 "
                             f"(use torch for bf16 and fp8)")
        if any(s % a.itemsize for s in a.strides):
            raise ValueError(f"KV cache {name!r}: strides {a.strides} are not whole elements")
        return _Tensor(tuple(a.shape), tuple(s // a.itemsize for s in a.strides), a.itemsize,
                       dtype, int(a.ctypes.data), "host")
    raise TypeError(f"KV cache {name!r}: expected a torch.Tensor or numpy array, "
                    f"got {type(t).__name__}")


def _guess_kind(shape: tuple[int, ...], block_size: int | None) -> str:
    if len(shape) == 3:
        return "mla"
    if len(shape) == 5:
        fa = shape[0] == 2 and (block_size is None or shape[2] == block_size)
        fi = shape[1] == 2 and (block_size is None or shape[2] == block_size)
        if fa and not fi:
            return "flash_attn"
        if fi and not fa:
            return "flash_infer"
        if fa and fi:
            raise ValueError(f"KV cache shape {list(shape)} fits both [2, num_blocks, ...] "
                             f"(flash_attn) and [num_blocks, 2, ...] (flash_infer): "
                             f"pass layout='flash_attn' or layout='flash_infer'")
        raise ValueError(f"KV cache shape {list(shape)} is neither [2, num_blocks, block_size, "
                         f"kv_heads, head_dim] nor [num_blocks, 2, block_size, kv_heads, "
                         f"head_dim]" + (f" with block_size {block_size}" if block_size else ""))
    if len(shape) == 6:
        raise ValueError(f"KV cache shape {list(shape)} looks like a cross-layer tensor "
                         f"(one tensor for all layers): not supported, register per-layer "
                         f"tensors")
    raise ValueError(f"KV cache shape {list(shape)}: expected 5 dims (K/V caches) or 3 (MLA)")


def describe(kv_caches: Mapping[str, Any] | Sequence[Any], *, layout: str | None = None,
             block_size: int | None = None) -> CacheSpec:
    """Describes per-layer KV-cache tensors (a {layer name: tensor} dict in layer order, or a
    list). ``layout`` is one of LAYOUTS, or None to detect it from the shapes (``block_size``,
    when known, settles shapes that fit two layouts). ValueError says what does not fit."""
    if isinstance(kv_caches, Mapping):
        items = list(kv_caches.items())
    else:
        items = [(f"layer {i}", t) for i, t in enumerate(kv_caches)]
    if not items:
        raise ValueError("no KV cache tensors to register")
    if layout is not None and layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    tensors = [(name, _describe_tensor(name, t)) for name, t in items]
    name0, t0 = tensors[0]
    kind = layout or _guess_kind(t0.shape, block_size)
    for name, t in tensors[1:]:
        if (t.shape, t.strides, t.dtype, t.memory) != (t0.shape, t0.strides, t0.dtype, t0.memory):
            raise ValueError(
                f"KV cache {name!r} (shape {list(t.shape)}, strides {list(t.strides)}, {t.dtype}, "
                f"{t.memory}) differs from {name0!r} (shape {list(t0.shape)}, strides "
                f"{list(t0.strides)}, {t0.dtype}, {t0.memory}): every layer must match")
    shape, st, es = t0.shape, t0.strides, t0.itemsize
    want_dims = 3 if kind == "mla" else 5
    if len(shape) != want_dims:
        raise ValueError(f"KV cache shape {list(shape)} has {len(shape)} dims; layout {kind!r} "
                         f"has {want_dims}")
    if kind == "mla":
        n, b, d = shape
        if st[2] != 1 or st[1] != d:
            raise ValueError(f"MLA KV cache {name0!r}: a block's [block_size, latent] must be "
                             f"dense, strides are {list(st)}")
        lay = dict(kv_format="latent", num_kv_heads=1, head_dim=d, tokens_per_block=b,
                   chunk_order="nhd")
        block_stride, comp_stride, order = st[0] * es, 0, "block_major"
    else:
        if kind == "flash_attn":
            _, n, b, h, d = shape
            comp_stride, block_stride = st[0] * es, st[1] * es
            kv_dim = 0
        else:
            n, _, b, h, d = shape
            block_stride, comp_stride = st[0] * es, st[1] * es
            kv_dim = 1
        if shape[kv_dim] != 2:
            raise ValueError(f"KV cache shape {list(shape)}: layout {kind!r} needs 2 (K and V) "
                             f"in dim {kv_dim}")
        sb, sh, sd = st[2], st[3], st[4]
        if sd == 1 and sh == d and sb == h * d:
            chunk_order = "nhd"
        elif sd == 1 and sb == d and sh == b * d:
            chunk_order = "hnd"
        else:
            raise ValueError(
                f"KV cache {name0!r}: each block's [block_size, kv_heads, head_dim] must be dense "
                f"in NHD or HND order; strides of those dims are {[sb, sh, sd]}")
        lay = dict(kv_format="kv", num_kv_heads=h, head_dim=d, tokens_per_block=b,
                   chunk_order=chunk_order)
        order = "kv_major" if comp_stride > block_stride else "block_major"
    if block_stride <= 0 or (kind != "mla" and comp_stride <= 0):
        raise ValueError(f"KV cache {name0!r}: strides {list(st)} must be positive")
    if block_size is not None and b != block_size:
        raise ValueError(f"KV cache {name0!r} holds {b} tokens per block, the engine's block "
                         f"size is {block_size}")
    lay["num_layers"] = len(tensors)
    lay["dtype"] = t0.dtype
    return CacheSpec(layout=lay, kind=kind, num_blocks=n, order=order,
                     block_stride_bytes=block_stride, component_stride_bytes=comp_stride,
                     memory=t0.memory, layer_ptrs=[t.ptr for _, t in tensors],
                     layer_names=[name for name, _ in tensors])


LAYOUT_FIELDS = ("num_layers", "kv_format", "num_kv_heads", "head_dim", "dtype",
                 "tokens_per_block", "chunk_order")


def mismatches(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> list[str]:
    """'layout.<field>: configured X, tensors Y' for every field that differs."""
    return [f"layout.{f}: configured {expected[f]!r}, tensors have {actual[f]!r}"
            for f in LAYOUT_FIELDS if expected.get(f) != actual.get(f)]
