"""StrataConnector: a vLLM KV connector (v1 interface) over Strata.

    vllm serve MODEL --kv-transfer-config '{"kv_connector":"StrataConnector",
        "kv_connector_module_path":"strata.vllm","kv_role":"kv_both",
        "kv_connector_extra_config":{"daemon_socket":"/run/strata/strata.sock"}}'

vLLM runs one instance in its scheduler process (role SCHEDULER) and one in every worker
(role WORKER, one per tensor-parallel rank). They share nothing but the metadata vLLM passes
from the scheduler to the workers each step and the outputs it aggregates back, so the index
they agree on lives outside both:

* With a ``strata daemon`` (``daemon_socket``, or STRATA_DAEMON_SOCKET): every worker is a
  client of the node's daemon with its own rank's keys and copies its shard between its KV
  tensors and the daemon's shared G2; the scheduler is a client without a device cache that
  matches every rank's keys and counts a block present only when every rank's shard of it is.
  Any tensor-parallel size; several engines on one node share the cache.
* Without one, scheduler and worker must share a process (tensor-parallel size 1 and vLLM's
  in-process executor): both roles use one in-process Manager.

Keys are Strata's own (chained hashes of the token ids, bound to the model, layout, rank,
LoRA and cache_salt), never vLLM's per-process-seeded block hashes, so G3 survives restarts
and G4 is shared across nodes.

Loads are asynchronous (the request waits in WAITING_FOR_REMOTE_KVS and no step waits for
them); blocks a worker could not load are reported by get_block_ids_with_load_errors so vLLM
recomputes them. Stores start after the step's forward; a preempted request's stores are
fenced (cancelled where not started, waited for where running) before its blocks can be
reused, and a finished request's blocks stay allocated until every rank's stores are done.

Without vllm installed the module still imports, with minimal stand-ins for vLLM's base
classes, so the same methods can be driven by a test harness (python/tests/).
"""

from __future__ import annotations

import enum
import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Optional

from . import Manager, InvalidArgumentError, NotSupportedError

logger = logging.getLogger("strata.vllm")

try:  # the real base classes when vLLM is installed
    from vllm.distributed.kv_transfer.kv_connector.v1.base import (  # type: ignore
        KVConnectorBase_V1, KVConnectorMetadata, KVConnectorRole)
    HAVE_VLLM = True
except Exception:  # noqa: BLE001  (any failure to import vLLM means: no vLLM)
    HAVE_VLLM = False

    class KVConnectorRole(enum.Enum):  # type: ignore[no-redef]
        SCHEDULER = 0
        WORKER = 1

    class KVConnectorMetadata:  # type: ignore[no-redef]
        """Stand-in for vLLM's (empty) metadata base class."""

    class KVConnectorBase_V1:  # type: ignore[no-redef]
        """Stand-in for vLLM's base class: metadata binding, as vLLM's does it."""

        def __init__(self, vllm_config: Any, role: Any, kv_cache_config: Any = None):
            self._vllm_config = vllm_config
            self._role = role
            self._kv_cache_config = kv_cache_config
            self._connector_metadata: Optional[KVConnectorMetadata] = None

        @property
        def role(self) -> Any:
            return self._role

        def bind_connector_metadata(self, connector_metadata: KVConnectorMetadata) -> None:
            self._connector_metadata = connector_metadata

        def clear_connector_metadata(self) -> None:
            self._connector_metadata = None

        def _get_connector_metadata(self) -> KVConnectorMetadata:
            assert self._connector_metadata is not None
            return self._connector_metadata

        def has_connector_metadata(self) -> bool:
            return self._connector_metadata is not None


# kv_connector_extra_config keys the connector reads itself; every other key is a Strata
# setting named <table>_<key> or <table>.<key> (docs/configuration.md).
_CONNECTOR_KEYS = ("config", "async_lookup", "lookup_threads", "kv_cache_layout",
                   "model_fingerprint", "metrics_port", "metrics_host")


@dataclass
class BlockSpec:
    """Blocks [first_block, first_block + len(block_ids)) of a request's prompt and the vLLM
    blocks they are loaded into (metadata.loads) or stored from (metadata.stores)."""
    req_id: str
    token_ids: list[int]   # the prompt up to the last of those blocks
    first_block: int
    block_ids: list[int]
    cache_salt: str = ""
    lora: str = ""


@dataclass
class StrataConnectorMetadata(KVConnectorMetadata):
    """What the scheduler tells every worker in one step (pickled by vLLM)."""
    loads: list[BlockSpec] = field(default_factory=list)
    stores: list[BlockSpec] = field(default_factory=list)
    preempted_req_ids: set[str] = field(default_factory=set)


def _vllm_kv_cache_layout() -> str:
    try:
        from vllm.v1.attention.backends.utils import get_kv_cache_layout  # type: ignore
        return str(get_kv_cache_layout())
    except Exception:  # noqa: BLE001
        return os.environ.get("VLLM_KV_CACHE_LAYOUT", "NHD") or "NHD"


_TORCH_DTYPES = {"torch.float32": "fp32", "torch.float16": "fp16", "torch.bfloat16": "bf16",
                 "float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "half": "fp16",
                 "float": "fp32"}
_CACHE_DTYPES = {"fp8": "fp8_e4m3", "fp8_e4m3": "fp8_e4m3", "fp8_e5m2": "fp8_e5m2",
                 "bfloat16": "bf16", "float16": "fp16", "half": "fp16", "float32": "fp32"}


@dataclass
class EngineShape:
    """What the connector derives from vllm_config: the KV layout of one rank's shard and the
    key namespace's parallelism."""
    layout: dict[str, Any]
    tp_size: int
    mla: bool
    fingerprint: str


def engine_shape(vllm_config: Any, extra: dict[str, Any]) -> EngineShape:
    mc, pc, cc = vllm_config.model_config, vllm_config.parallel_config, vllm_config.cache_config
    if getattr(pc, "pipeline_parallel_size", 1) != 1:
        raise NotSupportedError("StrataConnector: pipeline parallelism is not supported (each "
                                "stage holds other layers); use tensor parallelism")
    mla = bool(getattr(mc, "use_mla", False))
    cache_dtype = str(getattr(cc, "cache_dtype", "auto"))
    if cache_dtype == "auto":
        dtype = _TORCH_DTYPES.get(str(mc.dtype))
        if dtype is None:
            raise NotSupportedError(f"StrataConnector: model dtype {mc.dtype} is not a KV "
                                    f"dtype Strata knows")
    else:
        dtype = _CACHE_DTYPES.get(cache_dtype)
        if dtype is None:
            raise NotSupportedError(f"StrataConnector: cache dtype {cache_dtype!r} is not "
                                    f"supported")
    order = str(extra.get("kv_cache_layout") or _vllm_kv_cache_layout()).lower()
    if order not in ("nhd", "hnd"):
        raise InvalidArgumentError(f"kv_cache_layout must be NHD or HND, not {order!r}")
    layout = {
        "num_layers": int(mc.get_num_layers(pc)),
        "kv_format": "latent" if mla else "kv",
        "num_kv_heads": 1 if mla else int(mc.get_num_kv_heads(pc)),
        "head_dim": int(mc.get_head_size()),
        "dtype": dtype,
        "tokens_per_block": int(cc.block_size),
        "chunk_order": "nhd" if mla else order,
    }
    fingerprint = extra.get("model_fingerprint") or "vllm:{}@{}:{}:{}".format(
        mc.model, getattr(mc, "revision", None) or "main", mc.dtype,
        getattr(mc, "quantization", None) or "none")
    return EngineShape(layout, int(pc.tensor_parallel_size), mla, str(fingerprint))


def _extra_config(vllm_config: Any) -> dict[str, Any]:
    ktc = getattr(vllm_config, "kv_transfer_config", None)
    return dict(getattr(ktc, "kv_connector_extra_config", None) or {})


def _engine_id(vllm_config: Any) -> str:
    ktc = getattr(vllm_config, "kv_transfer_config", None)
    return str(getattr(ktc, "engine_id", None) or "default")


def _tp_rank(vllm_config: Any) -> int:
    try:
        from vllm.distributed.parallel_state import get_tensor_model_parallel_rank  # type: ignore
        return int(get_tensor_model_parallel_rank())
    except Exception:  # noqa: BLE001  (no vLLM, or its groups are not initialised)
        pc = vllm_config.parallel_config
        return int(getattr(pc, "rank", 0)) % max(1, int(pc.tensor_parallel_size))


def _config_file_daemon(config: Any) -> str:
    """[daemon] socket of a Strata TOML file, or ''."""
    if not config:
        return ""
    import tomllib
    try:
        with open(config, "rb") as f:
            return str(tomllib.load(f).get("daemon", {}).get("socket", "") or "")
    except (OSError, tomllib.TOMLDecodeError):
        return ""  # the Manager reports the file's problem with its path


# Managers shared by the two roles of one engine in one process (no daemon): engine id ->
# [Manager, users]; closed when the last user shuts down.
_local_managers: dict[str, list[Any]] = {}
_local_lock = threading.Lock()


class _Managers:
    """The Managers one connector instance uses: a worker's (its rank's keys), or the
    scheduler's (one per rank namespace, every rank's keys, no device cache)."""

    def __init__(self, vllm_config: Any, role: Any):
        extra = _extra_config(vllm_config)
        self.shape = engine_shape(vllm_config, extra)
        self.async_lookup = bool(extra.get("async_lookup", False))
        self.lookup_threads = int(extra.get("lookup_threads", 4))
        config = extra.get("config") or os.environ.get("STRATA_CONFIG") or None
        overrides = {k: v for k, v in extra.items() if k not in _CONNECTOR_KEYS}
        for k, v in self.shape.layout.items():
            overrides[f"layout_{k}"] = v
        overrides["model_fingerprint"] = self.shape.fingerprint
        # MLA: the latent is the same on every rank, so one rank-free copy serves all.
        ranks = 1 if self.shape.mla else self.shape.tp_size
        overrides["keys_world_size"] = ranks
        daemon = overrides.get("daemon_socket") or overrides.get("daemon.socket") or \
            os.environ.get("STRATA_DAEMON_SOCKET") or _config_file_daemon(config)
        self.daemon = str(daemon) if daemon else ""
        self.is_scheduler = role == KVConnectorRole.SCHEDULER
        self.rank = 0 if self.is_scheduler else _tp_rank(vllm_config)
        self.key_rank = 0 if self.shape.mla else self.rank
        if not self.daemon and self.shape.tp_size > 1:
            raise InvalidArgumentError(
                f"StrataConnector with tensor_parallel_size {self.shape.tp_size} needs a "
                f"`strata daemon` shared by the scheduler and the workers: start one and set "
                f"kv_connector_extra_config.daemon_socket (or STRATA_DAEMON_SOCKET); see "
                f"docs/vllm.md")
        if self.daemon:
            if self.is_scheduler:
                # Lookups only: a couple of sockets per rank is plenty.
                sched = {"daemon_connections": 2, **overrides}
                self.per_rank = [Manager(config, **{**sched, "keys_rank": r})
                                 for r in range(ranks)]
            else:
                self.per_rank = [Manager(config, **{**overrides, "keys_rank": self.key_rank})]
            self.local = False
        else:
            self.local_key = _engine_id(vllm_config)
            with _local_lock:
                entry = _local_managers.get(self.local_key)
                if entry is None:
                    entry = [Manager(config, **{**overrides, "keys_rank": 0}), 0]
                    _local_managers[self.local_key] = entry
                entry[1] += 1
            self.per_rank = [entry[0]]
            self.local = True
        self.closed = False

        for i, m in enumerate(self.per_rank):
            want = i if (self.is_scheduler and self.daemon) else \
                (self.key_rank if self.daemon else 0)
            if m.rank != want or m.world_size != ranks:
                raise InvalidArgumentError(
                    f"StrataConnector: the manager has rank {m.rank} of {m.world_size}, the "
                    f"connector's shard is rank {want} of {ranks}: STRATA_TP_RANK / "
                    f"STRATA_TP_WORLD_SIZE in the environment (or [keys] in the config file) "
                    f"override it; leave them unset under vLLM")

    @property
    def worker(self) -> Manager:
        return self.per_rank[0]

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.local:
            with _local_lock:
                entry = _local_managers[self.local_key]
                entry[1] -= 1
                if entry[1] > 0:
                    return  # the other role still uses it
                del _local_managers[self.local_key]
        for m in self.per_rank:
            m.close()


@dataclass
class _Lookup:
    """The scheduler's cached answer for one request (get_num_new_matched_tokens)."""
    future: Optional[Future] = None
    matched_tokens: Optional[int] = None
    num_computed: int = 0


@dataclass
class _SchedRequest:
    token_ids: list[int]
    cache_salt: str
    lora: str
    block_ids: list[int] = field(default_factory=list)
    stored_blocks: int = 0          # blocks below this are in Strata or being stored
    stores_unfenced: bool = False   # stores sent since the last preemption fence


@dataclass
class _WorkerLoad:
    handle: Any
    block_ids: list[int]   # every block the scheduler promised
    started: int           # of those, how many this rank is loading


def _cache_salt(request: Any) -> str:
    return str(getattr(request, "cache_salt", None) or "")


def _lora_name(request: Any) -> str:
    lora = getattr(request, "lora_request", None)
    if lora is None:
        return ""
    return str(getattr(lora, "lora_name", None) or getattr(lora, "name", None) or lora)


def _sched_id(req_id: str) -> str:
    return "sched:" + req_id


class StrataConnector(KVConnectorBase_V1):
    """vLLM KV connector v1 over Strata (docs/vllm.md)."""

    def __init__(self, vllm_config: Any, role: Any, kv_cache_config: Any = None):
        try:
            super().__init__(vllm_config, role, kv_cache_config)
        except TypeError:  # vLLM before kv_cache_config was passed
            super().__init__(vllm_config, role)  # type: ignore[call-arg]
        self._vllm_config = vllm_config
        self._m = _Managers(vllm_config, role)
        self._block_size = int(self._m.shape.layout["tokens_per_block"])
        # Scheduler side.
        self._lookups: dict[str, _Lookup] = {}
        self._reqs: dict[str, _SchedRequest] = {}
        self._pending_loads: list[BlockSpec] = []
        self._lookup_pool: Optional[ThreadPoolExecutor] = None
        if self._m.is_scheduler and self._m.async_lookup:
            self._lookup_pool = ThreadPoolExecutor(self._m.lookup_threads,
                                                   thread_name_prefix="strata-lookup")
        # Worker side.
        self._loads: dict[str, _WorkerLoad] = {}
        self._stores: dict[str, list[Any]] = {}
        self._store_reqs: set[str] = set()      # requests with stores since their last fence
        self._finishing: set[str] = set()       # finished; report once their stores are done
        self._load_errors: set[int] = set()
        self._cuda = False
        self._stats_base: dict[str, int] = {}
        self.metrics_port = 0  # where this worker serves Strata's /metrics (0: nowhere)

    # ================================ scheduler side ======================================

    def _lookup_now(self, tokens: list[int], req_id: str, salt: str, lora: str) -> int:
        """Tokens every rank holds: the shortest of the ranks' matches (each a prefix).
        The matched blocks stay leased to this scheduler until the load is done or the
        request goes away."""
        best: Optional[int] = None
        for m in self._m.per_rank:
            n = m.match(tokens, _sched_id(req_id), cache_salt=salt, lora_id=lora)
            best = n.num_matched_tokens if best is None else min(best, n.num_matched_tokens)
            if best == 0:
                break
        return best or 0

    def get_num_new_matched_tokens(self, request: Any,
                                   num_computed_tokens: int) -> tuple[Optional[int], bool]:
        """Tokens beyond ``num_computed_tokens`` (vLLM's own prefix-cache hit) that Strata can
        load, and True (loads are asynchronous), or (None, False) while an asynchronous lookup
        runs. Repeated calls return the cached answer; a full-prompt hit leaves the last token
        for vLLM to compute."""
        rid = request.request_id
        lk = self._lookups.get(rid)
        if lk is None:
            bs = self._block_size
            num_tokens = int(getattr(request, "num_tokens", len(request.prompt_token_ids)))
            prompt = list(request.prompt_token_ids)
            # Never the whole prompt: at least one token is computed for its logits.
            usable = min(len(prompt), num_tokens - 1) // bs * bs
            lk = _Lookup(num_computed=num_computed_tokens)
            self._lookups[rid] = lk
            salt, lora = _cache_salt(request), _lora_name(request)
            if usable <= 0:
                lk.matched_tokens = 0
            elif self._lookup_pool is not None:
                lk.future = self._lookup_pool.submit(self._lookup_now, prompt[:usable], rid,
                                                     salt, lora)
            else:
                lk.matched_tokens = self._lookup_now(prompt[:usable], rid, salt, lora)
        if lk.matched_tokens is None:
            assert lk.future is not None
            if not lk.future.done():
                return None, False
            try:
                lk.matched_tokens = int(lk.future.result())
            except Exception as e:  # noqa: BLE001  (a failed lookup is a miss)
                logger.warning("strata: lookup for %s failed: %s", rid, e)
                lk.matched_tokens = 0
            lk.future = None
        lk.num_computed = num_computed_tokens
        if num_computed_tokens % self._block_size != 0:
            return 0, False
        extra = lk.matched_tokens - num_computed_tokens
        if extra <= 0:
            return 0, False
        return extra, True

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int) -> None:
        """Records the load of the ``num_external_tokens`` promised by
        get_num_new_matched_tokens into the blocks vLLM allocated for them."""
        rid = request.request_id
        prompt = list(request.prompt_token_ids)
        st = self._reqs.get(rid)
        if st is None:
            st = _SchedRequest(prompt, _cache_salt(request), _lora_name(request))
            self._reqs[rid] = st
        if num_external_tokens <= 0:
            # Nothing (more) to load: the blocks the lookup leased need not stay leased.
            self._forget_lookup(rid)
            return
        lk = self._lookups.get(rid)
        bs = self._block_size
        first = (lk.num_computed if lk else 0) // bs
        last = first + num_external_tokens // bs
        block_ids = list(blocks.get_block_ids()[0])
        self._pending_loads.append(BlockSpec(rid, prompt[:last * bs], first,
                                            block_ids[first:last], st.cache_salt, st.lora))

    def _store_spec(self, rid: str, st: _SchedRequest, computed: int) -> Optional[BlockSpec]:
        end = min(computed, len(st.token_ids)) // self._block_size
        end = min(end, len(st.block_ids))
        if end <= st.stored_blocks:
            return None
        spec = BlockSpec(rid, st.token_ids[:end * self._block_size], st.stored_blocks,
                         st.block_ids[st.stored_blocks:end], st.cache_salt, st.lora)
        st.stored_blocks = end
        st.stores_unfenced = True
        return spec

    def build_connector_meta(self, scheduler_output: Any) -> StrataConnectorMetadata:
        """This step's loads, the stores of prompt blocks the step completes, and the
        preempted requests whose stores the workers must fence."""
        meta = StrataConnectorMetadata(loads=self._pending_loads)
        self._pending_loads = []
        scheduled = getattr(scheduler_output, "num_scheduled_tokens", {}) or {}
        for new in getattr(scheduler_output, "scheduled_new_reqs", ()) or ():
            rid = new.req_id
            old = self._reqs.get(rid)
            st = _SchedRequest(list(new.prompt_token_ids or ()),
                               old.cache_salt if old else "", old.lora if old else "")
            st.block_ids = list(new.block_ids[0]) if new.block_ids else []
            st.stored_blocks = int(new.num_computed_tokens) // self._block_size
            self._reqs[rid] = st
            spec = self._store_spec(rid, st, int(new.num_computed_tokens) + scheduled.get(rid, 0))
            if spec:
                meta.stores.append(spec)
        cached = getattr(scheduler_output, "scheduled_cached_reqs", None)
        if cached is not None:
            resumed_ids = getattr(cached, "resumed_req_ids", None)
            resumed_flags = getattr(cached, "resumed_from_preemption", None)
            for i, rid in enumerate(cached.req_ids):
                st = self._reqs.get(rid)
                if st is None:
                    continue
                resumed = (rid in resumed_ids) if resumed_ids is not None else \
                    bool(resumed_flags[i]) if resumed_flags is not None else False
                new_ids = cached.new_block_ids[i]
                computed = int(cached.num_computed_tokens[i])
                if resumed:
                    st.block_ids = list(new_ids[0]) if new_ids else []
                    st.stored_blocks = computed // self._block_size
                elif new_ids:
                    st.block_ids.extend(new_ids[0])
                spec = self._store_spec(rid, st, computed + scheduled.get(rid, 0))
                if spec:
                    meta.stores.append(spec)
        for rid in getattr(scheduler_output, "preempted_req_ids", None) or ():
            meta.preempted_req_ids.add(rid)
            st = self._reqs.get(rid)
            if st is not None:
                st.stores_unfenced = False
                st.block_ids = []
            self._forget_lookup(rid)
        return meta

    def _forget_lookup(self, rid: str) -> None:
        lk = self._lookups.pop(rid, None)
        if lk is not None and lk.future is not None:
            lk.future.cancel()
        for m in self._m.per_rank:
            m.release(_sched_id(rid))

    def update_connector_output(self, connector_output: Any) -> None:
        """Loads every rank finished: the scheduler's leases on their blocks end."""
        for rid in getattr(connector_output, "finished_recving", None) or ():
            self._forget_lookup(rid)

    def request_finished(self, request: Any,
                         block_ids: list[int]) -> tuple[bool, Optional[dict[str, Any]]]:
        """(True, None) while stores of the request may still read its blocks: vLLM keeps them
        until every rank reports the request in get_finished()[0]."""
        rid = request.request_id
        self._forget_lookup(rid)
        self._pending_loads = [s for s in self._pending_loads if s.req_id != rid]
        st = self._reqs.pop(rid, None)
        return (st is not None and st.stores_unfenced), None

    def take_events(self) -> Iterable[Any]:
        return ()

    # ================================= worker side ========================================

    def register_kv_caches(self, kv_caches: dict[str, Any]) -> None:
        """vLLM's per-layer KV tensors (FlashAttention, FlashInfer or MLA shapes, NHD or HND),
        registered zero-copy; a shape that does not fit the model's layout is an error naming
        the field."""
        spec = self._m.worker.register_kv_caches(kv_caches)
        self._cuda = spec.memory == "cuda"
        self._stats_base = dict(self._m.worker.stats())
        # Strata's own /metrics of this rank's manager: metrics_port + rank.
        extra = _extra_config(self._vllm_config)
        port = int(extra.get("metrics_port") or 0)
        if port > 0 and not self._m.local:
            self.metrics_port = self._m.worker.serve_metrics(
                port + self._m.rank, str(extra.get("metrics_host") or "127.0.0.1"))
        elif port > 0 and self._m.rank == 0:
            self.metrics_port = self._m.worker.serve_metrics(
                port, str(extra.get("metrics_host") or "127.0.0.1"))

    def register_cross_layers_kv_cache(self, kv_cache: Any, attn_backend: Any) -> None:
        raise NotSupportedError("StrataConnector takes per-layer KV caches "
                                "(prefer_cross_layer_blocks is False)")

    @property
    def prefer_cross_layer_blocks(self) -> bool:
        return False

    @property
    def requires_kv_delivery(self) -> bool:
        return False

    def _fence(self, req_ids: Iterable[str]) -> None:
        """Before a preempted request's blocks are reused: its stores that have not started
        are cancelled and the running ones waited for, so no copy reads a reused block."""
        for rid in req_ids:
            for h in self._stores.pop(rid, ()):
                h.cancel()
                h.wait()
            self._store_reqs.discard(rid)

    def handle_preemptions(self, kv_connector_metadata: Any = None) -> None:
        if isinstance(kv_connector_metadata, (set, frozenset, list, tuple)):
            self._fence(kv_connector_metadata)  # vLLM before #34805 passed the ids
        elif kv_connector_metadata is not None:
            self._fence(getattr(kv_connector_metadata, "preempted_req_ids", ()))

    def bind_connector_metadata(self, connector_metadata: Any) -> None:
        super().bind_connector_metadata(connector_metadata)
        # Also here, for vLLM versions that do not call handle_preemptions: before the forward.
        self._fence(getattr(connector_metadata, "preempted_req_ids", ()))
        for spec in getattr(connector_metadata, "stores", ()):
            self._store_reqs.add(spec.req_id)

    def start_load_kv(self, forward_context: Any = None, **kwargs: Any) -> None:
        meta = self._get_connector_metadata()
        for spec in meta.loads:
            self._start_load(spec)

    def _start_load(self, spec: BlockSpec) -> None:
        m = self._m.worker
        handle, started = None, 0
        try:
            match = m.match(spec.token_ids, spec.req_id, cache_salt=spec.cache_salt,
                            lora_id=spec.lora)
            # This rank's shard may be shorter than what the scheduler saw (evicted since):
            # the rest fails below and vLLM recomputes it.
            started = max(0, min(match.num_matched_blocks - spec.first_block,
                                 len(spec.block_ids)))
            if started > 0:
                handle = m.load(match, spec.block_ids[:started], spec.first_block)
        except Exception as e:  # noqa: BLE001  (every failure is reported as block ids)
            logger.warning("strata: load for %s failed to start: %s", spec.req_id, e)
            handle, started = None, 0
        self._loads[spec.req_id] = _WorkerLoad(handle, list(spec.block_ids), started)

    def wait_for_layer_load(self, layer_name: str) -> None:
        return None  # loads finish before the request is scheduled (asynchronous loads)

    def save_kv_layer(self, layer_name: str, kv_layer: Any, attn_metadata: Any,
                      **kwargs: Any) -> None:
        return None  # stores start in wait_for_save, once every layer is written

    def wait_for_save(self) -> None:
        """Starts this step's stores (they run on Strata's threads; vLLM keeps the blocks
        until they are done, see request_finished and handle_preemptions)."""
        meta = self._get_connector_metadata()
        if not meta.stores:
            return
        if self._cuda:
            import torch  # the forward's kernels must have written the blocks
            torch.cuda.current_stream().synchronize()
        m = self._m.worker
        for spec in meta.stores:
            if self._m.shape.mla and self._m.rank != 0:
                continue  # MLA: rank 0's latent is every rank's
            try:
                keys = m.compute_keys(spec.token_ids, cache_salt=spec.cache_salt,
                                      lora_id=spec.lora)
                keys = keys[spec.first_block:spec.first_block + len(spec.block_ids)]
                h = m.store(spec.req_id, keys, spec.block_ids, cache_salt=spec.cache_salt,
                            lora_id=spec.lora)
                self._stores.setdefault(spec.req_id, []).append(h)
            except Exception as e:  # noqa: BLE001  (a store that cannot start is skipped)
                logger.warning("strata: store for %s failed: %s", spec.req_id, e)

    def get_finished(self, finished_req_ids: set[str]) -> tuple[Optional[set[str]],
                                                                 Optional[set[str]]]:
        """(finished requests whose stores are done, requests whose loads are done)."""
        m = self._m.worker
        for rid in finished_req_ids:
            if rid in self._loads:
                m.cancel(rid)  # aborted while loading: stop what has not started
            if rid in self._store_reqs:
                self._finishing.add(rid)
            elif rid not in self._loads:
                m.release(rid)
        recving: set[str] = set()
        for rid, load in list(self._loads.items()):
            if load.handle is not None and not load.handle.done():
                continue
            usable = load.handle.usable_blocks if load.handle is not None else 0
            self._load_errors.update(load.block_ids[usable:])
            recving.add(rid)
            del self._loads[rid]
            m.release(rid)
        sending: set[str] = set()
        for rid in list(self._finishing):
            if all(h.done() for h in self._stores.get(rid, ())):
                sending.add(rid)
                self._finishing.discard(rid)
                self._stores.pop(rid, None)
                self._store_reqs.discard(rid)
                m.release(rid)
        for rid, hs in self._stores.items():  # drop finished handles of running requests
            if len(hs) > 1:
                self._stores[rid] = [h for h in hs if not h.done()]
        return (sending or None), (recving or None)

    def get_block_ids_with_load_errors(self) -> set[int]:
        """vLLM block ids this rank promised to load and did not (vLLM recomputes them)."""
        errors, self._load_errors = self._load_errors, set()
        return errors

    def get_kv_connector_stats(self) -> Optional[Any]:
        """Strata's counters since the last call (loaded/stored/failed blocks and bytes)."""
        if self._m.is_scheduler:
            return None
        now = self._m.worker.stats()
        keys = ("loaded_blocks", "load_failed_blocks", "loaded_bytes", "stored_blocks",
                "store_skipped_blocks", "store_dropped_blocks", "stored_bytes",
                "match_hit_blocks", "match_prompt_blocks")
        data = {k: int(now[k]) - int(self._stats_base.get(k, 0)) for k in keys}
        self._stats_base = dict(now)
        if not any(data.values()):
            return None
        return StrataConnectorStats(data=data)

    @classmethod
    def build_kv_connector_stats(cls, data: Optional[dict[str, Any]] = None) -> Optional[Any]:
        return StrataConnectorStats(data=data) if data is not None else StrataConnectorStats()

    def metrics_text(self) -> str:
        """Strata's Prometheus text of this instance's manager (docs/metrics.md)."""
        return self._m.worker.metrics_text()

    def shutdown(self) -> None:
        """Waits for this worker's stores and loads, then closes its managers."""
        for hs in self._stores.values():
            for h in hs:
                h.wait()
        for load in self._loads.values():
            if load.handle is not None:
                load.handle.wait()
        if self._lookup_pool is not None:
            self._lookup_pool.shutdown(wait=True, cancel_futures=True)
        self._m.close()


try:
    from vllm.distributed.kv_transfer.kv_connector.v1.metrics import (  # type: ignore
        KVConnectorStats as _StatsBase)
except Exception:  # noqa: BLE001
    @dataclass
    class _StatsBase:  # type: ignore[no-redef]
        data: dict[str, Any] = field(default_factory=dict)


@dataclass
class StrataConnectorStats(_StatsBase):  # type: ignore[misc,valid-type]
    """Block and byte counts of one or more ranks (vLLM's connector stats hook)."""

    def __post_init__(self) -> None:
        if getattr(self, "data", None) is None:
            self.data = {}

    def reset(self) -> None:
        self.data = {}

    def aggregate(self, other: "StrataConnectorStats") -> "StrataConnectorStats":
        for k, v in (other.data or {}).items():
            self.data[k] = self.data.get(k, 0) + v
        return self

    def reduce(self) -> dict[str, int | float]:
        return dict(self.data)

    def is_empty(self) -> bool:
        return not any(self.data.values())
