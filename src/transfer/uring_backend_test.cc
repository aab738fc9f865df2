// io_uring backend through the public TransferEngine API: round trips with and without
// O_DIRECT, batches deeper than the queue, concurrent posters, re-posts, every fault
// class reported per descriptor, cancellation, fixed-table exhaustion, >1 GiB entries.
// Round trips and faults run twice: posted (shared rings, completion thread) and through
// Execute (a ring driven by the calling thread).
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <numeric>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "strata/fault_injection.h"
#include "strata/transfer.h"

namespace strata {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kPage = 4096;

// Page-aligned anonymous memory (O_DIRECT needs aligned buffers), zero-filled.
struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : size(n) {
    void* m = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                   -1, 0);
    p = m == MAP_FAILED ? nullptr : static_cast<std::byte*>(m);
  }
  ~AlignedBuffer() {
    if (p) munmap(p, size);
  }
  AlignedBuffer(const AlignedBuffer&) = delete;
  AlignedBuffer& operator=(const AlignedBuffer&) = delete;
  void Fill(uint32_t seed) {
    std::mt19937 rng(seed);
    auto* w = reinterpret_cast<uint32_t*>(p);
    for (size_t i = 0; i < size / 4; ++i) w[i] = rng();
  }
  std::byte* p;
  size_t size;
};

std::vector<uint32_t> Iota(uint32_t n, uint32_t first = 0) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

// Runs body(t) on n threads at once; the sum of the failures they count.
int FailuresOnThreads(uint32_t n, const std::function<int(uint32_t)>& body) {
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < n; ++t) threads.emplace_back([&, t] { failures += body(t); });
  for (auto& th : threads) th.join();
  return failures.load();
}

class UringBackendTest : public ::testing::Test {
 protected:
  void TearDown() override {
    engine_.reset();  // drains the rings before the files close
    for (int fd : fds_) close(fd);
  }

  // Creates the engine; false when this machine has no usable io_uring (the test then
  // skips with the engine's reason).
  bool Start(uint32_t queue_depth = 64, uint32_t rings = 1, uint32_t sync_rings = 2) {
    auto e = TransferEngine::Create(
        {.uring_rings = rings, .uring_queue_depth = queue_depth, .uring_sync_rings = sync_rings});
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    if (!e.ok()) return false;
    engine_ = std::move(e).value();
    const auto b = engine_->backends();
    return std::find(b.begin(), b.end(), BackendKind::kIoUring) != b.end();
  }

  // A new file of `size` bytes in the test temp dir; -1 when O_DIRECT is refused here.
  // Unlinked at once, so a crashed or killed test leaves nothing behind.
  int OpenFile(uint64_t size, bool direct) {
    const std::string path = testing::TempDir() + "/uring_backend_test_" +
                             std::to_string(getpid()) + "_" + std::to_string(paths_.size()) +
                             ".dat";
    const int fd = open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC | (direct ? O_DIRECT : 0), 0600);
    if (fd < 0) return -1;
    unlink(path.c_str());
    paths_.push_back(path);  // the name errors mention
    fds_.push_back(fd);
    EXPECT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
    return fd;
  }

  RegionId File(int fd, uint64_t size, std::shared_ptr<FaultInjector> faults = nullptr) {
    auto r = engine_->RegisterFile(
        {.fd = fd, .length = size, .name = paths_.back(), .faults = std::move(faults)});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : 0;
  }

  RegionId Memory(std::byte* p, uint64_t size, const std::string& name = "host") {
    auto r = engine_->RegisterMemory({.addr = p, .length = size, .name = name});
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? *r : 0;
  }

  // Descriptors [first + i * block, block) for i < n in `region`.
  DescListId Blocks(RegionId region, uint32_t n, uint64_t block, uint64_t first = 0) {
    std::vector<Descriptor> d;
    for (uint32_t i = 0; i < n; ++i) d.push_back({region, first + i * block, block});
    auto l = engine_->PrepareDescList(d);
    EXPECT_TRUE(l.ok()) << l.status().ToString();
    return l.ok() ? *l : 0;
  }

  std::unique_ptr<TransferRequest> Create(TransferOp op, DescListId mem,
                                          const std::vector<uint32_t>& mem_idx, DescListId file,
                                          const std::vector<uint32_t>& file_idx) {
    auto req = engine_->CreateRequest(op, mem, mem_idx, file, file_idx, BackendKind::kIoUring);
    EXPECT_TRUE(req.ok()) << req.status().ToString();
    if (!req.ok()) return nullptr;
    EXPECT_EQ((*req)->backend(), BackendKind::kIoUring);
    return std::move(req).value();
  }

  // Posts and waits (or Executes, with execute_); the per-descriptor outcome is for the
  // caller to check.
  void PostAndWait(TransferRequest& req) {
    if (execute_) {
      (void)engine_->Execute(req);  // outcomes are checked per descriptor by the caller
    } else {
      ASSERT_TRUE(engine_->Post(req).ok());
      (void)req.Wait(30s);  // outcomes are checked per descriptor by the caller
    }
    ASSERT_TRUE(req.done()) << "request still in flight after 30 s";
  }

  std::unique_ptr<TransferRequest> Run(TransferOp op, DescListId mem,
                                       const std::vector<uint32_t>& mem_idx, DescListId file,
                                       const std::vector<uint32_t>& file_idx) {
    auto req = Create(op, mem, mem_idx, file, file_idx);
    if (req) PostAndWait(*req);
    return req;
  }

  // A file of n blocks and two registered buffers of the same size with descriptor lists.
  struct Scratch {
    explicit Scratch(uint64_t bytes) : src(bytes), dst(bytes) {}
    int fd = -1;
    AlignedBuffer src, dst;
    DescListId file = 0, s = 0, d = 0;
  };
  std::unique_ptr<Scratch> MakeScratch(uint32_t n, uint64_t block) {
    auto x = std::make_unique<Scratch>(n * block);
    x->fd = OpenFile(n * block, false);
    x->file = Blocks(File(x->fd, n * block), n, block);
    x->s = Blocks(Memory(x->src.p, x->src.size), n, block);
    x->d = Blocks(Memory(x->dst.p, x->dst.size), n, block);
    return x;
  }

  std::unique_ptr<TransferEngine> engine_;
  bool execute_ = false;  // PostAndWait uses TransferEngine::Execute
  std::vector<int> fds_;
  std::vector<std::string> paths_;  // names of the (unlinked) files, in open order
};

#define START_OR_SKIP(...)                                                               \
  do {                                                                                   \
    if (!Start(__VA_ARGS__)) {                                                           \
      if (engine_) GTEST_SKIP() << "io_uring unavailable: " << engine_->backend_notes(); \
      return;                                                                            \
    }                                                                                    \
  } while (0)

enum class Path { kPost, kExecute };

// Runs each test posted and through Execute.
class UringPathTest : public UringBackendTest, public ::testing::WithParamInterface<Path> {
 protected:
  void SetUp() override { execute_ = GetParam() == Path::kExecute; }
};

std::string PathName(Path p) {
  return p == Path::kExecute ? "Execute" : "Post";
}

class UringRoundTripTest : public UringBackendTest,
                           public ::testing::WithParamInterface<std::tuple<bool, Path>> {
 protected:
  void SetUp() override { execute_ = std::get<1>(GetParam()) == Path::kExecute; }
};

TEST_P(UringRoundTripTest, WriteThenReadBackIsByteExact) {
  START_OR_SKIP(/*queue_depth=*/8);  // 32 descriptors: the rings refill as I/Os complete
  constexpr uint32_t kBlocks = 32;
  constexpr uint64_t kBlock = 64 << 10;
  const int fd = OpenFile(kBlocks * kBlock, std::get<0>(GetParam()));
  if (fd < 0) GTEST_SKIP() << "O_DIRECT is not supported in " << testing::TempDir();
  AlignedBuffer src(kBlocks * kBlock), dst(kBlocks * kBlock);
  src.Fill(1);
  const DescListId file = Blocks(File(fd, kBlocks * kBlock), kBlocks, kBlock);
  const DescListId src_list = Blocks(Memory(src.p, src.size, "src"), kBlocks, kBlock);
  // The destination is host-emulated device memory: any host-addressable memory works.
  auto dst_region = engine_->RegisterMemory({.type = MemoryType::kDevice,
                                             .addr = dst.p,
                                             .length = dst.size,
                                             .host_emulated = true,
                                             .name = "dst"});
  ASSERT_TRUE(dst_region.ok()) << dst_region.status().ToString();
  const DescListId dst_list = Blocks(*dst_region, kBlocks, kBlock);

  // Memory block i goes to file block perm[i]: proves each descriptor hits its own offset.
  std::vector<uint32_t> perm = Iota(kBlocks);
  std::shuffle(perm.begin(), perm.end(), std::mt19937(7));
  auto w = Run(TransferOp::kWrite, src_list, Iota(kBlocks), file, perm);
  ASSERT_TRUE(w->status().ok()) << w->status().ToString();

  // The file itself holds the bytes, checked without the engine.
  AlignedBuffer check(kBlock);
  for (uint32_t i = 0; i < kBlocks; ++i) {
    ASSERT_EQ(pread(fd, check.p, kBlock, static_cast<off_t>(perm[i] * kBlock)),
              static_cast<ssize_t>(kBlock));
    ASSERT_EQ(std::memcmp(check.p, src.p + i * kBlock, kBlock), 0) << "file block " << perm[i];
  }

  auto r = Run(TransferOp::kRead, dst_list, Iota(kBlocks), file, perm);
  ASSERT_TRUE(r->status().ok()) << r->status().ToString();
  for (uint32_t i = 0; i < kBlocks; ++i) EXPECT_EQ(r->state(i), DescriptorState::kDone);
  EXPECT_EQ(std::memcmp(src.p, dst.p, src.size), 0);
}

INSTANTIATE_TEST_SUITE_P(DirectAndBuffered, UringRoundTripTest,
                         ::testing::Combine(::testing::Bool(),
                                            ::testing::Values(Path::kPost, Path::kExecute)),
                         [](const auto& info) {
                           return std::string(std::get<0>(info.param) ? "ODirect" : "Buffered") +
                                  PathName(std::get<1>(info.param));
                         });

// 500 descriptors through rings of depth 8: the rest waits in the rings' queues and is
// submitted as completions free room. Two rings also split the batch between them.
TEST_F(UringBackendTest, BatchLargerThanQueueDepth) {
  for (uint32_t rings : {1u, 2u}) {
    SCOPED_TRACE(rings);
    engine_.reset();
    START_OR_SKIP(/*queue_depth=*/8, rings);
    constexpr uint32_t kN = 500;
    const int fd = OpenFile(kN * kPage, /*direct=*/true);
    const bool direct = fd >= 0;
    const int file_fd = direct ? fd : OpenFile(kN * kPage, false);
    AlignedBuffer src(kN * kPage), dst(kN * kPage);
    src.Fill(rings);
    const DescListId file = Blocks(File(file_fd, kN * kPage), kN, kPage);
    const DescListId s = Blocks(Memory(src.p, src.size), kN, kPage);
    const DescListId d = Blocks(Memory(dst.p, dst.size), kN, kPage);
    std::vector<uint32_t> rev = Iota(kN);
    std::reverse(rev.begin(), rev.end());
    auto w = Run(TransferOp::kWrite, s, Iota(kN), file, rev);
    ASSERT_TRUE(w->status().ok()) << w->status().ToString();
    auto r = Run(TransferOp::kRead, d, Iota(kN), file, rev);
    ASSERT_TRUE(r->status().ok()) << r->status().ToString();
    for (uint32_t i = 0; i < kN; ++i) ASSERT_EQ(r->state(i), DescriptorState::kDone) << i;
    EXPECT_EQ(std::memcmp(src.p, dst.p, src.size), 0);
  }
}

// Four threads post their own requests at once on two rings: no lost, mixed or
// duplicated completions, and every byte lands where its descriptor says.
TEST_F(UringBackendTest, ConcurrentPostsFromFourThreads) {
  START_OR_SKIP(/*queue_depth=*/16, /*rings=*/2);
  constexpr uint32_t kThreads = 4, kPerThread = 64, kRounds = 25;
  constexpr uint64_t kBlock = 16 << 10;
  const auto x = MakeScratch(kThreads * kPerThread, kBlock);
  const DescListId file = x->file, s = x->s, d = x->d;
  std::byte *const src_p = x->src.p, *const dst_p = x->dst.p;
  auto body = [&](uint32_t t) {
    const std::vector<uint32_t> mine = Iota(kPerThread, t * kPerThread);
    auto w = engine_->CreateRequest(TransferOp::kWrite, s, mine, file, mine, BackendKind::kIoUring);
    auto r = engine_->CreateRequest(TransferOp::kRead, d, mine, file, mine, BackendKind::kIoUring);
    if (!w.ok() || !r.ok()) return 1;
    int failures = 0;
    std::byte* my_src = src_p + t * kPerThread * kBlock;
    std::byte* my_dst = dst_p + t * kPerThread * kBlock;
    for (uint32_t round = 0; round < kRounds; ++round) {
      std::memset(my_src, static_cast<int>(t * kRounds + round + 1), kPerThread * kBlock);
      failures += !engine_->Post(**w).ok() || !(*w)->Wait(30s).ok();
      std::memset(my_dst, 0, kPerThread * kBlock);
      failures += !engine_->Post(**r).ok() || !(*r)->Wait(30s).ok();
      failures += std::memcmp(my_src, my_dst, kPerThread * kBlock) != 0;
    }
    return failures;
  };
  EXPECT_EQ(FailuresOnThreads(kThreads, body), 0);
}

// A prepared request is posted again and again; each post moves the current bytes.
TEST_F(UringBackendTest, RepostingThePreparedRequest) {
  START_OR_SKIP(/*queue_depth=*/4);
  constexpr uint32_t kN = 10;
  const int fd = OpenFile(kN * kPage, false);
  AlignedBuffer src(kN * kPage), dst(kN * kPage);
  const DescListId file = Blocks(File(fd, kN * kPage), kN, kPage);
  const DescListId s = Blocks(Memory(src.p, src.size), kN, kPage);
  const DescListId d = Blocks(Memory(dst.p, dst.size), kN, kPage);
  auto w = Create(TransferOp::kWrite, s, Iota(kN), file, Iota(kN));
  auto r = Create(TransferOp::kRead, d, Iota(kN), file, Iota(kN));
  for (uint32_t round = 0; round < 6; ++round) {
    src.Fill(100 + round);
    PostAndWait(*w);
    ASSERT_TRUE(w->status().ok()) << w->status().ToString();
    std::memset(dst.p, 0, dst.size);
    PostAndWait(*r);
    ASSERT_TRUE(r->status().ok()) << r->status().ToString();
    ASSERT_EQ(std::memcmp(src.p, dst.p, src.size), 0) << "round " << round;
  }
}

// Without caller rings, Execute runs a small request on the calling thread
// (pread/pwrite) and a large one through the shared ring; both move the same bytes.
TEST_F(UringBackendTest, ExecuteWithoutCallerRingsSmallInlineAndLargeThroughTheRing) {
  START_OR_SKIP(/*queue_depth=*/4, /*rings=*/1, /*sync_rings=*/0);
  constexpr uint32_t kN = 8;
  constexpr uint64_t kBig = 512 << 10;  // 8 x 512 KiB = 4 MiB > inline_io_bytes (1 MiB)
  const int fd = OpenFile(kN * kBig, false);
  AlignedBuffer src(kN * kBig), dst(kN * kBig);
  const DescListId file = Blocks(File(fd, kN * kBig), kN, kBig);
  const DescListId s = Blocks(Memory(src.p, src.size), kN, kBig);
  const DescListId d = Blocks(Memory(dst.p, dst.size), kN, kBig);
  src.Fill(9);
  auto big_w = Create(TransferOp::kWrite, s, Iota(kN), file, Iota(kN));
  ASSERT_TRUE(engine_->Execute(*big_w).ok());
  auto small_r =
      Create(TransferOp::kRead, d, std::vector<uint32_t>{3}, file, std::vector<uint32_t>{3});
  ASSERT_TRUE(engine_->Execute(*small_r).ok());
  EXPECT_EQ(std::memcmp(src.p + 3 * kBig, dst.p + 3 * kBig, kBig), 0);
  auto big_r = Create(TransferOp::kRead, d, Iota(kN), file, Iota(kN));
  ASSERT_TRUE(engine_->Execute(*big_r).ok());
  EXPECT_EQ(std::memcmp(src.p, dst.p, src.size), 0);
}

// More threads call Execute at once than there are caller rings: the others fall back
// (pread/pwrite for small requests, the shared ring for large ones). Every byte lands.
TEST_F(UringBackendTest, ConcurrentExecuteFromMoreThreadsThanCallerRings) {
  START_OR_SKIP(/*queue_depth=*/8, /*rings=*/1, /*sync_rings=*/2);
  constexpr uint32_t kThreads = 5, kPerThread = 24, kRounds = 20;
  constexpr uint64_t kBlock = 64 << 10;  // 24 x 64 KiB = 1.5 MiB: over inline_io_bytes
  const auto x = MakeScratch(kThreads * kPerThread, kBlock);
  const DescListId file = x->file, s = x->s, d = x->d;
  std::byte *const src_p = x->src.p, *const dst_p = x->dst.p;
  // Odd threads move one block per request (small: the pread fallback when no ring is
  // free), even threads the whole batch (large: the shared ring as fallback).
  auto body = [&](uint32_t t) {
    const std::vector<uint32_t> mine = Iota(kPerThread, t * kPerThread);
    const bool small = t % 2 == 1;
    std::byte* my_src = src_p + t * kPerThread * kBlock;
    std::byte* my_dst = dst_p + t * kPerThread * kBlock;
    int failures = 0;
    for (uint32_t round = 0; round < kRounds; ++round) {
      std::memset(my_src, static_cast<int>(t * kRounds + round + 1), kPerThread * kBlock);
      std::memset(my_dst, 0, kPerThread * kBlock);
      for (uint32_t k = 0; k < (small ? kPerThread : 1u); ++k) {
        const std::vector<uint32_t> idx = small ? std::vector<uint32_t>{mine[k]} : mine;
        auto w =
            engine_->CreateRequest(TransferOp::kWrite, s, idx, file, idx, BackendKind::kIoUring);
        auto r =
            engine_->CreateRequest(TransferOp::kRead, d, idx, file, idx, BackendKind::kIoUring);
        failures +=
            !w.ok() || !r.ok() || !engine_->Execute(**w).ok() || !engine_->Execute(**r).ok();
      }
      failures += std::memcmp(my_src, my_dst, kPerThread * kBlock) != 0;
    }
    return failures;
  };
  EXPECT_EQ(FailuresOnThreads(kThreads, body), 0);
}

class UringFaultTest : public UringPathTest {
 protected:
  static constexpr uint32_t kN = 16;
  static constexpr uint64_t kBlock = 64 << 10;

  void SetUpFile() {
    fd_ = OpenFile(kN * kBlock, false);
    faults_ = std::make_shared<FaultInjector>();
    file_ = Blocks(File(fd_, kN * kBlock, faults_), kN, kBlock);
    src_.Fill(5);
    mem_ = Blocks(Memory(src_.p, src_.size), kN, kBlock);
  }

  int fd_ = -1;
  std::shared_ptr<FaultInjector> faults_;
  AlignedBuffer src_{kN * kBlock};
  DescListId file_ = 0, mem_ = 0;
};

TEST_P(UringFaultTest, InjectedEioOnReadFailsOnlyThatDescriptor) {
  START_OR_SKIP();
  SetUpFile();
  ASSERT_TRUE(Run(TransferOp::kWrite, mem_, Iota(kN), file_, Iota(kN))->status().ok());
  const std::vector<std::byte> expect(src_.p, src_.p + src_.size);
  std::memset(src_.p, 0, src_.size);
  faults_->FailRange(TransferOp::kRead, 5 * kBlock, kBlock, EIO);
  auto r = Run(TransferOp::kRead, mem_, Iota(kN), file_, Iota(kN));
  for (uint32_t i = 0; i < kN; ++i) {
    if (i == 5) {
      EXPECT_EQ(r->state(i), DescriptorState::kFailed);
      const Status e = r->error(i);
      EXPECT_EQ(e.code(), StatusCode::kIoError);
      EXPECT_EQ(e.sys_errno(), EIO);
      EXPECT_NE(e.message().find("EIO"), std::string::npos) << e.ToString();
      EXPECT_NE(e.message().find(paths_.back()), std::string::npos) << e.ToString();
      EXPECT_NE(e.message().find(std::to_string(5 * kBlock)), std::string::npos) << e.ToString();
    } else {
      EXPECT_EQ(r->state(i), DescriptorState::kDone) << i;
      EXPECT_TRUE(r->error(i).ok());
      EXPECT_EQ(std::memcmp(src_.p + i * kBlock, expect.data() + i * kBlock, kBlock), 0) << i;
    }
  }
  EXPECT_EQ(r->status().sys_errno(), EIO);
}

TEST_P(UringFaultTest, InjectedEnospcOnWriteFailsOnlyThatDescriptor) {
  START_OR_SKIP();
  SetUpFile();
  faults_->FailRange(TransferOp::kWrite, 9 * kBlock, kBlock, ENOSPC);
  auto w = Run(TransferOp::kWrite, mem_, Iota(kN), file_, Iota(kN));
  for (uint32_t i = 0; i < kN; ++i) {
    if (i == 9) {
      EXPECT_EQ(w->state(i), DescriptorState::kFailed);
      EXPECT_EQ(w->error(i).sys_errno(), ENOSPC);
      EXPECT_NE(w->error(i).message().find("ENOSPC"), std::string::npos) << w->error(i).ToString();
    } else {
      EXPECT_EQ(w->state(i), DescriptorState::kDone) << i;
    }
  }
  // The failed descriptor never touched the file; the others did.
  std::vector<std::byte> block(kBlock), zeros(kBlock);
  ASSERT_EQ(pread(fd_, block.data(), kBlock, 9 * kBlock), static_cast<ssize_t>(kBlock));
  EXPECT_EQ(block, zeros);
  ASSERT_EQ(pread(fd_, block.data(), kBlock, 8 * kBlock), static_cast<ssize_t>(kBlock));
  EXPECT_EQ(std::memcmp(block.data(), src_.p + 8 * kBlock, kBlock), 0);
}

TEST_P(UringFaultTest, InjectedShortReadAndShortWriteAreErrors) {
  START_OR_SKIP();
  SetUpFile();
  // A short write really writes the prefix only, and says so.
  faults_->ShortNext(TransferOp::kWrite, 4096);
  auto w = Run(TransferOp::kWrite, mem_, {0}, file_, {3});
  EXPECT_EQ(w->state(0), DescriptorState::kFailed);
  EXPECT_NE(w->error(0).message().find("short write: 4096 of 65536 bytes"), std::string::npos)
      << w->error(0).ToString();
  std::vector<std::byte> block(kBlock);
  ASSERT_EQ(pread(fd_, block.data(), kBlock, 3 * kBlock), static_cast<ssize_t>(kBlock));
  EXPECT_EQ(std::memcmp(block.data(), src_.p, 4096), 0);
  EXPECT_EQ(block[4096], std::byte{0});

  // In a batch, exactly the one shortened read fails; the rest complete.
  ASSERT_TRUE(Run(TransferOp::kWrite, mem_, Iota(kN), file_, Iota(kN))->status().ok());
  faults_->ShortNext(TransferOp::kRead, kBlock / 2);
  auto r = Run(TransferOp::kRead, mem_, Iota(kN), file_, Iota(kN));
  uint32_t failed = 0;
  for (uint32_t i = 0; i < kN; ++i) {
    if (r->state(i) == DescriptorState::kDone) continue;
    ++failed;
    EXPECT_EQ(r->state(i), DescriptorState::kFailed);
    EXPECT_NE(r->error(i).message().find("short read: 32768 of 65536 bytes"), std::string::npos)
        << r->error(i).ToString();
  }
  EXPECT_EQ(failed, 1u);
  EXPECT_EQ(faults_->injected(), 2u);
}

TEST_P(UringFaultTest, ReadPastEndOfFileIsAShortRead) {
  START_OR_SKIP();
  SetUpFile();
  ASSERT_EQ(ftruncate(fd_, 2 * kBlock), 0);  // the file shrank under the region
  auto r = Run(TransferOp::kRead, mem_, {0, 1}, file_, {1, 2});
  EXPECT_EQ(r->state(0), DescriptorState::kDone);
  EXPECT_EQ(r->state(1), DescriptorState::kFailed);
  EXPECT_NE(r->error(1).message().find("short read: 0 of"), std::string::npos)
      << r->error(1).ToString();
}

// The kernel's EINVAL for misaligned O_DIRECT arrives in one CQE and fails only that
// descriptor. The engine validates file offsets and lengths up front, but cannot know
// at PrepareDescList which file a memory descriptor will meet, so a misaligned buffer
// reaches the kernel.
TEST_P(UringPathTest, MisalignedODirectBufferIsEinvalPerDescriptor) {
  START_OR_SKIP();
  const int fd = OpenFile(4 * kPage, /*direct=*/true);
  if (fd < 0) GTEST_SKIP() << "O_DIRECT is not supported in " << testing::TempDir();
  AlignedBuffer buf(8 * kPage);
  // Data first: reads of a hole are served as zeros without the alignment check.
  buf.Fill(3);
  ASSERT_EQ(pwrite(fd, buf.p, 4 * kPage, 0), static_cast<ssize_t>(4 * kPage));
  if (pread(fd, buf.p + 1, kPage, 0) >= 0 || errno != EINVAL)
    GTEST_SKIP() << "this filesystem accepts misaligned O_DIRECT buffers";
  const DescListId file = Blocks(File(fd, 4 * kPage), 4, kPage);
  const RegionId mem = Memory(buf.p, buf.size);
  // Descriptor 1 starts one byte into a page; 0, 2 and 3 are aligned.
  const auto list = engine_->PrepareDescList(std::vector<Descriptor>{
      {mem, 0, kPage}, {mem, kPage + 1, kPage}, {mem, 3 * kPage, kPage}, {mem, 4 * kPage, kPage}});
  ASSERT_TRUE(list.ok());
  for (TransferOp op : {TransferOp::kWrite, TransferOp::kRead}) {
    SCOPED_TRACE(TransferOpName(op));
    auto req = Run(op, *list, Iota(4), file, Iota(4));
    for (uint32_t i = 0; i < 4; ++i) {
      if (i == 1) {
        EXPECT_EQ(req->state(i), DescriptorState::kFailed);
        EXPECT_EQ(req->error(i).sys_errno(), EINVAL);
        EXPECT_NE(req->error(i).message().find("EINVAL"), std::string::npos)
            << req->error(i).ToString();
        EXPECT_NE(req->error(i).message().find("O_DIRECT"), std::string::npos)
            << req->error(i).ToString();
      } else {
        EXPECT_EQ(req->state(i), DescriptorState::kDone) << i << ": " << req->error(i).ToString();
      }
    }
  }
  // Misaligned file offsets never reach the backend: PrepareDescList refuses them.
  auto bad = engine_->PrepareDescList(std::vector<Descriptor>{{File(fd, 4 * kPage), 100, kPage}});
  EXPECT_FALSE(bad.ok());
}

// A file offset the engine could not validate (O_DIRECT switched on after registration)
// still comes back as a per-descriptor EINVAL from the kernel.
TEST_P(UringPathTest, MisalignedODirectFileOffsetIsEinvalPerDescriptor) {
  START_OR_SKIP();
  const int fd = OpenFile(4 * kPage, /*direct=*/false);
  AlignedBuffer buf(4 * kPage);
  buf.Fill(4);  // data, not a hole: reads of holes skip the alignment check
  ASSERT_EQ(pwrite(fd, buf.p, 4 * kPage, 0), static_cast<ssize_t>(4 * kPage));
  ASSERT_EQ(fsync(fd), 0);
  const RegionId file_region = File(fd, 4 * kPage);
  const auto file = engine_->PrepareDescList(
      std::vector<Descriptor>{{file_region, 0, kPage}, {file_region, 100, kPage}});
  ASSERT_TRUE(file.ok());
  const DescListId mem = Blocks(Memory(buf.p, buf.size), 2, kPage);
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_DIRECT) != 0)
    GTEST_SKIP() << "O_DIRECT is not supported here";
  if (pread(fd, buf.p, kPage, 100) >= 0 || errno != EINVAL)
    GTEST_SKIP() << "this filesystem accepts misaligned O_DIRECT offsets";
  auto req = Run(TransferOp::kRead, mem, Iota(2), *file, Iota(2));
  EXPECT_EQ(req->state(0), DescriptorState::kDone) << req->error(0).ToString();
  EXPECT_EQ(req->state(1), DescriptorState::kFailed);
  EXPECT_EQ(req->error(1).sys_errno(), EINVAL);
  EXPECT_NE(req->error(1).message().find("offset 100"), std::string::npos)
      << req->error(1).ToString();
}

// Cancel right after Post with a queue depth of 1: queued descriptors end cancelled,
// started ones finish, none is left pending; the request then posts normally again.
TEST_F(UringBackendTest, CancelBeforeCompletionLeavesNothingPending) {
  START_OR_SKIP(/*queue_depth=*/1);
  constexpr uint32_t kN = 1000;
  const int fd = OpenFile(kN * kPage, false);
  AlignedBuffer buf(kN * kPage);
  const DescListId file = Blocks(File(fd, kN * kPage), kN, kPage);
  const DescListId mem = Blocks(Memory(buf.p, buf.size), kN, kPage);
  auto req = Create(TransferOp::kWrite, mem, Iota(kN), file, Iota(kN));
  ASSERT_TRUE(engine_->Post(*req).ok());
  req->Cancel();
  (void)req->Wait(30s);  // outcomes are checked per descriptor below
  ASSERT_TRUE(req->done());
  uint32_t done = 0, cancelled = 0;
  for (uint32_t i = 0; i < kN; ++i) {
    const DescriptorState st = req->state(i);
    if (st == DescriptorState::kDone) {
      ++done;
    } else {
      ASSERT_EQ(st, DescriptorState::kCancelled) << i << ": " << DescriptorStateName(st);
      EXPECT_EQ(req->error(i).code(), StatusCode::kCancelled);
      ++cancelled;
    }
  }
  EXPECT_EQ(done + cancelled, kN);
  EXPECT_GT(cancelled, 0u) << "all 1000 descriptors finished before Cancel() ran";
  EXPECT_EQ(req->status().code(), StatusCode::kCancelled);

  PostAndWait(*req);
  EXPECT_TRUE(req->status().ok()) << req->status().ToString();
}

// Destroying the engine with I/O queued and in flight waits for it: nothing completes
// after the engine is gone and nothing is lost.
TEST_F(UringBackendTest, EngineDestructionDrainsInFlightIo) {
  START_OR_SKIP(/*queue_depth=*/2);
  constexpr uint32_t kN = 300;
  const int fd = OpenFile(kN * kPage, false);
  AlignedBuffer buf(kN * kPage);
  buf.Fill(9);
  const DescListId file = Blocks(File(fd, kN * kPage), kN, kPage);
  const DescListId mem = Blocks(Memory(buf.p, buf.size), kN, kPage);
  auto req = Create(TransferOp::kWrite, mem, Iota(kN), file, Iota(kN));
  ASSERT_TRUE(engine_->Post(*req).ok());
  engine_.reset();
  ASSERT_TRUE(req->done());
  EXPECT_TRUE(req->status().ok()) << req->status().ToString();
  std::vector<std::byte> back(kN * kPage);
  ASSERT_EQ(pread(fd, back.data(), back.size(), 0), static_cast<ssize_t>(back.size()));
  EXPECT_EQ(std::memcmp(back.data(), buf.p, back.size()), 0);
}

// More files than the registered-file table holds: the overflow uses raw fds, and
// regions deregistered free their slots for new ones.
TEST_F(UringBackendTest, MoreFilesThanTheFixedFileTable) {
  START_OR_SKIP(/*queue_depth=*/32, /*rings=*/2);
  constexpr uint32_t kFiles = 1100;
  const int fd = OpenFile(kFiles * kPage, false);
  AlignedBuffer src(kFiles * kPage), dst(kFiles * kPage);
  src.Fill(11);
  std::vector<Descriptor> file_descs;
  std::vector<RegionId> regions;
  for (uint32_t i = 0; i < kFiles; ++i) {
    const int dup_fd = dup(fd);
    ASSERT_GE(dup_fd, 0);
    fds_.push_back(dup_fd);
    regions.push_back(File(dup_fd, kFiles * kPage));
    file_descs.push_back({regions.back(), i * kPage, kPage});
  }
  auto file = engine_->PrepareDescList(file_descs);
  ASSERT_TRUE(file.ok());
  const DescListId s = Blocks(Memory(src.p, src.size), kFiles, kPage);
  const DescListId d = Blocks(Memory(dst.p, dst.size), kFiles, kPage);
  ASSERT_TRUE(Run(TransferOp::kWrite, s, Iota(kFiles), *file, Iota(kFiles))->status().ok());
  ASSERT_TRUE(Run(TransferOp::kRead, d, Iota(kFiles), *file, Iota(kFiles))->status().ok());
  EXPECT_EQ(std::memcmp(src.p, dst.p, src.size), 0);

  // Free every region, register a fresh one: it gets a slot and works.
  ASSERT_TRUE(engine_->ReleaseDescList(*file).ok());
  for (RegionId r : regions) ASSERT_TRUE(engine_->Deregister(r).ok());
  const DescListId again = Blocks(File(fd, kFiles * kPage), 1, kPage, 7 * kPage);
  std::memset(dst.p, 0, kPage);
  ASSERT_TRUE(Run(TransferOp::kRead, d, {0}, again, {0})->status().ok());
  EXPECT_EQ(std::memcmp(dst.p, src.p + 7 * kPage, kPage), 0);
}

// Options the backend cannot honour leave the engine working without it, and say why.
TEST(UringBackendOptionsTest, RefusedBackendIsANoteNotAFailure) {
  auto e = TransferEngine::Create({.uring_queue_depth = 0});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  const auto b = (*e)->backends();
  EXPECT_EQ(std::find(b.begin(), b.end(), BackendKind::kIoUring), b.end());
  EXPECT_NE(std::find(b.begin(), b.end(), BackendKind::kPosix), b.end());
  EXPECT_NE((*e)->backend_notes().find("uring_queue_depth"), std::string::npos)
      << (*e)->backend_notes();
}

// Regions come and go many more times than the tables have slots: deregistration
// frees the slots (registered files and buffers) and transfers keep working.
TEST_F(UringBackendTest, RegisterDeregisterCyclesRecycleSlots) {
  START_OR_SKIP(/*queue_depth=*/8, /*rings=*/2);
  const int fd = OpenFile(kPage, false);
  AlignedBuffer buf(2 * kPage);
  for (uint32_t cycle = 0; cycle < 1500; ++cycle) {
    const RegionId mem = Memory(buf.p, buf.size);
    const RegionId file = File(fd, kPage);
    ASSERT_TRUE(engine_->Deregister(mem).ok());
    ASSERT_TRUE(engine_->Deregister(file).ok());
  }
  const DescListId mem = Blocks(Memory(buf.p, buf.size), 2, kPage);
  const DescListId file = Blocks(File(fd, kPage), 1, kPage);
  std::memset(buf.p, 0x5a, kPage);
  ASSERT_TRUE(Run(TransferOp::kWrite, mem, {0}, file, {0})->status().ok());
  ASSERT_TRUE(Run(TransferOp::kRead, mem, {1}, file, {0})->status().ok());
  EXPECT_EQ(std::memcmp(buf.p, buf.p + kPage, kPage), 0);
}

// One descriptor larger than the kernel moves in a single read (and than one registered
// buffer) moves in several chunks; a descriptor in the region's second registered buffer
// uses that buffer.
TEST_F(UringBackendTest, DescriptorLargerThanOneGibMovesInChunks) {
  START_OR_SKIP();
  constexpr uint64_t kGib = uint64_t{1} << 30;
  constexpr uint64_t kSize = kGib + 16 * kPage;
  if (static_cast<uint64_t>(sysconf(_SC_AVPHYS_PAGES)) * sysconf(_SC_PAGESIZE) < 3 * kGib)
    GTEST_SKIP() << "needs 3 GiB of free memory";
  AlignedBuffer buf(kSize);
  if (buf.p == nullptr) GTEST_SKIP() << "cannot map 1 GiB";
  const int fd = OpenFile(kSize, false);  // sparse: reads of holes are zeros
  const uint64_t marks[] = {0, kGib - kPage, kGib - 8, kGib, kSize - kPage};
  for (uint64_t m : marks) {
    const uint64_t v = m ^ 0x5eed5eed5eed5eedULL;
    ASSERT_EQ(pwrite(fd, &v, sizeof v, static_cast<off_t>(m)), static_cast<ssize_t>(sizeof v));
  }
  const RegionId file = File(fd, kSize);
  const RegionId mem = Memory(buf.p, kSize);
  auto whole = engine_->PrepareDescList(
      std::vector<Descriptor>{{mem, 0, kSize}, {mem, kGib + 8 * kPage, kPage}});
  auto f = engine_->PrepareDescList(
      std::vector<Descriptor>{{file, 0, kSize}, {file, kSize - kPage, kPage}});
  ASSERT_TRUE(whole.ok() && f.ok());
  auto r = Run(TransferOp::kRead, *whole, {0}, *f, {0});
  ASSERT_TRUE(r->status().ok()) << r->status().ToString();
  for (uint64_t m : marks) {
    uint64_t v;
    std::memcpy(&v, buf.p + m, sizeof v);
    EXPECT_EQ(v, m ^ 0x5eed5eed5eed5eedULL) << "offset " << m;
  }
  EXPECT_EQ(buf.p[kGib / 2], std::byte{0});

  auto tail = Run(TransferOp::kRead, *whole, {1}, *f, {1});
  ASSERT_TRUE(tail->status().ok()) << tail->status().ToString();
  uint64_t v;
  std::memcpy(&v, buf.p + kGib + 8 * kPage, sizeof v);
  EXPECT_EQ(v, (kSize - kPage) ^ 0x5eed5eed5eed5eedULL);
}

INSTANTIATE_TEST_SUITE_P(PostAndExecute, UringFaultTest,
                         ::testing::Values(Path::kPost, Path::kExecute),
                         [](const auto& info) { return PathName(info.param); });
INSTANTIATE_TEST_SUITE_P(PostAndExecute, UringPathTest,
                         ::testing::Values(Path::kPost, Path::kExecute),
                         [](const auto& info) { return PathName(info.param); });

}  // namespace
}  // namespace strata
