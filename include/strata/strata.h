/* Strata C API: tiered KV-cache offload and reuse for LLM inference engines.
 *
 * A C99 interface to the same BlockManager the C++ API (strata/block_manager.h) exposes,
 * for engines written in C, Rust, Go, Python (ctypes/cffi) or any other FFI. No C++ type,
 * exception or STL object crosses it. docs/c_api.md has the walk-through and a full example.
 *
 * Lifecycle (every operation on the manager is named strata_manager_*)
 *   strata_manager_create_from_toml / _from_file  one manager per model shard
 *   strata_manager_register_device_cache          once: where the engine's KV cache is
 *   per request:
 *     strata_manager_match    how much of the prompt is cached       -> strata_match*
 *     strata_manager_load     bring matched blocks into device blocks -> strata_load* (async)
 *     strata_manager_store    device blocks are complete, keep them   -> strata_store* (async)
 *     strata_manager_release  the request finished (strata_manager_cancel: it was aborted)
 *   strata_manager_destroy
 *
 * Loads and stores run on Strata's worker threads; the engine polls (strata_load_done) or
 * waits (strata_load_wait) on the handle. A load reports a state per block and only its
 * leading run of STRATA_BLOCK_DONE blocks may be used (strata_load_usable_blocks): a block
 * that failed, and every block after it, must be recomputed.
 *
 * Errors
 *   Every function that can fail returns a strata_status. STRATA_OK is 0. On any other
 *   value, strata_last_error() returns a message saying what went wrong, for the calling
 *   thread (each thread has its own). Out-parameters are written only on STRATA_OK.
 *   Invalid handles (NULL, destroyed, or of another type) give STRATA_ERR_INVALID_HANDLE;
 *   the library never crashes on a handle it can recognise as invalid. A handle that was
 *   destroyed and whose address was reused by a new handle of the same type cannot be told
 *   apart from that new handle: do not use handles after destroying them.
 *
 * Threading
 *   The manager is thread-safe: every function taking a strata_manager* may be called from
 *   any thread at any time, concurrently. Match, load and store handles may be read from
 *   any thread, concurrently; destroying a handle must not race with another call on that
 *   same handle. strata_last_error() is per thread.
 *
 * Ownership
 *   Each handle made by *_create, strata_manager_match, _load or _store is owned by the caller
 *   and freed by the matching *_destroy (which accepts NULL). Strings passed in are copied
 *   before the call returns. Strings returned (strata_last_error, strata_status_name,
 *   strata_version, strata_load_block_error...) are owned by the library; how long each
 *   stays valid is stated beside it. Match, load and store handles stay valid after their
 *   manager is destroyed (their queries keep answering; new operations with them fail).
 *
 * Global state: a registry of live handles (to detect invalid ones), the per-thread last
 * error, and the process-wide log sink of spdlog. Nothing else.
 *
 * ABI: the library's SONAME is libstrata.so.<major>. Within a major version functions are
 * only added, and structs passed by pointer only grow at their end; each such struct starts
 * with `struct_size`, which the caller sets to sizeof(the struct) it was compiled with
 * (the *_init functions do that), so an older caller keeps working with a newer library.
 */
#ifndef STRATA_STRATA_H_
#define STRATA_STRATA_H_

#include <stddef.h>
#include <stdint.h>

#include "strata/export.h"
#include "strata/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Status codes --------------------------------------------------------------------- */

typedef enum strata_status {
  STRATA_OK = 0,
  STRATA_ERR_INVALID_ARGUMENT = 1,   /* a malformed argument; the message names it */
  STRATA_ERR_NOT_FOUND = 2,          /* a key, file or request that does not exist */
  STRATA_ERR_ALREADY_EXISTS = 3,     /* create of something already present */
  STRATA_ERR_RESOURCE_EXHAUSTED = 4, /* a budget, queue or tier is full; out of memory */
  STRATA_ERR_UNAVAILABLE = 5,        /* a tier or server cannot be reached right now */
  STRATA_ERR_IO = 6,                 /* a system call failed */
  STRATA_ERR_CORRUPTION = 7,         /* bytes read do not match their checksum or key */
  STRATA_ERR_CANCELLED = 8,          /* cancelled by the caller */
  STRATA_ERR_TIMED_OUT = 9,          /* a wait ran out before completion */
  STRATA_ERR_NOT_SUPPORTED = 10,     /* this build or platform cannot do it */
  STRATA_ERR_INTERNAL = 11,          /* a broken invariant inside Strata (a bug) */
  STRATA_ERR_INVALID_HANDLE = 12,    /* NULL, destroyed, or a handle of another type */
  STRATA_ERR_BUFFER_TOO_SMALL = 13   /* the caller's buffer cannot hold the result */
} strata_status;

/* Stable lower-case name of a status ("ok", "invalid_argument", ...). Static storage. */
STRATA_EXPORT const char* strata_status_name(strata_status status);

/* The message of the last failed call on this thread ("" when none failed yet). Valid
 * until the next failing call on this thread. */
STRATA_EXPORT const char* strata_last_error(void);

/* Version of the loaded library, "MAJOR.MINOR.PATCH" (static storage), and its number
 * MAJOR * 10000 + MINOR * 100 + PATCH. Compare with STRATA_VERSION_* of strata/version.h
 * (the headers compiled against). */
STRATA_EXPORT const char* strata_version(void);
STRATA_EXPORT uint32_t strata_version_number(void);

/* ---- Vocabulary ----------------------------------------------------------------------- */

typedef enum strata_tier {
  STRATA_TIER_DEVICE = 1, /* G1: the engine's own cache */
  STRATA_TIER_HOST = 2,   /* G2: host RAM */
  STRATA_TIER_DISK = 3,   /* G3: local disk */
  STRATA_TIER_SHARED = 4  /* G4: a store shared by nodes */
} strata_tier;

typedef enum strata_block_state {
  STRATA_BLOCK_PENDING = 0,  /* queued or running */
  STRATA_BLOCK_DONE = 1,     /* loaded into the device block / stored in a tier */
  STRATA_BLOCK_SKIPPED = 2,  /* store only: a tier already holds this key */
  STRATA_BLOCK_DROPPED = 3,  /* store only: a queue or tier was full, or admission refused */
  STRATA_BLOCK_FAILED = 4,   /* the transfer failed; strata_*_block_error says why */
  STRATA_BLOCK_CANCELLED = 5 /* cancelled before it ran */
} strata_block_state;

typedef enum strata_kv_format {
  STRATA_KV_SEPARATE = 0, /* separate K and V per layer (MHA, GQA, MQA) */
  STRATA_KV_LATENT = 1    /* one compressed latent per layer (MLA) */
} strata_kv_format;

typedef enum strata_dtype {
  STRATA_DTYPE_FP32 = 0,
  STRATA_DTYPE_FP16 = 1,
  STRATA_DTYPE_BF16 = 2,
  STRATA_DTYPE_FP8_E4M3 = 3,
  STRATA_DTYPE_FP8_E5M2 = 4
} strata_dtype;

/* Element order inside one chunk (one layer, one component, one block). */
typedef enum strata_chunk_order {
  STRATA_CHUNK_NHD = 0, /* [tokens][heads][dim] */
  STRATA_CHUNK_HND = 1  /* [heads][tokens][dim] */
} strata_chunk_order;

/* Order of the blocks and components in one layer's tensor. */
typedef enum strata_device_order {
  STRATA_ORDER_BLOCK_MAJOR = 0, /* [num_blocks][components][chunk] (FlashInfer-style) */
  STRATA_ORDER_KV_MAJOR = 1     /* [components][num_blocks][chunk] (FlashAttention/vLLM) */
} strata_device_order;

typedef enum strata_memory_kind {
  STRATA_MEMORY_HOST = 0, /* "device" memory that is host memory (CPU engines, tests) */
  STRATA_MEMORY_CUDA = 1  /* CUDA device memory (needs a CUDA build and a device) */
} strata_memory_kind;

/* Geometry of one KV block of this shard. */
typedef struct strata_kv_layout {
  uint32_t struct_size;      /* sizeof(strata_kv_layout) */
  uint32_t num_layers;       /* >= 1 */
  uint32_t kv_format;        /* strata_kv_format */
  uint32_t num_kv_heads;     /* >= 1 (1 for MLA) */
  uint32_t head_dim;         /* >= 1 */
  uint32_t dtype;            /* strata_dtype */
  uint32_t tokens_per_block; /* >= 1 */
  uint32_t chunk_order;      /* strata_chunk_order */
} strata_kv_layout;

/* Zeroes *layout and sets struct_size. */
STRATA_EXPORT void strata_kv_layout_init(strata_kv_layout* layout);
/* Bytes of one whole block (all layers and components); 0 for an invalid layout. */
STRATA_EXPORT uint64_t strata_kv_layout_block_bytes(const strata_kv_layout* layout);

/* The engine's paged KV cache: one tensor per layer holding num_blocks blocks.
 * Chunk (layer l, component c, block b) starts at
 *   layer_base[l] + b * block_stride_bytes + c * component_stride_bytes
 * where a stride of 0 means "dense in device_order". The memory must stay valid and at
 * these addresses until the manager is destroyed. */
typedef struct strata_device_cache {
  uint32_t struct_size;            /* sizeof(strata_device_cache) */
  uint32_t memory_kind;            /* strata_memory_kind */
  strata_kv_layout layout;         /* must equal the manager's layout (strata_manager_layout) */
  uint32_t device_order;           /* strata_device_order */
  uint32_t num_blocks;             /* >= 1 */
  uint32_t num_layers;             /* entries of layer_base; must equal layout.num_layers */
  uint32_t reserved;               /* 0 */
  void* const* layer_base;         /* num_layers pointers, none NULL */
  uint64_t block_stride_bytes;     /* 0: dense */
  uint64_t component_stride_bytes; /* 0: dense; unused for MLA */
} strata_device_cache;

/* Zeroes *cache, sets struct_size and layout.struct_size. */
STRATA_EXPORT void strata_device_cache_init(strata_device_cache* cache);

/* A request's identity. Two requests share blocks only with equal cache_salt and lora_id. */
typedef struct strata_request {
  uint32_t struct_size;   /* sizeof(strata_request) */
  const char* request_id; /* required, non-empty: scopes leases, release and cancel */
  const char* cache_salt; /* tenant isolation salt; NULL or "" for none */
  const char* lora_id;    /* LoRA adapter; NULL or "" for the base model */
} strata_request;

/* Zeroes *request and sets struct_size. */
STRATA_EXPORT void strata_request_init(strata_request* request);

/* ---- Manager -------------------------------------------------------------------------- */

typedef struct strata_manager strata_manager;

enum {
  /* Do not read environment variables: only the built-in defaults and the given TOML. */
  STRATA_CONFIG_IGNORE_ENV = 1u << 0
};

/* Creates a manager from a TOML document (docs/configuration.md; the keys `strata serve`
 * reads, of which the [server], [engine] and [metrics] tables are ignored here), applied
 * over the built-in defaults and then overridden by the environment variables `strata
 * serve` honours (DYN_KVBM_CPU_CACHE_GB, STRATA_DISK_CACHE_DIR, ...) unless flags has
 * STRATA_CONFIG_IGNORE_ENV. toml may be NULL or "" (defaults + environment). Note that the
 * built-in defaults enable an 8 GiB disk tier under ./strata-cache: set [disk] capacity_gb
 * = 0 for a host-only manager. */
STRATA_EXPORT strata_status strata_manager_create_from_toml(const char* toml, uint32_t flags,
                                                            strata_manager** out);
/* As above with the TOML read from the file at `path`; path NULL or "" reads the file
 * named by $STRATA_CONFIG (unless STRATA_CONFIG_IGNORE_ENV), else none. */
STRATA_EXPORT strata_status strata_manager_create_from_file(const char* path, uint32_t flags,
                                                            strata_manager** out);
/* Cancels queued loads and stores, waits for running ones, releases every lease, frees
 * the manager. NULL is accepted. Returns STRATA_ERR_INVALID_HANDLE for a handle that is
 * not a live manager. */
STRATA_EXPORT strata_status strata_manager_destroy(strata_manager* manager);

/* The layout the manager was configured with (what the device cache must match). */
STRATA_EXPORT strata_status strata_manager_layout(const strata_manager* manager,
                                                  strata_kv_layout* out);

/* Tells Strata where the engine's KV cache is. Must precede strata_manager_load / _store.
 * STRATA_ERR_INVALID_ARGUMENT when its layout differs from the manager's or the
 * description is malformed; STRATA_ERR_NOT_SUPPORTED for CUDA memory without a CUDA
 * backend. */
STRATA_EXPORT strata_status strata_manager_register_device_cache(strata_manager* manager,
                                                                 const strata_device_cache* cache);

/* ---- Match ---------------------------------------------------------------------------- */

typedef struct strata_match strata_match;

/* The longest cached prefix of `tokens` (num_tokens ids; tokens may be NULL when 0). The
 * matched blocks are leased to request->request_id (not evicted) until they are loaded,
 * the request is released or cancelled, or matched again. A miss is STRATA_OK with 0
 * matched tokens. */
STRATA_EXPORT strata_status strata_manager_match(strata_manager* manager,
                                                 const strata_request* request,
                                                 const int32_t* tokens, size_t num_tokens,
                                                 strata_match** out);

typedef struct strata_match_info {
  uint32_t struct_size; /* sizeof(strata_match_info) */
  uint32_t reserved;
  uint64_t num_prompt_tokens;  /* tokens passed to strata_manager_match */
  uint64_t num_prompt_blocks;  /* full blocks of the prompt */
  uint64_t num_matched_tokens; /* a multiple of tokens_per_block */
  uint64_t num_matched_blocks; /* the leading blocks some tier holds */
} strata_match_info;

/* Fills *info (set info->struct_size first, or call strata_match_info_init). */
STRATA_EXPORT void strata_match_info_init(strata_match_info* info);
STRATA_EXPORT strata_status strata_match_get_info(const strata_match* match,
                                                  strata_match_info* info);
/* Tier of each matched block: writes num_matched_blocks values (strata_tier) into tiers,
 * which holds capacity entries; STRATA_ERR_BUFFER_TOO_SMALL when it is too short. */
STRATA_EXPORT strata_status strata_match_tiers(const strata_match* match, uint8_t* tiers,
                                               size_t capacity);
/* Frees the handle. Leases are not released by this: strata_manager_release does that. */
STRATA_EXPORT strata_status strata_match_destroy(strata_match* match);

/* ---- Load and store ------------------------------------------------------------------- */

typedef struct strata_load strata_load;
typedef struct strata_store strata_store;

/* Loads matched blocks [first_block, first_block + num_blocks) of `match` into
 * device_blocks[0..num_blocks). `match` must be the request's latest match on this
 * manager. Blocks before first_block (ones the engine already holds) have their leases
 * released. Device block ids must be < the registered cache's num_blocks. */
STRATA_EXPORT strata_status strata_manager_load(strata_manager* manager, const strata_match* match,
                                                size_t first_block, const uint32_t* device_blocks,
                                                size_t num_blocks, strata_load** out);

/* Stores full blocks [first_block, first_block + num_blocks) of the prompt `tokens` from
 * device_blocks[0..num_blocks) under the request's namespace (cache_salt, lora_id). The
 * engine must not modify those device blocks until the store is done. Blocks a tier
 * already holds are STRATA_BLOCK_SKIPPED. */
STRATA_EXPORT strata_status strata_manager_store(strata_manager* manager,
                                                 const strata_request* request,
                                                 const int32_t* tokens, size_t num_tokens,
                                                 size_t first_block, const uint32_t* device_blocks,
                                                 size_t num_blocks, strata_store** out);
/* As strata_manager_store for prompt blocks of a match (its keys were computed by the match,
 * so they are not hashed again): typically the blocks after the matched ones, once the
 * engine has computed them. */
STRATA_EXPORT strata_status strata_manager_store_from_match(strata_manager* manager,
                                                            const strata_match* match,
                                                            size_t first_block,
                                                            const uint32_t* device_blocks,
                                                            size_t num_blocks, strata_store** out);

/* Queries on a load (the store functions below mirror them). */
STRATA_EXPORT strata_status strata_load_num_blocks(const strata_load* load, size_t* out);
/* *done = 1 when every block reached a final state, else 0. */
STRATA_EXPORT strata_status strata_load_done(const strata_load* load, int* done);
/* Waits until done or timeout_ms passes (0 polls; < 0 waits without limit): STRATA_OK,
 * or STRATA_ERR_TIMED_OUT. */
STRATA_EXPORT strata_status strata_load_wait(const strata_load* load, int64_t timeout_ms);
STRATA_EXPORT strata_status strata_load_block_state(const strata_load* load, size_t block,
                                                    strata_block_state* out);
/* Why block `block` failed or was cancelled: *code (STRATA_OK when it did not) and
 * *message (never NULL; "" when OK), valid until the handle is destroyed. Either output
 * may be NULL. */
STRATA_EXPORT strata_status strata_load_block_error(const strata_load* load, size_t block,
                                                    strata_status* code, const char** message);
/* The leading run of STRATA_BLOCK_DONE blocks: the only loaded blocks the engine may use. */
STRATA_EXPORT strata_status strata_load_usable_blocks(const strata_load* load, size_t* out);
STRATA_EXPORT strata_status strata_load_usable_tokens(const strata_load* load, size_t* out);
/* Cancels the blocks that have not started (they become STRATA_BLOCK_CANCELLED). */
STRATA_EXPORT strata_status strata_load_cancel(const strata_load* load);
/* Frees the handle; neither waits nor cancels (the transfer goes on: do not reuse its
 * device blocks before it is done). */
STRATA_EXPORT strata_status strata_load_destroy(strata_load* load);

STRATA_EXPORT strata_status strata_store_num_blocks(const strata_store* store, size_t* out);
STRATA_EXPORT strata_status strata_store_done(const strata_store* store, int* done);
STRATA_EXPORT strata_status strata_store_wait(const strata_store* store, int64_t timeout_ms);
STRATA_EXPORT strata_status strata_store_block_state(const strata_store* store, size_t block,
                                                     strata_block_state* out);
STRATA_EXPORT strata_status strata_store_block_error(const strata_store* store, size_t block,
                                                     strata_status* code, const char** message);
STRATA_EXPORT strata_status strata_store_cancel(const strata_store* store);
STRATA_EXPORT strata_status strata_store_destroy(strata_store* store);

/* ---- Requests ------------------------------------------------------------------------- */

/* The request finished: releases its leases; its queued loads still run. Every request
 * that matched must be released or cancelled. */
STRATA_EXPORT strata_status strata_manager_release(strata_manager* manager, const char* request_id);
/* The request was aborted: cancels its loads that have not run and releases its leases.
 * Its stores go on (their KV is valid); strata_store_cancel stops one. */
STRATA_EXPORT strata_status strata_manager_cancel(strata_manager* manager, const char* request_id);

/* Pins keep the prompt's full blocks in the host tier regardless of eviction (a system
 * prompt); unpin undoes it. Blocks not in the host tier are NOT_FOUND. */
STRATA_EXPORT strata_status strata_manager_pin(strata_manager* manager,
                                               const strata_request* request, const int32_t* tokens,
                                               size_t num_tokens);
STRATA_EXPORT strata_status strata_manager_unpin(strata_manager* manager,
                                                 const strata_request* request,
                                                 const int32_t* tokens, size_t num_tokens);

/* Writes the disk tier's files through to stable storage; blocks the caller. */
STRATA_EXPORT strata_status strata_manager_flush_disk(strata_manager* manager);

/* ---- Observability -------------------------------------------------------------------- */

/* Counters and gauges of the manager: the fields of the C++ BlockManagerStats
 * (strata/block_manager.h says what each counts), in its order, all as uint64_t. */
typedef struct strata_stats {
  uint32_t struct_size; /* sizeof(strata_stats) */
  uint32_t reserved;
  uint64_t match_calls;
  uint64_t match_prompt_blocks;
  uint64_t match_hit_blocks;
  uint64_t match_hit_blocks_host;
  uint64_t match_hit_blocks_disk;
  uint64_t match_hit_blocks_shared;
  uint64_t matched_tokens;
  uint64_t load_calls;
  uint64_t loaded_blocks;
  uint64_t loaded_blocks_from_disk;
  uint64_t loaded_blocks_from_shared;
  uint64_t promoted_blocks;
  uint64_t load_failed_blocks;
  uint64_t load_cancelled_blocks;
  uint64_t loaded_bytes;
  uint64_t store_calls;
  uint64_t stored_blocks;
  uint64_t store_skipped_blocks;
  uint64_t store_dropped_blocks;
  uint64_t store_failed_blocks;
  uint64_t store_cancelled_blocks;
  uint64_t stored_bytes;
  uint64_t host_admission_rejects;
  uint64_t active_requests;
  uint64_t queued_ops;
  uint64_t host_capacity_blocks;
  uint64_t host_used_blocks;
  uint64_t host_leased_blocks;
  uint64_t host_pinned_blocks;
  uint64_t host_evictions;
  uint64_t host_index_bytes;
  uint64_t host_prefaulted_bytes;
  uint64_t disk_admission_rejects;
  uint64_t disk_offload_queued;
  uint64_t disk_offload_blocks;
  uint64_t disk_offload_bytes;
  uint64_t disk_offload_present;
  uint64_t disk_offload_dropped;
  uint64_t disk_offload_failed;
  uint64_t disk_writeback_blocks;
  uint64_t disk_capacity_blocks;
  uint64_t disk_used_blocks;
  uint64_t disk_leased_blocks;
  uint64_t disk_evictions;
  uint64_t disk_read_errors;
  uint64_t disk_corruptions;
  uint64_t disk_recovered_blocks;
  uint64_t disk_index_bytes;
  uint64_t disk_direct_io;   /* 0 or 1 */
  uint64_t shared_enabled;   /* 0 or 1 */
  uint64_t shared_available; /* 0 or 1 */
  uint64_t shared_publish_queued;
  uint64_t shared_published_blocks;
  uint64_t shared_published_bytes;
  uint64_t shared_publish_present;
  uint64_t shared_publish_failed;
  uint64_t shared_publish_dropped;
  uint64_t shared_load_misses;
  uint64_t shared_load_errors;
  uint64_t shared_corruptions;
  uint64_t shared_unavailable_events;
  uint64_t shared_evictions;
  uint64_t shared_bytes_read;
  /* Later fields: filled when struct_size covers them. */
  uint64_t disk_offload_deferred;
  uint64_t disk_invalidated_blocks;
} strata_stats;

/* Zeroes *stats and sets struct_size. */
STRATA_EXPORT void strata_stats_init(strata_stats* stats);
/* Fills the fields that fit in stats->struct_size bytes. */
STRATA_EXPORT strata_status strata_manager_stats(const strata_manager* manager,
                                                 strata_stats* stats);

/* The Prometheus text exposition (format 0.0.4) of the manager's metrics, for engines that
 * serve /metrics themselves: writes it NUL-terminated into buf (capacity bytes) and its
 * length without the NUL into *length. When capacity is too small (buf may be NULL with
 * capacity 0), returns STRATA_ERR_BUFFER_TOO_SMALL with the needed length in *length. */
STRATA_EXPORT strata_status strata_manager_metrics_text(const strata_manager* manager, char* buf,
                                                        size_t capacity, size_t* length);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* STRATA_STRATA_H_ */
