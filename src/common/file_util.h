// Small POSIX file helpers shared by the disk tier (G3) and the shared-filesystem store (G4).
#pragma once

#include <string>

#include "strata/status.h"

namespace strata {

// fsync of a directory: makes a name created, renamed or removed in it durable.
// IoError naming the directory and errno.
Status SyncDirectory(const std::string& dir);

}  // namespace strata
