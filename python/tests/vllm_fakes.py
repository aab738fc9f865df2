"""The parts of vLLM a KV connector sees, reduced to what StrataConnector reads: the config,
requests, allocated blocks, the scheduler's per-step output and the worker's aggregated
output. Field names follow vLLM v1 (vllm/v1/core/sched/output.py, vllm/v1/request.py,
vllm/config/kv_transfer.py)."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from typing import Any, Optional


@dataclass
class ModelConfig:
    model: str = "strata-test/llama"
    revision: Optional[str] = None
    dtype: Any = "torch.float16"
    quantization: Optional[str] = None
    num_layers: int = 2
    num_kv_heads: int = 4          # total; each rank holds num_kv_heads / tp
    head_size: int = 32
    use_mla: bool = False

    def get_num_layers(self, parallel_config: "ParallelConfig") -> int:
        return self.num_layers

    def get_num_kv_heads(self, parallel_config: "ParallelConfig") -> int:
        return max(1, self.num_kv_heads // parallel_config.tensor_parallel_size)

    def get_head_size(self) -> int:
        return self.head_size


@dataclass
class ParallelConfig:
    tensor_parallel_size: int = 1
    pipeline_parallel_size: int = 1
    rank: int = 0


@dataclass
class CacheConfig:
    block_size: int = 16
    cache_dtype: str = "auto"


@dataclass
class KVTransferConfig:
    kv_connector: str = "StrataConnector"
    kv_connector_module_path: str = "strata.vllm"
    kv_role: str = "kv_both"
    engine_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    kv_connector_extra_config: dict[str, Any] = field(default_factory=dict)
    kv_load_failure_policy: str = "recompute"

    def get_from_extra_config(self, key: str, default: Any) -> Any:
        return self.kv_connector_extra_config.get(key, default)


@dataclass
class VllmConfig:
    model_config: ModelConfig = field(default_factory=ModelConfig)
    parallel_config: ParallelConfig = field(default_factory=ParallelConfig)
    cache_config: CacheConfig = field(default_factory=CacheConfig)
    kv_transfer_config: KVTransferConfig = field(default_factory=KVTransferConfig)


class RequestStatus(enum.Enum):
    WAITING = enum.auto()
    WAITING_FOR_REMOTE_KVS = enum.auto()
    RUNNING = enum.auto()
    PREEMPTED = enum.auto()
    FINISHED_STOPPED = enum.auto()
    FINISHED_ABORTED = enum.auto()

    def finished(self) -> bool:
        return self in (RequestStatus.FINISHED_STOPPED, RequestStatus.FINISHED_ABORTED)


@dataclass
class LoRARequest:
    lora_name: str
    lora_int_id: int = 1


@dataclass
class Request:
    request_id: str
    prompt_token_ids: list[int]
    max_tokens: int = 4
    cache_salt: Optional[str] = None
    lora_request: Optional[LoRARequest] = None
    output_token_ids: list[int] = field(default_factory=list)
    num_computed_tokens: int = 0
    status: RequestStatus = RequestStatus.WAITING
    num_preemptions: int = 0

    @property
    def all_token_ids(self) -> list[int]:
        return self.prompt_token_ids + self.output_token_ids

    @property
    def num_tokens(self) -> int:
        return len(self.prompt_token_ids) + len(self.output_token_ids)

    @property
    def num_prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)


class KVCacheBlocks:
    def __init__(self, block_ids: list[int]):
        self._ids = list(block_ids)

    def get_block_ids(self) -> tuple[list[int], ...]:
        return (list(self._ids),)


@dataclass
class NewRequestData:
    req_id: str
    prompt_token_ids: list[int]
    block_ids: tuple[list[int], ...]
    num_computed_tokens: int
    lora_request: Optional[LoRARequest] = None


@dataclass
class CachedRequestData:
    req_ids: list[str] = field(default_factory=list)
    resumed_req_ids: set[str] = field(default_factory=set)
    new_block_ids: list[Optional[tuple[list[int], ...]]] = field(default_factory=list)
    num_computed_tokens: list[int] = field(default_factory=list)
    num_output_tokens: list[int] = field(default_factory=list)


@dataclass
class SchedulerOutput:
    scheduled_new_reqs: list[NewRequestData] = field(default_factory=list)
    scheduled_cached_reqs: CachedRequestData = field(default_factory=CachedRequestData)
    num_scheduled_tokens: dict[str, int] = field(default_factory=dict)
    total_num_scheduled_tokens: int = 0
    finished_req_ids: set[str] = field(default_factory=set)
    preempted_req_ids: set[str] = field(default_factory=set)
    kv_connector_metadata: Any = None


@dataclass
class KVConnectorOutput:
    finished_sending: Optional[set[str]] = None
    finished_recving: Optional[set[str]] = None
    invalid_block_ids: set[int] = field(default_factory=set)
    kv_connector_stats: Any = None


class KVOutputAggregator:
    """vLLM's rule (kv_connector/utils.py): a finished id counts once every rank reported it;
    invalid block ids are a union (one rank is enough)."""

    def __init__(self, world_size: int):
        self.world_size = world_size
        self._send: dict[str, int] = {}
        self._recv: dict[str, int] = {}

    def aggregate(self, outputs: list[KVConnectorOutput]) -> KVConnectorOutput:
        assert len(outputs) == self.world_size
        sending, recving, invalid = set(), set(), set()
        stats = None
        for out in outputs:
            for rid in out.finished_sending or ():
                self._send[rid] = self._send.get(rid, 0) + 1
                if self._send[rid] == self.world_size:
                    sending.add(rid)
                    del self._send[rid]
            for rid in out.finished_recving or ():
                self._recv[rid] = self._recv.get(rid, 0) + 1
                if self._recv[rid] == self.world_size:
                    recving.add(rid)
                    del self._recv[rid]
            invalid |= set(out.invalid_block_ids)
            if out.kv_connector_stats is not None:
                stats = out.kv_connector_stats if stats is None else \
                    stats.aggregate(out.kv_connector_stats)
        return KVConnectorOutput(sending or None, recving or None, invalid, stats)
