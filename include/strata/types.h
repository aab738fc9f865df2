// The vocabulary shared by the BlockManager and the code around it: the tiers, where the
// engine's device KV cache lives, a request's identity, and the per-block state of a load
// or store. Small and dependency-light, so code that only names these need not include
// the whole BlockManager (strata/block_manager.h).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "strata/export.h"
#include "strata/layout.h"

namespace strata {

enum class Tier : uint8_t { kDevice = 1, kHost = 2, kDisk = 3, kShared = 4 };
STRATA_EXPORT std::string_view TierName(Tier tier);  // "G1 device", "G2 host", ...

// Where the engine's device KV cache lives.
enum class DeviceMemoryKind : uint8_t {
  kHostEmulated,  // "device" memory that is host memory (CPU engines, tests)
  kCuda,          // real device memory; needs the transfer engine's CUDA backend
};

struct DeviceCache {
  DeviceMemoryKind kind = DeviceMemoryKind::kHostEmulated;
  LayerSeparateView view;  // its layout must equal BlockManagerOptions::layout
};

// Per-request identity. Two requests share blocks only with equal cache_salt and lora_id.
struct RequestContext {
  std::string request_id;  // the engine's id: scopes leases and Cancel. Required.
  std::string cache_salt;  // tenant isolation salt; default none
  std::string lora_id;     // LoRA adapter; default none (base model)
};

enum class BlockState : uint8_t {
  kPending,    // queued or running
  kDone,       // loaded into the device block / stored in a tier
  kSkipped,    // store only: the tier already holds (or is writing) this key
  kDropped,    // store only: not stored because a queue or tier was full, or the host
               // tier's admission (selective write mode) refused it (counted)
  kFailed,     // the transfer failed; error(i) says why
  kCancelled,  // Cancel() reached it before it ran
};
STRATA_EXPORT std::string_view BlockStateName(BlockState state);

}  // namespace strata
