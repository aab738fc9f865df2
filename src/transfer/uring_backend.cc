// io_uring backend: batched asynchronous file I/O on N rings with registered files and buffers.
//
// Shape:
// - `uring_rings` rings, each with its own SQ mutex, its own completion thread and its own
//   queue of waiting work, so posts on different rings never contend and no single lock
//   funnels every I/O (NIXL's POSIX backend's fault).
// - At most `uring_queue_depth` I/Os are in flight per ring. The rest wait in the ring's
//   FIFO, which is intrusive: its nodes (one cursor per request part, one slot per entry)
//   live in the request's backend_state, allocated once in Prepare, so Post allocates
//   nothing however large the batch is.
// - Files and host memory are registered with every ring at OnRegister (fixed files,
//   fixed buffers), so the kernel does not look up the fd nor pin pages on each I/O.
//   When the kernel or the memlock limit refuses, I/O falls back to plain fds and buffers.
// - An entry larger than kMaxChunk moves in several consecutive I/Os (the kernel moves at
//   most ~2 GiB per read/write); it completes once, when its last chunk does.
// - TransferEngine::Execute (a caller that would wait at once) borrows one of
//   `uring_sync_rings` caller-driven rings: it submits the request's I/Os and reaps their
//   completions itself, one io_uring_enter per round and no thread hand-off, which is what
//   a plain liburing loop pays. Those rings have the same registered files and buffers.
#include <liburing.h>
#include <pthread.h>
#include <sys/uio.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "transfer/request.h"

namespace strata::internal {
namespace {

// Slots of every ring's sparse registered-file and registered-buffer tables. A region
// registered when its table is full simply uses its raw fd / unregistered memory.
constexpr unsigned kFixedFiles = 1024;
constexpr unsigned kFixedBuffers = 1024;
// Largest single read/write: the kernel caps one at INT_MAX & PAGE_MASK bytes, and a
// chunk of 1 GiB keeps every chunk of an O_DIRECT entry aligned.
constexpr uint64_t kMaxChunk = uint64_t{1} << 30;
// user_data of the NOP that wakes a completion thread at shutdown; every I/O carries the
// (non-null) address of its EntrySlot instead.
constexpr uint64_t kWakeTag = 0;
constexpr uint32_t kMaxRings = 64;
constexpr uint32_t kMaxQueueDepth = 4096;

// One entry of a request: the per-post progress of its I/O, and the link that queues it
// for its next chunk. Written by whoever issues the entry (under the ring mutex) and by
// the completion thread; never by two at once, since one chunk is in flight at a time.
struct EntrySlot {
  RequestImpl* request = nullptr;
  uint32_t index = 0;
  int32_t buffer = -1;        // fixed buffer holding the whole entry, or -1 (plain buffer)
  uint64_t done = 0;          // bytes moved by this post so far
  uint64_t target = 0;        // bytes to move this post: the length, or an injected short count
  uint64_t chunk = 0;         // bytes of the chunk in flight
  EntrySlot* next = nullptr;  // continuation list link
};

// A FIFO of entries linked through EntrySlot::next.
struct SlotList {
  EntrySlot* head = nullptr;
  EntrySlot* tail = nullptr;

  bool empty() const { return head == nullptr; }
  void Push(EntrySlot* s) {
    s->next = nullptr;
    (tail ? tail->next : head) = s;
    tail = s;
  }
  EntrySlot* Pop() {
    EntrySlot* s = head;
    head = s->next;
    if (head == nullptr) tail = nullptr;
    return s;
  }
  void Append(const SlotList& other) {
    if (other.empty()) return;
    (tail ? tail->next : head) = other.head;
    tail = other.tail;
  }
};

// A contiguous part [next, end) of a request's entries waiting for room on one ring.
struct Cursor {
  EntrySlot* slots = nullptr;
  uint32_t next = 0;
  uint32_t end = 0;
  Cursor* link = nullptr;  // ring FIFO link
};

// RequestImpl::backend_state of an io_uring request.
struct UringRequestState {
  std::vector<EntrySlot> slots;  // one per entry
  std::vector<Cursor> cursors;   // one per ring a post may use
};

struct Ring {
  io_uring uring{};
  bool initialised = false;

  // Guards the SQ side of `uring` (liburing's SQ is single-producer) and the queues below.
  std::mutex mu;
  uint32_t in_flight = 0;  // I/Os prepared and not yet reaped; GUARDED_BY(mu)
  Cursor* head = nullptr;  // FIFO of request parts; GUARDED_BY(mu)
  Cursor* tail = nullptr;  // GUARDED_BY(mu)
  SlotList cont;           // entries with a next chunk to issue; GUARDED_BY(mu)
  bool stopping = false;   // GUARDED_BY(mu)
  // Set when io_uring_enter refused a submission: the SQEs stay in the SQ and the
  // completion thread retries them on a timer instead of blocking forever.
  std::atomic<bool> stalled{false};
  // Bumped (release) after SQEs are filled and before they are submitted; the completion
  // thread reads it (acquire) after seeing CQEs. The kernel orders the two already, but
  // this makes the slot writes visible to ThreadSanitizer, which cannot see through it.
  std::atomic<uint64_t> submitted{0};

  std::thread completer;
};

// A ring driven by the thread that borrowed it (TransferEngine::Execute): no completion
// thread, no queue; `mu` is held for the whole request.
struct SyncRing {
  io_uring uring{};
  bool initialised = false;
  std::mutex mu;
};

class IoUringBackend final : public TransferBackend {
 public:
  explicit IoUringBackend(const TransferEngineOptions& options)
      : depth_(options.uring_queue_depth),
        want_fixed_buffers_(options.uring_register_buffers),
        register_max_bytes_(options.uring_register_buffers_max_bytes),
        inline_bytes_(options.inline_io_bytes),
        rings_(options.uring_rings),
        sync_rings_(options.uring_sync_rings) {
    for (auto& r : rings_) r = std::make_unique<Ring>();
    for (auto& r : sync_rings_) r = std::make_unique<SyncRing>();
  }

  ~IoUringBackend() override {
    // Finish every queued and in-flight I/O (requests hold raw pointers into their
    // slots), then wake each completion thread with a NOP so it sees `stopping`.
    for (auto& r : rings_) {
      if (!r->completer.joinable()) continue;
      std::lock_guard lock(r->mu);
      r->stopping = true;
      if (io_uring_sqe* sqe = io_uring_get_sqe(&r->uring)) {
        io_uring_prep_nop(sqe);
        io_uring_sqe_set_data64(sqe, kWakeTag);
        SubmitLocked(*r);
      }
    }
    for (auto& r : rings_)
      if (r->completer.joinable()) r->completer.join();
    for (auto& r : rings_)
      if (r->initialised) io_uring_queue_exit(&r->uring);
    for (auto& r : sync_rings_)
      if (r->initialised) io_uring_queue_exit(&r->uring);
  }

  Status Init() {
    for (size_t i = 0; i < rings_.size(); ++i) {
      STRATA_RETURN_IF_ERROR(InitRing(rings_[i]->uring, fmt::format("ring {}", i)));
      rings_[i]->initialised = true;
      all_.push_back(&rings_[i]->uring);
    }
    for (size_t i = 0; i < sync_rings_.size(); ++i) {
      STRATA_RETURN_IF_ERROR(InitRing(sync_rings_[i]->uring, fmt::format("caller ring {}", i)));
      sync_rings_[i]->initialised = true;
      all_.push_back(&sync_rings_[i]->uring);
    }
    STRATA_RETURN_IF_ERROR(ProbeOpcodes());
    ext_arg_ = (rings_[0]->uring.features & IORING_FEAT_EXT_ARG) != 0;

    // Sparse tables (5.19+) let regions come and go one slot at a time. Without them,
    // every I/O uses plain fds and buffers, which works on any kernel with io_uring.
    fixed_files_ = RegisterOnAllRings(
        "io_uring_register_files_sparse",
        [](io_uring* u) { return io_uring_register_files_sparse(u, kFixedFiles); },
        [](io_uring* u) { io_uring_unregister_files(u); });
    fixed_buffers_ =
        want_fixed_buffers_ &&
        RegisterOnAllRings(
            "io_uring_register_buffers_sparse",
            [](io_uring* u) { return io_uring_register_buffers_sparse(u, kFixedBuffers); },
            [](io_uring* u) { io_uring_unregister_buffers(u); });
    if (fixed_files_) file_used_.assign(kFixedFiles, false);
    if (fixed_buffers_) buffer_used_.assign(kFixedBuffers, false);

    for (size_t i = 0; i < rings_.size(); ++i) {
      Ring* r = rings_[i].get();
      r->completer = std::thread([this, r, i] {
        pthread_setname_np(pthread_self(), fmt::format("strata-uring{}", i).c_str());
        CompletionLoop(*r);
      });
    }
    return Status::Ok();
  }

  BackendKind kind() const override { return BackendKind::kIoUring; }

  bool Supports(const RegionInfo& local, const RegionInfo& remote) const override {
    return local.host_addressable() && remote.type == MemoryType::kFile;
  }

  // Never fails: a region the tables cannot hold is moved with its raw fd or buffer.
  Status OnRegister(RegionInfo& region) override {
    std::lock_guard lock(reg_mu_);
    if (region.type == MemoryType::kFile) {
      if (fixed_files_) RegisterFile(region);
    } else if (region.type == MemoryType::kHost && fixed_buffers_ &&
               region.length <= register_max_bytes_) {
      // Only host RAM: host-emulated device memory reaches files through G2 staging, and
      // pinning it would cost memlock and start-up time for nothing. Only regions up to
      // the limit: pinning a large host tier costs seconds of start-up.
      RegisterBuffers(region);
    }
    return Status::Ok();
  }

  void OnDeregister(RegionInfo& region) override {
    std::lock_guard lock(reg_mu_);
    if (region.uring_file_index >= 0) {
      const int none = -1;
      for (io_uring* u : all_) io_uring_register_files_update(u, region.uring_file_index, &none, 1);
      file_used_[region.uring_file_index] = false;
      region.uring_file_index = -1;
    }
    if (region.uring_buffer_index >= 0) {
      const unsigned first = static_cast<unsigned>(region.uring_buffer_index);
      const unsigned n = BufferCount(region);
      UpdateBuffers(first, std::vector<iovec>(n, iovec{nullptr, 0}));
      std::fill_n(buffer_used_.begin() + first, n, false);
      region.uring_buffer_index = -1;
    }
  }

  // All allocation for the request's lifetime happens here: one slot per entry and one
  // cursor per ring.
  Status Prepare(RequestImpl& req) override {
    if (req.entries.size() > UINT32_MAX)
      return Status::InvalidArgument(
          fmt::format("io_uring: {} descriptors in one request", req.entries.size()));
    auto state = std::make_shared<UringRequestState>();
    state->slots.resize(req.entries.size());
    state->cursors.resize(rings_.size());
    for (size_t i = 0; i < req.entries.size(); ++i) {
      EntrySlot& s = state->slots[i];
      s.request = &req;
      s.index = static_cast<uint32_t>(i);
      s.buffer = FixedBufferFor(req.entries[i]);
    }
    req.backend_state = std::move(state);
    return Status::Ok();
  }

  // A caller about to wait (TransferEngine::Execute) drives a ring of its own: no thread
  // hand-off at all. When every caller ring is busy, a small request runs with
  // pread/pwrite on this thread and a large one goes through the shared rings.
  bool RunInline(RequestImpl& req) override {
    if (SyncRing* ring = TryBorrowSyncRing()) {
      std::lock_guard lock(ring->mu, std::adopt_lock);
      RunOnSyncRing(*ring, req);
      return true;
    }
    if (req.total_bytes > inline_bytes_) return false;
    RunFileEntries(req, 0, static_cast<uint32_t>(req.entries.size()));
    return true;
  }

  void Post(RequestImpl& req) override {
    auto* state = static_cast<UringRequestState*>(req.backend_state.get());
    if (state == nullptr) {
      // The engine always prepares; this is only a guard, and it allocates once.
      if (Status s = Prepare(req); !s.ok()) {
        for (size_t i = 0; i < req.entries.size(); ++i)
          if (req.Begin(i)) req.Complete(i, s);
        return;
      }
      state = static_cast<UringRequestState*>(req.backend_state.get());
    }
    const uint32_t n = static_cast<uint32_t>(req.entries.size());
    const uint32_t nrings = static_cast<uint32_t>(rings_.size());
    // A batch that fits one ring's queue goes to one ring (round-robin over posts); a
    // larger one is cut into contiguous parts, one per ring, so big batches use every
    // ring while each ring still sees sequential offsets.
    const uint32_t parts = std::min(nrings, std::max<uint32_t>(1, (n + depth_ - 1) / depth_));
    const uint32_t first = next_ring_.fetch_add(1, std::memory_order_relaxed) % nrings;
    EntrySlot* slots = state->slots.data();
    Cursor* cursors = state->cursors.data();
    // Once the last part is queued the request may complete and its owner free it:
    // everything used below comes from locals, never from `req` or `state`.
    for (uint32_t p = 0; p < parts; ++p) {
      Ring& r = *rings_[(first + p) % nrings];
      Cursor& c = cursors[p];
      std::lock_guard lock(r.mu);
      c.slots = slots;
      c.next = static_cast<uint32_t>(uint64_t{n} * p / parts);
      c.end = static_cast<uint32_t>(uint64_t{n} * (p + 1) / parts);
      c.link = nullptr;
      if (c.next == c.end) continue;
      (r.tail ? r.tail->link : r.head) = &c;
      r.tail = &c;
      PumpLocked(r);
    }
  }

 private:
  Status InitRing(io_uring& uring, const std::string& what) {
    // SUBMIT_ALL (5.18+): one bad SQE does not stop the rest of the batch. Older
    // kernels reject the flag; the submit loops cope without it.
    int ret = io_uring_queue_init(depth_, &uring, IORING_SETUP_SUBMIT_ALL);
    if (ret == -EINVAL) ret = io_uring_queue_init(depth_, &uring, 0);
    if (ret < 0)
      return Status::IoError(fmt::format("io_uring_queue_init(entries {}) for {}", depth_, what),
                             -ret);
    return Status::Ok();
  }

  // A free caller ring, locked, or null. Starts at a rotating ring so concurrent callers
  // spread over the pool instead of all trying ring 0 first.
  SyncRing* TryBorrowSyncRing() {
    const size_t n = sync_rings_.size();
    if (n == 0) return nullptr;
    const size_t first = next_sync_.fetch_add(1, std::memory_order_relaxed);
    for (size_t k = 0; k < n; ++k) {
      SyncRing& r = *sync_rings_[(first + k) % n];
      if (r.mu.try_lock()) return &r;
    }
    return nullptr;
  }

  // Moves every entry of `req` through `ring` on this thread: keeps up to depth_ I/Os in
  // flight, submits and waits in one io_uring_enter, reaps, refills. The request is done
  // when this returns.
  void RunOnSyncRing(SyncRing& ring, RequestImpl& req) {
    auto* state = static_cast<UringRequestState*>(req.backend_state.get());
    EntrySlot* slots = state->slots.data();
    const uint32_t n = static_cast<uint32_t>(req.entries.size());
    uint32_t next = 0, in_flight = 0;
    SlotList cont;  // entries with another chunk to issue
    for (;;) {
      while (in_flight < depth_) {
        EntrySlot* s;
        if (!cont.empty()) {
          s = cont.Pop();
        } else if (next < n) {
          s = &slots[next++];
          if (!StartEntry(*s)) continue;
        } else {
          break;
        }
        PrepareChunk(io_uring_get_sqe(&ring.uring), *s);  // room: in_flight < depth_
        ++in_flight;
      }
      if (in_flight == 0) return;
      // Submits whatever is still in the SQ and waits for one completion; the SQEs of a
      // refused submission stay in the SQ for the next round.
      const int ret = io_uring_submit_and_wait(&ring.uring, 1);
      if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -EBUSY && ret != -ETIME) {
        if (!sync_stall_logged_.exchange(true, std::memory_order_relaxed))
          spdlog::error("strata io_uring: io_uring_submit_and_wait: {}; retrying", ErrnoText(ret));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      unsigned head, seen = 0;
      io_uring_cqe* cqe;
      io_uring_for_each_cqe(&ring.uring, head, cqe) {
        ++seen;
        --in_flight;
        auto* s = reinterpret_cast<EntrySlot*>(static_cast<uintptr_t>(cqe->user_data));
        if (ChunkDone(*s, cqe->res)) cont.Push(s);
      }
      if (seen > 0) io_uring_cq_advance(&ring.uring, seen);
    }
  }

  Status ProbeOpcodes() {
    io_uring_probe* probe = io_uring_get_probe_ring(&rings_[0]->uring);
    if (probe == nullptr)
      return Status::NotSupported(
          "io_uring: the kernel cannot list its opcodes (IORING_REGISTER_PROBE needs Linux 5.6+)");
    std::string missing;
    for (auto [op, name] : {std::pair{IORING_OP_READ, "READ"},
                            {IORING_OP_WRITE, "WRITE"},
                            {IORING_OP_READ_FIXED, "READ_FIXED"},
                            {IORING_OP_WRITE_FIXED, "WRITE_FIXED"},
                            {IORING_OP_NOP, "NOP"}}) {
      if (!io_uring_opcode_supported(probe, op))
        missing += fmt::format("{}{}", missing.empty() ? "" : ", ", name);
    }
    io_uring_free_probe(probe);
    if (!missing.empty())
      return Status::NotSupported(fmt::format("io_uring: the kernel lacks opcodes {}", missing));
    return Status::Ok();
  }

  // Runs `reg` on every ring; on the first failure undoes it on the rings done so far,
  // logs why, and returns false.
  template <typename Reg, typename Unreg>
  bool RegisterOnAllRings(std::string_view what, Reg reg, Unreg unreg) {
    for (size_t i = 0; i < all_.size(); ++i) {
      const int ret = reg(all_[i]);
      if (ret < 0) {
        for (size_t j = 0; j < i; ++j) unreg(all_[j]);
        spdlog::info("strata io_uring: {} failed: {} ({}); using unregistered {}", what,
                     strerror(-ret), strerrorname_np(-ret) ? strerrorname_np(-ret) : "?",
                     what.find("files") != std::string_view::npos ? "fds" : "buffers");
        return false;
      }
    }
    return true;
  }

  // REQUIRES(reg_mu_).
  void RegisterFile(RegionInfo& region) {
    auto it = std::find(file_used_.begin(), file_used_.end(), false);
    if (it == file_used_.end()) {
      Note(fmt::format("file '{}': all {} registered-file slots are taken; it uses its raw fd",
                       region.name, kFixedFiles));
      return;
    }
    const int idx = static_cast<int>(it - file_used_.begin());
    for (size_t i = 0; i < all_.size(); ++i) {
      const int ret = io_uring_register_files_update(all_[i], idx, &region.fd, 1);
      if (ret != 1) {
        const int none = -1;
        for (size_t j = 0; j < i; ++j) io_uring_register_files_update(all_[j], idx, &none, 1);
        Note(fmt::format("file '{}': io_uring_register_files_update: {}; it uses its raw fd",
                         region.name, ErrnoText(ret)));
        return;
      }
    }
    *it = true;
    region.uring_file_index = idx;
  }

  static unsigned BufferCount(const RegionInfo& region) {
    return static_cast<unsigned>((region.length + kUringBufferSpan - 1) / kUringBufferSpan);
  }

  // REQUIRES(reg_mu_). Registers the region as consecutive fixed buffers of at most
  // kUringBufferSpan bytes each (the kernel's limit per buffer).
  void RegisterBuffers(RegionInfo& region) {
    const uint64_t count = (region.length + kUringBufferSpan - 1) / kUringBufferSpan;
    // First fit of `count` consecutive free slots: registration is rare, tables are small.
    unsigned first = 0, run = 0;
    for (unsigned i = 0; i < buffer_used_.size() && run < count; ++i) {
      if (buffer_used_[i]) {
        run = 0;
        first = i + 1;
      } else {
        ++run;
      }
    }
    if (run < count) {
      Note(fmt::format(
          "memory '{}' ({} bytes): no {} free registered-buffer slots; its I/O uses unregistered "
          "buffers",
          region.name, region.length, count));
      return;
    }
    std::vector<iovec> iov(count);
    for (uint64_t k = 0; k < count; ++k) {
      const uint64_t off = k * kUringBufferSpan;
      iov[k] = {region.addr + off,
                static_cast<size_t>(std::min(kUringBufferSpan, region.length - off))};
    }
    if (int err = UpdateBuffers(first, iov); err != 0) {
      // Typically ENOMEM: pinning counts against RLIMIT_MEMLOCK (once per ring)
      // unless the process has CAP_IPC_LOCK.
      Note(fmt::format(
          "memory '{}' ({} bytes): io_uring_register_buffers_update: {}{}; its I/O uses "
          "unregistered buffers",
          region.name, region.length, ErrnoText(err),
          err == -ENOMEM ? " (pinned memory is limited by RLIMIT_MEMLOCK, ulimit -l, per ring, "
                           "unless the process has CAP_IPC_LOCK)"
                         : ""));
      return;
    }
    std::fill_n(buffer_used_.begin() + first, count, true);
    region.uring_buffer_index = static_cast<int32_t>(first);
  }

  // Sets buffer slots [first, first + iov.size()) on every ring, all or nothing: on
  // failure the slots are emptied again everywhere. Returns 0 or the -errno.
  int UpdateBuffers(unsigned first, const std::vector<iovec>& iov) {
    const unsigned n = static_cast<unsigned>(iov.size());
    for (size_t i = 0; i < all_.size(); ++i) {
      const int ret = io_uring_register_buffers_update_tag(all_[i], first, iov.data(), nullptr, n);
      if (ret != static_cast<int>(n)) {
        const std::vector<iovec> empty(n, iovec{nullptr, 0});
        for (size_t j = 0; j <= i; ++j)
          io_uring_register_buffers_update_tag(all_[j], first, empty.data(), nullptr, n);
        return ret < 0 ? ret : -EIO;  // a partial update has no errno of its own
      }
    }
    return 0;
  }

  static std::string ErrnoText(int ret) {
    const int e = ret < 0 ? -ret : EIO;
    const char* name = strerrorname_np(e);
    return fmt::format("{} ({})", strerror(e), name ? name : "?");
  }

  // Registration trouble costs speed, not correctness: say so once loudly, then quietly.
  void Note(const std::string& note) {
    if (!noted_) {
      spdlog::warn("strata io_uring: {}", note);
      noted_ = true;
    } else {
      spdlog::debug("strata io_uring: {}", note);
    }
  }

  // The fixed buffer holding all of [local, local + length), or -1.
  static int32_t FixedBufferFor(const XferEntry& e) {
    const RegionInfo* r = e.local_region;
    if (r == nullptr || r->uring_buffer_index < 0 || e.length == 0) return -1;
    const uint64_t off = static_cast<uint64_t>(e.local - r->addr);
    const uint64_t span = off / kUringBufferSpan;
    if ((off + e.length - 1) / kUringBufferSpan != span) return -1;  // straddles two buffers
    return r->uring_buffer_index + static_cast<int32_t>(span);
  }

  // REQUIRES(r.mu). Fills the free SQ room (depth - in flight) with next chunks of
  // entries already started, then with new entries from the FIFO, and submits them
  // in one io_uring_enter.
  void PumpLocked(Ring& r) {
    uint32_t prepared = 0;
    while (r.in_flight < depth_) {
      EntrySlot* s;
      if (!r.cont.empty()) {
        s = r.cont.Pop();
      } else if (r.head != nullptr) {
        Cursor* c = r.head;
        s = &c->slots[c->next++];
        // Unlink an exhausted part before starting its last entry: that entry may be the
        // request's last to complete, after which the cursor's memory may be gone.
        if (c->next == c->end) {
          r.head = c->link;
          if (r.head == nullptr) r.tail = nullptr;
        }
        if (!StartEntry(*s)) continue;
      } else {
        break;
      }
      io_uring_sqe* sqe = io_uring_get_sqe(&r.uring);
      // Cannot be null: the SQ holds >= depth_ entries and in_flight < depth_ counts
      // every SQE not yet reaped, submitted or not.
      PrepareChunk(sqe, *s);
      ++r.in_flight;
      ++prepared;
    }
    if (prepared > 0) {
      r.submitted.fetch_add(prepared, std::memory_order_release);
      SubmitLocked(r);
    }
  }

  // REQUIRES(ring mu). Begins a new entry for this post: false when it needs no I/O
  // (cancelled, or failed by an injected error), in which case it is already completed.
  static bool StartEntry(EntrySlot& s) {
    RequestImpl& req = *s.request;
    if (!req.Begin(s.index)) return false;
    const XferEntry& e = req.entries[s.index];
    s.done = 0;
    s.target = e.length;
    if (e.remote_region->faults) {
      const IoFault f = e.remote_region->faults->Check(req.op, e.remote_offset, e.length);
      if (f.kind == IoFault::Kind::kError) {
        req.Complete(s.index, IoResultStatus(req.op, e, -static_cast<int64_t>(f.error), e.length));
        return false;
      }
      // A short fault really issues the shorter I/O; completion then reports it as short.
      if (f.kind == IoFault::Kind::kShort) s.target = std::min(f.bytes, e.length);
    }
    if (s.target == 0) {
      req.Complete(s.index, IoResultStatus(req.op, e, 0, e.length));
      return false;
    }
    return true;
  }

  // Prepares the next chunk of entry `s` into `sqe`: fixed file and fixed buffer when
  // registered (the kernel skips the fd lookup and page pinning), plain otherwise.
  static void PrepareChunk(io_uring_sqe* sqe, EntrySlot& s) {
    const RequestImpl& req = *s.request;
    const XferEntry& e = req.entries[s.index];
    const RegionInfo& file = *e.remote_region;
    s.chunk = std::min(s.target - s.done, kMaxChunk);
    std::byte* buf = e.local + s.done;
    const uint64_t off = e.remote_offset + s.done;
    const unsigned len = static_cast<unsigned>(s.chunk);
    const bool fixed_file = file.uring_file_index >= 0;
    const int fd = fixed_file ? file.uring_file_index : file.fd;
    if (req.op == TransferOp::kRead) {
      if (s.buffer >= 0) {
        io_uring_prep_read_fixed(sqe, fd, buf, len, off, s.buffer);
      } else {
        io_uring_prep_read(sqe, fd, buf, len, off);
      }
    } else {
      if (s.buffer >= 0) {
        io_uring_prep_write_fixed(sqe, fd, buf, len, off, s.buffer);
      } else {
        io_uring_prep_write(sqe, fd, buf, len, off);
      }
    }
    if (fixed_file) io_uring_sqe_set_flags(sqe, IOSQE_FIXED_FILE);
    io_uring_sqe_set_data(sqe, &s);
  }

  // REQUIRES(r.mu). Submits every SQE in the SQ. A partial submission leaves the rest in
  // the SQ (the next io_uring_enter takes them); transient refusals are retried; a
  // persistent one marks the ring stalled so the completion thread retries on a timer.
  void SubmitLocked(Ring& r) {
    for (int attempt = 0; io_uring_sq_ready(&r.uring) > 0; ++attempt) {
      const int ret = io_uring_submit(&r.uring);
      if (ret >= 0) continue;
      if ((ret == -EINTR || ret == -EAGAIN || ret == -EBUSY) && attempt < 100) {
        std::this_thread::yield();
        continue;
      }
      if (!r.stalled.exchange(true, std::memory_order_relaxed))
        spdlog::error("strata io_uring: io_uring_submit: {}; retrying from the completion thread",
                      ErrnoText(ret));
      return;
    }
    r.stalled.store(false, std::memory_order_relaxed);
  }

  // Completion thread of ring `r`: reaps CQEs in batches, completes entries (outside the
  // ring mutex), then refills the ring from its queues.
  void CompletionLoop(Ring& r) {
    for (;;) {
      io_uring_cqe* cqe = nullptr;
      int ret;
      if (ext_arg_ && r.stalled.load(std::memory_order_relaxed)) {
        __kernel_timespec ts{.tv_sec = 0, .tv_nsec = 10'000'000};
        ret = io_uring_wait_cqe_timeout(&r.uring, &cqe, &ts);
      } else {
        ret = io_uring_wait_cqe(&r.uring, &cqe);
      }
      if (ret < 0 && ret != -EINTR && ret != -EAGAIN && ret != -ETIME) {
        spdlog::error("strata io_uring: io_uring_wait_cqe: {}", ErrnoText(ret));
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }

      uint32_t reaped = 0, seen = 0;
      SlotList cont;
      unsigned head;
      io_uring_for_each_cqe(&r.uring, head, cqe) {
        ++seen;
        if (cqe->user_data == kWakeTag) continue;
        ++reaped;
        // After seeing this CQE, so the load sees its submitter's bump: see Ring::submitted.
        r.submitted.load(std::memory_order_acquire);
        auto* s = reinterpret_cast<EntrySlot*>(static_cast<uintptr_t>(cqe->user_data));
        if (ChunkDone(*s, cqe->res)) cont.Push(s);
      }
      if (seen > 0) io_uring_cq_advance(&r.uring, seen);

      std::lock_guard lock(r.mu);
      r.in_flight -= reaped;
      r.cont.Append(cont);
      if (r.stalled.load(std::memory_order_relaxed)) SubmitLocked(r);
      PumpLocked(r);
      if (r.stopping && r.in_flight == 0 && r.head == nullptr && r.cont.empty()) return;
    }
  }

  // Accounts one finished chunk of `s`. Returns true when the entry has another chunk
  // to issue; otherwise completes the entry (after which `s` must not be touched: the
  // request may already be gone).
  static bool ChunkDone(EntrySlot& s, int res) {
    RequestImpl& req = *s.request;
    const XferEntry& e = req.entries[s.index];
    if (res < 0) {
      // -EINVAL here is typically a misaligned O_DIRECT buffer; IoResultStatus says so.
      req.Complete(s.index, IoResultStatus(req.op, e, res, e.length));
      return false;
    }
    s.done += static_cast<uint64_t>(res);
    if (static_cast<uint64_t>(res) == s.chunk && s.done < s.target) return true;
    // Full length: OK. Otherwise a real short count, or an injected one (target < length).
    req.Complete(s.index, s.done == e.length
                              ? Status::Ok()
                              : IoResultStatus(req.op, e, static_cast<int64_t>(s.done), e.length));
    return false;
  }

  const uint32_t depth_;
  const bool want_fixed_buffers_;      // TransferEngineOptions::uring_register_buffers
  const uint64_t register_max_bytes_;  // ... for host regions up to this size
  const uint64_t inline_bytes_;        // TransferEngineOptions::inline_io_bytes
  std::vector<std::unique_ptr<Ring>> rings_;
  std::atomic<uint32_t> next_ring_{0};
  std::vector<std::unique_ptr<SyncRing>> sync_rings_;  // for Execute
  std::atomic<size_t> next_sync_{0};
  std::atomic<bool> sync_stall_logged_{false};
  std::vector<io_uring*> all_;  // every initialised ring, shared and caller-driven
  bool ext_arg_ = false;

  bool fixed_files_ = false;    // every ring has a sparse file table
  bool fixed_buffers_ = false;  // every ring has a sparse buffer table
  std::mutex reg_mu_;
  std::vector<bool> file_used_;    // GUARDED_BY(reg_mu_)
  std::vector<bool> buffer_used_;  // GUARDED_BY(reg_mu_)
  bool noted_ = false;             // GUARDED_BY(reg_mu_)
};

}  // namespace

Result<std::unique_ptr<TransferBackend>> MakeIoUringBackend(const TransferEngineOptions& options) {
  if (options.uring_rings == 0 || options.uring_rings > kMaxRings)
    return Status::InvalidArgument(
        fmt::format("TransferEngineOptions.uring_rings is {}; it must be 1..{}",
                    options.uring_rings, kMaxRings));
  if (options.uring_sync_rings > kMaxRings)
    return Status::InvalidArgument(
        fmt::format("TransferEngineOptions.uring_sync_rings is {}; it must be 0..{}",
                    options.uring_sync_rings, kMaxRings));
  if (options.uring_queue_depth == 0 || options.uring_queue_depth > kMaxQueueDepth)
    return Status::InvalidArgument(
        fmt::format("TransferEngineOptions.uring_queue_depth is {}; it must be 1..{}",
                    options.uring_queue_depth, kMaxQueueDepth));
  auto backend = std::make_unique<IoUringBackend>(options);
  STRATA_RETURN_IF_ERROR(backend->Init());
  return std::unique_ptr<TransferBackend>(std::move(backend));
}

}  // namespace strata::internal
