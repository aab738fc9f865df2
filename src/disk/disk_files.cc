// DiskFiles: directory lock, meta file validation, segment file creation and preallocation.
#include "disk/disk_files.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cerrno>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/file_util.h"

namespace strata::disk {
namespace {

namespace fs = std::filesystem;

std::string Join(const std::string& dir, std::string_view name) {
  return (fs::path(dir) / name).string();
}

uint64_t FreeBytes(const std::string& dir) {
  struct statvfs st {};
  if (statvfs(dir.c_str(), &st) != 0) return 0;
  return uint64_t{st.f_bavail} * st.f_frsize;
}

// Reserves [0, size) of `fd` so later writes never allocate (and never meet ENOSPC on
// filesystems that overwrite in place).
Status Preallocate(int fd, uint64_t size, const std::string& path, const std::string& dir) {
  int err = fallocate(fd, 0, 0, static_cast<off_t>(size)) == 0 ? 0 : errno;
  if (err == EOPNOTSUPP || err == ENOSYS) err = posix_fallocate(fd, 0, static_cast<off_t>(size));
  if (err == 0) return Status::Ok();
  std::string what = fmt::format("preallocating {} bytes for {}", size, path);
  if (err == ENOSPC)
    what += fmt::format(" ({} bytes free on that filesystem; lower the disk tier's capacity_bytes)",
                        FreeBytes(dir));
  return Status::IoError(what, err);
}

Status WriteAll(int fd, std::string_view data, const std::string& path) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::IoError(fmt::format("write {}", path), errno);
    }
    done += static_cast<size_t>(n);
  }
  return Status::Ok();
}

// The tier's files are private to the user running it: a block planted by another user
// would carry a valid checksum (XXH3 detects corruption, not forgery; docs/disk_format.md).
constexpr mode_t kFileMode = 0600;
constexpr mode_t kDirMode = 0700;

// Refuses a directory others may write into: they could replace the segment files.
Status CheckPrivate(const std::string& directory) {
  struct stat st {};
  if (stat(directory.c_str(), &st) != 0)
    return Status::IoError(fmt::format("stat {}", directory), errno);
  if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
    return Status::InvalidArgument(fmt::format(
        "disk tier directory {} is writable by {} (mode {:04o}): other users could plant "
        "blocks that this tier would serve; chmod go-w it or choose a private directory",
        directory, (st.st_mode & S_IWOTH) != 0 ? "every user" : "its group", st.st_mode & 07777));
  return Status::Ok();
}

}  // namespace

std::string DiskFiles::SegmentName(uint32_t file) {
  return fmt::format("strata-g3-{}.seg", file);
}

Result<std::unique_ptr<DiskFiles>> DiskFiles::Open(const std::string& directory,
                                                   const DiskMeta& want, bool direct,
                                                   bool reset_on_mismatch) {
  if (directory.empty()) return Status::InvalidArgument("disk tier directory is empty");
  std::unique_ptr<DiskFiles> f(new DiskFiles());
  f->directory_ = directory;
  std::error_code ec;
  const bool created = fs::create_directories(directory, ec);
  if (ec)
    return Status::IoError(fmt::format("creating disk tier directory {}", directory), ec.value());
  if (created && chmod(directory.c_str(), kDirMode) != 0)
    return Status::IoError(fmt::format("chmod {} 0700", directory), errno);
  STRATA_RETURN_IF_ERROR(CheckPrivate(directory));
  STRATA_RETURN_IF_ERROR(f->Lock());
  STRATA_RETURN_IF_ERROR(f->CheckOrCreate(want, reset_on_mismatch));
  STRATA_RETURN_IF_ERROR(f->OpenSegments(direct));
  return f;
}

DiskFiles::~DiskFiles() {
  for (int fd : fds_) close(fd);
  // Closing the descriptor releases the flock; the lock file itself stays (unlinking it
  // would race with a process that just opened it).
  if (lock_fd_ >= 0) close(lock_fd_);
}

void DiskFiles::Note(std::string note) {
  spdlog::warn("strata disk tier {}: {}", directory_, note);
  if (!notes_.empty()) notes_ += "; ";
  notes_ += note;
}

Status DiskFiles::Lock() {
  const std::string path = Join(directory_, kLockName);
  lock_fd_ = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kFileMode);
  if (lock_fd_ < 0) return Status::IoError(fmt::format("open lock file {}", path), errno);
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    const int err = errno;
    if (err != EWOULDBLOCK) return Status::IoError(fmt::format("flock {}", path), err);
    char buf[32] = {};
    const ssize_t n = pread(lock_fd_, buf, sizeof(buf) - 1, 0);
    std::string holder = n > 0 ? std::string(buf, static_cast<size_t>(n)) : std::string();
    while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    return Status::Unavailable(fmt::format(
        "disk tier directory {} is in use by another disk tier ({}); two tiers cannot share "
        "one directory: give each process its own directory (DYN_KVBM_DISK_CACHE_DIR)",
        directory_, holder.empty() ? "holder unknown" : "pid " + holder));
  }
  const std::string pid = fmt::format("{}\n", getpid());
  if (ftruncate(lock_fd_, 0) != 0 || pwrite(lock_fd_, pid.data(), pid.size(), 0) < 0)
    spdlog::warn("strata disk tier {}: cannot record pid in {}: {}", directory_, path,
                 strerror(errno));
  return Status::Ok();
}

Result<DiskMeta> DiskFiles::ReadMeta(const std::string& directory) {
  const std::string meta_path = Join(directory, kMetaName);
  std::ifstream in(meta_path, std::ios::binary);
  if (!in) return Status::IoError(fmt::format("open {}", meta_path), errno ? errno : EIO);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return DiskMeta::Decode(text, meta_path);
}

Status DiskFiles::CheckOrCreate(const DiskMeta& want, bool reset_on_mismatch) {
  const std::string meta_path = Join(directory_, kMetaName);
  std::error_code ec;
  if (!fs::exists(meta_path, ec) && !ec)
    return Create(want);  // no meta: a new tier, or a creation that was interrupted
  Result<DiskMeta> have = ReadMeta(directory_);
  if (!have.ok() && have.status().code() == StatusCode::kIoError) return have.status();
  std::string why = have.ok() ? have->Difference(want) : have.status().message();
  if (why.empty()) {
    meta_ = *have;
    return Status::Ok();
  }
  if (!reset_on_mismatch)
    return Status::InvalidArgument(fmt::format(
        "disk tier directory {} holds a tier this one cannot use ({}, existing vs requested); "
        "use another directory, delete the strata-g3* files there, or set reset_on_mismatch to "
        "wipe it",
        directory_, why));
  Note(fmt::format("wiping the existing tier because reset_on_mismatch is set: {}", why));
  return Create(want);
}

Status DiskFiles::Create(const DiskMeta& want) {
  fresh_ = true;
  meta_ = want;
  meta_.created_unix = static_cast<uint64_t>(std::time(nullptr));
  const std::string meta_path = Join(directory_, kMetaName);
  // The meta file goes first so a crash from here on leaves a directory Open recreates.
  std::error_code ec;
  fs::remove(meta_path, ec);
  if (ec) return Status::IoError(fmt::format("removing {}", meta_path), ec.value());
  for (const auto& entry : fs::directory_iterator(directory_, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.starts_with("strata-g3-") && name.ends_with(".seg")) fs::remove(entry.path(), ec);
  }
  const DiskGeometry& g = meta_.geometry;
  const uint64_t free_bytes = FreeBytes(directory_);
  if (free_bytes != 0 && free_bytes < g.total_bytes())
    return Status::IoError(
        fmt::format("disk tier in {} needs {} bytes but the filesystem has {} bytes free; lower "
                    "capacity_bytes",
                    directory_, g.total_bytes(), free_bytes),
        ENOSPC);
  std::vector<std::string> created;
  auto cleanup = [&] {
    for (const auto& p : created) unlink(p.c_str());
  };
  for (uint32_t i = 0; i < g.num_files; ++i) {
    const std::string path = Join(directory_, SegmentName(i));
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, kFileMode);
    if (fd < 0) {
      const int err = errno;
      cleanup();
      return Status::IoError(fmt::format("create {}", path), err);
    }
    created.push_back(path);
    Status st = Preallocate(fd, g.file_size(i), path, directory_);
    if (st.ok() && fsync(fd) != 0) st = Status::IoError(fmt::format("fsync {}", path), errno);
    close(fd);
    if (!st.ok()) {
      cleanup();
      return st;
    }
  }
  const std::string tmp = meta_path + ".tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, kFileMode);
  if (fd < 0) return Status::IoError(fmt::format("create {}", tmp), errno);
  Status st = WriteAll(fd, meta_.Encode(), tmp);
  if (st.ok() && fsync(fd) != 0) st = Status::IoError(fmt::format("fsync {}", tmp), errno);
  close(fd);
  if (st.ok() && rename(tmp.c_str(), meta_path.c_str()) != 0)
    st = Status::IoError(fmt::format("rename {} to {}", tmp, meta_path), errno);
  if (st.ok()) st = SyncDirectory(directory_);
  if (!st.ok()) cleanup();
  return st;
}

Status DiskFiles::OpenSegments(bool direct) {
  const DiskGeometry& g = meta_.geometry;
  direct_ = direct;
  for (uint32_t i = 0; i < g.num_files; ++i) {
    const std::string path = Join(directory_, SegmentName(i));
    int fd = open(path.c_str(), O_RDWR | O_CLOEXEC | (direct_ ? O_DIRECT : 0));
    if (fd < 0 && errno == EINVAL && direct_) {
      Note(fmt::format("the filesystem of {} refuses O_DIRECT (EINVAL); using buffered I/O", path));
      direct_ = false;
      for (int open_fd : fds_) close(open_fd);
      fds_.clear();
      paths_.clear();
      i = static_cast<uint32_t>(-1);  // reopen every file buffered
      continue;
    }
    if (fd < 0 && errno == ENOENT) {
      Note(fmt::format("segment file {} was missing; recreated empty", path));
      fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | (direct_ ? O_DIRECT : 0), kFileMode);
    }
    if (fd < 0) return Status::IoError(fmt::format("open {}", path), errno);
    fds_.push_back(fd);
    paths_.push_back(path);
    struct stat st {};
    if (fstat(fd, &st) != 0) return Status::IoError(fmt::format("fstat {}", path), errno);
    if ((st.st_mode & 077) != 0) {  // e.g. created 0644 by an older version
      if (fchmod(fd, kFileMode) != 0)
        return Status::IoError(fmt::format("chmod {} 0600", path), errno);
      Note(fmt::format("segment file {} was mode {:04o}; made private (0600)", path,
                       st.st_mode & 07777));
    }
    if (static_cast<uint64_t>(st.st_size) < g.file_size(i)) {
      if (st.st_size != 0)
        Note(fmt::format("segment file {} was {} bytes, expected {}; extended", path, st.st_size,
                         g.file_size(i)));
      STRATA_RETURN_IF_ERROR(Preallocate(fd, g.file_size(i), path, directory_));
    }
  }
  return Status::Ok();
}

Status DiskFiles::Sync(uint32_t file) const {
  if (fdatasync(fds_[file]) != 0)
    return Status::IoError(fmt::format("fdatasync {}", paths_[file]), errno);
  return Status::Ok();
}

Status DiskFiles::SyncAll() const {
  for (uint32_t i = 0; i < fds_.size(); ++i) STRATA_RETURN_IF_ERROR(Sync(i));
  return Status::Ok();
}

}  // namespace strata::disk
