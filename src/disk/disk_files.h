// DiskFiles: the G3 tier's directory — its lock, its meta file and its preallocated
// segment files (docs/disk_format.md, "Files").
//
// Open locks the directory (flock on strata-g3.lock, so a second process or a second
// instance in one process is refused with the holder's pid), then either validates the
// meta file against the tier being opened or creates a fresh tier: segment files first,
// preallocated and synced, the meta file last (written to a temporary name, synced and
// renamed), so a crash during creation leaves no meta file and the next Open starts over.
//
// Immutable after Open; thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "disk/disk_format.h"
#include "strata/status.h"

namespace strata::disk {

class DiskFiles {
 public:
  // `want` describes the tier to open (its created_unix is ignored for comparison).
  // A directory holding a tier of another format, layout or geometry is refused with
  // InvalidArgument saying what differs, or wiped when `reset_on_mismatch`. With
  // `direct`, files are opened with O_DIRECT; a filesystem that refuses it (EINVAL, e.g.
  // tmpfs) gets buffered I/O and the reason in notes().
  static Result<std::unique_ptr<DiskFiles>> Open(const std::string& directory, const DiskMeta& want,
                                                 bool direct, bool reset_on_mismatch);
  ~DiskFiles();
  DiskFiles(const DiskFiles&) = delete;
  DiskFiles& operator=(const DiskFiles&) = delete;

  static std::string SegmentName(uint32_t file);  // "strata-g3-<file>.seg"
  static constexpr const char* kMetaName = "strata-g3.meta";
  // The meta file of `directory`, decoded: IoError when it cannot be opened, or
  // the decoder's error.
  static Result<DiskMeta> ReadMeta(const std::string& directory);
  static constexpr const char* kLockName = "strata-g3.lock";

  const std::string& directory() const { return directory_; }
  const DiskMeta& meta() const { return meta_; }
  uint32_t num_files() const { return static_cast<uint32_t>(fds_.size()); }
  int fd(uint32_t file) const { return fds_[file]; }
  const std::string& path(uint32_t file) const { return paths_[file]; }
  // Files were opened with O_DIRECT.
  bool direct() const { return direct_; }
  // The tier was created (or wiped) by this Open: every record is empty, nothing to recover.
  bool fresh() const { return fresh_; }
  // Why I/O is buffered, what was wiped or repaired; "" when nothing happened.
  const std::string& notes() const { return notes_; }

  // fdatasync of one segment file / all of them.
  Status Sync(uint32_t file) const;
  Status SyncAll() const;

 private:
  DiskFiles() = default;
  Status Lock();
  Status CheckOrCreate(const DiskMeta& want, bool reset_on_mismatch);
  Status Create(const DiskMeta& want);
  Status OpenSegments(bool direct);
  void Note(std::string note);

  std::string directory_;
  DiskMeta meta_;
  int lock_fd_ = -1;
  std::vector<int> fds_;
  std::vector<std::string> paths_;
  bool direct_ = false;
  bool fresh_ = false;
  std::string notes_;
};

}  // namespace strata::disk
