// posix backend: file round trips with and without O_DIRECT, and every fault class
// (EIO, ENOSPC, short read/write, misaligned O_DIRECT) reported per descriptor.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <numeric>
#include <random>

#include <gtest/gtest.h>

#include "strata/fault_injection.h"
#include "strata/transfer.h"

namespace strata {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kBlock = 64 << 10;
constexpr uint32_t kBlocks = 16;

// Page-aligned anonymous memory, as the host tier uses (O_DIRECT needs aligned buffers).
struct AlignedBuffer {
  explicit AlignedBuffer(size_t n) : size(n) {
    p = static_cast<std::byte*>(
        mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  }
  ~AlignedBuffer() { munmap(p, size); }
  std::byte* p;
  size_t size;
};

class PosixBackendTest : public ::testing::TestWithParam<bool /*direct*/> {
 protected:
  void SetUp() override {
    auto e = TransferEngine::Create({.posix_threads = 3, .enable_io_uring = false});
    ASSERT_TRUE(e.ok());
    engine_ = std::move(e).value();
    path_ = testing::TempDir() + "/posix_backend_test_" + std::to_string(getpid()) + ".dat";
    fd_ = open(path_.c_str(), O_RDWR | O_CREAT | O_TRUNC | (GetParam() ? O_DIRECT : 0), 0600);
    ASSERT_GE(fd_, 0) << strerror(errno);
    ASSERT_EQ(ftruncate(fd_, kBlocks * kBlock), 0);
    faults_ = std::make_shared<FaultInjector>();
    file_ = *engine_->RegisterFile({.fd = fd_,
                                    .length = kBlocks * kBlock,
                                    .direct = GetParam(),
                                    .name = path_,
                                    .faults = faults_});
    mem_ = *engine_->RegisterMemory({.addr = buf_.p, .length = buf_.size, .name = "host slots"});
    std::vector<Descriptor> fd_descs, mem_descs;
    for (uint32_t i = 0; i < kBlocks; ++i) {
      fd_descs.push_back({file_, i * kBlock, kBlock});
      mem_descs.push_back({mem_, i * kBlock, kBlock});
    }
    file_list_ = *engine_->PrepareDescList(fd_descs);
    mem_list_ = *engine_->PrepareDescList(mem_descs);
    std::mt19937 rng(3);
    for (size_t i = 0; i < buf_.size; ++i) buf_.p[i] = static_cast<std::byte>(rng());
  }
  void TearDown() override {
    engine_.reset();
    close(fd_);
    unlink(path_.c_str());
  }

  std::unique_ptr<TransferRequest> Run(TransferOp op, std::vector<uint32_t> mem_idx,
                                       std::vector<uint32_t> file_idx) {
    auto req =
        engine_->CreateRequest(op, mem_list_, mem_idx, file_list_, file_idx, BackendKind::kPosix);
    EXPECT_TRUE(req.ok()) << req.status().ToString();
    EXPECT_EQ((*req)->backend(), BackendKind::kPosix);
    EXPECT_TRUE(engine_->Post(**req).ok());
    Status s = (*req)->Wait(10s);
    EXPECT_TRUE((*req)->done()) << s.ToString();
    return std::move(req).value();
  }

  std::vector<uint32_t> All() {
    std::vector<uint32_t> v(kBlocks);
    std::iota(v.begin(), v.end(), 0);
    return v;
  }

  std::unique_ptr<TransferEngine> engine_;
  std::string path_;
  int fd_ = -1;
  std::shared_ptr<FaultInjector> faults_;
  AlignedBuffer buf_{kBlocks * kBlock};
  RegionId file_ = 0, mem_ = 0;
  DescListId file_list_ = 0, mem_list_ = 0;
};

TEST_P(PosixBackendTest, WriteThenReadBackIsByteExact) {
  std::vector<std::byte> expect(buf_.p, buf_.p + buf_.size);
  ASSERT_TRUE(Run(TransferOp::kWrite, All(), All())->status().ok());
  std::memset(buf_.p, 0, buf_.size);
  // Read file blocks in reverse into memory blocks 0..15.
  std::vector<uint32_t> rev = All();
  std::reverse(rev.begin(), rev.end());
  ASSERT_TRUE(Run(TransferOp::kRead, All(), rev)->status().ok());
  for (uint32_t i = 0; i < kBlocks; ++i)
    ASSERT_EQ(std::memcmp(buf_.p + i * kBlock, expect.data() + (kBlocks - 1 - i) * kBlock, kBlock),
              0)
        << i;
}

TEST_P(PosixBackendTest, InjectedEioOnReadFailsOnlyThatDescriptor) {
  ASSERT_TRUE(Run(TransferOp::kWrite, All(), All())->status().ok());
  faults_->FailRange(TransferOp::kRead, 5 * kBlock, kBlock, EIO);
  auto req = Run(TransferOp::kRead, All(), All());
  for (uint32_t i = 0; i < kBlocks; ++i) {
    if (i == 5) {
      EXPECT_EQ(req->state(i), DescriptorState::kFailed);
      EXPECT_EQ(req->error(i).sys_errno(), EIO);
      EXPECT_NE(req->error(i).message().find("EIO"), std::string::npos);
      EXPECT_NE(req->error(i).message().find(path_), std::string::npos);
      EXPECT_NE(req->error(i).message().find(std::to_string(5 * kBlock)), std::string::npos);
    } else {
      EXPECT_EQ(req->state(i), DescriptorState::kDone) << i;
    }
  }
  EXPECT_EQ(req->status().sys_errno(), EIO);
}

TEST_P(PosixBackendTest, InjectedEnospcOnWrite) {
  faults_->FailNext(TransferOp::kWrite, ENOSPC, 2);
  auto req = Run(TransferOp::kWrite, All(), All());
  size_t failed = 0;
  for (uint32_t i = 0; i < kBlocks; ++i) {
    if (req->state(i) != DescriptorState::kFailed) continue;
    ++failed;
    EXPECT_EQ(req->error(i).sys_errno(), ENOSPC);
    EXPECT_NE(req->error(i).message().find("No space left on device"), std::string::npos);
  }
  EXPECT_EQ(failed, 2u);
  EXPECT_EQ(faults_->injected(), 2u);
}

TEST_P(PosixBackendTest, ShortReadAndShortWriteAreErrors) {
  ASSERT_TRUE(Run(TransferOp::kWrite, All(), All())->status().ok());
  faults_->ShortNext(TransferOp::kRead, kBlock / 2);
  auto r = Run(TransferOp::kRead, std::vector<uint32_t>{0}, std::vector<uint32_t>{3});
  EXPECT_EQ(r->state(0), DescriptorState::kFailed);
  EXPECT_NE(r->error(0).message().find("short read: 32768 of 65536 bytes"), std::string::npos)
      << r->error(0).ToString();
  faults_->ShortNext(TransferOp::kWrite, 4096);
  auto w = Run(TransferOp::kWrite, std::vector<uint32_t>{0}, std::vector<uint32_t>{3});
  EXPECT_EQ(w->state(0), DescriptorState::kFailed);
  EXPECT_NE(w->error(0).message().find("short write: 4096 of 65536 bytes"), std::string::npos)
      << w->error(0).ToString();
}

TEST_P(PosixBackendTest, ReadPastEndOfFileIsAShortRead) {
  ASSERT_EQ(ftruncate(fd_, 2 * kBlock), 0);  // the file shrank under us (e.g. truncated by hand)
  auto r = Run(TransferOp::kRead, std::vector<uint32_t>{0, 1}, std::vector<uint32_t>{1, 2});
  EXPECT_EQ(r->state(0), DescriptorState::kDone);
  EXPECT_EQ(r->state(1), DescriptorState::kFailed);
  EXPECT_NE(r->error(1).message().find("short read: 0 of"), std::string::npos)
      << r->error(1).ToString();
}

TEST_P(PosixBackendTest, MisalignedODirectIsEinvalPerDescriptor) {
  if (!GetParam()) GTEST_SKIP() << "buffered I/O accepts any alignment";
  // A memory region one byte off a page boundary: most kernels refuse it with EINVAL;
  // some (recent ext4) quietly fall back to buffered I/O. Where the kernel accepts it,
  // inject the EINVAL the device would give, so the reporting path is proven either way.
  RegionId odd =
      *engine_->RegisterMemory({.addr = buf_.p + 1, .length = kBlock, .name = "misaligned"});
  DescListId odd_list = *engine_->PrepareDescList(std::vector<Descriptor>{{odd, 0, kBlock}});
  auto post = [&] {
    auto req = engine_->CreateRequest(TransferOp::kRead, odd_list, std::vector<uint32_t>{0},
                                      file_list_, std::vector<uint32_t>{0}, BackendKind::kPosix);
    EXPECT_TRUE(req.ok());
    EXPECT_TRUE(engine_->Post(**req).ok());
    (void)(*req)->Wait(10s);  // the outcome is read per descriptor
    return std::move(req).value();
  };
  auto req = post();
  if (req->state(0) == DescriptorState::kDone) {
    faults_->FailNext(TransferOp::kRead, EINVAL);
    req = post();
  }
  EXPECT_EQ(req->state(0), DescriptorState::kFailed);
  EXPECT_EQ(req->error(0).sys_errno(), EINVAL);
  EXPECT_NE(req->error(0).message().find("O_DIRECT needs"), std::string::npos)
      << req->error(0).ToString();
}

TEST_P(PosixBackendTest, MisalignedFileDescriptorsAreRefusedUpFront) {
  if (!GetParam()) GTEST_SKIP() << "buffered I/O accepts any alignment";
  auto l = engine_->PrepareDescList(std::vector<Descriptor>{{file_, 100, 4096}});
  ASSERT_FALSE(l.ok());
  EXPECT_NE(l.status().message().find("O_DIRECT"), std::string::npos);
}

// Execute (post and wait at once) runs small requests on the calling thread: same bytes,
// same per-descriptor errors as through the workers.
TEST_P(PosixBackendTest, ExecuteRunsSmallRequestsInlineWithTheSameResults) {
  std::vector<std::byte> want(buf_.p, buf_.p + 2 * kBlock);
  auto write = engine_->CreateRequest(TransferOp::kWrite, mem_list_, std::vector<uint32_t>{0, 1},
                                      file_list_, std::vector<uint32_t>{4, 5}, BackendKind::kPosix);
  ASSERT_TRUE(write.ok());
  ASSERT_TRUE(engine_->Execute(**write).ok());
  EXPECT_TRUE((*write)->done());
  std::memset(buf_.p, 0, 2 * kBlock);
  auto read = engine_->CreateRequest(TransferOp::kRead, mem_list_, std::vector<uint32_t>{0, 1},
                                     file_list_, std::vector<uint32_t>{4, 5}, BackendKind::kPosix);
  ASSERT_TRUE(read.ok());
  ASSERT_TRUE(engine_->Execute(**read).ok());
  EXPECT_EQ(0, std::memcmp(want.data(), buf_.p, 2 * kBlock));

  faults_->FailNext(TransferOp::kRead, EIO, 1);
  const Status st = engine_->Execute(**read);  // reposting a prepared request
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.ToString().find("EIO"), std::string::npos) << st.ToString();
  EXPECT_EQ((*read)->state(0), DescriptorState::kFailed);
  EXPECT_EQ((*read)->state(1), DescriptorState::kDone);
}

INSTANTIATE_TEST_SUITE_P(DirectAndBuffered, PosixBackendTest, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "ODirect" : "Buffered"; });

}  // namespace
}  // namespace strata
