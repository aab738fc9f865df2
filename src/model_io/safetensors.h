// SafetensorsFile and SafetensorsModel: readers of Hugging Face safetensors files over a memory
// map, and of a model directory (config.json with one file or a sharded index).
// The layout and every limit are in docs/model_formats.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>

#include "model_io/mapped_file.h"
#include "model_io/tensor_convert.h"
#include "strata/status.h"

namespace strata::model_io {

// The dtypes safetensors defines. Every one is read and bounds-checked; F32, F16 and BF16
// convert to float.
enum class SafetensorsDtype : uint8_t {
  kBool,
  kU8,
  kI8,
  kF8_E5M2,
  kF8_E4M3,
  kI16,
  kU16,
  kF16,
  kBF16,
  kI32,
  kU32,
  kF32,
  kF64,
  kI64,
  kU64,
};

// "F32", "BF16", ... as the header spells them.
std::string_view SafetensorsDtypeName(SafetensorsDtype dtype);
// Bytes of one element.
size_t SafetensorsDtypeBytes(SafetensorsDtype dtype);

struct SafetensorsTensorInfo {
  std::string name;
  SafetensorsDtype dtype = SafetensorsDtype::kF32;
  std::vector<uint64_t> shape;  // outermost first (row-major), as PyTorch orders it; may be []
  uint64_t begin = 0;           // data_offsets, relative to the data section
  uint64_t end = 0;
  uint64_t element_count = 0;  // the product of shape (1 for a scalar)
};

// Limits (docs/model_formats.md).
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100ull << 20;
inline constexpr size_t kSafetensorsMaxDims = 8;

// One parsed .safetensors file. Move-only; spans stay valid across moves. Thread-safe for
// concurrent readers.
class SafetensorsFile {
 public:
  // Maps and parses `path`. IoError when it cannot be mapped; InvalidArgument naming what is
  // wrong for anything malformed: a header length over 100 MiB or past the end of the file,
  // JSON that does not parse or is not an object of tensors, a key named twice, __metadata__
  // that is not a map of strings, a tensor with an unknown dtype, a bad shape, data_offsets out
  // of order or past the end of the file, a byte count that is not product(shape) * dtype
  // size, or tensors that do not tile the data section exactly (an overlap, a hole, bytes
  // after the last tensor).
  static Result<SafetensorsFile> Open(const std::string& path);
  // Parses bytes the caller keeps alive for the file's lifetime; `name` stands for the path.
  static Result<SafetensorsFile> Parse(std::span<const std::byte> bytes,
                                       std::string name = "<memory>");

  SafetensorsFile(SafetensorsFile&&) noexcept = default;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;

  const std::string& name() const { return name_; }
  // The header's __metadata__ (empty when it has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // Offset of the data section from the start of the file (8 + header length).
  uint64_t data_offset() const { return data_offset_; }

  // Sorted by name.
  const std::vector<SafetensorsTensorInfo>& tensors() const { return tensors_; }
  // nullptr when the file has no tensor `name`.
  const SafetensorsTensorInfo* tensor(std::string_view name) const;
  // NotFound when absent.
  Result<std::span<const std::byte>> TensorData(std::string_view name) const;
  // F32, F16, BF16 as floats; NotSupported naming any other dtype.
  Result<std::vector<float>> TensorToFloat(std::string_view name) const;

 private:
  SafetensorsFile() = default;
  static Result<SafetensorsFile> ParseImpl(std::span<const std::byte> bytes, std::string name,
                                           MappedFile mapped);

  MappedFile file_;
  std::string name_;
  std::span<const std::byte> data_;  // the data section
  uint64_t data_offset_ = 0;
  std::map<std::string, std::string> metadata_;
  std::vector<SafetensorsTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
};

// A Hugging Face model directory: config.json and either model.safetensors or
// model.safetensors.index.json, whose weight_map names the shard of every tensor. With both,
// model.safetensors is read, as transformers' from_pretrained does.
class SafetensorsModel {
 public:
  // Opens `dir`: NotFound when config.json or both weight files are missing; InvalidArgument
  // when config.json or the index is not valid JSON of the expected shape, a shard name is
  // not a plain file name, a tensor is in two shards, or a tensor of the weight_map is not in
  // the shard it names; any error of SafetensorsFile::Open for a shard.
  static Result<SafetensorsModel> OpenDir(const std::string& dir);

  SafetensorsModel(SafetensorsModel&&) noexcept = default;
  SafetensorsModel& operator=(SafetensorsModel&&) noexcept = default;

  const std::string& dir() const { return dir_; }
  const nlohmann::json& config() const { return config_; }
  // One entry per shard, in file-name order (a single entry without an index).
  const std::vector<SafetensorsFile>& shards() const { return shards_; }
  // Every tensor's name, sorted.
  std::vector<std::string> tensor_names() const;

  // nullptr when no shard has `name`.
  const SafetensorsTensorInfo* tensor(std::string_view name) const;
  // The shard holding `name`, nullptr when none does.
  const SafetensorsFile* shard_of(std::string_view name) const;
  // NotFound naming the tensor and the directory when absent.
  Result<std::span<const std::byte>> TensorData(std::string_view name) const;
  Result<std::vector<float>> TensorToFloat(std::string_view name) const;

 private:
  SafetensorsModel() = default;

  std::string dir_;
  nlohmann::json config_;
  std::vector<SafetensorsFile> shards_;
  std::unordered_map<std::string, size_t> shard_index_;  // tensor -> shards_ index
};

// Limit on config.json and model.safetensors.index.json.
inline constexpr uint64_t kModelJsonMaxBytes = 64ull << 20;

}  // namespace strata::model_io
