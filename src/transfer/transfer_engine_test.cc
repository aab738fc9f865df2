// TransferEngine: registration, descriptor lists, request validation, memcpy transfers,
// reposting, cancellation, concurrency.
#include "strata/transfer.h"

#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "strata/fault_injection.h"

namespace strata {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<TransferEngine> MakeEngine(TransferEngineOptions o = {}) {
  auto e = TransferEngine::Create(o);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(e).value();
}

std::vector<Descriptor> Blocks(RegionId region, uint32_t count, uint64_t block) {
  std::vector<Descriptor> d(count);
  for (uint32_t i = 0; i < count; ++i) d[i] = {region, i * block, block};
  return d;
}

std::vector<uint32_t> Iota(uint32_t n, uint32_t start = 0) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}

TEST(TransferEngineTest, MemcpyHostToHostByIndices) {
  auto engine = MakeEngine();
  constexpr uint64_t kBlock = 4096;
  std::vector<std::byte> a(16 * kBlock), b(16 * kBlock);
  std::mt19937 rng(1);
  for (auto& x : a) x = static_cast<std::byte>(rng());
  RegionId ra =
      *engine->RegisterMemory({.type = MemoryType::kHost, .addr = a.data(), .length = a.size()});
  RegionId rb = *engine->RegisterMemory({.type = MemoryType::kDevice,
                                         .addr = b.data(),
                                         .length = b.size(),
                                         .host_emulated = true,
                                         .name = "emulated device"});
  DescListId la = *engine->PrepareDescList(Blocks(ra, 16, kBlock));
  DescListId lb = *engine->PrepareDescList(Blocks(rb, 16, kBlock));
  // Write host blocks 0,5,9 into device blocks 3,4,15.
  auto req = engine->CreateRequest(TransferOp::kWrite, la, std::vector<uint32_t>{0, 5, 9}, lb,
                                   std::vector<uint32_t>{3, 4, 15});
  ASSERT_TRUE(req.ok()) << req.status().ToString();
  EXPECT_EQ((*req)->backend(), BackendKind::kMemcpy);
  EXPECT_EQ((*req)->total_bytes(), 3 * kBlock);
  ASSERT_TRUE(engine->Post(**req).ok());
  ASSERT_TRUE((*req)->Wait(1s).ok());
  for (auto [src, dst] : {std::pair{0, 3}, {5, 4}, {9, 15}})
    EXPECT_EQ(std::memcmp(a.data() + src * kBlock, b.data() + dst * kBlock, kBlock), 0);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ((*req)->state(i), DescriptorState::kDone);
  // Read moves remote -> local.
  std::fill(a.begin(), a.end(), std::byte{0});
  auto back = engine->CreateRequest(TransferOp::kRead, la, std::vector<uint32_t>{1}, lb,
                                    std::vector<uint32_t>{15});
  ASSERT_TRUE(engine->Post(**back).ok());
  ASSERT_TRUE((*back)->Wait(1s).ok());
  EXPECT_EQ(std::memcmp(a.data() + kBlock, b.data() + 15 * kBlock, kBlock), 0);
}

TEST(TransferEngineTest, LargeBatchesSplitOverWorkersAndRepost) {
  auto engine = MakeEngine({.memcpy_threads = 2, .memcpy_inline_bytes = 1 << 16});
  constexpr uint64_t kBlock = 256 << 10;
  constexpr uint32_t kCount = 64;
  std::vector<std::byte> a(kCount * kBlock), b(kCount * kBlock);
  RegionId ra = *engine->RegisterMemory({.addr = a.data(), .length = a.size()});
  RegionId rb = *engine->RegisterMemory({.addr = b.data(), .length = b.size()});
  DescListId la = *engine->PrepareDescList(Blocks(ra, kCount, kBlock));
  DescListId lb = *engine->PrepareDescList(Blocks(rb, kCount, kBlock));
  auto req = *engine->CreateRequest(TransferOp::kWrite, la, Iota(kCount), lb, Iota(kCount));
  for (int round = 0; round < 5; ++round) {
    for (size_t i = 0; i < a.size(); i += 512) a[i] = static_cast<std::byte>(round * 7 + i / 512);
    ASSERT_TRUE(engine->Post(*req).ok());
    ASSERT_TRUE(req->Wait(10s).ok());
    ASSERT_EQ(a, b) << "round " << round;
  }
}

// A request is in flight until its last descriptor completes; posting it again meanwhile is
// refused and changes nothing. A slow (fault-injected) write keeps it in flight for 300 ms.
TEST(TransferEngineTest, PostingAnInFlightRequestIsRefused) {
  auto engine = MakeEngine({.posix_threads = 1, .enable_io_uring = false});
  std::FILE* f = std::tmpfile();
  ASSERT_NE(f, nullptr);
  std::vector<std::byte> a(4096, std::byte{1});
  auto faults = std::make_shared<FaultInjector>();
  faults->SetDelay(TransferOp::kWrite, std::chrono::milliseconds(300));
  RegionId ra = *engine->RegisterMemory({.addr = a.data(), .length = a.size()});
  RegionId rf =
      *engine->RegisterFile({.fd = fileno(f), .length = 4096, .name = "tmpfile", .faults = faults});
  DescListId la = *engine->PrepareDescList(Blocks(ra, 1, 4096));
  DescListId lf = *engine->PrepareDescList(Blocks(rf, 1, 4096));
  auto req = *engine->CreateRequest(TransferOp::kWrite, la, Iota(1), lf, Iota(1));
  ASSERT_EQ(req->backend(), BackendKind::kPosix);
  ASSERT_TRUE(engine->Post(*req).ok());
  EXPECT_EQ(engine->Post(*req).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(engine->Execute(*req).code(), StatusCode::kInvalidArgument);
  const Status waited = req->Wait(10s);
  ASSERT_TRUE(waited.ok()) << waited.ToString();
  EXPECT_EQ(faults->injected(), 0u);  // a delay is not a fault; one write ran
  std::fclose(f);
}

TEST(TransferEngineTest, CancelBeforeStartCancelsEveryDescriptor) {
  auto engine = MakeEngine({.memcpy_threads = 1, .memcpy_inline_bytes = 0});
  std::vector<std::byte> a(1 << 20), b(1 << 20);
  RegionId ra = *engine->RegisterMemory({.addr = a.data(), .length = a.size()});
  RegionId rb = *engine->RegisterMemory({.addr = b.data(), .length = b.size()});
  DescListId la = *engine->PrepareDescList(Blocks(ra, 256, 4096));
  DescListId lb = *engine->PrepareDescList(Blocks(rb, 256, 4096));
  auto req = *engine->CreateRequest(TransferOp::kWrite, la, Iota(256), lb, Iota(256));
  req->Cancel();  // a cancel before Post does not carry over: Post re-arms
  ASSERT_TRUE(engine->Post(*req).ok());
  req->Cancel();
  Status s = req->Wait(10s);
  ASSERT_TRUE(req->done());
  size_t done = 0, cancelled = 0;
  for (size_t i = 0; i < req->size(); ++i) {
    if (req->state(i) == DescriptorState::kDone) ++done;
    if (req->state(i) == DescriptorState::kCancelled) {
      ++cancelled;
      EXPECT_EQ(req->error(i).code(), StatusCode::kCancelled);
    }
  }
  EXPECT_EQ(done + cancelled, 256u);  // nothing left pending or silently skipped
  if (cancelled > 0) {
    EXPECT_EQ(s.code(), StatusCode::kCancelled);
  }
}

TEST(TransferEngineTest, ValidationErrorsNameTheProblem) {
  auto engine = MakeEngine();
  std::vector<std::byte> a(8192);
  EXPECT_EQ(engine->RegisterMemory({.addr = nullptr, .length = 10}).status().code(),
            StatusCode::kInvalidArgument);
  RegionId ra = *engine->RegisterMemory({.addr = a.data(), .length = a.size(), .name = "slots"});
  auto out = engine->PrepareDescList(std::vector<Descriptor>{{ra, 4096, 8192}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("outside region"), std::string::npos);
  EXPECT_NE(out.status().message().find("slots"), std::string::npos);
  EXPECT_FALSE(engine->PrepareDescList(std::vector<Descriptor>{{ra + 7, 0, 1}}).ok());
  DescListId l1 = *engine->PrepareDescList(std::vector<Descriptor>{{ra, 0, 4096}});
  DescListId l2 = *engine->PrepareDescList(std::vector<Descriptor>{{ra, 4096, 2048}});
  auto mismatch = engine->CreateRequest(TransferOp::kWrite, l1, std::vector<uint32_t>{0}, l2,
                                        std::vector<uint32_t>{0});
  ASSERT_FALSE(mismatch.ok());
  EXPECT_NE(mismatch.status().message().find("local length 4096 but remote length 2048"),
            std::string::npos);
  auto range = engine->CreateRequest(TransferOp::kWrite, l1, std::vector<uint32_t>{1}, l2,
                                     std::vector<uint32_t>{0});
  EXPECT_FALSE(range.ok());
  // A region in use cannot be deregistered; after its lists are released it can.
  EXPECT_EQ(engine->Deregister(ra).code(), StatusCode::kInvalidArgument);
  ASSERT_TRUE(engine->ReleaseDescList(l1).ok());
  ASSERT_TRUE(engine->ReleaseDescList(l2).ok());
  EXPECT_TRUE(engine->Deregister(ra).ok());
  EXPECT_EQ(engine->Deregister(ra).code(), StatusCode::kNotFound);
}

TEST(TransferEngineTest, RealDeviceMemoryWithoutCudaIsNotSupported) {
  auto engine = MakeEngine();
  const auto kinds = engine->backends();
  if (std::find(kinds.begin(), kinds.end(), BackendKind::kCuda) != kinds.end())
    GTEST_SKIP() << "a CUDA device is present";
  std::vector<std::byte> a(4096);
  auto r =
      engine->RegisterMemory({.type = MemoryType::kDevice, .addr = a.data(), .length = a.size()});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotSupported);
  EXPECT_NE(r.status().message().find("CUDA"), std::string::npos);
}

TEST(TransferEngineTest, ConcurrentRequestsFromManyThreads) {
  auto engine = MakeEngine({.memcpy_threads = 2, .memcpy_inline_bytes = 8192});
  constexpr uint64_t kBlock = 4096;
  constexpr uint32_t kThreads = 4, kPer = 32;
  std::vector<std::byte> a(kThreads * kPer * kBlock), b(a.size());
  RegionId ra = *engine->RegisterMemory({.addr = a.data(), .length = a.size()});
  RegionId rb = *engine->RegisterMemory({.addr = b.data(), .length = b.size()});
  DescListId la = *engine->PrepareDescList(Blocks(ra, kThreads * kPer, kBlock));
  DescListId lb = *engine->PrepareDescList(Blocks(rb, kThreads * kPer, kBlock));
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (uint32_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 50; ++round) {
        std::memset(a.data() + t * kPer * kBlock, round + static_cast<int>(t), kPer * kBlock);
        auto req = engine->CreateRequest(TransferOp::kWrite, la, Iota(kPer, t * kPer), lb,
                                         Iota(kPer, t * kPer));
        if (!req.ok() || !engine->Post(**req).ok() || !(*req)->Wait(10s).ok() ||
            std::memcmp(a.data() + t * kPer * kBlock, b.data() + t * kPer * kBlock,
                        kPer * kBlock) != 0)
          failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
}

// One large descriptor is cut into pieces that the workers and the waiting thread copy
// together; odd lengths, mixed sizes, Post + Wait and Execute all move every byte.
TEST(TransferEngineTest, LargeDescriptorsAreCopiedInPiecesByWorkersAndTheWaiter) {
  auto engine = MakeEngine({.memcpy_threads = 2});
  const std::vector<uint64_t> sizes = {(5u << 20) + 12345, 4096, (1u << 20) + 1, 20u << 20};
  uint64_t total = 0;
  for (uint64_t n : sizes) total += n;
  std::vector<std::byte> a(total), b(total);
  RegionId ra = *engine->RegisterMemory({.addr = a.data(), .length = a.size()});
  RegionId rb = *engine->RegisterMemory({.addr = b.data(), .length = b.size()});
  std::vector<Descriptor> da, db;
  for (uint64_t off = 0, i = 0; i < sizes.size(); off += sizes[i++]) {
    da.push_back({ra, off, sizes[i]});
    db.push_back({rb, off, sizes[i]});
  }
  DescListId la = *engine->PrepareDescList(da);
  DescListId lb = *engine->PrepareDescList(db);
  std::mt19937_64 rng(3);
  for (const auto& idx : {std::vector<uint32_t>{0}, std::vector<uint32_t>{2},
                          std::vector<uint32_t>{3}, std::vector<uint32_t>{0, 1, 2, 3}}) {
    auto w = *engine->CreateRequest(TransferOp::kWrite, la, idx, lb, idx);
    auto r = *engine->CreateRequest(TransferOp::kRead, la, idx, lb, idx);
    for (int round = 0; round < 2; ++round) {
      for (size_t i = 0; i < a.size(); i += 4096)
        a[i + rng() % 4096 % (a.size() - i)] = static_cast<std::byte>(rng());
      const bool execute = round % 2 == 1;
      if (execute) {
        ASSERT_TRUE(engine->Execute(*w).ok());
      } else {
        ASSERT_TRUE(engine->Post(*w).ok());
        ASSERT_TRUE(w->Wait(10s).ok());
      }
      for (uint32_t i : idx)
        ASSERT_EQ(std::memcmp(a.data() + da[i].offset, b.data() + db[i].offset, sizes[i]), 0)
            << "descriptor " << i << " round " << round;
      for (uint32_t i : idx) std::memset(a.data() + da[i].offset, 0, sizes[i]);
      ASSERT_TRUE(engine->Execute(*r).ok());
      for (uint32_t i : idx)
        ASSERT_EQ(std::memcmp(a.data() + da[i].offset, b.data() + db[i].offset, sizes[i]), 0)
            << "read back, descriptor " << i << " round " << round;
    }
  }
}

// Cancel races the pieces of each descriptor: a descriptor is either copied whole (done)
// or not touched at all (cancelled) — never half copied.
TEST(TransferEngineTest, CancelNeverLeavesADescriptorHalfCopied) {
  auto engine = MakeEngine({.memcpy_threads = 2});
  constexpr uint32_t kN = 6;
  constexpr uint64_t kBlock = 4 << 20;
  std::vector<std::byte> a(kN * kBlock, std::byte{0x5a}), b(kN * kBlock);
  RegionId ra = *engine->RegisterMemory({.addr = a.data(), .length = a.size()});
  RegionId rb = *engine->RegisterMemory({.addr = b.data(), .length = b.size()});
  DescListId la = *engine->PrepareDescList(Blocks(ra, kN, kBlock));
  DescListId lb = *engine->PrepareDescList(Blocks(rb, kN, kBlock));
  auto req = *engine->CreateRequest(TransferOp::kWrite, la, Iota(kN), lb, Iota(kN));
  const std::vector<std::byte> zeros(kBlock), full(kBlock, std::byte{0x5a});
  uint32_t cancelled = 0;
  for (int round = 0; round < 20; ++round) {
    std::fill(b.begin(), b.end(), std::byte{0});
    ASSERT_TRUE(engine->Post(*req).ok());
    req->Cancel();
    (void)req->Wait(10s);  // outcomes are checked per descriptor
    ASSERT_TRUE(req->done());
    for (uint32_t i = 0; i < kN; ++i) {
      const bool copied = std::memcmp(b.data() + i * kBlock, full.data(), kBlock) == 0;
      const bool untouched = std::memcmp(b.data() + i * kBlock, zeros.data(), kBlock) == 0;
      if (req->state(i) == DescriptorState::kDone) {
        EXPECT_TRUE(copied) << "round " << round << " descriptor " << i;
      } else {
        ASSERT_EQ(req->state(i), DescriptorState::kCancelled);
        EXPECT_TRUE(untouched) << "round " << round << " descriptor " << i;
        ++cancelled;
      }
    }
  }
  RecordProperty("cancelled_descriptors", static_cast<int>(cancelled));
}

// Requests that finish before their workers wake are freed at once; the late workers
// must find nothing to do and touch nothing (ASAN/TSAN builds check the "touch").
// Several threads also wait on one request at once.
TEST(TransferEngineTest, ShortLivedRequestsAndConcurrentWaiters) {
  auto engine = MakeEngine({.memcpy_threads = 2});
  constexpr uint64_t kBlock = 3 << 20;  // above memcpy_execute_inline_bytes: workers help
  std::vector<std::byte> a(kBlock, std::byte{7}), b(kBlock);
  RegionId ra = *engine->RegisterMemory({.addr = a.data(), .length = a.size()});
  RegionId rb = *engine->RegisterMemory({.addr = b.data(), .length = b.size()});
  DescListId la = *engine->PrepareDescList(Blocks(ra, 1, kBlock));
  DescListId lb = *engine->PrepareDescList(Blocks(rb, 1, kBlock));
  for (int i = 0; i < 200; ++i) {
    auto req = *engine->CreateRequest(TransferOp::kWrite, la, Iota(1), lb, Iota(1));
    ASSERT_TRUE(engine->Execute(*req).ok());
  }
  auto req = *engine->CreateRequest(TransferOp::kWrite, la, Iota(1), lb, Iota(1));
  for (int round = 0; round < 50; ++round) {
    std::fill(a.begin(), a.end(), static_cast<std::byte>(round));
    ASSERT_TRUE(engine->Post(*req).ok());
    std::atomic<int> ok{0};
    std::vector<std::thread> waiters;
    for (int t = 0; t < 3; ++t) waiters.emplace_back([&] { ok += req->Wait(10s).ok(); });
    for (auto& th : waiters) th.join();
    ASSERT_EQ(ok.load(), 3);
    ASSERT_EQ(a, b) << "round " << round;
  }
}

TEST(TransferEngineTest, BackendNames) {
  EXPECT_EQ(*ParseBackendKind("io_uring"), BackendKind::kIoUring);
  EXPECT_EQ(*ParseBackendKind("posix"), BackendKind::kPosix);
  EXPECT_FALSE(ParseBackendKind("spdk").ok());
}

}  // namespace
}  // namespace strata
