// Status and Result: codes, reasons, errno text, context and the helper macros.
#include "strata/status.h"

#include <cerrno>

#include <gtest/gtest.h>

namespace strata {
namespace {

TEST(StatusTest, DefaultIsOkAndEmpty) {
  Status s;
  EXPECT_TRUE(s.ok());
  EXPECT_EQ(s.ToString(), "ok");
  EXPECT_EQ(s.code(), StatusCode::kOk);
}

TEST(StatusTest, ErrorsCarryTheirReason) {
  Status s = Status::InvalidArgument("layout.head_dim must be >= 1");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.ToString(), "invalid_argument: layout.head_dim must be >= 1");
}

TEST(StatusTest, IoErrorNamesTheErrno) {
  Status s = Status::IoError("pwrite /cache/r3 at 4096", ENOSPC);
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.sys_errno(), ENOSPC);
  EXPECT_NE(s.message().find("pwrite /cache/r3 at 4096"), std::string::npos);
  EXPECT_NE(s.message().find("ENOSPC"), std::string::npos);
  EXPECT_NE(s.message().find("No space left on device"), std::string::npos);
}

TEST(StatusTest, WithContextPrependsAndKeepsCodeAndErrno) {
  Status s = Status::IoError("pread", EIO).WithContext("loading block 7");
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_EQ(s.sys_errno(), EIO);
  EXPECT_EQ(s.message().rfind("loading block 7: pread", 0), 0u);
  EXPECT_TRUE(Status::Ok().WithContext("x").ok());
}

Result<int> Half(int v) {
  if (v % 2) return Status::InvalidArgument("odd");
  return v / 2;
}

Result<int> Quarter(int v) {
  STRATA_ASSIGN_OR_RETURN(int h, Half(v));
  STRATA_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(ResultTest, HoldsValueOrStatus) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "odd");
}

TEST(ResultTest, OkStatusWithoutValueIsAnInternalError) {
  Result<int> r{Status::Ok()};
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

Status FailsOnNegative(int v) {
  STRATA_RETURN_IF_ERROR(v < 0 ? Status::InvalidArgument("negative") : Status::Ok());
  return Status::Ok();
}

TEST(StatusTest, ReturnIfError) {
  EXPECT_TRUE(FailsOnNegative(1).ok());
  EXPECT_EQ(FailsOnNegative(-1).code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace strata
