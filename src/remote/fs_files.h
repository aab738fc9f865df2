// File primitives of the shared-filesystem store (FsStore): atomic no-replace publication,
// the strata-g4.meta file, the O_DIRECT probe and directory walks. Stateless; thread-safe.
#pragma once

#include <sys/stat.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "strata/status.h"

namespace strata::fs_detail {

// Modes of what the store creates, before the umask: the owner writes, its group reads, no
// one else gets in. XXH3 detects corruption, not forgery: whoever may write the directory
// can plant blocks every node serves (docs/shared_fs_tier.md, "Trust").
inline constexpr unsigned kFileMode = 0640;
inline constexpr unsigned kDirMode = 0750;
// With a configured group ([shared] group), its members write too; directories are setgid
// so everything created in them belongs to the group.
inline constexpr unsigned kGroupFileMode = 0660;
inline constexpr unsigned kGroupDirMode = 02770;

// O_DIRECT buffers, offsets and lengths are multiples of this on every filesystem we
// target (4 KiB sectors and pages).
inline constexpr size_t kDirectAlign = 4096;
inline constexpr size_t AlignUp(size_t v, size_t to) {
  return (v + to - 1) / to * to;
}

// How a finished temporary file becomes the object, best first. Each one fails rather
// than replace an object another writer published, except kRename, the last resort for
// filesystems with neither (an object replaced by identical bytes is still whole).
enum class PublishMethod : int {
  kRenameNoReplace = 0,  // renameat2(RENAME_NOREPLACE): local filesystems, Lustre, ...
  kLink = 1,             // link(2) + unlink(2): NFS (atomic on the server), most others
  kRename = 2,           // rename(2): atomic, but replaces
};
std::string_view PublishMethodName(PublishMethod method);

// Publishes the temporary file `tmp` (open as `fd`) as `final_path`. Returns true when
// `tmp` became the object, false when an object already existed there (tmp is then
// removed). When the filesystem refuses `*method` it moves to the next one and updates
// `*method`. On error `tmp` is left for the caller to remove.
Result<bool> Publish(int fd, const std::string& tmp, const std::string& final_path,
                     PublishMethod* method);

// Writes all `length` bytes of `data` at offset 0; IoError naming `path`, offset and errno.
Status WriteFull(int fd, const std::byte* data, size_t length, const std::string& path);

// strata-g4.meta: what every node sharing a directory must agree on.
inline constexpr uint32_t kMetaFormatVersion = 1;
struct MetaFields {
  uint32_t format_version = 0;
  uint64_t header_bytes = 0;
  uint64_t block_bytes = 0;
  // "" when equal, else what differs ("block_bytes 4096 vs 8192").
  std::string Difference(const MetaFields& want) const;
  std::string Encode(std::string_view created_by) const;
};
Result<MetaFields> ReadMeta(const std::string& path);
// Publishes the meta file without replacing one another node wrote first.
Status EnsureMeta(const std::string& path, const MetaFields& meta, std::string_view node_id,
                  PublishMethod* method);
// Replaces the meta file (reset_on_mismatch).
Status WriteMeta(const std::string& path, const MetaFields& meta, std::string_view node_id);

// Whether files in `dir` can be written and read with O_DIRECT (false on EINVAL).
Result<bool> ProbeDirectIo(const std::string& dir, std::string_view node_id);

// Calls fn(name, is_directory) for each entry of `dir` but "." and ".." until it returns
// false. IoError when `dir` cannot be opened (ENOENT included).
Status ForEachEntry(const std::string& dir,
                    const std::function<bool(const std::string&, bool)>& fn);
// Calls fn(name, stat) for each entry of `dir` that still exists when stat'ed.
Status ForEachStat(const std::string& dir,
                   const std::function<bool(const std::string&, const struct stat&)>& fn);

}  // namespace strata::fs_detail
