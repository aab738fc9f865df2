// HostBuffer tests: allocation, zeroing, huge-page fallback, pinning notes.
#include "memory/host_memory.h"

#include <cstring>

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

}  // namespace
}  // namespace strata
