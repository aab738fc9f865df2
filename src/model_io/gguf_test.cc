// Tests of the GGUF reader: round trips of every metadata type, arrays and tensor type
// through files written byte by byte (test_writers.h), and every malformed file it refuses.
#include "model_io/gguf.h"

#include <cmath>
#include <cstring>
#include <deque>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "model_io/model_io_test_util.h"
#include "model_io/test_writers.h"

namespace strata::model_io {
namespace {

using testing::AsBytes;
using testing::Bytes;
using testing::GgufWriter;
using testing::Put;
using testing::PutGgufString;

// gguf_type numbers.
constexpr uint32_t kU8 = 0, kI8 = 1, kU16 = 2, kI16 = 3, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7,
                   kString = 8, kArray = 9, kU64 = 10, kI64 = 11, kF64 = 12;
// ggml_type numbers.
constexpr uint32_t kTypeF32 = 0, kTypeF16 = 1, kTypeQ4_0 = 2, kTypeQ8_0 = 8, kTypeF64 = 28,
                   kTypeBF16 = 30;

// The encoding of an array value (after its type number 9).
std::string EncodeArray(uint32_t element_type, uint64_t count, const std::string& elements) {
  std::string out;
  Put<uint32_t>(out, element_type);
  Put<uint64_t>(out, count);
  return out + elements;
}

template <typename T>
std::string EncodeScalars(const std::vector<T>& values) {
  std::string out;
  for (const T& v : values) Put<T>(out, v);
  return out;
}

// A parsed file views the bytes it was given: an lvalue's stay the caller's, a temporary's
// are kept until the test program ends.
Result<GgufFile> Parse(const std::string& bytes) {
  return GgufFile::Parse(AsBytes(bytes));
}
Result<GgufFile> Parse(std::string&& bytes) {
  static std::deque<std::string> kept;
  return Parse(kept.emplace_back(std::move(bytes)));
}

// The message of a failed parse, with the check that it failed with `code`.
std::string ErrorOf(const std::string& bytes, StatusCode code = StatusCode::kInvalidArgument) {
  Result<GgufFile> file = Parse(bytes);
  EXPECT_FALSE(file.ok()) << "parsed a file that should be refused";
  if (file.ok()) return "";
  EXPECT_EQ(file.status().code(), code) << file.status().ToString();
  return file.status().message();
}

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

// --- Metadata

TEST(GgufTest, EveryScalarTypeRoundTrips) {
  GgufWriter w;
  w.Add<uint8_t>("t.u8", kU8, 200);
  w.Add<int8_t>("t.i8", kI8, -100);
  w.Add<uint16_t>("t.u16", kU16, 60000);
  w.Add<int16_t>("t.i16", kI16, -30000);
  w.Add<uint32_t>("t.u32", kU32, 4000000000u);
  w.Add<int32_t>("t.i32", kI32, -2000000000);
  w.Add<float>("t.f32", kF32, 1.5f);
  w.Add<uint8_t>("t.true", kBool, 1);
  w.Add<uint8_t>("t.false", kBool, 0);
  w.AddString("t.str", "llama");
  w.AddString("t.empty", "");
  w.Add<uint64_t>("t.u64", kU64, (uint64_t{1} << 63) + 5);
  w.Add<int64_t>("t.i64", kI64, -(int64_t{1} << 62));
  w.Add<double>("t.f64", kF64, 0.1);
  w.Add<double>("t.f64big", kF64, 1e300);
  Result<GgufFile> file = Parse(w.Build());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->metadata().size(), 15u);
  EXPECT_EQ(file->metadata()[0].key(), "t.u8");  // file order
  EXPECT_TRUE(file->tensors().empty());

  EXPECT_EQ(file->metadata("t.u8").type(), GgufType::kUint8);
  EXPECT_EQ(*file->metadata("t.u8").GetU8(), 200);
  EXPECT_EQ(*file->metadata("t.u8").GetU32(), 200u);
  EXPECT_EQ(*file->metadata("t.u8").GetI32(), 200);
  EXPECT_EQ(*file->metadata("t.i8").GetI32(), -100);
  EXPECT_EQ(*file->metadata("t.i8").GetI64(), -100);
  EXPECT_EQ(*file->metadata("t.u16").GetU32(), 60000u);
  EXPECT_EQ(*file->metadata("t.i16").GetI32(), -30000);
  EXPECT_EQ(*file->metadata("t.u32").GetU32(), 4000000000u);
  EXPECT_EQ(*file->metadata("t.u32").GetU64(), 4000000000u);
  EXPECT_EQ(*file->metadata("t.u32").GetI64(), 4000000000);
  EXPECT_EQ(*file->metadata("t.i32").GetI32(), -2000000000);
  EXPECT_EQ(*file->metadata("t.f32").GetF32(), 1.5f);
  EXPECT_EQ(*file->metadata("t.f32").GetF64(), 1.5);
  EXPECT_TRUE(*file->metadata("t.true").GetBool());
  EXPECT_FALSE(*file->metadata("t.false").GetBool());
  EXPECT_EQ(*file->metadata("t.str").GetString(), "llama");
  EXPECT_EQ(*file->metadata("t.str").GetStringView(), "llama");
  EXPECT_EQ(*file->metadata("t.empty").GetString(), "");
  EXPECT_EQ(*file->metadata("t.u64").GetU64(), (uint64_t{1} << 63) + 5);
  EXPECT_EQ(*file->metadata("t.i64").GetI64(), -(int64_t{1} << 62));
  EXPECT_EQ(*file->metadata("t.f64").GetF64(), 0.1);
  EXPECT_EQ(*file->metadata("t.f64").GetF32(), 0.1f);  // rounded to nearest
  EXPECT_EQ(*file->metadata("t.f64big").GetF64(), 1e300);

  EXPECT_EQ(file->metadata("t.str").ToString(), "\"llama\"");
  EXPECT_EQ(file->metadata("t.i8").ToString(), "-100");
  EXPECT_EQ(file->metadata("t.u64").ToString(), "9223372036854775813");
  EXPECT_EQ(file->metadata("t.true").ToString(), "true");
  EXPECT_EQ(file->metadata("t.f32").ToString(), "1.5");
  EXPECT_EQ(file->metadata("nope").ToString(), "<missing>");
}

TEST(GgufTest, GettersRefuseLossyConversionsNamingKeyAndTypes) {
  GgufWriter w;
  w.Add<int8_t>("neg", kI8, -1);
  w.Add<uint32_t>("big", kU32, 4000000000u);
  w.Add<uint64_t>("huge", kU64, ~uint64_t{0});
  w.Add<uint16_t>("u16", kU16, 300);
  w.Add<double>("f64big", kF64, 1e300);
  w.AddString("str", "x");
  w.Add<uint8_t>("flag", kBool, 1);
  Result<GgufFile> file = Parse(w.Build());
  ASSERT_TRUE(file.ok()) << file.status().ToString();

  Result<uint32_t> neg = file->metadata("neg").GetU32();
  ASSERT_FALSE(neg.ok());
  EXPECT_EQ(neg.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(neg.status().message(), "'neg'");
  EXPECT_CONTAINS(neg.status().message(), "int8");
  EXPECT_FALSE(file->metadata("big").GetI32().ok());
  EXPECT_FALSE(file->metadata("huge").GetI64().ok());
  EXPECT_FALSE(file->metadata("u16").GetU8().ok());
  EXPECT_CONTAINS(file->metadata("u16").GetU8().status().message(), "300 does not fit");
  // A finite double beyond float's range is refused rather than turned into infinity.
  Result<float> f = file->metadata("f64big").GetF32();
  ASSERT_FALSE(f.ok());
  EXPECT_CONTAINS(f.status().message(), "does not fit");
  Result<uint32_t> str = file->metadata("str").GetU32();
  ASSERT_FALSE(str.ok());
  EXPECT_CONTAINS(str.status().message(), "GGUF metadata 'str' is a string, not an integer");
  EXPECT_FALSE(file->metadata("flag").GetU32().ok());  // a bool is not an integer
  EXPECT_FALSE(file->metadata("str").GetBool().ok());
  EXPECT_FALSE(file->metadata("str").GetF32().ok());
  EXPECT_FALSE(file->metadata("flag").GetString().ok());
  EXPECT_FALSE(file->metadata("str").GetStringArray().ok());
  EXPECT_FALSE(file->metadata("str").Element(0).ok());

  // Every getter of a missing key is NotFound naming it.
  const GgufValue missing = file->metadata("llama.context_length");
  EXPECT_TRUE(missing.is_missing());
  EXPECT_EQ(missing.type(), GgufType::kMissing);
  EXPECT_EQ(missing.GetU32().status().code(), StatusCode::kNotFound);
  EXPECT_CONTAINS(missing.GetU32().status().message(), "llama.context_length");
  EXPECT_EQ(missing.GetF32().status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.GetString().status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.GetBool().status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.GetI32Array().status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.Element(0).status().code(), StatusCode::kNotFound);
}

TEST(GgufTest, ArraysRoundTrip) {
  GgufWriter w;
  w.AddArray<uint32_t>("a.u32", kU32, {1, 2, 4000000000u});
  w.AddArray<int32_t>("a.i32", kI32, {-1, 0, 7});
  w.AddArray<float>("a.f32", kF32, {0.5f, -2.0f});
  w.AddArray<int64_t>("a.i64", kI64, {-(int64_t{1} << 40), 3});
  w.AddArray<uint8_t>("a.bool", kBool, {1, 0, 1});
  w.AddArray<uint8_t>("a.empty", kU8, {});
  w.AddArray<int16_t>("a.i16", kI16, {-5, 5});
  w.AddStringArray("a.str", {"<s>", "", "hello world"});
  // [[1, 2], [3]]: an array of arrays of int32.
  w.AddRaw("a.nested", kArray,
           EncodeArray(kArray, 2,
                       EncodeArray(kI32, 2, EncodeScalars<int32_t>({1, 2})) +
                           EncodeArray(kI32, 1, EncodeScalars<int32_t>({3}))));
  // [["a"], ["b", "c"]]: an array of arrays of strings.
  std::string ab, bc;
  PutGgufString(ab, "a");
  PutGgufString(bc, "b");
  PutGgufString(bc, "c");
  w.AddRaw("a.nested_str", kArray,
           EncodeArray(kArray, 2, EncodeArray(kString, 1, ab) + EncodeArray(kString, 2, bc)));
  Result<GgufFile> file = Parse(w.Build());
  ASSERT_TRUE(file.ok()) << file.status().ToString();

  const GgufValue u32 = file->metadata("a.u32");
  EXPECT_EQ(u32.type(), GgufType::kArray);
  EXPECT_EQ(u32.element_type(), GgufType::kUint32);
  EXPECT_EQ(u32.array_size(), 3u);
  EXPECT_EQ(*u32.GetU32Array(), (std::vector<uint32_t>{1, 2, 4000000000u}));
  EXPECT_EQ(*u32.GetI64Array(), (std::vector<int64_t>{1, 2, 4000000000}));
  EXPECT_FALSE(u32.GetI32Array().ok());  // 4000000000 does not fit
  EXPECT_CONTAINS(u32.GetI32Array().status().message(), "element 2 of 3");
  EXPECT_EQ(*file->metadata("a.i32").GetI32Array(), (std::vector<int32_t>{-1, 0, 7}));
  EXPECT_FALSE(file->metadata("a.i32").GetU32Array().ok());
  EXPECT_EQ(*file->metadata("a.f32").GetF32Array(), (std::vector<float>{0.5f, -2.0f}));
  EXPECT_EQ(*file->metadata("a.i64").GetI64Array(), (std::vector<int64_t>{-(int64_t{1} << 40), 3}));
  EXPECT_EQ(*file->metadata("a.i16").GetI32Array(), (std::vector<int32_t>{-5, 5}));
  EXPECT_TRUE(*file->metadata("a.bool").Element(2)->GetBool());
  EXPECT_FALSE(*file->metadata("a.bool").Element(1)->GetBool());
  EXPECT_TRUE(file->metadata("a.empty").GetU32Array()->empty());
  // The element type decides, also for an empty array (the gguf fuzzer's first finding).
  EXPECT_FALSE(file->metadata("a.empty").GetStringArray().ok());
  EXPECT_FALSE(file->metadata("a.empty").GetF32Array().ok());
  EXPECT_FALSE(file->metadata("a.bool").GetI32Array().ok());
  EXPECT_FALSE(file->metadata("a.f32").GetI64Array().ok());
  EXPECT_EQ(file->metadata("a.empty").ToString(), "[0 x uint8]");

  const GgufValue str = file->metadata("a.str");
  EXPECT_EQ(str.element_type(), GgufType::kString);
  EXPECT_EQ(*str.GetStringArray(), (std::vector<std::string>{"<s>", "", "hello world"}));
  EXPECT_EQ(*str.Element(2)->GetString(), "hello world");
  EXPECT_EQ(str.Element(2)->key(), "a.str");
  EXPECT_FALSE(str.Element(3).ok());
  EXPECT_CONTAINS(str.Element(3).status().message(), "the array has 3");
  EXPECT_FALSE(str.GetF32Array().ok());
  EXPECT_CONTAINS(str.GetF32Array().status().message(),
                  "GGUF metadata 'a.str' is an array of 3 string, not an array of float32");
  EXPECT_FALSE(file->metadata("a.u32").GetStringArray().ok());

  const GgufValue nested = file->metadata("a.nested");
  EXPECT_EQ(nested.element_type(), GgufType::kArray);
  EXPECT_EQ(nested.array_size(), 2u);
  EXPECT_EQ(*nested.Element(0)->GetI32Array(), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(*nested.Element(1)->GetI32Array(), (std::vector<int32_t>{3}));
  EXPECT_EQ(*nested.Element(1)->Element(0)->GetI32(), 3);
  EXPECT_FALSE(nested.GetI32Array().ok());  // its elements are arrays
  EXPECT_EQ(nested.ToString(), "[2 x array]");
  const GgufValue nested_str = file->metadata("a.nested_str");
  EXPECT_EQ(*nested_str.Element(0)->GetStringArray(), (std::vector<std::string>{"a"}));
  EXPECT_EQ(*nested_str.Element(1)->GetStringArray(), (std::vector<std::string>{"b", "c"}));
}

// --- Tensors

TEST(GgufTest, TensorsOfEveryConvertibleTypeRoundTrip) {
  const std::vector<float> f32 = {1.0f, -2.5f, 0.0f, 3e-3f, 1e20f, -7.0f};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x0001, 0x7bff};
  const std::vector<uint16_t> bf16 = {0x3f80, 0x4049, 0xc000, 0x8000};
  std::string q8;
  for (int b = 0; b < 2; ++b) {
    Put<uint16_t>(q8, b == 0 ? 0x3800 : 0x4000);  // scales 0.5, 2
    for (int i = 0; i < 32; ++i) Put<int8_t>(q8, static_cast<int8_t>(i - 16));
  }
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddTensor({"t.f32", {3, 2}, kTypeF32, Bytes(f32)});
  w.AddTensor({"t.f16", {4}, kTypeF16, Bytes(f16)});
  w.AddTensor({"t.bf16", {2, 2}, kTypeBF16, Bytes(bf16)});
  w.AddTensor({"t.q8", {32, 2}, kTypeQ8_0, q8});
  w.AddTensor({"t.q4", {32}, kTypeQ4_0, std::string(18, '\x11')});
  w.AddTensor({"t.odd", {3}, 99, std::string(5, 'x')});  // a type this reader does not know
  const std::string bytes = w.Build();
  Result<GgufFile> file = Parse(bytes);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_EQ(file->tensors().size(), 6u);
  EXPECT_EQ(file->alignment(), 32u);
  EXPECT_EQ(file->data_offset() % 32, 0u);

  const GgufTensorInfo* t = file->tensor("t.f32");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dims, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(t->type, GgmlType::kF32);
  EXPECT_EQ(t->offset, 0u);
  EXPECT_EQ(t->element_count, 6u);
  EXPECT_EQ(t->byte_size, 24u);
  Result<std::span<const std::byte>> data = file->TensorData("t.f32");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->data(), AsBytes(bytes).data() + file->data_offset());
  EXPECT_EQ(*file->TensorToFloat("t.f32"), f32);

  EXPECT_EQ(file->tensor("t.f16")->offset, 32u);  // aligned after 24 bytes
  EXPECT_EQ(*file->TensorToFloat("t.f16"),
            (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), 65504.0f}));
  EXPECT_EQ(*file->TensorToFloat("t.bf16"), (std::vector<float>{1.0f, 3.140625f, -2.0f, -0.0f}));
  EXPECT_EQ(file->tensor("t.q8")->byte_size, 68u);
  Result<std::vector<float>> q = file->TensorToFloat("t.q8");
  ASSERT_TRUE(q.ok()) << q.status().ToString();
  ASSERT_EQ(q->size(), 64u);
  EXPECT_EQ((*q)[0], -8.0f);
  EXPECT_EQ((*q)[31], 7.5f);
  EXPECT_EQ((*q)[32], -32.0f);
  EXPECT_EQ((*q)[63], 30.0f);

  // Q4_0: bytes known, no float conversion.
  EXPECT_EQ(file->TensorData("t.q4")->size(), 18u);
  Result<std::vector<float>> q4 = file->TensorToFloat("t.q4");
  EXPECT_EQ(q4.status().code(), StatusCode::kNotSupported);
  EXPECT_CONTAINS(q4.status().message(), "Q4_0");
  // An unknown type parses; its bytes are not known.
  EXPECT_FALSE(file->tensor("t.odd")->byte_size.has_value());
  EXPECT_EQ(file->TensorData("t.odd").status().code(), StatusCode::kNotSupported);
  EXPECT_CONTAINS(file->TensorData("t.odd").status().message(), "ggml type 99");
  EXPECT_EQ(file->TensorToFloat("t.odd").status().code(), StatusCode::kNotSupported);

  EXPECT_EQ(file->tensor("nope"), nullptr);
  EXPECT_EQ(file->TensorData("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(file->TensorToFloat("nope").status().code(), StatusCode::kNotFound);
}

TEST(GgufTest, GeneralAlignmentMovesTheDataSection) {
  for (uint32_t alignment : {1u, 8u, 64u, 4096u}) {
    GgufWriter w;
    w.alignment = alignment;
    w.Add<uint32_t>("general.alignment", kU32, alignment);
    w.AddTensor({"a", {3}, kTypeF32, Bytes(std::vector<float>{1, 2, 3})});
    w.AddTensor({"b", {1}, kTypeF32, Bytes(std::vector<float>{4})});
    Result<GgufFile> file = Parse(w.Build());
    ASSERT_TRUE(file.ok()) << alignment << ": " << file.status().ToString();
    EXPECT_EQ(file->alignment(), alignment);
    EXPECT_EQ(file->data_offset() % alignment, 0u);
    EXPECT_EQ(file->tensor("b")->offset, (12 + alignment - 1) / alignment * alignment);
    EXPECT_EQ(*file->TensorToFloat("b"), (std::vector<float>{4}));
  }
}

TEST(GgufTest, BadAlignmentsAreRefused) {
  for (uint32_t alignment : {0u, 48u, 3u}) {
    GgufWriter w;
    w.Add<uint32_t>("general.alignment", kU32, alignment);
    EXPECT_CONTAINS(ErrorOf(w.Build()), "not a power of two");
  }
  GgufWriter w;
  w.AddString("general.alignment", "32");
  EXPECT_CONTAINS(ErrorOf(w.Build()), "general.alignment");
}

TEST(GgufTest, Versions2And3AreRead) {
  for (uint32_t version : {2u, 3u}) {
    GgufWriter w;
    w.version = version;
    w.Add<uint32_t>("llama.block_count", kU32, 2);
    w.AddTensor({"w", {2}, kTypeF32, Bytes(std::vector<float>{1, 2})});
    Result<GgufFile> file = Parse(w.Build());
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_EQ(file->version(), version);
    EXPECT_EQ(*file->metadata("llama.block_count").GetU32(), 2u);
    EXPECT_EQ(*file->TensorToFloat("w"), (std::vector<float>{1, 2}));
  }
}

TEST(GgufTest, OpenMapsAFileAndMovesKeepItsViews) {
  testing::TempDir dir;
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddTensor({"w", {2}, kTypeF32, Bytes(std::vector<float>{1, 2})});
  testing::WriteFile(dir / "m.gguf", w.Build());
  Result<GgufFile> opened = GgufFile::Open(dir / "m.gguf");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(opened->name(), dir / "m.gguf");
  GgufFile file = std::move(*opened);
  EXPECT_EQ(*file.metadata("general.architecture").GetStringView(), "llama");
  EXPECT_EQ(*file.TensorToFloat("w"), (std::vector<float>{1, 2}));

  Result<GgufFile> missing = GgufFile::Open(dir / "none.gguf");
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  testing::WriteFile(dir / "empty.gguf", "");
  Result<GgufFile> empty = GgufFile::Open(dir / "empty.gguf");
  EXPECT_EQ(empty.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(empty.status().message(), "empty.gguf");
}

// --- Malformed files

// A small valid file with metadata of several kinds and two tensors, the last one ending the
// file (so that every proper prefix lacks something).
std::string SmallValidFile() {
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.Add<uint32_t>("llama.block_count", kU32, 1);
  w.AddStringArray("tokenizer.ggml.tokens", {"a", "bc"});
  w.AddArray<float>("scores", kF32, {0.5f});
  w.AddTensor({"a", {2}, kTypeF32, Bytes(std::vector<float>{1, 2})});
  w.AddTensor({"b", {32}, kTypeQ8_0, std::string(34, '\x01')});
  return w.Build();
}

TEST(GgufTest, EveryTruncationIsRefusedNamingTheFile) {
  const std::string full = SmallValidFile();
  ASSERT_TRUE(Parse(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    Result<GgufFile> file = GgufFile::Parse(AsBytes(full).first(n), "cut.gguf");
    ASSERT_FALSE(file.ok()) << "a prefix of " << n << " of " << full.size() << " bytes parsed";
    EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument) << n;
    // Errors found after the header was read name the file too (they once lost the name).
    EXPECT_CONTAINS(file.status().message(), "GGUF file cut.gguf: ");
  }
}

TEST(GgufTest, BadMagicAndVersions) {
  std::string bytes = SmallValidFile();
  std::string bad = bytes;
  std::memcpy(bad.data(), "GGML", 4);
  EXPECT_CONTAINS(ErrorOf(bad), "magic");
  for (uint32_t version : {0u, 1u, 4u, 0x03000000u}) {
    std::string v = bytes;
    std::memcpy(v.data() + 4, &version, 4);
    const std::string message = ErrorOf(v, StatusCode::kNotSupported);
    EXPECT_CONTAINS(message, version == 0x03000000u ? "big-endian" : "version");
  }
  EXPECT_CONTAINS(ErrorOf("GGU"), "too short");
}

TEST(GgufTest, CountsThatCannotFitAreRefusedBeforeAllocating) {
  GgufWriter w;
  w.AddString("k", "v");
  w.kv_count = uint64_t{1} << 62;
  EXPECT_CONTAINS(ErrorOf(w.Build()), "metadata count 4611686018427387904 cannot fit");
  GgufWriter t;
  t.tensor_count = ~uint64_t{0};
  EXPECT_CONTAINS(ErrorOf(t.Build()),
                  "tensor count 18446744073709551615 (with 0 metadata entries) cannot fit");
  // Each count alone fits, together they do not.
  GgufWriter both;
  both.AddString("key", std::string(100, 'x'));
  both.kv_count = 4;
  both.tensor_count = 3;
  EXPECT_CONTAINS(ErrorOf(both.Build()), "cannot fit");
  // An array count past the bytes left.
  GgufWriter a;
  a.AddRaw("arr", kArray, EncodeArray(kU64, uint64_t{1} << 60, EncodeScalars<uint64_t>({1})));
  EXPECT_CONTAINS(ErrorOf(a.Build()), "cannot fit");
}

TEST(GgufTest, StringsPastTheEnd) {
  GgufWriter w;
  std::string enc;
  Put<uint64_t>(enc, 1000);
  enc += "abc";
  w.AddRaw("k", kString, enc);
  EXPECT_CONTAINS(ErrorOf(w.Build()), "metadata 'k': a string of 1000 bytes");
  GgufWriter huge;
  std::string h;
  Put<uint64_t>(h, ~uint64_t{0});
  huge.AddRaw("k", kString, h);
  EXPECT_CONTAINS(ErrorOf(huge.Build()), "runs past the end");
  // A key length past the end, and an empty key.
  std::string key = "GGUF";
  Put<uint32_t>(key, 3);
  Put<uint64_t>(key, 0);
  Put<uint64_t>(key, 1);
  std::string long_key = key;
  Put<uint64_t>(long_key, 40);
  long_key += "short";
  EXPECT_CONTAINS(ErrorOf(long_key + std::string(14, '\0')), "40-byte key at offset 32 runs past");
  std::string empty_key = key;
  Put<uint64_t>(empty_key, 0);
  EXPECT_CONTAINS(ErrorOf(empty_key + std::string(20, '\0')), "key length 0 is not in 1..65535");
}

TEST(GgufTest, UnknownValueTypes) {
  GgufWriter w;
  w.AddRaw("k", 13, EncodeScalars<uint32_t>({0}));
  EXPECT_CONTAINS(ErrorOf(w.Build()), "metadata 'k' has unknown value type 13");
  GgufWriter a;
  a.AddRaw("arr", kArray, EncodeArray(0xffffffffu, 1, EncodeScalars<uint32_t>({0})));
  EXPECT_CONTAINS(ErrorOf(a.Build()), "unknown element type 4294967295");
  GgufWriter b;
  b.Add<uint8_t>("flag", kBool, 2);
  EXPECT_CONTAINS(ErrorOf(b.Build()), "not 0 or 1");
  GgufWriter ba;
  ba.AddArray<uint8_t>("flags", kBool, {0, 1, 7});
  EXPECT_CONTAINS(ErrorOf(ba.Build()), "element 2 of a bool array is 7");
}

TEST(GgufTest, DuplicateKeysAndTensors) {
  GgufWriter w;
  w.Add<uint32_t>("llama.block_count", kU32, 1);
  w.Add<uint32_t>("llama.block_count", kU32, 2);
  EXPECT_CONTAINS(ErrorOf(w.Build()), "metadata key 'llama.block_count' appears twice");
  GgufWriter t;
  t.AddTensor({"w", {1}, kTypeF32, Bytes(std::vector<float>{1})});
  t.AddTensor({"w", {1}, kTypeF32, Bytes(std::vector<float>{2})});
  EXPECT_CONTAINS(ErrorOf(t.Build()), "tensor 'w' appears twice");
}

TEST(GgufTest, BadDims) {
  GgufWriter zero;
  zero.AddTensor({"w", {}, kTypeF32, ""});
  EXPECT_CONTAINS(ErrorOf(zero.Build()), "tensor 'w' has 0 dimensions, not 1..4");
  GgufWriter five;
  five.AddTensor({"w", {1, 1, 1, 1, 1}, kTypeF32, std::string(4, '\0')});
  EXPECT_CONTAINS(ErrorOf(five.Build()), "tensor 'w' has 5 dimensions");
  GgufWriter many;
  many.AddTensor({"w", std::vector<uint64_t>(1000, 1), kTypeF32, std::string(4, '\0')});
  EXPECT_CONTAINS(ErrorOf(many.Build()), "1000 dimensions");
  GgufWriter empty_dim;
  empty_dim.AddTensor({"w", {4, 0}, kTypeF32, ""});
  EXPECT_CONTAINS(ErrorOf(empty_dim.Build()), "dimension 1 is 0");
  // Products that overflow int64: the element count, and (for a 4- or 8-byte type) the
  // byte size of a count that fits.
  GgufWriter product;
  product.AddTensor({"w", {uint64_t{1} << 32, uint64_t{1} << 32}, kTypeF32, ""});
  EXPECT_CONTAINS(ErrorOf(product.Build()), "overflow int64");
  for (uint32_t type : {kTypeF32, kTypeF64}) {
    GgufWriter bytes;
    bytes.AddTensor({"w", {uint64_t{1} << 62}, type, ""});
    EXPECT_CONTAINS(ErrorOf(bytes.Build()), "overflow a 64-bit byte size");
  }
  // A quantized row that is not whole blocks.
  GgufWriter rows;
  rows.AddTensor({"w", {16, 2}, kTypeQ8_0, std::string(34, '\0')});
  EXPECT_CONTAINS(ErrorOf(rows.Build()), "16 elements in a row, not a multiple of its block of 32");
}

TEST(GgufTest, MisalignedAndOutOfBoundsTensors) {
  GgufWriter mis;
  mis.AddTensor({"w", {2}, kTypeF32, Bytes(std::vector<float>{1, 2}), 8});
  EXPECT_CONTAINS(ErrorOf(mis.Build()),
                  "tensor 'w': offset 8 is not a multiple of the alignment 32");
  GgufWriter past;
  past.AddTensor({"w", {16}, kTypeF32, Bytes(std::vector<float>{1, 2})});
  EXPECT_CONTAINS(ErrorOf(past.Build()), "tensor 'w' (F32 64 bytes at data offset 0");
  GgufWriter far;
  far.AddTensor({"a", {1}, kTypeF32, Bytes(std::vector<float>{1})});
  GgufWriter::Tensor t{"w", {1}, kTypeF32, ""};
  t.offset = uint64_t{1} << 60;
  far.AddTensor(t);
  EXPECT_CONTAINS(ErrorOf(far.Build()), "extends past the end of the file");
  // An offset near 2^64 must not wrap the check.
  GgufWriter wrap;
  wrap.AddTensor({"a", {1}, kTypeF32, Bytes(std::vector<float>{1})});
  GgufWriter::Tensor u{"w", {8}, kTypeF32, ""};
  u.offset = ~uint64_t{0} - 31;
  wrap.AddTensor(u);
  EXPECT_CONTAINS(ErrorOf(wrap.Build()), "extends past the end of the file");
}

// Arrays of arrays nest at most kGgufMaxArrayDepth levels; a deeper file is refused, and a
// file of nothing but array headers costs no more than its size.
TEST(GgufTest, ArrayDepthBomb) {
  auto nested = [](int levels) {
    std::string v;
    for (int i = 1; i < levels; ++i) v += EncodeArray(kArray, 1, "");  // headers only
    v += EncodeArray(kU8, 1, "\x05");
    GgufWriter w;
    w.AddRaw("deep", kArray, v);
    return w.Build();
  };
  Result<GgufFile> ok = Parse(nested(kGgufMaxArrayDepth));
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  GgufValue v = ok->metadata("deep");
  for (int i = 1; i < kGgufMaxArrayDepth; ++i) v = *v.Element(0);
  EXPECT_EQ(*v.Element(0)->GetU8(), 5);
  EXPECT_CONTAINS(ErrorOf(nested(kGgufMaxArrayDepth + 1)), "nest deeper than 8 levels");
  EXPECT_CONTAINS(ErrorOf(nested(100000)), "nest deeper than 8 levels");
}

}  // namespace
}  // namespace strata::model_io
