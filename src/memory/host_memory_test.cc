// HostBuffer tests: allocation, zeroing, huge-page fallback, pinning notes.
#include "memory/host_memory.h"

#include <cstring>

#include <unistd.h>

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(HostBufferTest, AllocatesZeroedWritableMemory) {
  auto buf = HostBuffer::Allocate(3 * 4096 + 5, {});
  ASSERT_TRUE(buf.ok()) << buf.status().ToString();
  ASSERT_EQ((*buf)->size(), 3 * 4096 + 5u);
  for (size_t i = 0; i < (*buf)->size(); ++i) ASSERT_EQ((*buf)->data()[i], std::byte{0});
  std::memset((*buf)->data(), 0xab, (*buf)->size());
  EXPECT_EQ((*buf)->data()[(*buf)->size() - 1], std::byte{0xab});
  EXPECT_FALSE((*buf)->pinned());
}

TEST(HostBufferTest, ZeroSizeIsInvalid) {
  auto buf = HostBuffer::Allocate(0, {});
  ASSERT_FALSE(buf.ok());
  EXPECT_EQ(buf.status().code(), StatusCode::kInvalidArgument);
}

TEST(HostBufferTest, HugePagesFallBackWithAReason) {
  auto buf = HostBuffer::Allocate(4 << 20, {.huge_pages = true, .pin_for_cuda = false});
  ASSERT_TRUE(buf.ok()) << buf.status().ToString();
  // Either explicit huge pages are reserved on this machine, or the fallback says why.
  EXPECT_TRUE((*buf)->huge_pages() || !(*buf)->notes().empty());
  std::memset((*buf)->data(), 1, (*buf)->size());
}

TEST(HostBufferTest, PinRequestWithoutDeviceExplainsItself) {
  auto buf = HostBuffer::Allocate(1 << 20, {.huge_pages = false, .pin_for_cuda = true});
  ASSERT_TRUE(buf.ok()) << buf.status().ToString();
  if (!(*buf)->pinned()) {
    EXPECT_FALSE((*buf)->notes().empty());
  }
}

// A daemon's G2: another mapping of the memfd sees the same bytes, and the file cannot
// shrink under a client's mapping (sealed).
TEST(HostBufferTest, SharedBufferIsSeenThroughAnotherMapping) {
  for (bool huge : {false, true}) {
    auto buf = HostBuffer::Allocate(3 << 20, {.huge_pages = huge, .shared = true});
    ASSERT_TRUE(buf.ok()) << buf.status().ToString();
    ASSERT_GE((*buf)->fd(), 0);
    std::memset((*buf)->data(), 0x5a, (*buf)->size());
    auto view = HostBuffer::MapShared(dup((*buf)->fd()), (*buf)->size(), {});
    ASSERT_TRUE(view.ok()) << view.status().ToString();
    EXPECT_EQ((*view)->data()[(*buf)->size() - 1], std::byte{0x5a});
    (*view)->data()[7] = std::byte{0x11};
    EXPECT_EQ((*buf)->data()[7], std::byte{0x11});
    EXPECT_NE(ftruncate((*buf)->fd(), 4096), 0);
  }
}

TEST(HostBufferTest, MappingMoreThanTheSharedFileHoldsIsRefused) {
  auto buf = HostBuffer::Allocate(1 << 20, {.shared = true});
  ASSERT_TRUE(buf.ok()) << buf.status().ToString();
  auto view = HostBuffer::MapShared(dup((*buf)->fd()), size_t{64} << 20, {});
  ASSERT_FALSE(view.ok());
  EXPECT_EQ(view.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(view.status().message().find("announced"), std::string::npos);
}

}  // namespace
}  // namespace strata
