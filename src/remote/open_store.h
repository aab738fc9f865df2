// Opens the G4 store SharedTierOptions describe: an FsStore or a RedisStore.
#pragma once

#include <memory>

#include "strata/options.h"
#include "strata/remote_store.h"

namespace strata {

// InvalidArgument for bad options (or kind none); a store that cannot be reached now is
// returned unavailable rather than as an error (it reconnects by itself).
Result<std::shared_ptr<RemoteStore>> OpenRemoteStore(const SharedTierOptions& options,
                                                     uint64_t block_bytes);

}  // namespace strata
