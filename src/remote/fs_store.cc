// FsStore: publication, verified reads, cross-node eviction and availability of the
// shared-filesystem G4 store (docs/shared_fs_tier.md).
#include "remote/fs_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <thread>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "common/file_util.h"
#include "remote/fs_files.h"
#include "remote/object_format.h"

namespace strata {

using remote::ObjectBytes;
using Clock = std::chrono::steady_clock;
using fs_detail::AlignUp;
using fs_detail::kDirectAlign;

Status FsStoreOptions::Validate() const {
  if (directory.empty()) return Status::InvalidArgument("fs store: directory is empty");
  if (block_bytes == 0) return Status::InvalidArgument("fs store: block_bytes must be > 0");
  if (io_threads == 0 || io_threads > 256)
    return Status::InvalidArgument(
        fmt::format("fs store: io_threads is {}, must be in [1, 256]", io_threads));
  if (capacity_bytes != 0 && capacity_bytes < ObjectBytes(block_bytes))
    return Status::InvalidArgument(
        fmt::format("fs store: capacity_bytes {} cannot hold one object of {} bytes",
                    capacity_bytes, ObjectBytes(block_bytes)));
  const std::pair<const char*, std::chrono::milliseconds> periods[] = {
      {"grace_period", grace_period},   {"eviction_interval", eviction_interval},
      {"io_timeout", io_timeout},       {"health_interval", health_interval},
      {"retry_backoff", retry_backoff}, {"max_retry_backoff", max_retry_backoff}};
  for (const auto& [name, value] : periods)
    if (value.count() <= 0)
      return Status::InvalidArgument(fmt::format("fs store: {} must be > 0 ms", name));
  if (max_retry_backoff < retry_backoff)
    return Status::InvalidArgument("fs store: max_retry_backoff is shorter than retry_backoff");
  if (!(eviction_target > 0 && eviction_target <= 1))
    return Status::InvalidArgument(
        fmt::format("fs store: eviction_target {} is not in (0, 1]", eviction_target));
  if (node_id.size() > 128 || node_id.find_first_of("/ \t\n") != std::string::npos)
    return Status::InvalidArgument(fmt::format(
        "fs store: node_id '{}' must be at most 128 characters without '/' or spaces", node_id));
  return Status::Ok();
}

namespace {

namespace fsys = std::filesystem;

// Errors that mean the directory itself is out of reach (a failed or hung server, a
// stale handle after a remount), not that one object is bad: they mark the store
// unavailable.
bool IsAvailabilityErrno(int err) {
  switch (err) {
    case EIO:
    case ESTALE:
    case ENOTCONN:
    case EHOSTDOWN:
    case EHOSTUNREACH:
    case ENETDOWN:
    case ENETUNREACH:
    case ETIMEDOUT:
    case ECONNREFUSED:
    case ECONNRESET:
    case ECONNABORTED:
    case ENODEV:
    case ENXIO:
    case ENOLINK:
    case EREMOTEIO:
    case ESHUTDOWN:
      return true;
    default:
      return false;
  }
}

// A per-thread aligned buffer for one whole object (O_DIRECT needs aligned memory and
// lengths). Owned by the I/O thread, never by a caller, so a thread stuck in a hung
// syscall can never write into memory a caller has taken back.
struct IoBuffer {
  std::byte* data = nullptr;
  size_t size = 0;
  ~IoBuffer() { std::free(data); }
  std::byte* Get(size_t bytes) {
    if (bytes > size) {
      std::free(data);
      data = static_cast<std::byte*>(std::aligned_alloc(kDirectAlign, bytes));
      size = data != nullptr ? bytes : 0;
    }
    return data;
  }
};
thread_local IoBuffer tls_buffer;

int64_t MtimeNs(const struct stat& st) {
  return int64_t{st.st_mtim.tv_sec} * 1'000'000'000 + st.st_mtim.tv_nsec;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

int64_t ToNs(std::chrono::milliseconds d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

std::string DefaultNodeId() {
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') std::strcpy(host, "host");
  std::string h(host);
  std::replace(h.begin(), h.end(), '/', '_');
  // Host names and pids repeat across containers (pid 1 with a shared host name), so a
  // random suffix keeps temporary names apart; O_EXCL would catch a clash anyway.
  std::random_device rd;
  return fmt::format("{}.{}.{:08x}", h, getpid(), rd());
}

bool IsHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// One batch of items run on the pool. Results live here, not in the caller's structs, and
// the caller's buffers are touched only under `access` while not `abandoned`: a caller
// whose deadline passed takes `access` exclusively, sets `abandoned` and returns, and a
// late worker then leaves its memory alone.
struct Batch {
  explicit Batch(size_t n) : remaining(n), status(n), written(n, 0), done(n, 0) {}
  std::mutex mu;
  std::condition_variable cv;
  size_t remaining;              // GUARDED_BY(mu)
  std::vector<Status> status;    // GUARDED_BY(mu)
  std::vector<uint8_t> written;  // GUARDED_BY(mu)
  std::vector<uint8_t> done;     // GUARDED_BY(mu)
  std::shared_mutex access;
  bool abandoned = false;  // GUARDED_BY(access)

  // Runs `copy` (a copy from or to caller memory) unless the caller has gone.
  template <typename F>
  bool WithCaller(F&& copy) {
    std::shared_lock lock(access);
    if (abandoned) return false;
    copy();
    return true;
  }
  bool Abandoned() {
    std::shared_lock lock(access);
    return abandoned;
  }
  void Finish(size_t i, Status s, bool was_written = false) {
    std::lock_guard lock(mu);
    status[i] = std::move(s);
    written[i] = was_written ? 1 : 0;
    done[i] = 1;
    --remaining;
    cv.notify_all();  // the waiter tracks progress, not only completion
  }
};

}  // namespace

namespace {

// The id of group `name`; InvalidArgument when there is none.
Result<gid_t> LookUpGroup(const std::string& name) {
  std::vector<char> buf(16384);
  group g{};
  group* found = nullptr;
  const int rc = getgrnam_r(name.c_str(), &g, buf.data(), buf.size(), &found);
  if (rc != 0) return Status::IoError(fmt::format("looking up group '{}'", name), rc);
  if (found == nullptr)
    return Status::InvalidArgument(fmt::format("fs store: group '{}' does not exist", name));
  return found->gr_gid;
}

}  // namespace

struct FsStore::Shared {
  FsStoreOptions options;
  std::unique_ptr<remote::ObjectAuthenticator> auth;  // null: no HMAC
  // What the store creates: 0640 / 0750 for this user alone, 0660 / 2770 and the group's
  // id with options.group (set explicitly after creation, whatever the umask).
  unsigned file_mode = fs_detail::kFileMode;
  unsigned dir_mode = fs_detail::kDirMode;
  gid_t gid = static_cast<gid_t>(-1);
  bool shared_by_group() const { return gid != static_cast<gid_t>(-1); }
  // Gives a directory its mode (and group) whatever the umask; one another user created
  // must already be the group's, group-writable and setgid.
  Status OwnDirectory(const std::string& dir) const {
    struct stat st {};
    if (stat(dir.c_str(), &st) != 0) return Status::IoError(fmt::format("stat {}", dir), errno);
    if (st.st_uid != geteuid()) {
      if (shared_by_group() && (st.st_gid != gid || (st.st_mode & 02070) != 02070))
        return Status::InvalidArgument(fmt::format(
            "fs store directory {} belongs to another user and is not setgid and writable for "
            "group '{}' (mode {:04o}); its owner should chgrp {} it and chmod 2770 it",
            dir, options.group, st.st_mode & 07777, options.group));
      return Status::Ok();
    }
    if (shared_by_group() && chown(dir.c_str(), static_cast<uid_t>(-1), gid) != 0)
      return Status::IoError(
          fmt::format("chown {} to group '{}' (is this user a member?)", dir, options.group),
          errno);
    if (chmod(dir.c_str(), dir_mode) != 0)
      return Status::IoError(fmt::format("chmod {}", dir), errno);
    return Status::Ok();
  }
  std::string directory;  // absolute
  std::string objects_dir, trash_dir, meta_path;
  fs_detail::MetaFields meta;
  size_t object_bytes = 0;
  size_t io_bytes = 0;  // object_bytes rounded up for O_DIRECT
  int64_t touch_interval_ns = 0;

  std::atomic<bool> direct{false};
  std::atomic<int> publish_method{static_cast<int>(fs_detail::PublishMethod::kRenameNoReplace)};
  std::atomic<uint64_t> temp_counter{0};
  std::atomic<int64_t> clock_skew_ns{0};  // the filesystem's clock minus ours
  std::atomic<uint64_t> bytes_since_scan{0};

  mutable std::mutex notes_mu;
  std::string notes;  // GUARDED_BY(notes_mu)

  mutable std::mutex stats_mu;
  RemoteStoreStats counters;  // GUARDED_BY(stats_mu)
  FsStoreScan last_scan;      // GUARDED_BY(stats_mu)

  // Availability.
  std::atomic<bool> available{true};
  std::mutex avail_mu;
  Clock::time_point retry_at;            // GUARDED_BY(avail_mu)
  std::chrono::milliseconds backoff{0};  // GUARDED_BY(avail_mu)
  std::string down_reason;               // GUARDED_BY(avail_mu)

  // I/O pool.
  std::mutex pool_mu;
  std::condition_variable pool_cv;
  std::deque<std::function<void()>> queue;  // GUARDED_BY(pool_mu)
  bool stop = false;                        // GUARDED_BY(pool_mu)
  std::vector<uint8_t> exited;              // GUARDED_BY(pool_mu) per thread (bg last)
  std::condition_variable exit_cv;
  std::vector<std::thread> threads;  // io_threads workers, then the background thread

  // Background thread.
  std::mutex bg_mu;
  std::condition_variable bg_cv;
  bool evict_requested = false;  // GUARDED_BY(bg_mu)
  std::mutex scan_mu;            // one eviction pass at a time in this process

  void Note(const std::string& note) {
    std::lock_guard lock(notes_mu);
    if (notes.find(note) != std::string::npos) return;
    spdlog::warn("strata fs store {}: {}", directory, note);
    if (!notes.empty()) notes += "; ";
    notes += note;
  }

  std::string ObjectPath(const BlockKey& key) const {
    const std::string hex = key.ToHex();
    return fmt::format("{}/{}/{}/{}.obj", objects_dir, hex.substr(0, 2), hex.substr(2, 2), hex);
  }
  std::string TempPath(const std::string& final_path) {
    return fmt::format("{}.tmp.{}.{}", final_path, options.node_id, temp_counter.fetch_add(1));
  }
  int64_t ServerNowNs() const { return NowNs() + clock_skew_ns.load(); }

  // --- availability ---

  void MarkUnavailable(const std::string& reason) {
    std::lock_guard lock(avail_mu);
    if (!available.load()) return;
    available.store(false);
    backoff = options.retry_backoff;
    retry_at = Clock::now() + backoff;
    down_reason = reason;
    {
      std::lock_guard s(stats_mu);
      ++counters.unavailable_events;
    }
    spdlog::warn("strata fs store {} is unavailable: {}; retrying in {} ms", directory, reason,
                 backoff.count());
    bg_cv.notify_all();
  }
  // An item failed with `err`: marks the store down when the errno says so.
  void OnErrno(int err, const std::string& what) {
    if (IsAvailabilityErrno(err)) MarkUnavailable(fmt::format("{}: {}", what, std::strerror(err)));
  }
  Status UnavailableStatus() {
    std::lock_guard lock(avail_mu);
    return Status::Unavailable(
        fmt::format("fs store {} is unavailable ({})", directory, down_reason));
  }
  // Checks that the directory, objects/ and a meta file equal to ours are there.
  Status Probe() {
    struct stat st {};
    if (stat(objects_dir.c_str(), &st) != 0)
      return Status::IoError(fmt::format("stat {}", objects_dir), errno);
    Result<fs_detail::MetaFields> m = fs_detail::ReadMeta(meta_path);
    if (!m.ok()) return m.status();
    if (std::string diff = m->Difference(meta); !diff.empty())
      return Status::InvalidArgument(
          fmt::format("{} changed under this store: {}", meta_path, diff));
    return Status::Ok();
  }

  // --- pool ---

  void Submit(std::function<void()> task) {
    {
      std::lock_guard lock(pool_mu);
      queue.push_back(std::move(task));
    }
    pool_cv.notify_one();
  }
  void WorkerLoop(size_t index) {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(pool_mu);
        pool_cv.wait(lock, [&] { return stop || !queue.empty(); });
        if (stop) break;
        task = std::move(queue.front());
        queue.pop_front();
      }
      task();
    }
    std::lock_guard lock(pool_mu);
    exited[index] = 1;
    exit_cv.notify_all();
  }

  // Runs make_task(i)() for i in [0, n) on the pool and waits for them while they make
  // progress (an item finishes at least every io_timeout). Tasks must
  // capture by value everything they need: only the batch may be touched after a timeout.
  // Returns the batch with every unfinished item marked TimedOut.
  std::shared_ptr<Batch> Run(
      size_t n, const std::function<std::function<void(Batch&, size_t)>(size_t)>& make_task) {
    auto batch = std::make_shared<Batch>(n);
    if (n == 0) return batch;
    for (size_t i = 0; i < n; ++i) {
      Submit([batch, i, task = make_task(i)] {
        if (batch->Abandoned()) return;
        task(*batch, i);
      });
    }
    // The deadline is for progress, not for the whole batch: a big batch on a slow but
    // working filesystem keeps going; a hung mount completes nothing for io_timeout.
    std::unique_lock lock(batch->mu);
    for (size_t seen = n; batch->remaining > 0; seen = batch->remaining) {
      const auto deadline = Clock::now() + options.io_timeout;
      if (!batch->cv.wait_until(lock, deadline, [&] { return batch->remaining < seen; })) break;
    }
    if (batch->remaining == 0) return batch;
    lock.unlock();
    {
      std::unique_lock access(batch->access);
      batch->abandoned = true;
    }
    lock.lock();
    size_t late = 0;
    for (size_t i = 0; i < n; ++i) {
      if (batch->done[i]) continue;
      ++late;
      batch->done[i] = 1;
      batch->status[i] = Status::TimedOut(
          fmt::format("fs store {}: no answer within io_timeout ({} ms); the mount may be hung",
                      directory, options.io_timeout.count()));
    }
    lock.unlock();
    MarkUnavailable(fmt::format("{} of {} I/Os made no progress within io_timeout ({} ms)", late, n,
                                options.io_timeout.count()));
    return batch;
  }

  // --- object I/O (on pool threads) ---

  IoFault CheckFault(TransferOp op, uint64_t length) {
    return options.faults ? options.faults->Check(op, 0, length) : IoFault{};
  }
  void DisableDirect(const std::string& why) {
    if (direct.exchange(false)) Note(fmt::format("{}; using buffered I/O", why));
  }
  // Bumps the object's mtime (its last-use time, which eviction orders by) when it is
  // older than touch_interval: at most a few metadata writes per object per grace period.
  void TouchIfOld(int fd, const std::string& path, const struct stat& st) {
    if (MtimeNs(st) >= ServerNowNs() - touch_interval_ns) return;
    // UTIME_NOW for both stamps needs only write access (not ownership), and on NFS it
    // asks the server to use its own clock.
    const int rc = fd >= 0 ? futimens(fd, nullptr) : utimensat(AT_FDCWD, path.c_str(), nullptr, 0);
    if (rc != 0 && errno != ENOENT)
      spdlog::debug("strata fs store: touching {}: {}", path, std::strerror(errno));
  }

  void PutOne(Batch& batch, size_t i, const BlockKey& key, const NamespaceFingerprint& ns,
              const std::byte* src) {
    const std::string path = ObjectPath(key);
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) {
      TouchIfOld(-1, path, st);
      return batch.Finish(i, Status::Ok(), false);
    }
    if (errno != ENOENT) {
      const int err = errno;
      OnErrno(err, fmt::format("stat {}", path));
      return batch.Finish(i, Status::IoError(fmt::format("stat {}", path), err));
    }
    std::byte* buf = tls_buffer.Get(io_bytes);
    if (buf == nullptr)
      return batch.Finish(i, Status::ResourceExhausted(fmt::format(
                                 "fs store: no memory for a {}-byte buffer", io_bytes)));
    // Copy the block first: the header's checksum then covers exactly the bytes written,
    // and a late worker never reads memory its caller has taken back.
    if (!batch.WithCaller(
            [&] { std::memcpy(buf + remote::kObjectHeaderBytes, src, options.block_bytes); }))
      return;
    std::memset(buf + object_bytes, 0, io_bytes - object_bytes);
    if (Status s = remote::EncodeObjectHeader(
            key, ns,
            std::span<const std::byte>(buf + remote::kObjectHeaderBytes, options.block_bytes), buf,
            auth.get());
        !s.ok())
      return batch.Finish(i, std::move(s));
    if (IoFault f = CheckFault(TransferOp::kWrite, object_bytes); f.kind == IoFault::Kind::kError) {
      if (f.error == EINVAL && direct.load()) {
        // What a filesystem that refuses O_DIRECT at write time answers.
        DisableDirect(
            fmt::format("writes to {} with O_DIRECT fail with EINVAL (injected)", directory));
      } else {
        OnErrno(f.error, fmt::format("write {} (injected)", path));
        return batch.Finish(i, Status::IoError(fmt::format("write {} (injected)", path), f.error));
      }
    }
    bool written = false;
    Status s = WriteAndPublish(path, buf, &written);
    if (s.ok()) {
      std::lock_guard lock(stats_mu);
      if (written) counters.bytes_written += object_bytes;
    }
    if (written) RequestEvictionIfOver(object_bytes);
    batch.Finish(i, std::move(s), written);
  }

  Status WriteAndPublish(const std::string& path, const std::byte* buf, bool* written) {
    std::string tmp;
    bool use_direct = direct.load();
    bool made_dirs = false;
    int fd = -1;
    for (int attempt = 0; fd < 0; ++attempt) {
      tmp = TempPath(path);
      fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | (use_direct ? O_DIRECT : 0),
                file_mode);
      if (fd >= 0) {
        // Group members touch (futimens) and read each other's objects: 0660 whatever the
        // umask. The setgid directory gave the file its group.
        if (shared_by_group()) (void)fchmod(fd, file_mode);
        break;
      }
      const int err = errno;
      if (err == EINVAL && use_direct) {
        DisableDirect(fmt::format("the filesystem of {} refuses O_DIRECT (EINVAL)", directory));
        use_direct = false;
      } else if (err == ENOENT && !made_dirs) {
        // The shard directories are created lazily; another node may create them at the
        // same moment (EEXIST is fine).
        if (Status s = MakeShardDirs(path); !s.ok()) return s;
        made_dirs = true;
      } else if (err == EEXIST && attempt < 4) {
        // O_EXCL is what keeps two writers out of one temporary; a clash (two nodes with
        // one node_id) just takes the next name.
      } else {
        OnErrno(err, fmt::format("create {}", tmp));
        return Status::IoError(fmt::format("create {}", tmp), err);
      }
    }
    auto fail = [&](Status s) {
      close(fd);
      unlink(tmp.c_str());
      return s;
    };
    // O_DIRECT writes whole aligned blocks, so the zero padding goes out too and is cut off
    // by ftruncate; buffered I/O writes the object exactly.
    Status s = fs_detail::WriteFull(fd, buf, use_direct ? io_bytes : object_bytes, tmp);
    if (!s.ok() && use_direct && s.sys_errno() == EINVAL) {
      // Some filesystems accept O_DIRECT at open and refuse it at write.
      DisableDirect(fmt::format("writes to {} with O_DIRECT fail with EINVAL", directory));
      if (fcntl(fd, F_SETFL, 0) != 0)
        return fail(Status::IoError(fmt::format("clearing O_DIRECT on {}", tmp), errno));
      use_direct = false;
      s = fs_detail::WriteFull(fd, buf, object_bytes, tmp);
    }
    if (s.ok() && use_direct && ftruncate(fd, static_cast<off_t>(object_bytes)) != 0)
      s = Status::IoError(fmt::format("ftruncate {} to {}", tmp, object_bytes), errno);
    if (s.ok() && options.fsync_on_publish && fdatasync(fd) != 0)
      s = Status::IoError(fmt::format("fdatasync {}", tmp), errno);
    if (!s.ok()) {
      OnErrno(s.sys_errno(), s.message());
      return fail(std::move(s));
    }
    fs_detail::PublishMethod method = static_cast<fs_detail::PublishMethod>(publish_method.load());
    Result<bool> published = fs_detail::Publish(fd, tmp, path, &method);
    if (method != static_cast<fs_detail::PublishMethod>(publish_method.load())) {
      publish_method.store(static_cast<int>(method));
      Note(fmt::format(
          "the filesystem refuses {}; publishing with {}",
          method == fs_detail::PublishMethod::kLink ? "renameat2(RENAME_NOREPLACE)" : "link(2)",
          fs_detail::PublishMethodName(method)));
    }
    close(fd);
    if (!published.ok()) {
      unlink(tmp.c_str());
      OnErrno(published.status().sys_errno(), published.status().message());
      return published.status();
    }
    *written = *published;
    if (*written && options.fsync_directory) {
      if (Status d = SyncDirectory(fsys::path(path).parent_path().string()); !d.ok()) return d;
    }
    return Status::Ok();
  }

  Status MakeShardDirs(const std::string& object_path) {
    const fsys::path leaf = fsys::path(object_path).parent_path();
    for (const fsys::path& dir : {leaf.parent_path(), leaf}) {
      if (mkdir(dir.c_str(), dir_mode) == 0) {
        if (shared_by_group()) (void)chmod(dir.c_str(), dir_mode);  // past the umask
        continue;
      }
      if (errno == EEXIST) continue;
      const int err = errno;
      if (err == ENOENT) {
        // objects/ itself is gone: the directory was removed or unmounted under us.
        const std::string why = fmt::format("{} is missing", objects_dir);
        MarkUnavailable(why);
        return Status::Unavailable(fmt::format("fs store {}: {}", directory, why));
      }
      OnErrno(err, fmt::format("mkdir {}", dir.string()));
      return Status::IoError(fmt::format("mkdir {}", dir.string()), err);
    }
    return Status::Ok();
  }

  void GetOne(Batch& batch, size_t i, const BlockKey& key, const NamespaceFingerprint& ns,
              std::byte* dst) {
    const std::string path = ObjectPath(key);
    const IoFault fault = CheckFault(TransferOp::kRead, object_bytes);
    if (fault.kind == IoFault::Kind::kError) {
      OnErrno(fault.error, fmt::format("read {} (injected)", path));
      return batch.Finish(i, Status::IoError(fmt::format("read {} (injected)", path), fault.error));
    }
    // An injected short read moves only this much per pread.
    const size_t limit =
        fault.kind == IoFault::Kind::kShort ? std::max<size_t>(1, fault.bytes) : SIZE_MAX;
    std::byte* buf = tls_buffer.Get(io_bytes);
    if (buf == nullptr)
      return batch.Finish(i, Status::ResourceExhausted(fmt::format(
                                 "fs store: no memory for a {}-byte buffer", io_bytes)));
    bool use_direct = direct.load();
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | (use_direct ? O_DIRECT : 0));
    if (fd < 0 && errno == EINVAL && use_direct) {
      DisableDirect(fmt::format("the filesystem of {} refuses O_DIRECT (EINVAL)", directory));
      use_direct = false;
      fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    }
    if (fd < 0) {
      const int err = errno;
      if (err == ENOENT)
        return batch.Finish(i, Status::NotFound(fmt::format("no object {}", path)));
      OnErrno(err, fmt::format("open {}", path));
      return batch.Finish(i, Status::IoError(fmt::format("open {}", path), err));
    }
    struct stat st {};
    Status s;
    if (fstat(fd, &st) != 0) {
      s = Status::IoError(fmt::format("fstat {}", path), errno);
    } else if (static_cast<uint64_t>(st.st_size) != object_bytes) {
      s = Status::Corruption(
          fmt::format("object file {} is {} bytes, expected {} (torn or foreign)", path, st.st_size,
                      object_bytes));
    } else {
      s = ReadObject(fd, path, buf, use_direct, limit);
      if (s.ok())
        s = remote::VerifyObject(std::span<const std::byte>(buf, object_bytes), key, ns,
                                 options.block_bytes, auth.get())
                .WithContext(path);
    }
    if (s.ok()) TouchIfOld(fd, path, st);
    close(fd);
    if (s.code() == StatusCode::kCorruption) {
      RemoveIfSame(path, st);
      return batch.Finish(i, std::move(s));
    }
    if (s.code() == StatusCode::kIoError) {
      // A stale handle here is most often an object another node evicted and deleted while
      // we opened it (a miss), not a dead server: tell them apart by looking again.
      struct stat again {};
      if (s.sys_errno() == ESTALE && stat(path.c_str(), &again) != 0 && errno == ENOENT)
        return batch.Finish(i, Status::NotFound(fmt::format("object {} was removed", path)));
      OnErrno(s.sys_errno(), s.message());
      return batch.Finish(i, std::move(s));
    }
    if (!batch.WithCaller(
            [&] { std::memcpy(dst, buf + remote::kObjectHeaderBytes, options.block_bytes); }))
      return;
    {
      std::lock_guard lock(stats_mu);
      counters.bytes_read += object_bytes;
    }
    batch.Finish(i, Status::Ok());
  }

  // Reads the whole object into `buf`. With O_DIRECT the request is rounded up to the
  // alignment and the kernel stops at end of file.
  Status ReadObject(int fd, const std::string& path, std::byte* buf, bool use_direct,
                    size_t limit) {
    size_t done = 0;
    while (done < object_bytes) {
      const size_t want = std::min(limit, (use_direct ? io_bytes : object_bytes) - done);
      const ssize_t n = pread(fd, buf + done, want, static_cast<off_t>(done));
      if (n < 0) {
        const int err = errno;
        if (err == EINTR) continue;
        if (err == EINVAL && use_direct) {
          // Open accepted O_DIRECT but the read did not (alignment rules of the filesystem):
          // read it buffered from here on.
          DisableDirect(fmt::format("reads from {} with O_DIRECT fail with EINVAL", directory));
          if (fcntl(fd, F_SETFL, 0) != 0)
            return Status::IoError(fmt::format("clearing O_DIRECT on {}", path), errno);
          use_direct = false;
          continue;
        }
        return Status::IoError(fmt::format("pread {} at {}", path, done), err);
      }
      if (n == 0)
        return Status::Corruption(
            fmt::format("object file {} ends at {} bytes, expected {}", path, done, object_bytes));
      done += static_cast<size_t>(n);
      // O_DIRECT can only continue from an aligned offset.
      if (use_direct && done < object_bytes && done % kDirectAlign != 0) {
        if (fcntl(fd, F_SETFL, 0) != 0)
          return Status::IoError(fmt::format("clearing O_DIRECT on {}", path), errno);
        use_direct = false;
      }
    }
    return Status::Ok();
  }

  // Removes a corrupt object, unless the name now points at another file (a writer may
  // have replaced it since we opened it: that one deserves its own verification).
  void RemoveIfSame(const std::string& path, const struct stat& seen) {
    struct stat now {};
    if (stat(path.c_str(), &now) != 0) return;
    if (now.st_ino != seen.st_ino || now.st_dev != seen.st_dev) return;
    if (unlink(path.c_str()) == 0) spdlog::warn("strata fs store: removed corrupt object {}", path);
  }

  // Existence of one object (MatchPrefix).
  Status StatOne(const BlockKey& key) {
    const std::string path = ObjectPath(key);
    struct stat st {};
    if (stat(path.c_str(), &st) == 0) return Status::Ok();
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(path);
    OnErrno(err, fmt::format("stat {}", path));
    return Status::IoError(fmt::format("stat {}", path), err);
  }

  // --- eviction ---

  void RequestEvictionIfOver(uint64_t added) {
    if (options.capacity_bytes == 0 || !options.background_eviction) return;
    const uint64_t since = bytes_since_scan.fetch_add(added) + added;
    uint64_t known;
    {
      std::lock_guard lock(stats_mu);
      known = last_scan.object_bytes;
    }
    if (known + since > options.capacity_bytes) {
      std::lock_guard lock(bg_mu);
      evict_requested = true;
      bg_cv.notify_all();
    }
  }

  // Measures the filesystem's clock: the mtime of a file created just now is the
  // server's time on NFS. Every age eviction compares is on that clock, so nodes whose
  // clocks disagree still agree on which objects are old.
  Status MeasureClock() {
    const std::string probe =
        fmt::format("{}/.clock.{}.{}", objects_dir, options.node_id, temp_counter.fetch_add(1));
    const int64_t before = NowNs();
    const int fd =
        open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, fs_detail::kFileMode);
    if (fd < 0) return Status::IoError(fmt::format("create {}", probe), errno);
    struct stat st {};
    const int rc = fstat(fd, &st);
    const int err = errno;
    close(fd);
    unlink(probe.c_str());
    if (rc != 0) return Status::IoError(fmt::format("fstat {}", probe), err);
    const int64_t after = NowNs();
    clock_skew_ns.store(MtimeNs(st) - (before + (after - before) / 2));
    return Status::Ok();
  }

  struct Candidate {
    int64_t mtime_ns;
    uint64_t bytes;
    std::string path;
  };

  Result<FsStoreScan> Scan(const std::atomic<bool>* stopping) {
    std::lock_guard scan_lock(scan_mu);
    const auto t0 = Clock::now();
    FsStoreScan scan;
    STRATA_RETURN_IF_ERROR(MeasureClock());
    bytes_since_scan.store(0);
    const int64_t now = ServerNowNs();
    const int64_t grace = ToNs(options.grace_period);
    // An object whose mtime is within grace + touch_interval may have been used within the
    // grace period (reads bump mtime only once per touch_interval): keep it.
    const int64_t protect_after = now - grace - touch_interval_ns;
    const int64_t stale_before = now - grace;
    std::vector<Candidate> candidates;
    uint64_t usage = 0;
    Status walk = fs_detail::ForEachEntry(objects_dir, [&](const std::string& d1, bool is_dir) {
      if (stopping && stopping->load()) return false;
      if (!is_dir) {
        // Clock probes of crashed nodes.
        if (d1.starts_with(".clock.")) RemoveIfStale(objects_dir + "/" + d1, stale_before, &scan);
        return true;
      }
      if (d1.size() != 2 || !IsHex(d1)) return true;
      const std::string p1 = objects_dir + "/" + d1;
      (void)fs_detail::ForEachEntry(p1, [&](const std::string& d2, bool is_dir2) {
        if (!is_dir2 || d2.size() != 2 || !IsHex(d2)) return true;
        const std::string p2 = p1 + "/" + d2;
        (void)fs_detail::ForEachStat(p2, [&](const std::string& name, const struct stat& st) {
          const std::string path = p2 + "/" + name;
          if (name.find(".tmp.") != std::string::npos) {
            if (MtimeNs(st) < stale_before && unlink(path.c_str()) == 0) ++scan.temps_removed;
          } else if (name.size() == 68 && name.ends_with(".obj")) {
            ++scan.objects;
            usage += static_cast<uint64_t>(st.st_size);
            if (options.capacity_bytes != 0)
              candidates.push_back({MtimeNs(st), static_cast<uint64_t>(st.st_size), path});
          }
          return true;
        });
        return true;
      });
      return true;
    });
    if (!walk.ok()) {
      OnErrno(walk.sys_errno(), walk.message());
      return walk;
    }
    if (options.capacity_bytes != 0 && usage > options.capacity_bytes) {
      const auto target = static_cast<uint64_t>(static_cast<double>(options.capacity_bytes) *
                                                options.eviction_target);
      // Oldest first, ties by name: every node sorts alike, so nodes evicting at once pick
      // the same victims and the loser of each rename just sees ENOENT (no double eviction).
      std::sort(candidates.begin(), candidates.end(), [](const Candidate& a, const Candidate& b) {
        return a.mtime_ns != b.mtime_ns ? a.mtime_ns < b.mtime_ns : a.path < b.path;
      });
      for (size_t c = 0; c < candidates.size() && usage > target; ++c) {
        const Candidate& victim = candidates[c];
        if (victim.mtime_ns > protect_after) {
          scan.protected_objects = candidates.size() - c;
          break;
        }
        const std::string name = fsys::path(victim.path).filename().string();
        const std::string to =
            fmt::format("{}/{}.{}.{}", trash_dir, name, options.node_id, temp_counter.fetch_add(1));
        // Into trash/, not unlinked: a reader that opened it a moment ago keeps a valid
        // file (NFS has no open-file protection across clients); deleted a grace later.
        if (rename(victim.path.c_str(), to.c_str()) == 0) {
          // The trash entry's age counts from now (rename does not set mtime everywhere).
          utimensat(AT_FDCWD, to.c_str(), nullptr, 0);
          ++scan.evicted;
          usage -= victim.bytes;
        } else if (errno == ENOENT) {
          usage -= victim.bytes;  // another node evicted it first
        } else {
          spdlog::warn("strata fs store: evicting {}: {}", victim.path, std::strerror(errno));
        }
      }
    }
    scan.object_bytes = usage;
    (void)fs_detail::ForEachStat(trash_dir, [&](const std::string& name, const struct stat& st) {
      const std::string path = trash_dir + "/" + name;
      if (MtimeNs(st) < stale_before) {
        std::error_code ec;
        if (S_ISDIR(st.st_mode) ? fsys::remove_all(path, ec) > 0 : unlink(path.c_str()) == 0)
          ++scan.trash_removed;
      } else {
        scan.trash_bytes += static_cast<uint64_t>(st.st_size);
      }
      return true;
    });
    scan.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    {
      std::lock_guard lock(stats_mu);
      counters.evictions += scan.evicted;
      last_scan = scan;
    }
    if (scan.evicted > 0 || scan.temps_removed > 0 || scan.trash_removed > 0)
      spdlog::debug(
          "strata fs store {}: {} objects, {} bytes; evicted {}, removed {} temps and {} trash",
          directory, scan.objects, scan.object_bytes, scan.evicted, scan.temps_removed,
          scan.trash_removed);
    return scan;
  }

  void RemoveIfStale(const std::string& path, int64_t stale_before, FsStoreScan* scan) {
    struct stat st {};
    if (stat(path.c_str(), &st) == 0 && MtimeNs(st) < stale_before && unlink(path.c_str()) == 0)
      ++scan->temps_removed;
  }

  // --- background thread: health probes, retries, eviction passes ---

  void BackgroundLoop(size_t index, std::atomic<bool>* stopping) {
    std::mt19937_64 rng(std::hash<std::string>{}(options.node_id));
    auto jittered = [&] {
      std::uniform_real_distribution<double> d(0.8, 1.2);
      return std::chrono::duration_cast<Clock::duration>(options.eviction_interval * d(rng));
    };
    auto next_evict = Clock::now() + jittered();
    auto next_health = Clock::now() + options.health_interval;
    while (!stopping->load()) {
      auto wake = std::min(next_evict, next_health);
      {
        std::lock_guard lock(avail_mu);
        if (!available.load()) wake = std::min(wake, retry_at);
      }
      {
        std::unique_lock lock(bg_mu);
        bg_cv.wait_until(lock, wake, [&] { return stopping->load() || evict_requested; });
        if (stopping->load()) break;
      }
      const auto now = Clock::now();
      if (!available.load()) {
        bool due;
        {
          std::lock_guard lock(avail_mu);
          due = now >= retry_at;
        }
        if (due) Retry();
        continue;
      }
      if (now >= next_health) {
        next_health = now + options.health_interval;
        if (Status s = Probe(); !s.ok()) {
          MarkUnavailable(s.ToString());
          continue;
        }
      }
      bool requested;
      {
        std::lock_guard lock(bg_mu);
        requested = evict_requested;
        evict_requested = false;
      }
      if (options.background_eviction && (requested || now >= next_evict)) {
        next_evict = Clock::now() + jittered();
        if (Result<FsStoreScan> r = Scan(stopping); !r.ok())
          spdlog::warn("strata fs store {}: eviction pass failed: {}", directory,
                       r.status().ToString());
      }
    }
    std::lock_guard lock(pool_mu);
    exited[index] = 1;
    exit_cv.notify_all();
  }

  void Retry() {
    Status s = Probe();
    std::lock_guard lock(avail_mu);
    if (s.ok()) {
      available.store(true);
      spdlog::info("strata fs store {} is available again", directory);
      return;
    }
    backoff = std::min(backoff * 2, options.max_retry_backoff);
    retry_at = Clock::now() + backoff;
    down_reason = s.ToString();
  }

  std::atomic<bool> stopping{false};
};

FsStore::FsStore(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

Result<std::unique_ptr<FsStore>> FsStore::Create(const FsStoreOptions& options_in) {
  FsStoreOptions options = options_in;
  if (options.node_id.empty()) options.node_id = DefaultNodeId();
  STRATA_RETURN_IF_ERROR(options.Validate());
  auto sh = std::make_shared<Shared>();
  std::error_code ec;
  sh->directory = fsys::absolute(options.directory, ec).lexically_normal().string();
  if (ec) return Status::IoError(fmt::format("resolving {}", options.directory), ec.value());
  while (sh->directory.size() > 1 && sh->directory.back() == '/') sh->directory.pop_back();
  sh->objects_dir = sh->directory + "/objects";
  sh->trash_dir = sh->directory + "/trash";
  sh->meta_path = sh->directory + "/" + kMetaName;
  sh->object_bytes = ObjectBytes(options.block_bytes);
  sh->io_bytes = AlignUp(sh->object_bytes, kDirectAlign);
  sh->touch_interval_ns = ToNs(options.grace_period) / 4;
  sh->options = options;
  if (!options.hmac_key.empty()) {
    STRATA_ASSIGN_OR_RETURN(sh->auth, remote::ObjectAuthenticator::Create(options.hmac_key));
  }
  if (!options.group.empty()) {
    STRATA_ASSIGN_OR_RETURN(sh->gid, LookUpGroup(options.group));
    sh->file_mode = fs_detail::kGroupFileMode;
    sh->dir_mode = fs_detail::kGroupDirMode;
  }
  if (options.grace_period < 2 * options.io_timeout)
    spdlog::warn(
        "strata fs store {}: grace_period {} ms is under twice io_timeout {} ms: a slow reader "
        "may outlive the grace period that protects the object it reads",
        sh->directory, options.grace_period.count(), options.io_timeout.count());

  const bool created = fsys::create_directories(sh->directory, ec);
  if (ec) return Status::IoError(fmt::format("creating {}", sh->directory), ec.value());
  if (created || sh->shared_by_group()) STRATA_RETURN_IF_ERROR(sh->OwnDirectory(sh->directory));
  {
    // Every user may write into a world-writable directory, and so plant blocks that
    // every node serves. A group-writable one is how several users share a store.
    struct stat st {};
    if (stat(sh->directory.c_str(), &st) != 0)
      return Status::IoError(fmt::format("stat {}", sh->directory), errno);
    if ((st.st_mode & S_IWOTH) != 0)
      return Status::InvalidArgument(fmt::format(
          "fs store directory {} is writable by every user (mode {:04o}): any of them could "
          "plant blocks that every node would serve; chmod o-w it",
          sh->directory, st.st_mode & 07777));
  }
  for (const std::string& dir : {sh->objects_dir, sh->trash_dir}) {
    if (mkdir(dir.c_str(), sh->dir_mode) == 0)
      STRATA_RETURN_IF_ERROR(sh->OwnDirectory(dir));
    else if (errno != EEXIST)
      return Status::IoError(fmt::format("mkdir {}", dir), errno);
  }

  // The meta file: published like an object, so nodes starting together agree on one.
  sh->meta = fs_detail::MetaFields{fs_detail::kMetaFormatVersion, remote::kObjectHeaderBytes,
                                   options.block_bytes};
  fs_detail::PublishMethod method = fs_detail::PublishMethod::kRenameNoReplace;
  STRATA_RETURN_IF_ERROR(fs_detail::EnsureMeta(sh->meta_path, sh->meta, options.node_id, &method));
  sh->publish_method.store(static_cast<int>(method));
  Result<fs_detail::MetaFields> have = fs_detail::ReadMeta(sh->meta_path);
  if (!have.ok()) return have.status();
  if (std::string diff = have->Difference(sh->meta); !diff.empty()) {
    if (!options.reset_on_mismatch)
      return Status::InvalidArgument(fmt::format(
          "fs store directory {} holds a store this one cannot use ({}, existing vs requested); "
          "use another directory, or set reset_on_mismatch (only if no node uses it)",
          sh->directory, diff));
    // Move every object aside (deleted a grace period later) and take the directory over.
    const std::string aside =
        fmt::format("{}/objects.reset.{}.{}", sh->trash_dir, options.node_id, NowNs());
    if (rename(sh->objects_dir.c_str(), aside.c_str()) != 0 && errno != ENOENT)
      return Status::IoError(fmt::format("rename {} to {}", sh->objects_dir, aside), errno);
    if (mkdir(sh->objects_dir.c_str(), sh->dir_mode) == 0)
      STRATA_RETURN_IF_ERROR(sh->OwnDirectory(sh->objects_dir));
    else if (errno != EEXIST)
      return Status::IoError(fmt::format("mkdir {}", sh->objects_dir), errno);
    STRATA_RETURN_IF_ERROR(fs_detail::WriteMeta(sh->meta_path, sh->meta, options.node_id));
    sh->Note(fmt::format("reset because reset_on_mismatch is set ({}); old objects moved to {}",
                         diff, aside));
  }
  if (method != fs_detail::PublishMethod::kRenameNoReplace)
    sh->Note(fmt::format("the filesystem refuses renameat2(RENAME_NOREPLACE); publishing with {}",
                         fs_detail::PublishMethodName(method)));

  if (options.use_direct_io) {
    Result<bool> direct = fs_detail::ProbeDirectIo(sh->objects_dir, options.node_id);
    if (!direct.ok()) return direct.status();
    // Tests: an injected EINVAL on the probe's write is a filesystem refusing O_DIRECT.
    if (IoFault f = sh->CheckFault(TransferOp::kWrite, kDirectAlign);
        f.kind == IoFault::Kind::kError && f.error == EINVAL)
      direct = false;
    sh->direct.store(*direct);
    if (!*direct)
      sh->Note(fmt::format("the filesystem of {} refuses O_DIRECT (EINVAL); using buffered I/O",
                           sh->directory));
  }
  STRATA_RETURN_IF_ERROR(sh->MeasureClock());

  {
    std::lock_guard lock(sh->pool_mu);
    sh->exited.assign(options.io_threads + 1, 0);
  }
  for (uint32_t t = 0; t < options.io_threads; ++t)
    sh->threads.emplace_back([sh, t] { sh->WorkerLoop(t); });
  sh->threads.emplace_back(
      [sh, index = options.io_threads] { sh->BackgroundLoop(index, &sh->stopping); });
  return std::unique_ptr<FsStore>(new FsStore(std::move(sh)));
}

FsStore::~FsStore() {
  Shared& sh = *shared_;
  sh.stopping.store(true);
  {
    std::lock_guard lock(sh.bg_mu);
    sh.bg_cv.notify_all();
  }
  std::unique_lock lock(sh.pool_mu);
  sh.stop = true;
  sh.pool_cv.notify_all();
  // Threads stuck in a hung mount cannot be interrupted; they are detached after a while
  // and finish on their own (they share ownership of the state they use).
  const auto deadline = Clock::now() + sh.options.io_timeout + std::chrono::seconds(2);
  sh.exit_cv.wait_until(lock, deadline, [&] {
    return std::all_of(sh.exited.begin(), sh.exited.end(), [](uint8_t e) { return e != 0; });
  });
  std::vector<uint8_t> exited = sh.exited;
  lock.unlock();
  for (size_t t = 0; t < sh.threads.size(); ++t) {
    if (exited[t]) {
      sh.threads[t].join();
    } else {
      spdlog::warn("strata fs store {}: an I/O thread is stuck in the filesystem; detaching it",
                   sh.directory);
      sh.threads[t].detach();
    }
  }
}

std::string FsStore::describe() const {
  return "fs://" + shared_->directory;
}

bool FsStore::available() const {
  return shared_->available.load();
}

const FsStoreOptions& FsStore::options() const {
  return shared_->options;
}

std::string FsStore::ObjectPath(const BlockKey& key) const {
  return shared_->ObjectPath(key);
}

bool FsStore::direct_io() const {
  return shared_->direct.load();
}

std::string FsStore::notes() const {
  std::lock_guard lock(shared_->notes_mu);
  return shared_->notes;
}

FsStoreScan FsStore::last_scan() const {
  std::lock_guard lock(shared_->stats_mu);
  return shared_->last_scan;
}

Result<FsStoreScan> FsStore::EvictNow() {
  if (!available()) return shared_->UnavailableStatus();
  return shared_->Scan(nullptr);
}

RemoteStoreStats FsStore::stats() const {
  std::lock_guard lock(shared_->stats_mu);
  RemoteStoreStats s = shared_->counters;
  s.available = shared_->available.load();
  return s;
}

void FsStore::PutBatch(std::span<Put> puts, const NamespaceFingerprint& ns) {
  Shared& sh = *shared_;
  if (!available()) {
    const Status down = sh.UnavailableStatus();
    for (Put& p : puts) {
      p.status = down;
      p.written = false;
    }
    std::lock_guard lock(sh.stats_mu);
    sh.counters.put_errors += puts.size();
    return;
  }
  auto batch = sh.Run(puts.size(), [&](size_t i) -> std::function<void(Batch&, size_t)> {
    const Put& p = puts[i];
    if (p.block.size() != sh.options.block_bytes) {
      Status bad =
          Status::InvalidArgument(fmt::format("fs store: block of {} bytes, the store holds {}",
                                              p.block.size(), sh.options.block_bytes));
      return [bad](Batch& b, size_t j) { b.Finish(j, bad); };
    }
    return [&sh, key = p.key, ns, src = p.block.data()](Batch& b, size_t j) {
      sh.PutOne(b, j, key, ns, src);
    };
  });
  std::lock_guard lock(batch->mu);
  std::lock_guard stats(sh.stats_mu);
  for (size_t i = 0; i < puts.size(); ++i) {
    puts[i].status = batch->status[i];
    puts[i].written = batch->written[i] != 0;
    if (!puts[i].status.ok())
      ++sh.counters.put_errors;
    else if (puts[i].written)
      ++sh.counters.puts;
    else
      ++sh.counters.puts_present;
  }
}

void FsStore::GetBatch(std::span<Get> gets, const NamespaceFingerprint& ns) {
  Shared& sh = *shared_;
  if (!available()) {
    const Status down = sh.UnavailableStatus();
    for (Get& g : gets) g.status = down;
    std::lock_guard lock(sh.stats_mu);
    sh.counters.get_errors += gets.size();
    return;
  }
  auto batch = sh.Run(gets.size(), [&](size_t i) -> std::function<void(Batch&, size_t)> {
    const Get& g = gets[i];
    if (g.out.size() != sh.options.block_bytes) {
      Status bad = Status::InvalidArgument(
          fmt::format("fs store: output of {} bytes, the store holds {}-byte blocks", g.out.size(),
                      sh.options.block_bytes));
      return [bad](Batch& b, size_t j) { b.Finish(j, bad); };
    }
    return [&sh, key = g.key, ns, dst = g.out.data()](Batch& b, size_t j) {
      sh.GetOne(b, j, key, ns, dst);
    };
  });
  std::lock_guard lock(batch->mu);
  std::lock_guard stats(sh.stats_mu);
  for (size_t i = 0; i < gets.size(); ++i) {
    gets[i].status = batch->status[i];
    switch (gets[i].status.code()) {
      case StatusCode::kOk:
        ++sh.counters.gets;
        break;
      case StatusCode::kNotFound:
        ++sh.counters.get_misses;
        break;
      case StatusCode::kCorruption:
        ++sh.counters.get_corrupt;
        break;
      default:
        ++sh.counters.get_errors;
    }
  }
}

size_t FsStore::MatchPrefix(std::span<const BlockKey> keys) {
  Shared& sh = *shared_;
  size_t matched = 0;
  // Waves of io_threads stats: parallel like a batch, yet a miss early in a long prompt
  // costs one wave, not a stat of every key.
  const size_t wave = sh.options.io_threads;
  while (matched < keys.size() && available()) {
    const size_t n = std::min(wave, keys.size() - matched);
    auto batch = sh.Run(n, [&](size_t i) -> std::function<void(Batch&, size_t)> {
      return [&sh, key = keys[matched + i]](Batch& b, size_t j) { b.Finish(j, sh.StatOne(key)); };
    });
    std::lock_guard lock(batch->mu);
    for (size_t i = 0; i < n; ++i) {
      if (!batch->status[i].ok()) {
        if (batch->status[i].code() == StatusCode::kTimedOut) return 0;
        return matched + i;
      }
    }
    matched += n;
  }
  return available() ? matched : 0;
}

}  // namespace strata
