"""Strata: tiered KV-cache offload and reuse for LLM inference engines.

    import strata, torch
    m = strata.Manager(model_fingerprint="my-model@rev", layout_num_layers=32,
                       layout_num_kv_heads=8, layout_head_dim=128, layout_dtype="bf16",
                       host_capacity_gb=4, disk_capacity_gb=0)
    m.register_kv_caches(kv_caches)            # {layer name: tensor}, vLLM's paged layouts
    match = m.match(prompt_tokens, "req-1")    # longest cached prefix, leased to req-1
    m.load(match, device_blocks).wait()        # KV into those blocks; use .usable_blocks
    m.store("req-1", match.keys[a:b], blocks).wait()
    m.release("req-1")

The configuration is the C API's and ``strata serve``'s (docs/configuration.md): a TOML file
or dict, then the STRATA_* / DYN_KVBM_* environment, then keyword overrides named
``<table>_<key>``. Every call goes to the same C++ BlockManager; errors are
:class:`StrataError` subclasses carrying the C++ message and ``code``. The vLLM KV connector
is :class:`strata.vllm.StrataConnector` (docs/vllm.md).
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

from . import _config, _layout
from ._strata import (  # noqa: F401  (re-exported)
    AlreadyExistsError, CancelledError, CorruptionError, InternalError, InvalidArgumentError,
    IoError, KeyList, LoadHandle, Match, NotFoundError, NotSupportedError, ReferenceModel,
    ResourceExhaustedError, StoreHandle, StrataError, TimedOutError, UnavailableError,
    __version__, set_log_level)
from . import _strata
from ._layout import CacheSpec, describe as describe_kv_caches  # noqa: F401

__all__ = [
    "Manager", "KeyList", "Match", "LoadHandle", "StoreHandle", "ReferenceModel", "CacheSpec",
    "describe_kv_caches", "describe_config", "StrataError", "InvalidArgumentError",
    "NotFoundError", "AlreadyExistsError", "ResourceExhaustedError", "UnavailableError",
    "IoError", "CorruptionError", "CancelledError", "TimedOutError", "NotSupportedError",
    "InternalError", "__version__", "set_log_level",
]


def describe_config(config: Any = None, *, use_env: bool = True, **overrides: Any) -> str:
    """The resolved configuration as ``strata config`` prints it: every value and its source."""
    if config is None and use_env and os.environ.get("STRATA_CONFIG"):
        config = os.environ["STRATA_CONFIG"]
    toml, name = _config.resolve(config, overrides)
    return _strata.describe_config(toml, name, use_env)


class Manager:
    """A Strata BlockManager.

    Args:
      config: None, the path of a TOML file, or a dict of tables
        (``{"host": {"capacity_gb": 1}, "layout": {...}}``).
      use_env: apply the STRATA_* / DYN_KVBM_* environment variables (default True).
      **overrides: settings named ``<table>_<key>`` (``host_capacity_gb=1``,
        ``daemon_socket="/run/strata/strata.sock"``) or ``**{"host.capacity_gb": 1}``;
        they win over ``config`` (and the environment wins over both, as in the C API).

    With ``config`` None and ``use_env``, $STRATA_CONFIG names the file, as in the C API.
    Raises InvalidArgumentError naming the key for a bad setting, IoError for an unreadable
    file, UnavailableError when a configured daemon cannot be reached.
    """

    def __init__(self, config: Any = None, *, use_env: bool = True, **overrides: Any):
        if config is None and use_env and os.environ.get("STRATA_CONFIG"):
            config = os.environ["STRATA_CONFIG"]  # as the C API's create_from_file(NULL)
        toml, name = _config.resolve(config, overrides)
        self._native = _strata.Manager(toml, name, use_env)
        self._kv_caches: Any = None  # keeps registered tensors alive
        self.cache_spec: CacheSpec | None = None

    # --- configuration ------------------------------------------------------------------
    @property
    def layout(self) -> dict[str, Any]:
        """The configured KV layout (what registered caches must match)."""
        return self._native.layout

    @property
    def rank(self) -> int:
        return self._native.rank

    @property
    def world_size(self) -> int:
        return self._native.world_size

    @property
    def model_fingerprint(self) -> str:
        return self._native.model_fingerprint

    @property
    def tokens_per_block(self) -> int:
        return self._native.layout["tokens_per_block"]

    # --- device cache -------------------------------------------------------------------
    def register_kv_caches(self, kv_caches: Mapping[str, Any] | Sequence[Any], *,
                           layout: str | None = None) -> CacheSpec:
        """Registers the engine's paged KV cache: one tensor per layer, in layer order (torch
        tensors on cpu or cuda, or numpy arrays), zero-copy through their data pointers.

        ``layout`` is 'flash_attn' ([2, num_blocks, block_size, heads, dim]), 'flash_infer'
        ([num_blocks, 2, block_size, heads, dim]) or 'mla' ([num_blocks, block_size, latent]),
        or None to detect it from the shapes and strides (NHD or HND memory order). Raises
        InvalidArgumentError naming every field that differs from the configured layout.
        The tensors must stay allocated while the manager lives (it keeps a reference)."""
        try:
            spec = _layout.describe(kv_caches, layout=layout,
                                    block_size=self.tokens_per_block)
        except ValueError as e:
            raise InvalidArgumentError(str(e)) from None
        if spec.layout["dtype"] == "u8" and self.layout["dtype"].startswith("fp8"):
            spec.layout["dtype"] = self.layout["dtype"]  # vLLM keeps fp8 caches as uint8
        diff = _layout.mismatches(self.layout, spec.layout)
        if diff:
            raise InvalidArgumentError(
                "the KV cache tensors do not match the manager's layout: " + "; ".join(diff))
        self._native.register_device_cache(spec.layer_ptrs, spec.num_blocks, spec.order,
                                           spec.block_stride_bytes, spec.component_stride_bytes,
                                           spec.memory)
        self._kv_caches = kv_caches
        self.cache_spec = spec
        return spec

    def register_device_cache(self, layer_ptrs: Sequence[int], num_blocks: int, order: str,
                              block_stride_bytes: int = 0, component_stride_bytes: int = 0,
                              memory: str = "host") -> None:
        """The raw form of register_kv_caches: layer base addresses and strides in bytes."""
        self._native.register_device_cache(list(layer_ptrs), num_blocks, order,
                                           block_stride_bytes, component_stride_bytes, memory)

    # --- requests -----------------------------------------------------------------------
    def compute_keys(self, tokens: Sequence[int], *, cache_salt: str = "",
                     lora_id: str = "") -> KeyList:
        """Keys of every full block of ``tokens`` (no lookup, no lease)."""
        return self._native.compute_keys(tokens, cache_salt, lora_id)

    def match(self, tokens: Sequence[int], request_id: str, *, cache_salt: str = "",
              lora_id: str = "") -> Match:
        """The longest cached prefix of ``tokens``, leased to ``request_id`` until it is
        loaded, released, cancelled or matched again. A miss has num_matched_tokens 0."""
        return self._native.match(tokens, request_id, cache_salt, lora_id)

    def load(self, match: Match, device_blocks: Sequence[int], first_block: int = 0) -> LoadHandle:
        """Loads matched blocks [first_block, first_block + len(device_blocks)) into those
        device blocks (asynchronously). Only ``handle.usable_blocks`` leading blocks may be
        used once it is done; the rest must be recomputed."""
        return self._native.load(match, device_blocks, first_block)

    def store(self, request_id: str, keys: KeyList | Sequence[bytes], device_blocks: Sequence[int],
              *, cache_salt: str = "", lora_id: str = "") -> StoreHandle:
        """Stores device_blocks[i] under keys[i] (asynchronously); the blocks must not change
        until the handle is done. Present keys are 'skipped'."""
        return self._native.store(request_id, keys, device_blocks, cache_salt, lora_id)

    def release(self, request_id: str) -> None:
        """The request finished: its leases end (queued loads still run)."""
        self._native.release(request_id)

    def cancel(self, request_id: str) -> None:
        """The request was aborted: loads not started are cancelled, leases end."""
        self._native.cancel(request_id)

    def flush_disk(self) -> None:
        self._native.flush_disk()

    def pin(self, keys: KeyList | Sequence[bytes]) -> None:
        self._native.pin(keys)

    def unpin(self, keys: KeyList | Sequence[bytes]) -> None:
        self._native.unpin(keys)

    # --- observability ------------------------------------------------------------------
    def stats(self) -> dict[str, int | bool]:
        """Every BlockManagerStats counter (block_manager.h), by name."""
        return self._native.stats()

    def metrics_text(self) -> str:
        """Prometheus text exposition of the manager's metrics (kvbm_* and strata_*)."""
        return self._native.metrics_text()

    def serve_metrics(self, port: int = 0, host: str = "127.0.0.1") -> int:
        """Serves metrics_text() at http://host:port/metrics (Prometheus) on background
        threads until close(); returns the port (0 picks a free one). UnavailableError when
        the address cannot be bound."""
        return self._native.serve_metrics(port, host)

    def close(self) -> None:
        """Cancels queued work, waits for running copies, releases every lease. Idempotent."""
        self._native.close()
        self._kv_caches = None

    def __enter__(self) -> "Manager":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        lay = self.layout
        where = f" daemon={self._native.daemon_socket}" if self._native.daemon_socket else ""
        return (f"<strata.Manager {self.model_fingerprint!r} rank {self.rank}/{self.world_size} "
                f"{lay['num_layers']}x{lay['kv_format']} {lay['num_kv_heads']}x{lay['head_dim']} "
                f"{lay['dtype']} {lay['tokens_per_block']} tok/block{where}>")


