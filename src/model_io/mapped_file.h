// MappedFile: a read-only memory map of a whole file, the bytes model readers parse in place.
#pragma once

#include <cstddef>
#include <span>
#include <string>

#include "strata/status.h"

namespace strata::model_io {

// Owns a PROT_READ, MAP_PRIVATE mapping of one regular file; unmapped on destruction.
// Move-only; moving keeps the mapping at the same address, so spans into bytes() stay
// valid for as long as some MappedFile owns it. An empty file maps to an empty span.
//
// The file must not shrink while mapped: reading a page past a truncated end raises
// SIGBUS (a limit of mmap, not of this class). Thread-safe for concurrent readers.
class MappedFile {
 public:
  // Maps `path`. IoError (naming the path and errno) when it cannot be opened, stat'ed or
  // mapped; InvalidArgument when it is not a regular file (a directory, a device).
  static Result<MappedFile> Open(const std::string& path);

  MappedFile() = default;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  ~MappedFile();

  const std::string& path() const { return path_; }
  size_t size() const { return size_; }
  std::span<const std::byte> bytes() const { return {static_cast<const std::byte*>(addr_), size_}; }

 private:
  void Reset() noexcept;

  std::string path_;
  void* addr_ = nullptr;
  size_t size_ = 0;
};

}  // namespace strata::model_io
