// strata-xferbench: throughput and latency of the transfer engine, each point measured
// beside its baseline (std::memcpy, raw pread/pwrite, raw io_uring) in the same run.
// Commands and results: docs/benchmarks.md; fio comparison: bench/run_transfer_baselines.sh.
#include <fcntl.h>
#include <liburing.h>
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <latch>
#include <memory>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "strata/status.h"
#include "strata/transfer.h"

namespace strata::bench {
namespace {

using Clock = std::chrono::steady_clock;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------
// Parsing and formatting helpers.

// "4K", "64k", "1M", "2GiB", "4096" -> bytes (binary multiples).
std::optional<uint64_t> ParseSize(std::string_view s) {
  size_t i = 0;
  uint64_t v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + static_cast<uint64_t>(s[i] - '0');
    ++i;
  }
  if (i == 0) return std::nullopt;
  std::string suffix;
  for (; i < s.size(); ++i)
    suffix += static_cast<char>(std::toupper(static_cast<unsigned char>(s[i])));
  static constexpr std::pair<std::string_view, int> kSuffixes[] = {
      {"", 0},     {"B", 0},  {"K", 10},  {"KB", 10},  {"KIB", 10}, {"M", 20},  {"MB", 20},
      {"MIB", 20}, {"G", 30}, {"GB", 30}, {"GIB", 30}, {"T", 40},   {"TB", 40}, {"TIB", 40}};
  for (const auto& [name, shift] : kSuffixes)
    if (suffix == name) return v << shift;
  return std::nullopt;
}

std::string SizeName(uint64_t bytes) {
  if (bytes >= (uint64_t{1} << 30) && bytes % (uint64_t{1} << 30) == 0)
    return fmt::format("{}G", bytes >> 30);
  if (bytes >= (uint64_t{1} << 20) && bytes % (uint64_t{1} << 20) == 0)
    return fmt::format("{}M", bytes >> 20);
  if (bytes >= 1024 && bytes % 1024 == 0) return fmt::format("{}K", bytes >> 10);
  return fmt::format("{}", bytes);
}

std::string Today() {
  const std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&t));
  return buf;
}

std::string JsonEscape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
    } else {
      out += c;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------
// Latency histogram: exact below 128 ns, then 64 sub-buckets per power of two (< 1.6%
// relative error), exact mean. Recording allocates nothing.
class Histogram {
 public:
  Histogram() : buckets_(kLinear + 64 * 64, 0) {}

  void Add(int64_t ns) {
    const uint64_t v = ns < 0 ? 0 : static_cast<uint64_t>(ns);
    ++buckets_[Index(v)];
    ++count_;
    sum_ += static_cast<double>(v);
    max_ = std::max(max_, v);
  }
  void Merge(const Histogram& o) {
    for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += o.buckets_[i];
    count_ += o.count_;
    sum_ += o.sum_;
    max_ = std::max(max_, o.max_);
  }
  uint64_t count() const { return count_; }
  double MeanUs() const { return count_ ? sum_ / static_cast<double>(count_) / 1e3 : 0; }
  // The value below which a fraction `q` of samples fall (bucket midpoint), in µs.
  double PercentileUs(double q) const {
    if (count_ == 0) return 0;
    const uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets_.size(); ++i) {
      seen += buckets_[i];
      if (seen >= std::max<uint64_t>(rank, 1)) {
        const auto [lo, width] = Bucket(i);
        return std::min(static_cast<double>(lo) + static_cast<double>(width) / 2,
                        static_cast<double>(max_)) /
               1e3;
      }
    }
    return static_cast<double>(max_) / 1e3;
  }

 private:
  static constexpr size_t kLinear = 128;
  static size_t Index(uint64_t v) {
    if (v < kLinear) return v;
    const int e = 63 - std::countl_zero(v);  // >= 7
    const uint64_t sub = (v >> (e - 6)) & 63;
    return std::min<size_t>(kLinear + static_cast<size_t>(e - 7) * 64 + sub, kLinear + 64 * 64 - 1);
  }
  static std::pair<uint64_t, uint64_t> Bucket(size_t i) {
    if (i < kLinear) return {i, 1};
    const int e = static_cast<int>((i - kLinear) / 64) + 7;
    const uint64_t sub = (i - kLinear) % 64;
    return {(uint64_t{1} << e) + (sub << (e - 6)), uint64_t{1} << (e - 6)};
  }

  std::vector<uint64_t> buckets_;
  uint64_t count_ = 0;
  double sum_ = 0;
  uint64_t max_ = 0;
};

// ---------------------------------------------------------------------------------------
// How the local host buffer gets its pages. On a virtio disk the physical layout of the
// buffer decides how many segments a large O_DIRECT request has, and so the device's
// speed (see docs/benchmarks.md):
//   populate: MAP_POPULATE, then filled with a pattern (page-fault order, 4 KiB pages);
//   lazy:     untouched until the engine registers it or the first I/O pins it, as fio's
//             malloc'd read buffers are (writes then send zeros);
//   thp:      MADV_HUGEPAGE (2 MiB transparent huge pages), then filled with the pattern —
//             what the G2 host tier uses, and the default;
//   hugetlb:  MAP_HUGETLB | MAP_HUGE_2MB (reserved 2 MiB pages, as fio's
//             --iomem=mmaphuge), then filled with the pattern.
enum class HostMemory { kPopulate, kLazy, kThp, kHugetlb };

#ifndef MAP_HUGE_2MB
#define MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#endif

constexpr uint64_t kHugePage = uint64_t{2} << 20;

// One number of /sys/kernel/mm/hugepages/hugepages-2048kB/<name>, or -1.
int64_t HugetlbCount(const char* name) {
  FILE* f =
      std::fopen(fmt::format("/sys/kernel/mm/hugepages/hugepages-2048kB/{}", name).c_str(), "r");
  if (!f) return -1;
  long long v = -1;
  if (std::fscanf(f, "%lld", &v) != 1) v = -1;
  std::fclose(f);
  return v;
}

// Why a MAP_HUGETLB mapping of `bytes` failed with `err`, and what to do about it.
std::string HugetlbError(uint64_t bytes, int err) {
  const int64_t pages = static_cast<int64_t>(bytes / kHugePage);
  const int64_t total = HugetlbCount("nr_hugepages");
  const int64_t avail = HugetlbCount("free_hugepages");
  const int64_t suggest = std::max<int64_t>(total, 0) + pages - std::max<int64_t>(avail, 0);
  std::string why;
  if (total == 0) {
    why = "no 2 MiB hugetlb pages are reserved";
  } else if (total > 0 && avail >= 0) {
    why = fmt::format("{} of {} reserved 2 MiB hugetlb pages are free", avail, total);
  } else {
    why = "cannot read /sys/kernel/mm/hugepages/hugepages-2048kB";
  }
  return fmt::format(
      "--host-memory hugetlb: mmap MAP_HUGETLB|MAP_HUGE_2MB of {} ({} pages of 2 MiB): {}; {} "
      "(reserve them as root, e.g. echo {} > /proc/sys/vm/nr_hugepages, or use --host-memory thp)",
      SizeName(bytes), pages, strerror(err), why, suggest);
}

// Bytes of [addr, addr + size) on huge pages (transparent or hugetlb), from
// /proc/self/smaps: the sum over the mappings that overlap the range (a neighbouring
// mapping merged with it would count too). -1 when smaps cannot be read.
int64_t HugePageBytes(const void* addr, uint64_t size) {
  FILE* f = std::fopen("/proc/self/smaps", "r");
  if (!f) return -1;
  const uint64_t lo = reinterpret_cast<uint64_t>(addr), hi = lo + size;
  int64_t total = 0;
  bool inside = false;
  char line[512];
  while (std::fgets(line, sizeof line, f)) {
    unsigned long a = 0, b = 0;
    char c = 0;
    if (std::sscanf(line, "%lx-%lx %c", &a, &b, &c) == 3) {  // a mapping's header
      inside = a < hi && b > lo;
      continue;
    }
    if (!inside) continue;
    unsigned long long kb = 0;
    if (std::sscanf(line, "AnonHugePages: %llu kB", &kb) == 1 ||
        std::sscanf(line, "Private_Hugetlb: %llu kB", &kb) == 1 ||
        std::sscanf(line, "Shared_Hugetlb: %llu kB", &kb) == 1)
      total += static_cast<int64_t>(kb) * 1024;
  }
  std::fclose(f);
  return total;
}

// Page-aligned host memory.
class HostBuffer {
 public:
  HostBuffer() = default;
  explicit HostBuffer(uint64_t bytes, HostMemory mode = HostMemory::kPopulate) {
    size_ = (bytes + 4095) / 4096 * 4096;
    void* p = MAP_FAILED;
    if (mode == HostMemory::kHugetlb) {
      // Reserved pages are taken at mmap time: too few fails here, not at first touch.
      size_ = (bytes + kHugePage - 1) / kHugePage * kHugePage;
      p = mmap(nullptr, size_, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB, -1, 0);
      if (p == MAP_FAILED) error_ = HugetlbError(size_, errno);
    } else {
      // THP needs 2 MiB alignment and whole 2 MiB pages: a smaller buffer (one 64 KiB
      // block at QD 1) would stay on 4 KiB pages. Round up, over-allocate and trim.
      const bool thp = mode == HostMemory::kThp;
      if (thp) size_ = (bytes + kHugePage - 1) / kHugePage * kHugePage;
      const uint64_t map = thp ? size_ + kHugePage : size_;
      const int flags =
          MAP_PRIVATE | MAP_ANONYMOUS | (mode == HostMemory::kPopulate ? MAP_POPULATE : 0);
      p = mmap(nullptr, map, PROT_READ | PROT_WRITE, flags, -1, 0);
      if (p == MAP_FAILED) {
        error_ = fmt::format("mmap {} bytes of host memory: {}", map, strerror(errno));
      } else if (thp) {
        auto* base = static_cast<std::byte*>(p);
        const uint64_t addr = reinterpret_cast<uint64_t>(base);
        const uint64_t lead = (kHugePage - addr % kHugePage) % kHugePage;
        if (lead) munmap(base, lead);
        if (map - lead > size_) munmap(base + lead + size_, map - lead - size_);
        p = base + lead;
        madvise(p, size_, MADV_HUGEPAGE);
      }
    }
    if (p == MAP_FAILED) {
      size_ = 0;
      return;
    }
    data_ = static_cast<std::byte*>(p);
    if (mode == HostMemory::kLazy) return;
    // A non-zero pattern, so writes move real data and nothing is a zero page.
    uint64_t x = 0x9e3779b97f4a7c15ull;
    auto* words = reinterpret_cast<uint64_t*>(data_);
    for (uint64_t i = 0; i < size_ / 8; ++i) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      words[i] = x;
    }
  }
  ~HostBuffer() {
    if (data_) munmap(data_, size_);
  }
  HostBuffer(HostBuffer&& o) noexcept
      : data_(std::exchange(o.data_, nullptr)), size_(o.size_), error_(std::move(o.error_)) {}
  HostBuffer& operator=(HostBuffer&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    std::swap(error_, o.error_);
    return *this;
  }
  std::byte* data() const { return data_; }
  uint64_t size() const { return size_; }
  // Why the mapping failed (data() is null).
  const std::string& error() const { return error_; }

 private:
  std::byte* data_ = nullptr;
  uint64_t size_ = 0;
  std::string error_;
};

// ---------------------------------------------------------------------------------------
// The benchmark file: created with fallocate, filled once by a write pass (unwritten
// extents read back as zeros without touching the device, which would flatter reads).

// True when every byte of [0, size) is backed by written (not unwritten, not hole) extents.
bool FullyWritten(int fd, uint64_t size) {
  constexpr uint32_t kExtents = 256;
  std::vector<std::byte> mem(sizeof(fiemap) + kExtents * sizeof(fiemap_extent));
  auto* fm = reinterpret_cast<fiemap*>(mem.data());
  uint64_t pos = 0;
  while (pos < size) {
    std::memset(mem.data(), 0, mem.size());
    fm->fm_start = pos;
    fm->fm_length = size - pos;
    fm->fm_flags = FIEMAP_FLAG_SYNC;
    fm->fm_extent_count = kExtents;
    if (ioctl(fd, FS_IOC_FIEMAP, fm) != 0 || fm->fm_mapped_extents == 0) return false;
    for (uint32_t i = 0; i < fm->fm_mapped_extents; ++i) {
      const fiemap_extent& e = fm->fm_extents[i];
      if (e.fe_logical > pos) return false;  // a hole
      if (e.fe_flags & FIEMAP_EXTENT_UNWRITTEN) return false;
      pos = std::max<uint64_t>(pos, e.fe_logical + e.fe_length);
      if (e.fe_flags & FIEMAP_EXTENT_LAST) return pos >= size;
    }
  }
  return true;
}

struct BenchFile {
  std::string path;
  uint64_t size = 0;
  int fd_buffered = -1;
  int fd_direct = -1;  // -1 when the filesystem refuses O_DIRECT
  std::string direct_error;
  bool created = false;

  ~BenchFile() {
    if (fd_buffered >= 0) close(fd_buffered);
    if (fd_direct >= 0) close(fd_direct);
  }
};

Status OpenBenchFile(BenchFile& f, bool quiet) {
  struct stat st {};
  f.created = stat(f.path.c_str(), &st) != 0;
  f.fd_buffered = open(f.path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (f.fd_buffered < 0) return Status::IoError(fmt::format("open {}", f.path), errno);
  if (fstat(f.fd_buffered, &st) != 0)
    return Status::IoError(fmt::format("fstat {}", f.path), errno);
  if (static_cast<uint64_t>(st.st_size) < f.size) {
    if (int rc = posix_fallocate(f.fd_buffered, 0, static_cast<off_t>(f.size)); rc != 0)
      return Status::IoError(fmt::format("posix_fallocate {} to {} bytes", f.path, f.size), rc);
  }
  f.fd_direct = open(f.path.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC);
  if (f.fd_direct < 0) f.direct_error = fmt::format("open O_DIRECT: {}", strerror(errno));

  if (FullyWritten(f.fd_buffered, f.size)) {
    if (!quiet)
      fmt::print(stderr, "# file {}: {} already written, no fill pass\n", f.path, SizeName(f.size));
    return Status::Ok();
  }
  constexpr uint64_t kChunk = uint64_t{8} << 20;
  HostBuffer buf(kChunk);
  if (!buf.data()) return Status::IoError("mmap fill buffer", errno);
  const int fd = f.fd_direct >= 0 ? f.fd_direct : f.fd_buffered;
  const int64_t t0 = NowNs();
  for (uint64_t off = 0; off < f.size; off += kChunk) {
    const uint64_t n = std::min(kChunk, f.size - off);
    const ssize_t w = pwrite(fd, buf.data(), n, static_cast<off_t>(off));
    if (w != static_cast<ssize_t>(n))
      return Status::IoError(fmt::format("fill pass: pwrite {} at {}", f.path, off),
                             w < 0 ? errno : EIO);
  }
  if (fdatasync(fd) != 0) return Status::IoError(fmt::format("fdatasync {}", f.path), errno);
  const double s = static_cast<double>(NowNs() - t0) / 1e9;
  if (!quiet)
    fmt::print(stderr, "# file {}: fill pass wrote {} in {:.2f} s ({:.2f} GB/s, {})\n", f.path,
               SizeName(f.size), s, static_cast<double>(f.size) / s / 1e9,
               f.fd_direct >= 0 ? "O_DIRECT" : "buffered");
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------
// Request pools and the post/wait loop.

enum class Pattern { kSeq, kRand };

struct Pool {
  std::vector<std::unique_ptr<TransferRequest>> requests;
  std::vector<uint32_t> local_idx;           // requests.size() * batch
  std::vector<uint32_t> remote_idx;          // requests.size() * batch
  Histogram prepare;                         // CreateRequest time, one sample per request
  BackendKind backend = BackendKind::kAuto;  // the backend the engine chose
};

// Builds `count` requests of `batch` descriptors. Request p uses host slots of in-flight
// position p % qd (so the qd requests in flight at once never share a slot unless the
// host buffer is capped below qd * batch slots) and remote blocks sequential over the
// remote list or uniformly random. With `remote_first` / `local_first` (execute-threads:
// one pool per caller thread) the remote blocks are [remote_first, remote_first +
// remote_blocks) and the host slots start at local_first (modulo local_slots).
Result<Pool> MakePool(TransferEngine& engine, TransferOp op, DescListId local, uint32_t local_slots,
                      DescListId remote, uint32_t remote_blocks, uint32_t batch, uint32_t qd,
                      uint32_t count, Pattern pattern, BackendKind backend, std::mt19937_64& rng,
                      uint32_t remote_first = 0, uint32_t local_first = 0) {
  Pool pool;
  pool.local_idx.resize(uint64_t{count} * batch);
  pool.remote_idx.resize(uint64_t{count} * batch);
  std::uniform_int_distribution<uint32_t> any_block(0, remote_blocks - 1);
  for (uint32_t p = 0; p < count; ++p) {
    for (uint32_t j = 0; j < batch; ++j) {
      const uint64_t k = uint64_t{p} * batch + j;
      pool.local_idx[k] =
          static_cast<uint32_t>((local_first + uint64_t{p % qd} * batch + j) % local_slots);
      pool.remote_idx[k] =
          remote_first +
          (pattern == Pattern::kSeq ? static_cast<uint32_t>(k % remote_blocks) : any_block(rng));
    }
  }
  pool.requests.reserve(count);
  for (uint32_t p = 0; p < count; ++p) {
    const std::span<const uint32_t> li(pool.local_idx.data() + uint64_t{p} * batch, batch);
    const std::span<const uint32_t> ri(pool.remote_idx.data() + uint64_t{p} * batch, batch);
    const int64_t t0 = NowNs();
    auto req = engine.CreateRequest(op, local, li, remote, ri, backend);
    pool.prepare.Add(NowNs() - t0);
    if (!req.ok()) return req.status().WithContext("CreateRequest");
    pool.requests.push_back(std::move(req).value());
  }
  pool.backend = pool.requests.front()->backend();
  return pool;
}

struct Limit {
  double seconds = 2;
  uint64_t bytes = 0;  // when non-zero, stop posting after this many bytes instead
};

struct LoopResult {
  uint64_t bytes = 0;
  uint64_t descriptors = 0;
  uint64_t requests = 0;
  double seconds = 0;
  Histogram post;        // time inside TransferEngine::Post
  Histogram completion;  // from just before Post to Wait observing the request done
};

// Which in-flight request the loop reposts next: the oldest (waits for it; later ones
// that finished first wait too), or whichever finished first (as fio reaps).
enum class Repost { kOldest, kAny };

// Keeps `qd` requests in flight: posts qd requests of the pool, then waits for one to
// finish (per `repost`) and posts the next idle pool request (round-robin), until the
// limit is reached; then drains. Every byte counted was moved and completed inside the
// timed span.
Result<LoopResult> RunLoop(TransferEngine& engine, Pool& pool, uint32_t qd, const Limit& limit,
                           Repost repost = Repost::kOldest) {
  LoopResult out;
  const uint32_t n = static_cast<uint32_t>(pool.requests.size());
  std::vector<int64_t> posted_at(n);
  std::vector<uint8_t> busy(n, 0);
  std::vector<uint32_t> inflight;  // oldest first
  inflight.reserve(qd);
  uint32_t next = 0;
  uint64_t bytes_posted = 0;
  const int64_t t0 = NowNs();
  const int64_t deadline = t0 + static_cast<int64_t>(limit.seconds * 1e9);

  auto post = [&]() -> Status {
    while (busy[next]) next = (next + 1) % n;  // n >= qd > in flight: terminates
    TransferRequest& r = *pool.requests[next];
    const int64_t a = NowNs();
    Status s = engine.Post(r);
    const int64_t b = NowNs();
    if (!s.ok()) return s.WithContext("Post");
    out.post.Add(b - a);
    posted_at[next] = a;
    busy[next] = 1;
    bytes_posted += r.total_bytes();
    inflight.push_back(next);
    next = (next + 1) % n;
    return Status::Ok();
  };
  for (uint32_t k = 0; k < qd; ++k) STRATA_RETURN_IF_ERROR(post());

  bool stopping = false;
  int64_t last = t0;
  while (!inflight.empty()) {
    size_t k = 0;
    if (repost == Repost::kAny) {
      while (k < inflight.size() && !pool.requests[inflight[k]]->done()) ++k;
      if (k == inflight.size()) {
        // None finished: sleep on the oldest briefly, then look at all of them again.
        (void)pool.requests[inflight.front()]->Wait(std::chrono::microseconds(20));
        continue;
      }
    }
    const uint32_t idx = inflight[k];
    inflight.erase(inflight.begin() + static_cast<std::ptrdiff_t>(k));
    TransferRequest& r = *pool.requests[idx];
    Status s = r.Wait(std::chrono::seconds(60));
    last = NowNs();
    busy[idx] = 0;
    if (!s.ok()) return s.WithContext("Wait");
    out.completion.Add(last - posted_at[idx]);
    out.bytes += r.total_bytes();
    out.descriptors += r.size();
    ++out.requests;
    if (!stopping) stopping = limit.bytes ? bytes_posted >= limit.bytes : last >= deadline;
    if (!stopping) STRATA_RETURN_IF_ERROR(post());
  }
  out.seconds = static_cast<double>(last - t0) / 1e9;
  return out;
}

// Drives the pool's requests one at a time with TransferEngine::Execute (post and wait in
// one call; the engine may run the request on this thread), round-robin, until the limit
// is reached. There is no separate post time: each Execute call's
// duration is the completion latency, and `post` stays empty.
Result<LoopResult> RunExecute(TransferEngine& engine, Pool& pool, const Limit& limit) {
  LoopResult out;
  const size_t n = pool.requests.size();
  const int64_t t0 = NowNs();
  const int64_t deadline = t0 + static_cast<int64_t>(limit.seconds * 1e9);
  int64_t last = t0;
  for (size_t i = 0;; i = (i + 1) % n) {
    TransferRequest& r = *pool.requests[i];
    const int64_t a = last;
    Status s = engine.Execute(r);
    last = NowNs();
    if (!s.ok()) return s.WithContext("Execute");
    out.completion.Add(last - a);
    out.bytes += r.total_bytes();
    out.descriptors += r.size();
    ++out.requests;
    if (limit.bytes ? out.bytes >= limit.bytes : last >= deadline) break;
  }
  out.seconds = static_cast<double>(last - t0) / 1e9;
  return out;
}

// --submit execute-threads: one caller thread per pool, each driving its own pool with
// RunExecute (one request at a time, as a fio psync job), all released together by a
// latch. Bytes, descriptors and requests are summed and the Execute latencies merged;
// seconds = from the first thread's start to the last thread's end. A --bytes limit is
// split evenly between the threads.
Result<LoopResult> RunExecuteThreads(TransferEngine& engine, std::vector<Pool>& pools,
                                     const Limit& limit) {
  const size_t n = pools.size();
  Limit each = limit;
  if (limit.bytes) each.bytes = std::max<uint64_t>(1, limit.bytes / n);
  std::vector<Result<LoopResult>> res(n, Status::Internal("thread did not run"));
  std::vector<int64_t> start(n, 0), end(n, 0);
  std::latch ready(static_cast<std::ptrdiff_t>(n));
  {
    std::vector<std::jthread> threads;
    threads.reserve(n);
    for (size_t t = 0; t < n; ++t)
      threads.emplace_back([&, t] {
        ready.arrive_and_wait();
        start[t] = NowNs();
        res[t] = RunExecute(engine, pools[t], each);
        end[t] = NowNs();
      });
  }
  LoopResult out;
  for (size_t t = 0; t < n; ++t) {
    if (!res[t].ok()) return res[t].status().WithContext(fmt::format("caller thread {}", t));
    out.bytes += res[t]->bytes;
    out.descriptors += res[t]->descriptors;
    out.requests += res[t]->requests;
    out.completion.Merge(res[t]->completion);
  }
  out.seconds = static_cast<double>(*std::max_element(end.begin(), end.end()) -
                                    *std::min_element(start.begin(), start.end())) /
                1e9;
  return out;
}

// ---------------------------------------------------------------------------------------
// Results.

struct Point {
  std::string mode;  // "file" or "mem"
  std::string backend;
  std::string op;
  uint64_t block = 0;
  uint32_t batch = 0;
  uint32_t qd = 0;
  std::string direct;  // "on", "off", "-" (mem)
  std::string pattern;
  std::string repost;  // "-" with execute
  // "post" (Post + Wait, qd in flight), "execute" (Execute, QD 1) or "execute x<N>
  // threads" (execute-threads: N = qd caller threads, each Executing one request at a time)
  std::string submit;
  uint32_t threads = 1;  // caller threads (qd with execute-threads)
  uint32_t pool = 0;
  uint64_t span_bytes = 0;  // distinct remote bytes the pool addresses
  bool aliased = false;     // host slots shared between in-flight requests (buffer cap)
  double seconds = 0;
  uint64_t bytes = 0;
  double gbps = 0;
  double iops = 0;
  // post_* are NaN with execute (no separate post); compl_* is then the Execute call.
  double prep_mean = 0, prep_p99 = 0, post_mean = 0, post_p99 = 0, compl_mean = 0, compl_p99 = 0;
  std::optional<double> memcpy_gbps;  // mem mode baseline
};

struct RawRow {
  std::string op;
  uint64_t block = 0;
  std::string direct;
  std::string method;
  uint64_t samples = 0;
  double mean = 0, p50 = 0, p99 = 0;
  std::optional<double> over_syscall;  // mean - raw pread/pwrite mean
  std::optional<double> over_uring;    // mean - raw io_uring mean (engine io_uring only)
};

std::string Opt(const std::optional<double>& v, int prec) {
  return v ? fmt::format("{:.{}f}", *v, prec) : std::string("-");
}

// A latency for JSON (null when not measured: post with execute) and for CSV (empty).
std::string JsonNum(double v) {
  return std::isnan(v) ? "null" : fmt::format("{:.3f}", v);
}
std::string CsvNum(double v) {
  return std::isnan(v) ? "" : fmt::format("{:.3f}", v);
}

// "mean/p99" in two columns of width `w`; "-/-" for a latency that was not measured.
std::string MeanP99(double mean, double p99, int w) {
  if (std::isnan(mean)) return fmt::format("{:>{}}/{:<{}}", "-", w, "-", w);
  return fmt::format("{:>{}.1f}/{:<{}.1f}", mean, w, p99, w);
}

// `submit_width`: 7, or 18 for "execute x<N> threads".
void PrintPointHeader(bool mem, int submit_width) {
  fmt::print("{:<9} {:<5} {:>5} {:>5} {:>3} {:>6} {:<{}} {:>8} {:>10} {:>17} {:>17} {:>19}{}\n",
             "backend", "op", "block", "batch", "qd", "direct", "submit", submit_width, "GB/s",
             "IOPS", "prep us mean/p99", "post us mean/p99", "compl us mean/p99",
             mem ? fmt::format(" {:>11} {:>7}", "memcpy GB/s", "ratio") : std::string());
  std::fflush(stdout);
}

void PrintPoint(const Point& p, int submit_width) {
  std::string extra;
  if (p.mode == "mem")
    extra = fmt::format(" {:>11} {:>7}", Opt(p.memcpy_gbps, 2),
                        p.memcpy_gbps ? fmt::format("{:.3f}", p.gbps / *p.memcpy_gbps) : "-");
  fmt::print("{:<9} {:<5} {:>5} {:>5} {:>3} {:>6} {:<{}} {:>8.3f} {:>10.0f} {} {} {}{}{}\n",
             p.backend, p.op, SizeName(p.block), p.batch, p.qd, p.direct, p.submit, submit_width,
             p.gbps, p.iops, MeanP99(p.prep_mean, p.prep_p99, 8),
             MeanP99(p.post_mean, p.post_p99, 8), MeanP99(p.compl_mean, p.compl_p99, 9), extra,
             p.aliased ? "  (host slots shared)" : "");
  std::fflush(stdout);
}

void PrintRawHeader() {
  fmt::print("{:<5} {:>5} {:>6} {:<23} {:>9} {:>9} {:>9} {:>9} {:>16} {:>16}\n", "op", "block",
             "direct", "method", "samples", "mean us", "p50 us", "p99 us", "over syscall us",
             "over raw uring us");
}

void PrintRaw(const RawRow& r) {
  fmt::print("{:<5} {:>5} {:>6} {:<23} {:>9} {:>9.2f} {:>9.2f} {:>9.2f} {:>16} {:>16}\n", r.op,
             SizeName(r.block), r.direct, r.method, r.samples, r.mean, r.p50, r.p99,
             Opt(r.over_syscall, 2), Opt(r.over_uring, 2));
  std::fflush(stdout);
}

// ---------------------------------------------------------------------------------------
// The run.

struct Config {
  std::string mode = "file";
  std::vector<std::string> backends = {"auto"};
  std::string op = "both";
  std::vector<std::string> block_sizes = {"4K", "64K", "256K", "1M", "4M", "16M", "64M"};
  std::vector<uint32_t> batches = {1, 16};
  std::vector<uint32_t> qds = {1, 8, 32};
  uint32_t threads = 0;  // 0: engine defaults
  uint32_t uring_depth = 64;
  uint32_t uring_rings = 1;
  std::string direct = "on";
  std::string file;
  std::string file_size = "2G";
  std::string mem_size = "1G";
  std::string host_mem = "2G";
  double seconds = 2;
  std::string bytes;
  double warmup = 0.25;
  uint32_t max_requests = 8192;
  uint32_t rounds = 4;
  std::string pattern = "seq";
  std::string repost = "oldest";
  std::string submit = "auto";
  std::string host_memory = "thp";
  bool keep_file = false;
  std::string json, csv;
  bool quiet = false;
  uint64_t seed = 1;
};

class Bench {
 public:
  Bench(Config cfg, std::unique_ptr<TransferEngine> engine, TransferEngineOptions opts)
      : cfg_(std::move(cfg)), engine_(std::move(engine)), opts_(opts), rng_(cfg_.seed) {}

  int Run() {
    if (Status s = Setup(); !s.ok()) return Fail(s);
    Status s;
    if (cfg_.mode == "raw-overhead") {
      s = RunRawOverhead();
    } else {
      s = RunSweep();
    }
    CheckPages();
    Status w = WriteOutputs();
    if (!cfg_.keep_file && file_ && file_->created) unlink(file_->path.c_str());
    if (!s.ok()) return Fail(s);
    if (!w.ok()) return Fail(w);
    return 0;
  }

 private:
  int Fail(const Status& s) {
    fmt::print(stderr, "strata-xferbench: {}\n", s.ToString());
    return 1;
  }
  void Note(std::string_view msg) {
    notes_.emplace_back(msg);
    if (!cfg_.quiet) fmt::print(stderr, "# {}\n", msg);
  }

  Status Setup() {
    for (const auto& s : cfg_.block_sizes) {
      auto v = ParseSize(s);
      if (!v || *v == 0)
        return Status::InvalidArgument(fmt::format("--block-size: cannot parse '{}'", s));
      blocks_.push_back(*v);
    }
    auto parse = [](const std::string& s, const char* flag) -> Result<uint64_t> {
      auto v = ParseSize(s);
      if (!v || *v == 0)
        return Status::InvalidArgument(fmt::format("{}: cannot parse '{}'", flag, s));
      return *v;
    };
    STRATA_ASSIGN_OR_RETURN(file_size_, parse(cfg_.file_size, "--file-size"));
    STRATA_ASSIGN_OR_RETURN(mem_size_, parse(cfg_.mem_size, "--mem-size"));
    STRATA_ASSIGN_OR_RETURN(host_cap_, parse(cfg_.host_mem, "--host-mem"));
    if (!cfg_.bytes.empty()) {
      STRATA_ASSIGN_OR_RETURN(limit_.bytes, parse(cfg_.bytes, "--bytes"));
    }
    limit_.seconds = cfg_.seconds;
    for (const auto& b : cfg_.backends) {
      STRATA_ASSIGN_OR_RETURN(BackendKind k, ParseBackendKind(b));
      kinds_.push_back(k);
    }
    if (cfg_.op == "read" || cfg_.op == "both") ops_.push_back(TransferOp::kRead);
    if (cfg_.op == "write" || cfg_.op == "both") ops_.push_back(TransferOp::kWrite);
    if (cfg_.direct == "on" || cfg_.direct == "both") directs_.push_back(true);
    if (cfg_.direct == "off" || cfg_.direct == "both") directs_.push_back(false);
    if (cfg_.submit == "execute-threads" && cfg_.mode == "raw-overhead")
      return Status::InvalidArgument(
          "--submit execute-threads is for the file and mem modes (raw-overhead measures QD 1)");
    if (cfg_.submit == "execute" && cfg_.mode != "raw-overhead") {
      for (uint32_t qd : cfg_.qds)
        if (qd != 1)
          return Status::InvalidArgument(fmt::format(
              "--submit execute runs one request at a time (Execute = Post + Wait): it needs "
              "--qd 1, got --qd {} (use --submit post or auto)",
              qd));
    }

    if (FILE* f = std::fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r")) {
      char buf[128] = {};
      if (std::fgets(buf, sizeof buf, f)) thp_setting_ = buf;
      std::fclose(f);
      while (!thp_setting_.empty() && thp_setting_.back() == '\n') thp_setting_.pop_back();
    }
    const auto avail = engine_->backends();
    std::string names;
    for (BackendKind k : avail)
      names += fmt::format("{}{}", names.empty() ? "" : " ", BackendKindName(k));
    available_ = names;
    const std::string notes = engine_->backend_notes();
    if (!cfg_.quiet) {
      utsname u{};
      uname(&u);
      fmt::print(stderr, "# strata-xferbench {} | Linux {} | {} CPUs | backends: {}{}\n", Today(),
                 u.release, std::thread::hardware_concurrency(), names,
                 notes.empty() ? "" : " | notes: " + notes);
      fmt::print(stderr,
                 "# engine: posix_threads={} memcpy_threads={} uring_rings={} uring_queue_depth={} "
                 "uring_sync_rings={} inline_io_bytes={} | host memory: {} | submit: {}\n",
                 opts_.posix_threads, opts_.memcpy_threads, opts_.uring_rings,
                 opts_.uring_queue_depth, opts_.uring_sync_rings, opts_.inline_io_bytes,
                 cfg_.host_memory, cfg_.submit);
    }

    // Host memory for the local side: enough for the largest qd * batch * block of the
    // sweep, capped (requests then share slots, which is flagged per point).
    uint64_t need = 0;
    if (cfg_.mode == "raw-overhead") {
      for (uint64_t b : blocks_) need = std::max(need, b);
    } else {
      for (uint64_t b : blocks_)
        for (uint32_t batch : cfg_.batches)
          for (uint32_t qd : cfg_.qds) need = std::max(need, b * batch * qd);
    }
    const uint64_t max_block = *std::max_element(blocks_.begin(), blocks_.end());
    need = std::max(std::min(need, host_cap_), max_block);
    // mem mode: the remote buffer gets the same pages, and the std::memcpy baseline copies
    // between these same two buffers.
    const HostMemory host_memory = cfg_.host_memory == "lazy"      ? HostMemory::kLazy
                                   : cfg_.host_memory == "thp"     ? HostMemory::kThp
                                   : cfg_.host_memory == "hugetlb" ? HostMemory::kHugetlb
                                                                   : HostMemory::kPopulate;
    local_ = HostBuffer(need, host_memory);
    if (!local_.data())
      return Status::ResourceExhausted(
          local_.error() +
          (host_memory == HostMemory::kHugetlb && cfg_.mode == "mem"
               ? fmt::format(" [local buffer; the remote buffer of --mode mem needs {} more pages]",
                             (mem_size_ + kHugePage - 1) / kHugePage)
               : std::string(" [local buffer]")));
    STRATA_ASSIGN_OR_RETURN(local_region_, engine_->RegisterMemory({.type = MemoryType::kHost,
                                                                    .addr = local_.data(),
                                                                    .length = local_.size(),
                                                                    .name = "bench host buffer"}));
    if (cfg_.mode == "mem") {
      remote_mem_ = HostBuffer(mem_size_, host_memory);
      if (!remote_mem_.data())
        return Status::ResourceExhausted(remote_mem_.error() + " [remote buffer of --mode mem]");
      STRATA_ASSIGN_OR_RETURN(remote_mem_region_,
                              engine_->RegisterMemory({.type = MemoryType::kHost,
                                                       .addr = remote_mem_.data(),
                                                       .length = remote_mem_.size(),
                                                       .name = "bench remote host buffer"}));
      return Status::Ok();
    }

    file_ = std::make_unique<BenchFile>();
    file_->path = cfg_.file;
    file_->size = file_size_ / 4096 * 4096;
    STRATA_RETURN_IF_ERROR(OpenBenchFile(*file_, cfg_.quiet));
    STRATA_ASSIGN_OR_RETURN(file_region_buffered_, engine_->RegisterFile({.fd = file_->fd_buffered,
                                                                          .length = file_->size,
                                                                          .direct = false,
                                                                          .name = file_->path}));
    if (file_->fd_direct >= 0) {
      STRATA_ASSIGN_OR_RETURN(file_region_direct_,
                              engine_->RegisterFile({.fd = file_->fd_direct,
                                                     .length = file_->size,
                                                     .direct = true,
                                                     .name = file_->path + " (O_DIRECT)"}));
    } else {
      Note(fmt::format("O_DIRECT unavailable on {}: {}; direct points are skipped", file_->path,
                       file_->direct_error));
    }
    return Status::Ok();
  }

  // After the run (a lazy buffer has its pages by then): how much of each host buffer is
  // on huge pages, for the JSON and the reader; a thp buffer the kernel could not back
  // with huge pages is flagged.
  void CheckPages() {
    local_huge_ = local_.data() ? HugePageBytes(local_.data(), local_.size()) : -1;
    remote_huge_ = remote_mem_.data() ? HugePageBytes(remote_mem_.data(), remote_mem_.size()) : -1;
    auto report = [&](const char* name, const HostBuffer& b, int64_t huge) {
      if (!b.data() || huge < 0) return;
      const double pct = 100.0 * static_cast<double>(huge) / static_cast<double>(b.size());
      if ((cfg_.host_memory == "thp" || cfg_.host_memory == "hugetlb") &&
          huge < static_cast<int64_t>(b.size()))
        Note(fmt::format("{} buffer ({}, {}): only {:.1f}% on huge pages (THP: {})", name,
                         SizeName(b.size()), cfg_.host_memory, pct, thp_setting_));
      else if (!cfg_.quiet)
        fmt::print(stderr, "# {} buffer: {} {}, {:.1f}% on huge pages\n", name, SizeName(b.size()),
                   cfg_.host_memory, pct);
    };
    report("host", local_, local_huge_);
    report("remote host", remote_mem_, remote_huge_);
  }

  bool Available(BackendKind k) const {
    const auto v = engine_->backends();
    return std::find(v.begin(), v.end(), k) != v.end();
  }

  Result<DescListId> BlockList(RegionId region, uint64_t block, uint64_t count) {
    std::vector<Descriptor> d(count);
    for (uint64_t i = 0; i < count; ++i)
      d[i] = {.region = region, .offset = i * block, .length = block};
    return engine_->PrepareDescList(d);
  }

  // ---- file and mem sweeps -------------------------------------------------------------

  Status RunSweep() {
    const bool mem = cfg_.mode == "mem";
    if (!cfg_.quiet && !mem) {
      if (std::find(directs_.begin(), directs_.end(), false) != directs_.end() &&
          std::find(ops_.begin(), ops_.end(), TransferOp::kRead) != ops_.end())
        Note(
            "direct=off reads are served by the page cache once a block was read or written; "
            "the fio comparison is about O_DIRECT");
    }
    bool header = false;
    for (BackendKind kind : kinds_) {
      if (mem && kind != BackendKind::kAuto && kind != BackendKind::kMemcpy) {
        Note(fmt::format("mem mode: backend {} does not move host<->host; skipped",
                         BackendKindName(kind)));
        continue;
      }
      if (!mem && kind == BackendKind::kMemcpy) {
        Note("file mode: the memcpy backend does not move host<->file; skipped (use --mode mem)");
        continue;
      }
      if (kind != BackendKind::kAuto && !Available(kind)) {
        Note(
            fmt::format("backend {} is unavailable here ({}); skipped", BackendKindName(kind),
                        engine_->backend_notes().empty() ? "not built" : engine_->backend_notes()));
        continue;
      }
      for (TransferOp op : ops_)
        for (uint64_t block : blocks_)
          for (uint32_t batch : cfg_.batches)
            for (uint32_t qd : cfg_.qds)
              for (bool direct : mem ? std::vector<bool>{false} : directs_) {
                if (!header) {
                  PrintPointHeader(mem, SubmitWidth());
                  header = true;
                }
                STRATA_RETURN_IF_ERROR(RunPoint(kind, op, block, batch, qd, direct, mem));
              }
    }
    return Status::Ok();
  }

  Status RunPoint(BackendKind kind, TransferOp op, uint64_t block, uint32_t batch, uint32_t qd,
                  bool direct, bool mem) {
    const std::string what = fmt::format("{} {} block {} batch {} qd {}{}", BackendKindName(kind),
                                         TransferOpName(op), SizeName(block), batch, qd,
                                         mem      ? ""
                                         : direct ? " direct"
                                                  : " buffered");
    if (qd == 0 || batch == 0) return Status::InvalidArgument("--qd and --batch must be >= 1");
    if (!mem && direct && file_region_direct_ < 0) return Status::Ok();
    const uint64_t remote_bytes = mem ? remote_mem_.size() : file_->size;
    const uint64_t remote_blocks = remote_bytes / block;
    if (remote_blocks < batch) {
      Note(fmt::format("{}: one request ({} bytes) exceeds the {} remote span; skipped", what,
                       batch * block, SizeName(remote_bytes)));
      return Status::Ok();
    }
    if (remote_blocks > UINT32_MAX) return Status::InvalidArgument(what + ": too many blocks");
    const uint64_t slots = std::min<uint64_t>(uint64_t{qd} * batch, local_.size() / block);
    if (slots == 0) return Status::InvalidArgument(what + ": host buffer smaller than one block");

    // The pool: enough requests to walk the remote span (up to --max-requests), a
    // multiple of qd, at least qd.
    uint64_t count = std::min<uint64_t>(remote_blocks / batch, cfg_.max_requests);
    count = std::max<uint64_t>(count, qd) / qd * qd;

    const RegionId remote_region =
        mem ? remote_mem_region_
            : static_cast<RegionId>(direct ? file_region_direct_ : file_region_buffered_);
    STRATA_ASSIGN_OR_RETURN(DescListId local_list, BlockList(local_region_, block, slots));
    STRATA_ASSIGN_OR_RETURN(DescListId remote_list, BlockList(remote_region, block, remote_blocks));
    const Pattern pattern = cfg_.pattern == "rand" ? Pattern::kRand : Pattern::kSeq;
    Status st;
    Point p;
    if (cfg_.submit == "execute-threads") {
      st = ThreadsPoint(kind, op, block, batch, qd, direct, mem, what, local_list,
                        static_cast<uint32_t>(slots), remote_list, remote_blocks, pattern, p);
    } else {
      auto pool = MakePool(*engine_, op, local_list, static_cast<uint32_t>(slots), remote_list,
                           static_cast<uint32_t>(remote_blocks), batch, qd,
                           static_cast<uint32_t>(count), pattern, kind, rng_);
      if (!pool.ok()) {
        st = pool.status().WithContext(what);
      } else {
        st = MeasurePoint(*pool, op, block, batch, qd, direct, mem, what, p);
        if (st.ok()) {
          p.span_bytes = std::min<uint64_t>(count * batch, remote_blocks) * block;
          if (pattern == Pattern::kRand) p.span_bytes = remote_blocks * block;
          p.aliased = slots < uint64_t{qd} * batch;
        }
      }
    }
    (void)engine_->ReleaseDescList(local_list);
    (void)engine_->ReleaseDescList(remote_list);
    STRATA_RETURN_IF_ERROR(st);
    PrintPoint(p, SubmitWidth());
    points_.push_back(std::move(p));
    return Status::Ok();
  }

  int SubmitWidth() const { return cfg_.submit == "execute-threads" ? 18 : 7; }

  // --submit execute-threads: qd caller threads, like fio's psync engine with
  // --numjobs=qd --offset_increment: thread t has its own pool over its own contiguous
  // slice [t * B / qd, (t + 1) * B / qd) of the B remote blocks (sequential through it, or
  // random within it), its own host slots (t * batch ...; shared only when the host buffer
  // is capped, flagged as for post), and calls Execute on one request at a time. The pool
  // cap --max-requests is split between the threads, so the span matches a post point's.
  Status ThreadsPoint(BackendKind kind, TransferOp op, uint64_t block, uint32_t batch, uint32_t qd,
                      bool direct, bool mem, const std::string& what, DescListId local_list,
                      uint32_t slots, DescListId remote_list, uint64_t remote_blocks,
                      Pattern pattern, Point& p) {
    std::vector<Pool> pools;
    pools.reserve(qd);
    uint64_t span_blocks = 0;
    const uint64_t per_thread_cap = std::max<uint64_t>(1, cfg_.max_requests / qd);
    for (uint32_t t = 0; t < qd; ++t) {
      const uint64_t first = remote_blocks * t / qd;
      const uint64_t slice = remote_blocks * (t + 1) / qd - first;
      if (slice < batch)
        return Status::InvalidArgument(fmt::format(
            "{}: a thread's slice ({} blocks of {}) is smaller than one request (batch {}); "
            "use a larger --file-size or a smaller --qd",
            what, slice, SizeName(block), batch));
      const uint64_t count = std::min<uint64_t>(slice / batch, per_thread_cap);
      auto pool = MakePool(*engine_, op, local_list, slots, remote_list,
                           static_cast<uint32_t>(slice), batch, 1, static_cast<uint32_t>(count),
                           pattern, kind, rng_, static_cast<uint32_t>(first),
                           static_cast<uint32_t>(uint64_t{t} * batch % slots));
      if (!pool.ok()) return pool.status().WithContext(fmt::format("{} (thread {})", what, t));
      span_blocks += pattern == Pattern::kRand ? slice : std::min<uint64_t>(count * batch, slice);
      pools.push_back(std::move(pool).value());
    }
    if (cfg_.warmup > 0) {
      auto w = RunExecuteThreads(*engine_, pools, {.seconds = cfg_.warmup});
      if (!w.ok()) return w.status().WithContext(what + " (warm-up)");
    }
    auto r = RunExecuteThreads(*engine_, pools, limit_);
    if (!r.ok()) return r.status().WithContext(what);
    Histogram prepare;
    uint32_t requests = 0;
    for (const Pool& pl : pools) {
      prepare.Merge(pl.prepare);
      requests += static_cast<uint32_t>(pl.requests.size());
    }
    Describe(p, pools.front().backend, op, block, batch, qd, direct, mem);
    p.repost = "-";
    p.submit = fmt::format("execute x{} threads", qd);
    p.threads = qd;
    p.pool = requests;
    p.span_bytes = span_blocks * block;
    p.aliased = slots < uint64_t{qd} * batch;
    p.seconds = r->seconds;
    p.bytes = r->bytes;
    p.gbps = static_cast<double>(r->bytes) / r->seconds / 1e9;
    p.iops = static_cast<double>(r->descriptors) / r->seconds;
    p.prep_mean = prepare.MeanUs();
    p.prep_p99 = prepare.PercentileUs(0.99);
    p.post_mean = std::nan("");
    p.post_p99 = std::nan("");
    p.compl_mean = r->completion.MeanUs();
    p.compl_p99 = r->completion.PercentileUs(0.99);
    // mem: the single-thread std::memcpy baseline over thread 0's copies, for the same bytes.
    if (mem) p.memcpy_gbps = MemcpyBaseline(pools.front(), op, block, batch, r->bytes);
    return Status::Ok();
  }

  // The point's coordinates, common to every submission path.
  void Describe(Point& p, BackendKind backend, TransferOp op, uint64_t block, uint32_t batch,
                uint32_t qd, bool direct, bool mem) const {
    p.mode = mem ? "mem" : "file";
    p.backend = std::string(BackendKindName(backend));
    p.op = std::string(TransferOpName(op));
    p.block = block;
    p.batch = batch;
    p.qd = qd;
    p.direct = mem ? "-" : direct ? "on" : "off";
    p.pattern = cfg_.pattern;
  }

  Status MeasurePoint(Pool& pool, TransferOp op, uint64_t block, uint32_t batch, uint32_t qd,
                      bool direct, bool mem, const std::string& what, Point& p) {
    // --submit: execute drives each request with Execute (QD 1 only, checked in Setup);
    // post keeps qd requests in flight with Post + Wait; auto is execute at QD 1.
    const bool execute = cfg_.submit == "execute" || (cfg_.submit == "auto" && qd == 1);
    const Repost repost = cfg_.repost == "any" ? Repost::kAny : Repost::kOldest;
    auto run = [&](const Limit& limit) {
      return execute ? RunExecute(*engine_, pool, limit)
                     : RunLoop(*engine_, pool, qd, limit, repost);
    };
    if (cfg_.warmup > 0) {
      auto w = run({.seconds = cfg_.warmup});
      if (!w.ok()) return w.status().WithContext(what + " (warm-up)");
    }
    auto r = run(limit_);
    if (!r.ok()) return r.status().WithContext(what);
    Describe(p, pool.backend, op, block, batch, qd, direct, mem);
    p.repost = execute ? "-" : cfg_.repost;
    p.submit = execute ? "execute" : "post";
    p.pool = static_cast<uint32_t>(pool.requests.size());
    p.seconds = r->seconds;
    p.bytes = r->bytes;
    p.gbps = static_cast<double>(r->bytes) / r->seconds / 1e9;
    p.iops = static_cast<double>(r->descriptors) / r->seconds;
    p.prep_mean = pool.prepare.MeanUs();
    p.prep_p99 = pool.prepare.PercentileUs(0.99);
    p.post_mean = execute ? std::nan("") : r->post.MeanUs();
    p.post_p99 = execute ? std::nan("") : r->post.PercentileUs(0.99);
    p.compl_mean = r->completion.MeanUs();
    p.compl_p99 = r->completion.PercentileUs(0.99);
    if (mem) p.memcpy_gbps = MemcpyBaseline(pool, op, block, batch, r->bytes);
    return Status::Ok();
  }

  // The same copies the engine made (same slots, same blocks, same order), as a plain
  // single-thread std::memcpy loop over the same number of bytes.
  double MemcpyBaseline(const Pool& pool, TransferOp op, uint64_t block, uint32_t batch,
                        uint64_t total) {
    const uint64_t descs = pool.local_idx.size();
    auto copy = [&](uint64_t bytes) {
      uint64_t moved = 0;
      for (uint64_t k = 0; moved < bytes; k = (k + 1) % descs) {
        std::byte* l = local_.data() + uint64_t{pool.local_idx[k]} * block;
        std::byte* r = remote_mem_.data() + uint64_t{pool.remote_idx[k]} * block;
        if (op == TransferOp::kRead) {
          std::memcpy(l, r, block);
        } else {
          std::memcpy(r, l, block);
        }
        moved += block;
        asm volatile("" ::: "memory");
      }
      return moved;
    };
    (void)batch;
    copy(std::min<uint64_t>(total / 4 + block, uint64_t{256} << 20));  // warm-up
    const int64_t t0 = NowNs();
    const uint64_t moved = copy(total);
    const double s = static_cast<double>(NowNs() - t0) / 1e9;
    return static_cast<double>(moved) / s / 1e9;
  }

  // ---- raw overhead ----------------------------------------------------------------------

  // One method of the raw-overhead comparison: runs for `seconds`, adding one latency
  // sample per I/O to `h`.
  using Method = std::function<Status(double seconds, Histogram& h)>;

  Status RunRawOverhead() {
    if (!cfg_.quiet)
      Note(fmt::format(
          "raw-overhead: QD1, batch 1, sequential blocks over the first {} of the file; "
          "{} interleaved rounds per point; latency = syscall / Post->Wait done",
          "min(file, 1024 blocks)", cfg_.rounds));
    PrintRawHeader();
    for (TransferOp op : ops_)
      for (uint64_t block : blocks_)
        for (bool direct : directs_) {
          if (direct && file_region_direct_ < 0) continue;
          STRATA_RETURN_IF_ERROR(RawPoint(op, block, direct));
        }
    return Status::Ok();
  }

  Status RawPoint(TransferOp op, uint64_t block, bool direct) {
    const int fd = direct ? file_->fd_direct : file_->fd_buffered;
    const uint64_t nblocks = std::min<uint64_t>(file_->size / block, 1024);
    if (nblocks == 0) return Status::InvalidArgument("--block-size larger than the file");
    std::byte* buf = local_.data();
    const bool read = op == TransferOp::kRead;
    const std::string what = fmt::format("raw-overhead {} {} {}", TransferOpName(op),
                                         SizeName(block), direct ? "direct" : "buffered");

    std::vector<std::string> names;
    std::vector<Method> methods;

    // (a) raw pread/pwrite.
    uint64_t sys_pos = 0;
    names.push_back(read ? "pread" : "pwrite");
    methods.push_back([&, fd, buf](double seconds, Histogram& h) -> Status {
      const int64_t end = NowNs() + static_cast<int64_t>(seconds * 1e9);
      for (int64_t t = NowNs(); t < end;) {
        const off_t off = static_cast<off_t>((sys_pos++ % nblocks) * block);
        const ssize_t n = read ? pread(fd, buf, block, off) : pwrite(fd, buf, block, off);
        const int64_t t2 = NowNs();
        if (n != static_cast<ssize_t>(block))
          return Status::IoError(fmt::format("{}: {} at {}", what, names[0], off),
                                 n < 0 ? errno : EIO);
        h.Add(t2 - t);
        t = t2;
      }
      return Status::Ok();
    });

    // Raw io_uring: one ring, the file and the buffer registered (as the engine does),
    // submit-and-wait per I/O on the calling thread.
    struct RawRing {
      io_uring ring{};
      bool ok = false;
      ~RawRing() {
        if (ok) io_uring_queue_exit(&ring);
      }
    } rr;
    std::string ring_error;
    if (int ret = io_uring_queue_init(8, &rr.ring, 0); ret < 0) {
      ring_error = fmt::format("io_uring_queue_init: {}", strerror(-ret));
    } else {
      rr.ok = true;
      iovec iov{buf, block};
      if (int r1 = io_uring_register_files(&rr.ring, &fd, 1); r1 < 0)
        ring_error = fmt::format("io_uring_register_files: {}", strerror(-r1));
      else if (int r2 = io_uring_register_buffers(&rr.ring, &iov, 1); r2 < 0)
        ring_error = fmt::format("io_uring_register_buffers: {}", strerror(-r2));
    }
    uint64_t ring_pos = 0;
    if (ring_error.empty()) {
      names.push_back("raw io_uring");
      methods.push_back([&, buf](double seconds, Histogram& h) -> Status {
        const int64_t end = NowNs() + static_cast<int64_t>(seconds * 1e9);
        for (int64_t t = NowNs(); t < end;) {
          const uint64_t off = (ring_pos++ % nblocks) * block;
          io_uring_sqe* sqe = io_uring_get_sqe(&rr.ring);
          if (read) {
            io_uring_prep_read_fixed(sqe, 0, buf, static_cast<unsigned>(block), off, 0);
          } else {
            io_uring_prep_write_fixed(sqe, 0, buf, static_cast<unsigned>(block), off, 0);
          }
          sqe->flags |= IOSQE_FIXED_FILE;
          int ret = io_uring_submit_and_wait(&rr.ring, 1);
          io_uring_cqe* cqe = nullptr;
          if (ret >= 0) ret = io_uring_peek_cqe(&rr.ring, &cqe);
          if (ret < 0) return Status::IoError(what + ": raw io_uring submit", -ret);
          const int res = cqe->res;
          io_uring_cqe_seen(&rr.ring, cqe);
          const int64_t t2 = NowNs();
          if (res != static_cast<int>(block))
            return Status::IoError(fmt::format("{}: raw io_uring at {}", what, off),
                                   res < 0 ? -res : EIO);
          h.Add(t2 - t);
          t = t2;
        }
        return Status::Ok();
      });
    } else {
      Note(fmt::format("{}: raw io_uring baseline unavailable: {}", what, ring_error));
    }

    // (b), (c): the engine, batch 1, QD 1.
    const RegionId file_region =
        static_cast<RegionId>(direct ? file_region_direct_ : file_region_buffered_);
    STRATA_ASSIGN_OR_RETURN(DescListId local_list, BlockList(local_region_, block, 1));
    STRATA_ASSIGN_OR_RETURN(DescListId remote_list, BlockList(file_region, block, nblocks));
    std::vector<std::unique_ptr<Pool>> pools;
    for (BackendKind kind : {BackendKind::kPosix, BackendKind::kIoUring}) {
      if (!Available(kind)) {
        Note(
            fmt::format("{}: engine backend {} unavailable; skipped", what, BackendKindName(kind)));
        continue;
      }
      auto pool = MakePool(*engine_, op, local_list, 1, remote_list, static_cast<uint32_t>(nblocks),
                           1, 1, static_cast<uint32_t>(nblocks), Pattern::kSeq, kind, rng_);
      if (!pool.ok()) return pool.status().WithContext(what);
      pools.push_back(std::make_unique<Pool>(std::move(pool).value()));
      Pool* pl = pools.back().get();
      names.push_back(fmt::format("engine {}", BackendKindName(kind)));
      methods.push_back([&, pl](double seconds, Histogram& h) -> Status {
        auto r = RunLoop(*engine_, *pl, 1, {.seconds = seconds});
        if (!r.ok()) return r.status().WithContext(what);
        h.Merge(r->completion);
        return Status::Ok();
      });
      // The same requests through Execute (post and wait at once): small ones run on this
      // thread, skipping the hand-offs to a worker or completion thread.
      names.push_back(fmt::format("engine {} execute", BackendKindName(kind)));
      methods.push_back([&, pl](double seconds, Histogram& h) -> Status {
        const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
        for (size_t i = 0; std::chrono::steady_clock::now() < end; ++i) {
          TransferRequest& req = *pl->requests[i % pl->requests.size()];
          const auto t0 = std::chrono::steady_clock::now();
          STRATA_RETURN_IF_ERROR(engine_->Execute(req).WithContext(what));
          h.Add(std::chrono::duration_cast<std::chrono::nanoseconds>(
                    std::chrono::steady_clock::now() - t0)
                    .count());
        }
        return Status::Ok();
      });
    }

    // Warm up each method, then interleave rounds so drift hits every method alike.
    std::vector<Histogram> hist(methods.size());
    Status st;
    for (size_t m = 0; m < methods.size() && st.ok(); ++m) {
      Histogram discard;
      st = methods[m](std::min(0.2, cfg_.warmup > 0 ? cfg_.warmup : 0.0), discard);
    }
    const uint32_t rounds = std::max<uint32_t>(1, cfg_.rounds);
    for (uint32_t r = 0; r < rounds && st.ok(); ++r)
      for (size_t m = 0; m < methods.size() && st.ok(); ++m)
        st = methods[m](cfg_.seconds / rounds, hist[m]);
    pools.clear();
    (void)engine_->ReleaseDescList(local_list);
    (void)engine_->ReleaseDescList(remote_list);
    STRATA_RETURN_IF_ERROR(st);

    std::optional<double> sys_mean, ring_mean;
    for (size_t m = 0; m < methods.size(); ++m) {
      RawRow row{.op = std::string(TransferOpName(op)),
                 .block = block,
                 .direct = direct ? "on" : "off",
                 .method = names[m],
                 .samples = hist[m].count(),
                 .mean = hist[m].MeanUs(),
                 .p50 = hist[m].PercentileUs(0.5),
                 .p99 = hist[m].PercentileUs(0.99)};
      if (m == 0) sys_mean = row.mean;
      if (names[m] == "raw io_uring") ring_mean = row.mean;
      if (names[m].starts_with("engine")) {
        row.over_syscall = row.mean - *sys_mean;
        if (names[m] == "engine io_uring" && ring_mean) row.over_uring = row.mean - *ring_mean;
      }
      PrintRaw(row);
      raw_.push_back(std::move(row));
    }
    return Status::Ok();
  }

  // ---- outputs ---------------------------------------------------------------------------

  Status WriteOutputs() {
    if (!cfg_.json.empty()) STRATA_RETURN_IF_ERROR(WriteFile(cfg_.json, Json()));
    if (!cfg_.csv.empty()) STRATA_RETURN_IF_ERROR(WriteFile(cfg_.csv, Csv()));
    return Status::Ok();
  }

  static Status WriteFile(const std::string& path, const std::string& text) {
    FILE* f = std::fopen(path.c_str(), "w");
    if (!f) return Status::IoError(fmt::format("open {}", path), errno);
    const size_t n = std::fwrite(text.data(), 1, text.size(), f);
    const int rc = std::fclose(f);
    if (n != text.size() || rc != 0) return Status::IoError(fmt::format("write {}", path), errno);
    return Status::Ok();
  }

  std::string Json() const {
    utsname u{};
    uname(&u);
    std::string s = "{\n";
    s += fmt::format(
        "  \"tool\": \"strata-xferbench\",\n  \"date\": \"{}\",\n  \"kernel\": \"{}\",\n  "
        "\"cpus\": {},\n"
        "  \"mode\": \"{}\",\n  \"host_memory\": \"{}\",\n  \"submit\": \"{}\",\n"
        "  \"backends_available\": \"{}\",\n  \"backend_notes\": \"{}\",\n",
        Today(), JsonEscape(u.release), std::thread::hardware_concurrency(), cfg_.mode,
        cfg_.host_memory, cfg_.submit, JsonEscape(available_),
        JsonEscape(engine_->backend_notes()));
    // Bytes of each host buffer on huge pages after the run (-1: not measured/no buffer).
    s += fmt::format(
        "  \"thp_enabled\": \"{}\",\n  \"host_buffer_bytes\": {},\n  \"host_buffer_huge_bytes\": "
        "{},\n  \"remote_buffer_bytes\": {},\n  \"remote_buffer_huge_bytes\": {},\n",
        JsonEscape(thp_setting_), local_.size(), local_huge_, remote_mem_.size(), remote_huge_);
    s += fmt::format(
        "  \"engine\": {{\"posix_threads\": {}, \"memcpy_threads\": {}, \"uring_rings\": {}, "
        "\"uring_queue_depth\": {}, \"uring_sync_rings\": {}, \"inline_io_bytes\": {}, "
        "\"memcpy_inline_bytes\": {}}},\n",
        opts_.posix_threads, opts_.memcpy_threads, opts_.uring_rings, opts_.uring_queue_depth,
        opts_.uring_sync_rings, opts_.inline_io_bytes, opts_.memcpy_inline_bytes);
    if (file_)
      s += fmt::format("  \"file\": \"{}\",\n  \"file_size\": {},\n", JsonEscape(file_->path),
                       file_->size);
    s += "  \"notes\": [";
    for (size_t i = 0; i < notes_.size(); ++i)
      s += fmt::format("{}\"{}\"", i ? ", " : "", JsonEscape(notes_[i]));
    s += "],\n  \"points\": [";
    for (size_t i = 0; i < points_.size(); ++i) {
      const Point& p = points_[i];
      s += fmt::format(
          "{}\n    {{\"mode\": \"{}\", \"backend\": \"{}\", \"op\": \"{}\", \"block_size\": {}, "
          "\"batch\": {}, \"qd\": {}, \"direct\": \"{}\", \"pattern\": \"{}\", \"repost\": "
          "\"{}\", \"submit\": \"{}\", \"threads\": {}, ",
          i ? "," : "", p.mode, p.backend, p.op, p.block, p.batch, p.qd, p.direct, p.pattern,
          p.repost, p.submit, p.threads);
      s += fmt::format(
          "\"pool_requests\": {}, \"span_bytes\": {}, \"host_slots_shared\": {}, \"seconds\": "
          "{:.6f}, "
          "\"bytes\": {}, \"gbps\": {:.4f}, \"iops\": {:.1f}, ",
          p.pool, p.span_bytes, p.aliased, p.seconds, p.bytes, p.gbps, p.iops);
      s += fmt::format(
          "\"prepare_us_mean\": {:.3f}, \"prepare_us_p99\": {:.3f}, \"post_us_mean\": {}, "
          "\"post_us_p99\": {}, \"completion_us_mean\": {:.3f}, \"completion_us_p99\": {:.3f}",
          p.prep_mean, p.prep_p99, JsonNum(p.post_mean), JsonNum(p.post_p99), p.compl_mean,
          p.compl_p99);
      if (p.memcpy_gbps)
        s += fmt::format(", \"memcpy_gbps\": {:.4f}, \"ratio\": {:.4f}", *p.memcpy_gbps,
                         p.gbps / *p.memcpy_gbps);
      s += "}";
    }
    s += points_.empty() ? "],\n" : "\n  ],\n";
    s += "  \"raw_overhead\": [";
    for (size_t i = 0; i < raw_.size(); ++i) {
      const RawRow& r = raw_[i];
      s += fmt::format(
          "{}\n    {{\"op\": \"{}\", \"block_size\": {}, \"direct\": \"{}\", \"method\": \"{}\", "
          "\"samples\": {}, \"mean_us\": {:.3f}, \"p50_us\": {:.3f}, \"p99_us\": {:.3f}",
          i ? "," : "", r.op, r.block, r.direct, r.method, r.samples, r.mean, r.p50, r.p99);
      if (r.over_syscall) s += fmt::format(", \"overhead_vs_syscall_us\": {:.3f}", *r.over_syscall);
      if (r.over_uring) s += fmt::format(", \"overhead_vs_raw_uring_us\": {:.3f}", *r.over_uring);
      s += "}";
    }
    s += raw_.empty() ? "]\n}\n" : "\n  ]\n}\n";
    return s;
  }

  std::string Csv() const {
    std::string s;
    if (cfg_.mode == "raw-overhead") {
      s = "op,block_size,direct,method,samples,mean_us,p50_us,p99_us,overhead_vs_syscall_us,"
          "overhead_vs_raw_uring_us\n";
      for (const RawRow& r : raw_)
        s += fmt::format("{},{},{},{},{},{:.3f},{:.3f},{:.3f},{},{}\n", r.op, r.block, r.direct,
                         r.method, r.samples, r.mean, r.p50, r.p99,
                         r.over_syscall ? Opt(r.over_syscall, 3) : "",
                         r.over_uring ? Opt(r.over_uring, 3) : "");
      return s;
    }
    s = "mode,backend,op,block_size,batch,qd,direct,pattern,repost,submit,threads,pool_requests,"
        "span_"
        "bytes,host_slots_shared,seconds,bytes,gbps,iops,prepare_us_mean,prepare_us_p99,post_us_"
        "mean,post_us_p99,completion_us_mean,completion_us_p99,memcpy_gbps,ratio\n";
    for (const Point& p : points_)
      s += fmt::format(
          "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.6f},{},{:.4f},{:.1f},{:.3f},{:.3f},{},{},"
          "{:.3f},{:.3f},{},{}\n",
          p.mode, p.backend, p.op, p.block, p.batch, p.qd, p.direct, p.pattern, p.repost, p.submit,
          p.threads, p.pool, p.span_bytes, p.aliased ? 1 : 0, p.seconds, p.bytes, p.gbps, p.iops,
          p.prep_mean, p.prep_p99, CsvNum(p.post_mean), CsvNum(p.post_p99), p.compl_mean,
          p.compl_p99, p.memcpy_gbps ? Opt(p.memcpy_gbps, 4) : "",
          p.memcpy_gbps ? fmt::format("{:.4f}", p.gbps / *p.memcpy_gbps) : "");
    return s;
  }

  Config cfg_;
  std::unique_ptr<TransferEngine> engine_;
  TransferEngineOptions opts_;
  std::mt19937_64 rng_;
  std::vector<uint64_t> blocks_;
  std::vector<BackendKind> kinds_;
  std::vector<TransferOp> ops_;
  std::vector<bool> directs_;
  uint64_t file_size_ = 0, mem_size_ = 0, host_cap_ = 0;
  Limit limit_;
  std::string available_;
  std::vector<std::string> notes_;

  HostBuffer local_, remote_mem_;
  RegionId local_region_ = 0, remote_mem_region_ = 0;
  int64_t local_huge_ = -1, remote_huge_ = -1;  // bytes on huge pages (CheckPages)
  std::string thp_setting_;                     // /sys/kernel/mm/transparent_hugepage/enabled
  std::unique_ptr<BenchFile> file_;
  int64_t file_region_buffered_ = -1, file_region_direct_ = -1;

  std::vector<Point> points_;
  std::vector<RawRow> raw_;
};

std::string DefaultFile() {
  if (access("/var/tmp", W_OK) == 0) return "/var/tmp/strata-xferbench.dat";
  return "strata-xferbench.dat";
}

}  // namespace
}  // namespace strata::bench

int main(int argc, char** argv) {
  using strata::bench::Config;
  Config cfg;
  cfg.file = strata::bench::DefaultFile();
  CLI::App app{"strata-xferbench: transfer engine throughput and latency beside its baselines"};
  app.add_option("--mode", cfg.mode,
                 "file: host<->file sweep; mem: host<->host memcpy backend with a std::memcpy "
                 "baseline; raw-overhead: QD1 engine latency vs raw pread/pwrite and raw io_uring")
      ->check(CLI::IsMember({"file", "mem", "raw-overhead"}))
      ->capture_default_str();
  app.add_option("--backend", cfg.backends, "auto, memcpy, posix, io_uring (list)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--op", cfg.op, "read, write or both")
      ->check(CLI::IsMember({"read", "write", "both"}))
      ->capture_default_str();
  auto* bs_opt = app.add_option("--block-size", cfg.block_sizes, "block sizes (4K, 64K, 1M, ...)")
                     ->delimiter(',')
                     ->capture_default_str();
  app.add_option("--batch", cfg.batches, "descriptors per request (list)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--qd", cfg.qds, "requests kept in flight (list)")
      ->delimiter(',')
      ->capture_default_str();
  app.add_option("--threads", cfg.threads,
                 "posix_threads and memcpy_threads (default: engine defaults)");
  app.add_option("--uring-depth", cfg.uring_depth, "io_uring queue depth per ring")
      ->capture_default_str();
  app.add_option("--uring-rings", cfg.uring_rings, "io_uring rings")->capture_default_str();
  auto* direct_opt =
      app.add_option("--direct", cfg.direct, "O_DIRECT: on, off or both (raw-overhead: both)")
          ->check(CLI::IsMember({"on", "off", "both"}))
          ->capture_default_str();
  app.add_option("--file", cfg.file, "benchmark file (not on tmpfs for O_DIRECT)")
      ->capture_default_str();
  app.add_option("--file-size", cfg.file_size, "benchmark file size")->capture_default_str();
  app.add_option("--mem-size", cfg.mem_size, "mem mode: size of the remote host buffer")
      ->capture_default_str();
  app.add_option("--host-mem", cfg.host_mem, "cap on the local host buffer (qd*batch*block)")
      ->capture_default_str();
  auto* sec_opt =
      app.add_option("--seconds", cfg.seconds, "measured time per point")->capture_default_str();
  app.add_option("--bytes", cfg.bytes, "measure a fixed number of bytes per point instead")
      ->excludes(sec_opt);
  app.add_option("--warmup", cfg.warmup, "unmeasured seconds before each point")
      ->capture_default_str();
  app.add_option("--max-requests", cfg.max_requests, "largest request pool per point")
      ->capture_default_str();
  app.add_option("--rounds", cfg.rounds, "raw-overhead: interleaved rounds per point")
      ->capture_default_str();
  app.add_option("--pattern", cfg.pattern, "remote block order: seq or rand")
      ->check(CLI::IsMember({"seq", "rand"}))
      ->capture_default_str();
  app.add_option("--repost", cfg.repost,
                 "repost the oldest in-flight request once it finishes (oldest), or whichever "
                 "finishes first (any, as fio reaps)")
      ->check(CLI::IsMember({"oldest", "any"}))
      ->capture_default_str();
  app.add_option("--submit", cfg.submit,
                 "how requests are driven (file and mem modes; raw-overhead measures both): "
                 "post = Post + Wait keeping --qd requests in flight; execute = "
                 "TransferEngine::Execute per request (post and wait in one call, which may run "
                 "the request on the calling thread), --qd 1 only; auto = "
                 "execute at --qd 1, post otherwise. With execute there is no separate post "
                 "latency: the Execute call's duration is reported as completion latency and "
                 "post is left empty ('-' in the table, null in JSON, empty in CSV). "
                 "execute-threads = fio psync --numjobs=QD: --qd N runs N caller threads, each "
                 "with its own requests over its own contiguous 1/N slice of the file (as fio's "
                 "--offset_increment) and its own host slots, calling Execute on one request at "
                 "a time; GB/s = all threads' bytes over the time from the common start to the "
                 "last thread's end, completion latency = the Execute calls (submit 'execute xN "
                 "threads'). io_uring then gets uring_sync_rings = N (max 64), one caller ring "
                 "per thread; posix runs each request on its caller with pread/pwrite up to "
                 "inline_io_bytes (1 MiB): larger blocks (4M) are handed to the posix workers "
                 "(--threads)")
      ->check(CLI::IsMember({"auto", "post", "execute", "execute-threads"}))
      ->capture_default_str();
  app.add_option("--host-memory", cfg.host_memory,
                 "host buffer pages (mem mode: both buffers, and the std::memcpy baseline copies "
                 "between the same two): thp (MADV_HUGEPAGE + pattern, as the G2 host tier), "
                 "hugetlb (MAP_HUGETLB|MAP_HUGE_2MB + pattern, as fio --iomem=mmaphuge; needs "
                 "reserved pages in /proc/sys/vm/nr_hugepages), populate (MAP_POPULATE + "
                 "pattern, 4 KiB pages), lazy (untouched until registered or first used, like "
                 "fio's malloc'd buffers)")
      ->check(CLI::IsMember({"thp", "hugetlb", "populate", "lazy"}))
      ->capture_default_str();
  app.add_option("--seed", cfg.seed, "seed of the rand pattern")->capture_default_str();
  app.add_flag("--keep-file", cfg.keep_file, "keep a benchmark file this run created");
  app.add_option("--json", cfg.json, "write results as JSON to this file");
  app.add_option("--csv", cfg.csv, "write results as CSV to this file");
  app.add_flag("--quiet", cfg.quiet, "print only the results table");
  CLI11_PARSE(app, argc, argv);
  // The engine logs missing backends at info level; the bench reports them itself, and
  // stdout is for the results table.
  spdlog::set_level(spdlog::level::warn);

  if (cfg.mode == "raw-overhead") {
    if (bs_opt->count() == 0) cfg.block_sizes = {"4K", "64K"};
    if (direct_opt->count() == 0) cfg.direct = "both";
  }

  strata::TransferEngineOptions opts;
  if (cfg.threads > 0) {
    opts.posix_threads = cfg.threads;
    opts.memcpy_threads = cfg.threads;
  }
  opts.uring_queue_depth = cfg.uring_depth;
  opts.uring_rings = cfg.uring_rings;
  if (cfg.submit == "execute-threads" && !cfg.qds.empty()) {
    // One caller-driven io_uring ring per thread (the engine allows up to 64).
    const uint32_t most = *std::max_element(cfg.qds.begin(), cfg.qds.end());
    opts.uring_sync_rings = std::clamp<uint32_t>(most, 1, 64);
  }
  auto engine = strata::TransferEngine::Create(opts);
  if (!engine.ok()) {
    fmt::print(stderr, "strata-xferbench: {}\n", engine.status().ToString());
    return 1;
  }
  strata::bench::Bench bench(std::move(cfg), std::move(engine).value(), opts);
  return bench.Run();
}
