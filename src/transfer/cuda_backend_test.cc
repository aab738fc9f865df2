// CUDA backend tests. Without a device (CI, development machines) they prove the engine
// runs without the backend and every refusal says why; with a device they move real bytes
// host -> device -> host and check how device regions are validated.
#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <numeric>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "strata/transfer.h"
#include "transfer/request.h"

// The test target may not have the toolkit's headers on its include path; without them the
// device round trip (which needs cudaMalloc) is skipped with a reason.
#if defined(STRATA_HAVE_CUDA) && __has_include(<cuda_runtime_api.h>)
#include <cuda_runtime_api.h>
#define STRATA_TEST_HAS_CUDA_RUNTIME 1
#endif

namespace strata {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr auto kWait = std::chrono::seconds(10);

bool HaveCudaBackend() {
  return internal::MakeCudaBackend({}).ok();
}

bool HasBackend(const TransferEngine& engine, BackendKind kind) {
  const auto kinds = engine.backends();
  return std::find(kinds.begin(), kinds.end(), kind) != kinds.end();
}

std::unique_ptr<TransferEngine> NewEngine() {
  auto engine = TransferEngine::Create({});
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return engine.ok() ? std::move(engine).value() : nullptr;
}

TEST(CudaBackendTest, FactoryExplainsWhyItIsUnavailable) {
  auto backend = internal::MakeCudaBackend({});
  if (backend.ok()) {
    EXPECT_EQ((*backend)->kind(), BackendKind::kCuda);
    GTEST_SKIP() << "a CUDA device is present; the no-device path is not reachable";
  }
#ifdef STRATA_HAVE_CUDA
  EXPECT_EQ(backend.status().code(), StatusCode::kUnavailable) << backend.status().ToString();
  // "no CUDA device: <the CUDA runtime's reason>", and the reason is not empty.
  EXPECT_THAT(backend.status().message(), HasSubstr("no CUDA device: "));
  EXPECT_GT(backend.status().message().size(), std::string_view("no CUDA device: ").size());
#else
  EXPECT_EQ(backend.status().code(), StatusCode::kNotSupported) << backend.status().ToString();
  EXPECT_THAT(backend.status().message(), HasSubstr("built without the CUDA toolkit"));
#endif
}

TEST(CudaBackendTest, EngineStartsWithoutCudaAndNotesWhy) {
  auto engine = NewEngine();
  ASSERT_NE(engine, nullptr);
  if (HaveCudaBackend()) {
    EXPECT_TRUE(HasBackend(*engine, BackendKind::kCuda));
    EXPECT_THAT(engine->backend_notes(), Not(HasSubstr("cuda")));
    GTEST_SKIP() << "a CUDA device is present; the engine has the cuda backend";
  }
  EXPECT_FALSE(HasBackend(*engine, BackendKind::kCuda));
  EXPECT_TRUE(HasBackend(*engine, BackendKind::kMemcpy));  // host transfers still work
  const std::string notes = engine->backend_notes();
  EXPECT_THAT(notes, HasSubstr("cuda"));
  // The note carries the factory's own reason, not just the backend's name.
  EXPECT_THAT(notes, HasSubstr(internal::MakeCudaBackend({}).status().message()));
}

TEST(CudaBackendTest, RealDeviceMemoryWithoutTheBackendIsNotSupported) {
  if (HaveCudaBackend()) GTEST_SKIP() << "a CUDA device is present";
  auto engine = NewEngine();
  ASSERT_NE(engine, nullptr);
  std::vector<std::byte> memory(8192);
  auto region = engine->RegisterMemory({.type = MemoryType::kDevice,
                                        .addr = memory.data(),
                                        .length = memory.size(),
                                        .device_id = 0,
                                        .host_emulated = false,
                                        .name = "kv-device"});
  ASSERT_FALSE(region.ok());
  EXPECT_EQ(region.status().code(), StatusCode::kNotSupported) << region.status().ToString();
  // The reason names the region, the missing backend and why it is missing.
  EXPECT_THAT(region.status().message(), HasSubstr("kv-device"));
  EXPECT_THAT(region.status().message(), HasSubstr("CUDA"));
  EXPECT_THAT(region.status().message(),
              HasSubstr(internal::MakeCudaBackend({}).status().message()));

  // The same bytes as host-emulated device memory are fine: the refusal is about the
  // missing backend, not the address.
  auto emulated = engine->RegisterMemory({.type = MemoryType::kDevice,
                                          .addr = memory.data(),
                                          .length = memory.size(),
                                          .host_emulated = true,
                                          .name = "kv-emulated"});
  EXPECT_TRUE(emulated.ok()) << emulated.status().ToString();
}

TEST(CudaBackendTest, NamingTheMissingBackendFailsWithItsReason) {
  if (HaveCudaBackend()) GTEST_SKIP() << "a CUDA device is present";
  auto engine = NewEngine();
  ASSERT_NE(engine, nullptr);
  std::vector<std::byte> host(4096), device(4096);
  auto h = engine->RegisterMemory({.type = MemoryType::kHost, .addr = host.data(), .length = 4096});
  auto d = engine->RegisterMemory(
      {.type = MemoryType::kDevice, .addr = device.data(), .length = 4096, .host_emulated = true});
  ASSERT_TRUE(h.ok() && d.ok());
  const Descriptor hd{.region = *h, .offset = 0, .length = 4096};
  const Descriptor dd{.region = *d, .offset = 0, .length = 4096};
  auto hl = engine->PrepareDescList({&hd, 1});
  auto dl = engine->PrepareDescList({&dd, 1});
  ASSERT_TRUE(hl.ok() && dl.ok());
  const uint32_t zero = 0;
  auto req = engine->CreateRequest(TransferOp::kWrite, *hl, {&zero, 1}, *dl, {&zero, 1},
                                   BackendKind::kCuda);
  ASSERT_FALSE(req.ok());
  EXPECT_EQ(req.status().code(), StatusCode::kNotSupported) << req.status().ToString();
  EXPECT_THAT(req.status().message(), HasSubstr("cuda"));
}

// ---- With a device ------------------------------------------------------------------

TEST(CudaBackendTest, SupportsOnlyMemoryPairsWithRealDeviceMemory) {
  auto backend = internal::MakeCudaBackend({});
  if (!backend.ok()) GTEST_SKIP() << backend.status().ToString();
  internal::RegionInfo host{.type = MemoryType::kHost};
  internal::RegionInfo device{.type = MemoryType::kDevice};
  internal::RegionInfo emulated{.type = MemoryType::kDevice, .host_emulated = true};
  internal::RegionInfo file{.type = MemoryType::kFile};
  const internal::TransferBackend& b = **backend;
  EXPECT_TRUE(b.Supports(host, device));
  EXPECT_TRUE(b.Supports(device, host));
  EXPECT_TRUE(b.Supports(device, device));
  EXPECT_TRUE(b.Supports(emulated, device));
  EXPECT_FALSE(b.Supports(host, host));
  EXPECT_FALSE(b.Supports(host, emulated));
  EXPECT_FALSE(b.Supports(device, file));  // no GPUDirect Storage yet
}

TEST(CudaBackendTest, HostMemoryRegisteredAsDeviceIsInvalid) {
  if (!HaveCudaBackend()) GTEST_SKIP() << "no CUDA device";
  auto engine = NewEngine();
  ASSERT_NE(engine, nullptr);
  std::vector<std::byte> memory(4096);
  auto region = engine->RegisterMemory({.type = MemoryType::kDevice,
                                        .addr = memory.data(),
                                        .length = memory.size(),
                                        .name = "not-device"});
  ASSERT_FALSE(region.ok());
  EXPECT_EQ(region.status().code(), StatusCode::kInvalidArgument) << region.status().ToString();
  EXPECT_THAT(region.status().message(), HasSubstr("not-device"));
  EXPECT_THAT(region.status().message(), HasSubstr("not device memory"));

  auto far = engine->RegisterMemory({.type = MemoryType::kDevice,
                                     .addr = memory.data(),
                                     .length = memory.size(),
                                     .device_id = 1 << 20});
  ASSERT_FALSE(far.ok());
  EXPECT_EQ(far.status().code(), StatusCode::kInvalidArgument) << far.status().ToString();
}

TEST(CudaBackendTest, HostDeviceHostRoundTrip) {
  if (!HaveCudaBackend()) GTEST_SKIP() << "no CUDA device";
#ifndef STRATA_TEST_HAS_CUDA_RUNTIME
  GTEST_SKIP() << "the CUDA runtime headers are not on this test's include path";
#else
  // 16 blocks of 256 KiB: large enough to be split over every stream of the device.
  constexpr uint64_t kBlock = uint64_t{256} << 10;
  constexpr uint32_t kBlocks = 16;
  constexpr uint64_t kBytes = kBlock * kBlocks;
  void* device_memory = nullptr;
  ASSERT_EQ(cudaMalloc(&device_memory, kBytes), cudaSuccess);
  struct Free {
    void* p;
    ~Free() { cudaFree(p); }
  } free_device{device_memory};

  std::vector<std::byte> source(kBytes), sink(kBytes);
  for (uint64_t i = 0; i < kBytes; ++i)
    source[i] = static_cast<std::byte>((i * 131 + i / kBlock) & 0xff);

  auto engine = NewEngine();
  ASSERT_NE(engine, nullptr);
  ASSERT_TRUE(HasBackend(*engine, BackendKind::kCuda)) << engine->backend_notes();
  auto src =
      engine->RegisterMemory({.type = MemoryType::kHost, .addr = source.data(), .length = kBytes});
  auto dst =
      engine->RegisterMemory({.type = MemoryType::kHost, .addr = sink.data(), .length = kBytes});
  auto dev = engine->RegisterMemory({.type = MemoryType::kDevice,
                                     .addr = device_memory,
                                     .length = kBytes,
                                     .device_id = 0,
                                     .name = "kv-gpu"});
  ASSERT_TRUE(src.ok()) << src.status().ToString();
  ASSERT_TRUE(dst.ok()) << dst.status().ToString();
  ASSERT_TRUE(dev.ok()) << dev.status().ToString();

  auto blocks = [&](RegionId region) {
    std::vector<Descriptor> d(kBlocks);
    for (uint32_t i = 0; i < kBlocks; ++i)
      d[i] = {.region = region, .offset = i * kBlock, .length = kBlock};
    return engine->PrepareDescList(d);
  };
  auto src_list = blocks(*src), dst_list = blocks(*dst), dev_list = blocks(*dev);
  ASSERT_TRUE(src_list.ok() && dst_list.ok() && dev_list.ok());
  std::vector<uint32_t> in_order(kBlocks), reversed(kBlocks);
  std::iota(in_order.begin(), in_order.end(), 0);
  std::reverse_copy(in_order.begin(), in_order.end(), reversed.begin());

  // Host -> device with the blocks reversed on the device, then back in the same pairing:
  // a pairing or direction mix-up cannot cancel out.
  auto up = engine->CreateRequest(TransferOp::kWrite, *src_list, in_order, *dev_list, reversed);
  auto down = engine->CreateRequest(TransferOp::kRead, *dst_list, in_order, *dev_list, reversed);
  ASSERT_TRUE(up.ok()) << up.status().ToString();
  ASSERT_TRUE(down.ok()) << down.status().ToString();
  EXPECT_EQ((*up)->backend(), BackendKind::kCuda);
  EXPECT_EQ((*down)->backend(), BackendKind::kCuda);

  for (int round = 0; round < 3; ++round) {  // a prepared request posts again and again
    std::fill(sink.begin(), sink.end(), std::byte{0});
    ASSERT_TRUE(engine->Post(**up).ok());
    ASSERT_TRUE((*up)->Wait(kWait).ok()) << (*up)->status().ToString();
    ASSERT_TRUE(engine->Post(**down).ok());
    ASSERT_TRUE((*down)->Wait(kWait).ok()) << (*down)->status().ToString();
    for (uint32_t i = 0; i < kBlocks; ++i) EXPECT_EQ((*down)->state(i), DescriptorState::kDone);
    ASSERT_TRUE(sink == source) << "round " << round;
  }
#endif
}

}  // namespace
}  // namespace strata
