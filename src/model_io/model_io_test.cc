// Tests of MappedFile and of the element conversions (tensor_convert.h) against hand-checked
// values and an independent reference.
#include <sys/stat.h>

#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model_io/mapped_file.h"
#include "model_io/model_io_test_util.h"
#include "model_io/tensor_convert.h"
#include "model_io/test_writers.h"

namespace strata::model_io {
namespace {

using testing::AsBytes;
using testing::Bytes;
using testing::TempDir;
using testing::WriteFile;

// --- MappedFile

TEST(MappedFileTest, MapsAWholeFile) {
  TempDir dir;
  const std::string content = "hello, mapped world";
  WriteFile(dir / "f", content);
  Result<MappedFile> file = MappedFile::Open(dir / "f");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->path(), dir / "f");
  ASSERT_EQ(file->size(), content.size());
  EXPECT_EQ(std::memcmp(file->bytes().data(), content.data(), content.size()), 0);

  // A move keeps the mapping where it is: spans taken before stay valid.
  const std::byte* before = file->bytes().data();
  MappedFile moved = std::move(*file);
  EXPECT_EQ(moved.bytes().data(), before);
  EXPECT_EQ(file->size(), 0u);
  MappedFile assigned;
  assigned = std::move(moved);
  EXPECT_EQ(assigned.bytes().data(), before);
  EXPECT_EQ(assigned.size(), content.size());
}

TEST(MappedFileTest, EmptyFileMapsToAnEmptySpan) {
  TempDir dir;
  WriteFile(dir / "empty", "");
  Result<MappedFile> file = MappedFile::Open(dir / "empty");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->size(), 0u);
  EXPECT_TRUE(file->bytes().empty());
}

TEST(MappedFileTest, MissingFileIsAnIoErrorNamingThePath) {
  TempDir dir;
  Result<MappedFile> file = MappedFile::Open(dir / "nope");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kIoError);
  EXPECT_EQ(file.status().sys_errno(), ENOENT);
  EXPECT_NE(file.status().message().find(dir / "nope"), std::string::npos)
      << file.status().message();
}

TEST(MappedFileTest, DirectoryIsNotARegularFile) {
  TempDir dir;
  Result<MappedFile> file = MappedFile::Open(dir.path());
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(file.status().message().find("not a regular file"), std::string::npos)
      << file.status().message();
}

// Opening a FIFO for reading blocks until a writer comes, unless opened non-blocking: this
// test hung before MappedFile::Open used O_NONBLOCK.
TEST(MappedFileTest, FifoIsRefusedWithoutWaitingForAWriter) {
  TempDir dir;
  ASSERT_EQ(mkfifo((dir / "fifo").c_str(), 0600), 0) << std::strerror(errno);
  Result<MappedFile> file = MappedFile::Open(dir / "fifo");
  ASSERT_FALSE(file.ok());
  EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
}

// --- Half and bfloat16

uint32_t FloatBits(float f) {
  return std::bit_cast<uint32_t>(f);
}

TEST(TensorConvertTest, HalfToFloatHandCheckedValues) {
  EXPECT_EQ(FloatBits(HalfToFloat(0x0000)), 0x00000000u);  // +0
  EXPECT_EQ(FloatBits(HalfToFloat(0x8000)), 0x80000000u);  // -0 keeps its sign
  EXPECT_EQ(HalfToFloat(0x3c00), 1.0f);
  EXPECT_EQ(HalfToFloat(0xc000), -2.0f);
  EXPECT_EQ(HalfToFloat(0x3555), 0.333251953125f);  // nearest half to 1/3
  EXPECT_EQ(HalfToFloat(0x3bff), 0.99951171875f);   // largest below 1
  EXPECT_EQ(HalfToFloat(0x7bff), 65504.0f);         // largest finite
  EXPECT_EQ(HalfToFloat(0xfbff), -65504.0f);
  EXPECT_EQ(HalfToFloat(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  // Subnormals: mantissa * 2^-24.
  EXPECT_EQ(HalfToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest
  EXPECT_EQ(HalfToFloat(0x8001), -std::ldexp(1.0f, -24));
  EXPECT_EQ(HalfToFloat(0x0002), std::ldexp(1.0f, -23));
  EXPECT_EQ(HalfToFloat(0x0200), std::ldexp(1.0f, -15));
  EXPECT_EQ(HalfToFloat(0x03ff), std::ldexp(1023.0f, -24));  // largest
  EXPECT_EQ(HalfToFloat(0x0155), std::ldexp(341.0f, -24));
  // Infinities and NaN; a NaN's payload is kept in the top mantissa bits, quiet or not.
  EXPECT_EQ(FloatBits(HalfToFloat(0x7c00)), 0x7f800000u);
  EXPECT_EQ(FloatBits(HalfToFloat(0xfc00)), 0xff800000u);
  EXPECT_EQ(FloatBits(HalfToFloat(0x7e00)), 0x7fc00000u);
  EXPECT_EQ(FloatBits(HalfToFloat(0xfe00)), 0xffc00000u);
  EXPECT_EQ(FloatBits(HalfToFloat(0x7c01)), 0x7f802000u);
  EXPECT_TRUE(std::isnan(HalfToFloat(0x7c01)));
}

// Every one of the 65536 halves against the definition, computed another way.
TEST(TensorConvertTest, HalfToFloatMatchesTheDefinitionForEveryInput) {
  for (uint32_t bits = 0; bits <= 0xffff; ++bits) {
    const double sign = (bits & 0x8000) ? -1.0 : 1.0;
    const int exponent = static_cast<int>((bits >> 10) & 0x1f);
    const int mantissa = static_cast<int>(bits & 0x3ff);
    const float got = HalfToFloat(static_cast<uint16_t>(bits));
    if (exponent == 31) {
      if (mantissa == 0) {
        EXPECT_TRUE(std::isinf(got) && std::signbit(got) == (sign < 0)) << bits;
      } else {
        EXPECT_TRUE(std::isnan(got)) << bits;
      }
      continue;
    }
    const double want = exponent == 0 ? sign * std::ldexp(mantissa, -24)
                                      : sign * std::ldexp(1024 + mantissa, exponent - 25);
    EXPECT_EQ(static_cast<double>(got), want) << "half 0x" << std::hex << bits;
    EXPECT_EQ(std::signbit(got), sign < 0) << bits;
  }
}

TEST(TensorConvertTest, BFloat16ToFloatHandCheckedValues) {
  EXPECT_EQ(FloatBits(BFloat16ToFloat(0x0000)), 0x00000000u);
  EXPECT_EQ(FloatBits(BFloat16ToFloat(0x8000)), 0x80000000u);  // -0
  EXPECT_EQ(BFloat16ToFloat(0x3f80), 1.0f);
  EXPECT_EQ(BFloat16ToFloat(0xc000), -2.0f);
  EXPECT_EQ(BFloat16ToFloat(0x4049), 3.140625f);
  EXPECT_EQ(BFloat16ToFloat(0x7f7f), 3.3895313892515355e38f);  // largest finite
  EXPECT_EQ(BFloat16ToFloat(0x0080), std::ldexp(1.0f, -126));  // smallest normal
  EXPECT_EQ(BFloat16ToFloat(0x0001), std::ldexp(1.0f, -133));  // smallest subnormal
  EXPECT_EQ(BFloat16ToFloat(0x807f), -std::ldexp(127.0f, -133));
  EXPECT_EQ(FloatBits(BFloat16ToFloat(0x7f80)), 0x7f800000u);
  EXPECT_EQ(FloatBits(BFloat16ToFloat(0xff80)), 0xff800000u);
  EXPECT_EQ(FloatBits(BFloat16ToFloat(0x7fc0)), 0x7fc00000u);
  EXPECT_EQ(FloatBits(BFloat16ToFloat(0x7f81)), 0x7f810000u);  // signalling NaN kept
}

// --- Q8_0

// A Q8_0 block: the fp16 scale, then 32 int8 quants.
std::string Q8Block(uint16_t scale, const std::vector<int8_t>& q) {
  std::string out;
  testing::Put<uint16_t>(out, scale);
  for (int8_t v : q) testing::Put<int8_t>(out, v);
  return out;
}

TEST(TensorConvertTest, DequantizeQ8_0HandChecked) {
  std::vector<int8_t> ramp(32), extremes(32, 0);
  for (int i = 0; i < 32; ++i) ramp[i] = static_cast<int8_t>(i - 16);
  extremes[0] = -128;
  extremes[1] = 127;
  extremes[2] = -1;
  // Block 0: scale 0.5 (0x3800). Block 1: scale -0.25 (0xb400).
  const std::string blocks = Q8Block(0x3800, ramp) + Q8Block(0xb400, extremes);
  ASSERT_EQ(blocks.size(), 2 * kQ8_0BlockBytes);
  std::vector<float> out(64, -99.0f);
  ASSERT_TRUE(DequantizeQ8_0(AsBytes(blocks), out).ok());
  EXPECT_EQ(out[0], -8.0f);   // 0.5 * -16
  EXPECT_EQ(out[15], -0.5f);  // 0.5 * -1
  EXPECT_EQ(out[16], 0.0f);
  EXPECT_EQ(out[17], 0.5f);
  EXPECT_EQ(out[31], 7.5f);                    // 0.5 * 15
  EXPECT_EQ(out[32], 32.0f);                   // -0.25 * -128
  EXPECT_EQ(out[33], -31.75f);                 // -0.25 * 127
  EXPECT_EQ(out[34], 0.25f);                   // -0.25 * -1
  EXPECT_EQ(FloatBits(out[35]), 0x80000000u);  // -0.25 * 0 is -0
}

TEST(TensorConvertTest, DequantizeQ8_0RefusesPartialBlocksAndWrongCounts) {
  const std::string block = Q8Block(0x3c00, std::vector<int8_t>(32, 1));
  std::vector<float> out(32);
  Status s = DequantizeQ8_0(AsBytes(block.substr(0, 33)), out);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("whole number"), std::string::npos) << s.message();
  std::vector<float> wrong(31);
  s = DequantizeQ8_0(AsBytes(block), wrong);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("not the 31"), std::string::npos) << s.message();
  EXPECT_TRUE(DequantizeQ8_0({}, std::span<float>()).ok());  // zero blocks, zero elements
}

TEST(TensorConvertTest, FormatNamesAndByteCounts) {
  EXPECT_EQ(FloatFormatName(FloatFormat::kF32), "F32");
  EXPECT_EQ(FloatFormatName(FloatFormat::kF16), "F16");
  EXPECT_EQ(FloatFormatName(FloatFormat::kBF16), "BF16");
  EXPECT_EQ(FloatFormatName(FloatFormat::kQ8_0), "Q8_0");
  EXPECT_EQ(*FloatFormatBytes(FloatFormat::kF32, 3), 12u);
  EXPECT_EQ(*FloatFormatBytes(FloatFormat::kF16, 3), 6u);
  EXPECT_EQ(*FloatFormatBytes(FloatFormat::kBF16, 3), 6u);
  EXPECT_EQ(*FloatFormatBytes(FloatFormat::kQ8_0, 64), 68u);
  EXPECT_EQ(FloatFormatBytes(FloatFormat::kQ8_0, 33).status().code(), StatusCode::kInvalidArgument);
  Result<uint64_t> huge = FloatFormatBytes(FloatFormat::kF32, uint64_t{1} << 62);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(huge.status().message().find("overflow"), std::string::npos);
}

TEST(TensorConvertTest, ConvertToFloatEveryFormat) {
  const std::vector<float> f32 = {1.5f, -0.0f, 3e38f};
  std::vector<float> out(3);
  ASSERT_TRUE(ConvertToFloat(FloatFormat::kF32, AsBytes(Bytes(f32)), out).ok());
  EXPECT_EQ(out, f32);

  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x0001};
  ASSERT_TRUE(ConvertToFloat(FloatFormat::kF16, AsBytes(Bytes(f16)), out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24)}));

  const std::vector<uint16_t> bf16 = {0x3f80, 0xc000, 0x4049};
  ASSERT_TRUE(ConvertToFloat(FloatFormat::kBF16, AsBytes(Bytes(bf16)), out).ok());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 3.140625f}));

  std::vector<float> q8(32);
  ASSERT_TRUE(
      ConvertToFloat(FloatFormat::kQ8_0, AsBytes(Q8Block(0x4000, std::vector<int8_t>(32, -3))), q8)
          .ok());
  EXPECT_EQ(q8, std::vector<float>(32, -6.0f));

  // A byte count that does not match the elements asked for.
  Status s = ConvertToFloat(FloatFormat::kF16, AsBytes(Bytes(f16)), std::span(out).first(2));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("take 4 bytes, not 6"), std::string::npos) << s.message();
  EXPECT_TRUE(ConvertToFloat(FloatFormat::kF32, {}, std::span<float>()).ok());
}

}  // namespace
}  // namespace strata::model_io
