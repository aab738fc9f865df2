// Tests of the safetensors reader and the Hugging Face model directory over it: round trips
// of files written byte by byte (test_writers.h) and every malformed file or directory it
// refuses.
#include "model_io/safetensors.h"

#include <cmath>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <gtest/gtest.h>

#include "model_io/model_io_test_util.h"
#include "model_io/test_writers.h"

namespace strata::model_io {
namespace {

using nlohmann::json;
using testing::AsBytes;
using testing::Bytes;
using testing::Put;
using testing::SafetensorsWriter;
using testing::TempDir;
using testing::WriteFile;

#define EXPECT_CONTAINS(haystack, needle) \
  EXPECT_NE(std::string(haystack).find(needle), std::string::npos) << (haystack)

// A parsed file views the bytes it was given: an lvalue's stay the caller's, a temporary's
// are kept until the test program ends.
Result<SafetensorsFile> Parse(const std::string& bytes) {
  return SafetensorsFile::Parse(AsBytes(bytes), "t.safetensors");
}
Result<SafetensorsFile> Parse(std::string&& bytes) {
  static std::deque<std::string> kept;
  return Parse(kept.emplace_back(std::move(bytes)));
}

std::string ErrorOf(const std::string& bytes, StatusCode code = StatusCode::kInvalidArgument) {
  Result<SafetensorsFile> file = Parse(bytes);
  EXPECT_FALSE(file.ok()) << "parsed a file that should be refused";
  if (file.ok()) return "";
  EXPECT_EQ(file.status().code(), code) << file.status().ToString();
  EXPECT_CONTAINS(file.status().message(), "safetensors file t.safetensors: ");
  return file.status().message();
}

// A file of a raw header and data section.
std::string RawFile(const std::string& header, const std::string& data = "") {
  std::string out;
  Put<uint64_t>(out, header.size());
  return out + header + data;
}

// A header of one tensor entry.
std::string OneTensor(const json& entry, const std::string& data) {
  return RawFile(json{{"w", entry}}.dump(), data);
}

// --- Round trips

TEST(SafetensorsTest, FloatTensorsMetadataAndScalarsRoundTrip) {
  const std::vector<float> f32 = {1.0f, -2.0f, 0.5f, 3e30f, -0.0f, 7.0f};
  const std::vector<uint16_t> f16 = {0x3c00, 0xc000, 0x0001, 0x7c00};
  const std::vector<uint16_t> bf16 = {0x3f80, 0x4049, 0xc000, 0x0001};
  SafetensorsWriter w;
  w.AddMetadata("format", "pt");
  w.AddTensor("model.embed_tokens.weight", "F32", {2, 3}, Bytes(f32));
  w.AddTensor("half", "F16", {4}, Bytes(f16));
  w.AddTensor("brain", "BF16", {2, 2}, Bytes(bf16));
  w.AddTensor("scalar", "F32", {}, Bytes(std::vector<float>{42.0f}));
  w.AddTensor("empty", "F32", {0, 4}, "");
  const std::string bytes = w.Build();
  Result<SafetensorsFile> file = Parse(bytes);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->name(), "t.safetensors");
  EXPECT_EQ(file->metadata(), (std::map<std::string, std::string>{{"format", "pt"}}));
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  EXPECT_EQ(file->data_offset(), 8 + header_length);
  EXPECT_EQ(file->data_offset() % 8, 0u);  // the writer pads the header with spaces

  ASSERT_EQ(file->tensors().size(), 5u);  // sorted by name, __metadata__ not among them
  EXPECT_EQ(file->tensors()[0].name, "brain");
  EXPECT_EQ(file->tensors()[4].name, "scalar");

  const SafetensorsTensorInfo* t = file->tensor("model.embed_tokens.weight");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->dtype, SafetensorsDtype::kF32);
  EXPECT_EQ(t->shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(t->begin, 0u);
  EXPECT_EQ(t->end, 24u);
  EXPECT_EQ(t->element_count, 6u);
  Result<std::span<const std::byte>> data = file->TensorData("model.embed_tokens.weight");
  ASSERT_TRUE(data.ok());
  EXPECT_EQ(data->data(), AsBytes(bytes).data() + file->data_offset());
  EXPECT_EQ(*file->TensorToFloat("model.embed_tokens.weight"), f32);
  EXPECT_EQ(*file->TensorToFloat("half"),
            (std::vector<float>{1.0f, -2.0f, std::ldexp(1.0f, -24), INFINITY}));
  EXPECT_EQ(*file->TensorToFloat("brain"),
            (std::vector<float>{1.0f, 3.140625f, -2.0f, std::ldexp(1.0f, -133)}));

  const SafetensorsTensorInfo* scalar = file->tensor("scalar");
  ASSERT_NE(scalar, nullptr);
  EXPECT_TRUE(scalar->shape.empty());
  EXPECT_EQ(scalar->element_count, 1u);
  EXPECT_EQ(*file->TensorToFloat("scalar"), (std::vector<float>{42.0f}));
  EXPECT_EQ(file->tensor("empty")->element_count, 0u);
  EXPECT_TRUE(file->TensorToFloat("empty")->empty());

  EXPECT_EQ(file->tensor("nope"), nullptr);
  EXPECT_EQ(file->TensorData("nope").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(file->TensorToFloat("nope").status().code(), StatusCode::kNotFound);
}

// Every dtype: its name and size, a tensor of it in bounds, one byte too many or too few
// refused, and float conversion only for F32, F16 and BF16.
TEST(SafetensorsTest, EveryDtypeIsBoundsChecked) {
  const std::vector<std::pair<std::string, size_t>> dtypes = {
      {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1},
      {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},    {"I32", 4},
      {"U32", 4},  {"F32", 4}, {"F64", 8}, {"I64", 8},     {"U64", 8}};
  for (const auto& [name, size] : dtypes) {
    SafetensorsWriter w;
    w.AddTensor("x", name, {3}, std::string(3 * size, '\0'));
    Result<SafetensorsFile> file = Parse(w.Build());
    ASSERT_TRUE(file.ok()) << name << ": " << file.status().ToString();
    const SafetensorsDtype dtype = file->tensor("x")->dtype;
    EXPECT_EQ(SafetensorsDtypeName(dtype), name);
    EXPECT_EQ(SafetensorsDtypeBytes(dtype), size);
    EXPECT_EQ(file->TensorData("x")->size(), 3 * size);
    const bool converts = name == "F32" || name == "F16" || name == "BF16";
    EXPECT_EQ(file->TensorToFloat("x").ok(), converts) << name;
    if (!converts) {
      EXPECT_EQ(file->TensorToFloat("x").status().code(), StatusCode::kNotSupported);
      EXPECT_CONTAINS(file->TensorToFloat("x").status().message(), name);
    }
    for (size_t bytes : {3 * size - 1, 3 * size + 1}) {
      SafetensorsWriter bad;
      bad.AddTensor("x", name, {3}, std::string(bytes, '\0'));
      EXPECT_CONTAINS(
          ErrorOf(bad.Build()),
          fmt::format("hold {} bytes, but shape [3] of {} takes {}", bytes, name, 3 * size));
    }
  }
}

TEST(SafetensorsTest, OpenMapsAFile) {
  TempDir dir;
  SafetensorsWriter w;
  w.AddTensor("w", "F32", {2}, Bytes(std::vector<float>{1, 2}));
  WriteFile(dir / "m.safetensors", w.Build());
  Result<SafetensorsFile> opened = SafetensorsFile::Open(dir / "m.safetensors");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  SafetensorsFile file = std::move(*opened);
  EXPECT_EQ(file.name(), dir / "m.safetensors");
  EXPECT_EQ(*file.TensorToFloat("w"), (std::vector<float>{1, 2}));
  EXPECT_EQ(SafetensorsFile::Open(dir / "none").status().code(), StatusCode::kIoError);
}

// --- Malformed files

TEST(SafetensorsTest, HeaderLengthHugeOrPastTheEnd) {
  EXPECT_CONTAINS(ErrorOf("1234567"), "7 bytes are too short for the 8-byte header length");
  std::string huge;
  Put<uint64_t>(huge, uint64_t{1} << 40);
  EXPECT_CONTAINS(ErrorOf(huge + "{}"), "header length 1099511627776 is over the limit");
  std::string all_ones;
  Put<uint64_t>(all_ones, ~uint64_t{0});
  EXPECT_CONTAINS(ErrorOf(all_ones), "over the limit");
  std::string past;
  Put<uint64_t>(past, 1000);
  EXPECT_CONTAINS(ErrorOf(past + "{}"), "header of 1000 bytes runs past the end of the file (10");
}

TEST(SafetensorsTest, HeaderNotJsonOrNotAnObject) {
  EXPECT_CONTAINS(ErrorOf(RawFile("{\"w\": ")), "not valid JSON");
  EXPECT_CONTAINS(ErrorOf(RawFile("")), "not valid JSON");
  EXPECT_CONTAINS(ErrorOf(RawFile("{} trailing")), "not valid JSON");
  EXPECT_CONTAINS(ErrorOf(RawFile("[1, 2]")),
                  "the header is an array of 2 elements, not a JSON "
                  "object");
  EXPECT_CONTAINS(ErrorOf(RawFile("\"str\"")), "not a JSON object");
  EXPECT_CONTAINS(ErrorOf(RawFile(std::string(1000, '[') + std::string(1000, ']'))),
                  "not a JSON object");
  // An empty object with spaces after it is a valid file of no tensors.
  Result<SafetensorsFile> empty = Parse(RawFile("{}      "));
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->tensors().empty());
}

TEST(SafetensorsTest, BadMetadataAndEntries) {
  EXPECT_CONTAINS(ErrorOf(RawFile(R"({"__metadata__": [1]})")),
                  "__metadata__ is an array of 1 elements, not an object of strings");
  EXPECT_CONTAINS(ErrorOf(RawFile(R"({"__metadata__": {"format": 1}})")),
                  "__metadata__ 'format' is 1, not a string");
  EXPECT_CONTAINS(ErrorOf(RawFile(R"({"w": 5})")), "tensor 'w': its entry is 5, not an object");
  EXPECT_CONTAINS(ErrorOf(OneTensor({{"shape", {1}}, {"data_offsets", {0, 4}}}, "abcd")),
                  "tensor 'w': it has no dtype string");
  EXPECT_CONTAINS(
      ErrorOf(OneTensor({{"dtype", "F7"}, {"shape", {1}}, {"data_offsets", {0, 4}}}, "abcd")),
      "tensor 'w': unknown dtype \"F7\"");
  EXPECT_CONTAINS(
      ErrorOf(OneTensor({{"dtype", "f32"}, {"shape", {1}}, {"data_offsets", {0, 4}}}, "abcd")),
      "unknown dtype");  // names are case-sensitive
}

TEST(SafetensorsTest, BadShapes) {
  auto with_shape = [](const json& shape) {
    return OneTensor({{"dtype", "U8"}, {"shape", shape}, {"data_offsets", {0, 4}}}, "abcd");
  };
  EXPECT_CONTAINS(ErrorOf(with_shape(4)), "it has no shape array");
  EXPECT_CONTAINS(ErrorOf(OneTensor({{"dtype", "U8"}, {"data_offsets", {0, 4}}}, "abcd")),
                  "it has no shape array");
  EXPECT_CONTAINS(ErrorOf(with_shape({-4})), "shape element -4 is not a non-negative integer");
  EXPECT_CONTAINS(ErrorOf(with_shape({4.0})), "is not a non-negative integer");
  EXPECT_CONTAINS(ErrorOf(with_shape({"4"})), "is not a non-negative integer");
  EXPECT_CONTAINS(ErrorOf(with_shape(json::array({1, 1, 1, 1, 1, 1, 1, 1, 4}))),
                  "its shape has 9 dimensions, over the limit of 8");
  EXPECT_CONTAINS(ErrorOf(with_shape({uint64_t{1} << 32, uint64_t{1} << 32})),
                  "overflows a 64-bit byte count");
  EXPECT_CONTAINS(
      ErrorOf(OneTensor(
          {{"dtype", "F64"}, {"shape", {uint64_t{1} << 61}}, {"data_offsets", {0, 4}}}, "abcd")),
      "overflows a 64-bit byte count");
  EXPECT_CONTAINS(ErrorOf(with_shape({2, 3})), "hold 4 bytes, but shape [2,3] of U8 takes 6");
}

TEST(SafetensorsTest, BadDataOffsets) {
  auto with_offsets = [](const json& offsets, const std::string& data) {
    return OneTensor({{"dtype", "U8"}, {"shape", {4}}, {"data_offsets", offsets}}, data);
  };
  EXPECT_CONTAINS(ErrorOf(with_offsets({0}, "abcd")), "data_offsets is not an array of two");
  EXPECT_CONTAINS(ErrorOf(with_offsets({0, 4, 8}, "abcd")), "data_offsets is not an array of two");
  EXPECT_CONTAINS(ErrorOf(with_offsets({-1, 4}, "abcd")), "data_offsets is not an array of two");
  EXPECT_CONTAINS(ErrorOf(with_offsets({4, 0}, "abcd")),
                  "data_offsets [4, 0) end before they begin");
  EXPECT_CONTAINS(ErrorOf(with_offsets({0, 1000}, "abcd")),
                  "data_offsets [0, 1000) run past the end of the data section (4 bytes)");
  EXPECT_CONTAINS(ErrorOf(with_offsets({~uint64_t{0} - 1, ~uint64_t{0}}, "abcd")),
                  "run past the end");

  // Two tensors: overlapping, a hole between them, bytes after the last, a duplicate name.
  auto two = [](uint64_t a0, uint64_t a1, uint64_t b0, uint64_t b1, const std::string& data) {
    json h = {{"a", {{"dtype", "U8"}, {"shape", {a1 - a0}}, {"data_offsets", {a0, a1}}}},
              {"b", {{"dtype", "U8"}, {"shape", {b1 - b0}}, {"data_offsets", {b0, b1}}}}};
    return RawFile(h.dump(), data);
  };
  ASSERT_TRUE(Parse(two(0, 4, 4, 8, "abcdefgh")).ok());
  ASSERT_TRUE(Parse(two(4, 8, 0, 4, "abcdefgh")).ok());  // any order in the header
  EXPECT_CONTAINS(ErrorOf(two(0, 6, 4, 8, "abcdefgh")),
                  "tensor 'b' at data_offsets [4, 8) overlaps tensor 'a' at [0, 6)");
  EXPECT_CONTAINS(ErrorOf(two(0, 8, 0, 8, "abcdefgh")), "overlaps");  // two names, same bytes
  EXPECT_CONTAINS(ErrorOf(two(0, 4, 6, 8, "abcdefgh")),
                  "the data section has a hole of 2 bytes at [4, 6) before tensor 'b'");
  EXPECT_CONTAINS(ErrorOf(two(0, 4, 4, 6, "abcdefgh")),
                  "the data section is 8 bytes but its tensors end at 6");
  EXPECT_CONTAINS(ErrorOf(RawFile("{}", "extra")), "the data section is 5 bytes");
  EXPECT_CONTAINS(ErrorOf(RawFile(R"({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]},
                                      "a": {"dtype": "U8", "shape": [1], "data_offsets": [1, 2]}})",
                                  "xy")),
                  "the header names 'a' twice");
}

TEST(SafetensorsTest, EveryTruncationIsRefused) {
  SafetensorsWriter w;
  w.AddMetadata("format", "pt");
  w.AddTensor("a", "F32", {2}, Bytes(std::vector<float>{1, 2}));
  w.AddTensor("b", "BF16", {3}, Bytes(std::vector<uint16_t>{1, 2, 3}));
  const std::string full = w.Build();
  ASSERT_TRUE(Parse(full).ok());
  for (size_t n = 0; n < full.size(); ++n) {
    Result<SafetensorsFile> file = SafetensorsFile::Parse(AsBytes(full).first(n), "cut");
    ASSERT_FALSE(file.ok()) << "a prefix of " << n << " of " << full.size() << " bytes parsed";
    EXPECT_EQ(file.status().code(), StatusCode::kInvalidArgument);
    EXPECT_CONTAINS(file.status().message(), "safetensors file cut: ");
  }
}

// --- Hugging Face model directories

std::string ShardWith(const std::vector<std::pair<std::string, std::vector<float>>>& tensors) {
  SafetensorsWriter w;
  for (const auto& [name, values] : tensors)
    w.AddTensor(name, "F32", {values.size()}, Bytes(values));
  return w.Build();
}

std::string Index(const json& weight_map) {
  return json{{"metadata", {{"total_size", 16}}}, {"weight_map", weight_map}}.dump();
}

TEST(SafetensorsModelTest, SingleFile) {
  TempDir dir;
  WriteFile(dir / "config.json", R"({"hidden_size": 8, "architectures": ["LlamaForCausalLM"]})");
  WriteFile(dir / "model.safetensors",
            ShardWith({{"model.norm.weight", {1, 2}}, {"lm_head.weight", {3}}}));
  Result<SafetensorsModel> model = SafetensorsModel::OpenDir(dir.path());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ(model->dir(), dir.path());
  EXPECT_EQ(model->config()["hidden_size"], 8);
  ASSERT_EQ(model->shards().size(), 1u);
  EXPECT_EQ(model->tensor_names(),
            (std::vector<std::string>{"lm_head.weight", "model.norm.weight"}));
  EXPECT_EQ(*model->TensorToFloat("model.norm.weight"), (std::vector<float>{1, 2}));
  EXPECT_EQ(model->TensorData("lm_head.weight")->size(), 4u);
  EXPECT_EQ(model->tensor("lm_head.weight")->shape, (std::vector<uint64_t>{1}));
  EXPECT_EQ(model->shard_of("lm_head.weight"), &model->shards()[0]);
  EXPECT_EQ(model->tensor("nope"), nullptr);
  EXPECT_EQ(model->shard_of("nope"), nullptr);
  Result<std::vector<float>> missing = model->TensorToFloat("nope");
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_CONTAINS(missing.status().message(), dir.path());
  EXPECT_EQ(model->TensorData("nope").status().code(), StatusCode::kNotFound);

  // With an index beside it, the single file is still the one read (as transformers does).
  WriteFile(dir / "model.safetensors.index.json", Index({{"x", "other.safetensors"}}));
  Result<SafetensorsModel> both = SafetensorsModel::OpenDir(dir.path());
  ASSERT_TRUE(both.ok()) << both.status().ToString();
  EXPECT_EQ(both->tensor_names().size(), 2u);
}

TEST(SafetensorsModelTest, ShardedIndex) {
  TempDir dir;
  WriteFile(dir / "config.json", "{}");
  WriteFile(dir / "model-00001-of-00002.safetensors",
            ShardWith({{"model.embed_tokens.weight", {1, 2}}, {"model.layers.0.w", {3}}}));
  WriteFile(dir / "model-00002-of-00002.safetensors", ShardWith({{"lm_head.weight", {4, 5, 6}}}));
  WriteFile(dir / "model.safetensors.index.json",
            Index({{"model.embed_tokens.weight", "model-00001-of-00002.safetensors"},
                   {"model.layers.0.w", "model-00001-of-00002.safetensors"},
                   {"lm_head.weight", "model-00002-of-00002.safetensors"}}));
  Result<SafetensorsModel> model = SafetensorsModel::OpenDir(dir.path());
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ASSERT_EQ(model->shards().size(), 2u);
  EXPECT_EQ(model->shards()[0].name(), dir / "model-00001-of-00002.safetensors");
  EXPECT_EQ(model->shard_of("lm_head.weight"), &model->shards()[1]);
  EXPECT_EQ(model->tensor_names(),
            (std::vector<std::string>{"lm_head.weight", "model.embed_tokens.weight",
                                      "model.layers.0.w"}));
  EXPECT_EQ(*model->TensorToFloat("lm_head.weight"), (std::vector<float>{4, 5, 6}));
  EXPECT_EQ(*model->TensorToFloat("model.layers.0.w"), (std::vector<float>{3}));

  // Moving the model keeps every view valid.
  SafetensorsModel moved = std::move(*model);
  EXPECT_EQ(*moved.TensorToFloat("model.embed_tokens.weight"), (std::vector<float>{1, 2}));
}

TEST(SafetensorsModelTest, MissingFiles) {
  TempDir dir;
  Result<SafetensorsModel> no_config = SafetensorsModel::OpenDir(dir.path());
  EXPECT_EQ(no_config.status().code(), StatusCode::kNotFound);
  EXPECT_CONTAINS(no_config.status().message(), "has no config.json");
  WriteFile(dir / "config.json", "{}");
  Result<SafetensorsModel> no_weights = SafetensorsModel::OpenDir(dir.path());
  EXPECT_EQ(no_weights.status().code(), StatusCode::kNotFound);
  EXPECT_CONTAINS(no_weights.status().message(),
                  "neither model.safetensors nor model.safetensors.index.json");
  EXPECT_EQ(SafetensorsModel::OpenDir(dir / "nope").status().code(), StatusCode::kNotFound);
}

TEST(SafetensorsModelTest, BadConfigAndIndex) {
  TempDir dir;
  WriteFile(dir / "config.json", "{not json");
  EXPECT_CONTAINS(SafetensorsModel::OpenDir(dir.path()).status().message(), "not valid JSON");
  WriteFile(dir / "config.json", "[1]");
  EXPECT_CONTAINS(SafetensorsModel::OpenDir(dir.path()).status().message(), "not a JSON object");
  WriteFile(dir / "config.json", "{}");
  WriteFile(dir / "model.safetensors.index.json", R"({"metadata": {}})");
  EXPECT_CONTAINS(SafetensorsModel::OpenDir(dir.path()).status().message(), "has no weight_map");
  WriteFile(dir / "model.safetensors.index.json", R"({"weight_map": {}})");
  EXPECT_CONTAINS(SafetensorsModel::OpenDir(dir.path()).status().message(), "weight_map is empty");
  WriteFile(dir / "model.safetensors.index.json", R"({"weight_map": {"w": 3}})");
  EXPECT_CONTAINS(SafetensorsModel::OpenDir(dir.path()).status().message(),
                  "weight_map 'w' is 3, not the name of a file");
}

TEST(SafetensorsModelTest, IndexNamingAMissingShard) {
  TempDir dir;
  WriteFile(dir / "config.json", "{}");
  WriteFile(dir / "model.safetensors.index.json",
            Index({{"w", "model-00001-of-00001.safetensors"}}));
  Result<SafetensorsModel> model = SafetensorsModel::OpenDir(dir.path());
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), StatusCode::kIoError);
  EXPECT_CONTAINS(model.status().message(), "model-00001-of-00001.safetensors");
}

TEST(SafetensorsModelTest, ShardNamesMustBePlainFileNames) {
  TempDir dir;
  WriteFile(dir / "config.json", "{}");
  for (const std::string shard :
       {"../model.safetensors", "sub/model.safetensors", "..", ".", "/etc/passwd", ""}) {
    WriteFile(dir / "model.safetensors.index.json", Index({{"w", shard}}));
    Result<SafetensorsModel> model = SafetensorsModel::OpenDir(dir.path());
    ASSERT_FALSE(model.ok()) << shard;
    EXPECT_EQ(model.status().code(), StatusCode::kInvalidArgument) << shard;
    EXPECT_CONTAINS(model.status().message(), "not the name of a file in");
  }
}

TEST(SafetensorsModelTest, IndexAndShardsMustAgree) {
  TempDir dir;
  WriteFile(dir / "config.json", "{}");
  WriteFile(dir / "a.safetensors", ShardWith({{"x", {1}}, {"y", {2}}}));
  WriteFile(dir / "b.safetensors", ShardWith({{"z", {3}}}));
  // The index puts y in b, but a holds it.
  WriteFile(dir / "model.safetensors.index.json",
            Index({{"x", "a.safetensors"}, {"y", "b.safetensors"}, {"z", "b.safetensors"}}));
  Result<SafetensorsModel> wrong = SafetensorsModel::OpenDir(dir.path());
  ASSERT_FALSE(wrong.ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::kInvalidArgument);
  EXPECT_CONTAINS(wrong.status().message(),
                  "the index puts tensor 'y' in b.safetensors, but it is in a.safetensors");
  // The index names a tensor no shard has.
  WriteFile(dir / "model.safetensors.index.json",
            Index({{"x", "a.safetensors"}, {"w", "b.safetensors"}}));
  EXPECT_CONTAINS(SafetensorsModel::OpenDir(dir.path()).status().message(),
                  "the index puts tensor 'w' in b.safetensors, but no shard has it");
  // Two shards hold the same tensor.
  WriteFile(dir / "b.safetensors", ShardWith({{"x", {3}}}));
  WriteFile(dir / "model.safetensors.index.json",
            Index({{"x", "a.safetensors"}, {"y", "a.safetensors"}, {"q", "b.safetensors"}}));
  EXPECT_CONTAINS(SafetensorsModel::OpenDir(dir.path()).status().message(),
                  "tensor 'x' is in both");
  // A malformed shard's error names it.
  WriteFile(dir / "b.safetensors", "garbage");
  EXPECT_CONTAINS(SafetensorsModel::OpenDir(dir.path()).status().message(), "b.safetensors");
}

}  // namespace
}  // namespace strata::model_io
