// File primitives of the shared-filesystem store: publication, meta file, O_DIRECT probe,
// directory walks.
#include "remote/fs_files.h"

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>

#include <fmt/format.h>

namespace strata::fs_detail {

std::string_view PublishMethodName(PublishMethod method) {
  switch (method) {
    case PublishMethod::kRenameNoReplace:
      return "renameat2(RENAME_NOREPLACE)";
    case PublishMethod::kLink:
      return "link(2)";
    case PublishMethod::kRename:
      return "rename(2)";
  }
  return "?";
}

Result<bool> Publish(int fd, const std::string& tmp, const std::string& final_path,
                     PublishMethod* method) {
  if (*method == PublishMethod::kRenameNoReplace) {
    if (renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_path.c_str(), RENAME_NOREPLACE) == 0)
      return true;
    const int err = errno;
    if (err == EEXIST) {
      unlink(tmp.c_str());
      return false;
    }
    if (err != EINVAL && err != ENOSYS && err != EOPNOTSUPP)
      return Status::IoError(fmt::format("renameat2 {} to {}", tmp, final_path), err);
    *method = PublishMethod::kLink;  // e.g. NFS, older kernels, FUSE
  }
  if (*method == PublishMethod::kLink) {
    if (link(tmp.c_str(), final_path.c_str()) == 0) {
      unlink(tmp.c_str());
      return true;
    }
    const int err = errno;
    if (err == EEXIST) {
      // Over NFS a retransmitted LINK whose first reply was lost answers EEXIST although
      // it succeeded: then our file has two names (the check open(2) recommends).
      struct stat st {};
      const bool ours = fstat(fd, &st) == 0 && st.st_nlink == 2;
      unlink(tmp.c_str());
      return ours;
    }
    if (err != EPERM && err != EOPNOTSUPP && err != ENOSYS && err != EMLINK)
      return Status::IoError(fmt::format("link {} to {}", tmp, final_path), err);
    *method = PublishMethod::kRename;  // no hard links (some FUSE and object-backed filesystems)
  }
  if (rename(tmp.c_str(), final_path.c_str()) != 0)
    return Status::IoError(fmt::format("rename {} to {}", tmp, final_path), errno);
  return true;
}

Status WriteFull(int fd, const std::byte* data, size_t length, const std::string& path) {
  size_t done = 0;
  while (done < length) {
    const ssize_t n = pwrite(fd, data + done, length - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(fmt::format("pwrite {} bytes to {} at {}", length - done, path, done),
                             errno);
    }
    if (n == 0)
      return Status::IoError(fmt::format("pwrite to {} at {} wrote nothing", path, done), EIO);
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

std::string MetaFields::Difference(const MetaFields& want) const {
  std::string diff;
  auto add = [&](std::string_view name, uint64_t have, uint64_t wanted) {
    if (have == wanted) return;
    if (!diff.empty()) diff += ", ";
    diff += fmt::format("{} {} vs {}", name, have, wanted);
  };
  add("format_version", format_version, want.format_version);
  add("object_header_bytes", header_bytes, want.header_bytes);
  add("block_bytes", block_bytes, want.block_bytes);
  return diff;
}

std::string MetaFields::Encode(std::string_view created_by) const {
  return fmt::format(
      "strata-g4\nformat_version {}\nobject_header_bytes {}\nblock_bytes {}\ncreated_by {}\n"
      "created_unix {}\n",
      format_version, header_bytes, block_bytes, created_by, std::time(nullptr));
}

Result<MetaFields> ReadMeta(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::IoError(fmt::format("open {}", path), errno);
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      close(fd);
      return Status::IoError(fmt::format("read {}", path), err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
    if (text.size() > 65536) break;
  }
  close(fd);
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != "strata-g4")
    return Status::InvalidArgument(fmt::format("{} is not a strata-g4 meta file", path));
  MetaFields m;
  bool have_version = false, have_header = false, have_block = false;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string name;
    uint64_t value = 0;
    fields >> name;
    if (name == "format_version" && (fields >> value)) {
      m.format_version = static_cast<uint32_t>(value);
      have_version = true;
    } else if (name == "object_header_bytes" && (fields >> value)) {
      m.header_bytes = value;
      have_header = true;
    } else if (name == "block_bytes" && (fields >> value)) {
      m.block_bytes = value;
      have_block = true;
    }
  }
  if (!have_version || !have_header || !have_block)
    return Status::InvalidArgument(fmt::format(
        "{} lacks format_version, object_header_bytes or block_bytes (torn or foreign)", path));
  return m;
}

namespace {

Status WriteTempMeta(const std::string& tmp, const MetaFields& meta, std::string_view node_id,
                     int* fd_out) {
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, kFileMode);
  if (fd < 0) return Status::IoError(fmt::format("create {}", tmp), errno);
  const std::string text = meta.Encode(node_id);
  Status s = WriteFull(fd, reinterpret_cast<const std::byte*>(text.data()), text.size(), tmp);
  if (s.ok() && fsync(fd) != 0) s = Status::IoError(fmt::format("fsync {}", tmp), errno);
  if (!s.ok()) {
    close(fd);
    unlink(tmp.c_str());
    return s;
  }
  *fd_out = fd;
  return Status::Ok();
}

std::string MetaTemp(const std::string& path, std::string_view node_id) {
  static std::atomic<uint64_t> counter{0};
  return fmt::format("{}.tmp.{}.{}", path, node_id, counter.fetch_add(1));
}

}  // namespace

Status EnsureMeta(const std::string& path, const MetaFields& meta, std::string_view node_id,
                  PublishMethod* method) {
  struct stat st {};
  if (stat(path.c_str(), &st) == 0) return Status::Ok();
  if (errno != ENOENT) return Status::IoError(fmt::format("stat {}", path), errno);
  const std::string tmp = MetaTemp(path, node_id);
  int fd = -1;
  STRATA_RETURN_IF_ERROR(WriteTempMeta(tmp, meta, node_id, &fd));
  // Two nodes creating the store at once: one meta wins, the other node reads it.
  Result<bool> published = Publish(fd, tmp, path, method);
  close(fd);
  if (!published.ok()) {
    unlink(tmp.c_str());
    return published.status();
  }
  return Status::Ok();
}

Status WriteMeta(const std::string& path, const MetaFields& meta, std::string_view node_id) {
  const std::string tmp = MetaTemp(path, node_id);
  int fd = -1;
  STRATA_RETURN_IF_ERROR(WriteTempMeta(tmp, meta, node_id, &fd));
  close(fd);
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return Status::IoError(fmt::format("rename {} to {}", tmp, path), err);
  }
  return Status::Ok();
}

Result<bool> ProbeDirectIo(const std::string& dir, std::string_view node_id) {
  static std::atomic<uint64_t> counter{0};
  const std::string path =
      fmt::format("{}/.direct-probe.tmp.{}.{}", dir, node_id, counter.fetch_add(1));
  const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_DIRECT, kFileMode);
  if (fd < 0) {
    const int err = errno;
    if (err == EINVAL) return false;
    return Status::IoError(fmt::format("create {}", path), err);
  }
  // Some filesystems accept O_DIRECT at open and refuse it at the first I/O.
  void* buf = std::aligned_alloc(kDirectAlign, kDirectAlign);
  bool ok = false;
  int err = 0;
  if (buf != nullptr) {
    std::memset(buf, 0, kDirectAlign);
    ok = pwrite(fd, buf, kDirectAlign, 0) == static_cast<ssize_t>(kDirectAlign) &&
         pread(fd, buf, kDirectAlign, 0) == static_cast<ssize_t>(kDirectAlign);
    err = ok ? 0 : errno;
    std::free(buf);
  }
  close(fd);
  unlink(path.c_str());
  if (!ok && err != EINVAL && err != 0)
    return Status::IoError(fmt::format("probing O_DIRECT with {}", path), err);
  return ok;
}

namespace {

// Calls fn(dir_fd, entry) for each entry of `dir` but "." and ".." until it returns false.
Status WalkDirectory(const std::string& dir, const std::function<bool(int, const dirent&)>& fn) {
  DIR* d = opendir(dir.c_str());
  if (d == nullptr) return Status::IoError(fmt::format("opendir {}", dir), errno);
  std::unique_ptr<DIR, int (*)(DIR*)> guard(d, closedir);
  for (;;) {
    errno = 0;
    const dirent* e = readdir(d);
    if (e == nullptr) {
      if (errno != 0) return Status::IoError(fmt::format("readdir {}", dir), errno);
      return Status::Ok();
    }
    if (std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
    if (!fn(dirfd(d), *e)) return Status::Ok();
  }
}

}  // namespace

Status ForEachEntry(const std::string& dir,
                    const std::function<bool(const std::string&, bool)>& fn) {
  return WalkDirectory(dir, [&](int dir_fd, const dirent& e) {
    bool is_dir = e.d_type == DT_DIR;
    if (e.d_type == DT_UNKNOWN) {  // some filesystems (older XFS, NFS) leave d_type unset
      struct stat st {};
      is_dir = fstatat(dir_fd, e.d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    return fn(e.d_name, is_dir);
  });
}

Status ForEachStat(const std::string& dir,
                   const std::function<bool(const std::string&, const struct stat&)>& fn) {
  return WalkDirectory(dir, [&](int dir_fd, const dirent& e) {
    struct stat st {};
    if (fstatat(dir_fd, e.d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) return true;  // gone
    return fn(e.d_name, st);
  });
}

}  // namespace strata::fs_detail
