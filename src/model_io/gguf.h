// GgufFile: a reader of GGUF v2/v3 model files (llama.cpp's format) over a memory map:
// header, typed metadata, tensor infos, and each tensor's bytes or float values.
// The layout and every limit are in docs/model_formats.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model_io/mapped_file.h"
#include "model_io/tensor_convert.h"
#include "strata/status.h"

namespace strata::model_io {

// The types of GGUF metadata values (gguf_type), with their on-disk numbers.
enum class GgufType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
  kMissing = 0xffffffff,  // not a GGUF type: the value of a key the file does not have
};

// "uint8", ..., "array", "missing"; "type N" for a number GGUF does not define.
std::string GgufTypeName(GgufType type);

// ggml tensor types, with their on-disk numbers. Only the types below with a known block
// size get bounds checks; only F32, F16, BF16 and Q8_0 convert to float.
enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kI8 = 24,
  kI16 = 25,
  kI32 = 26,
  kI64 = 27,
  kF64 = 28,
  kBF16 = 30,
};

// "F32", "Q4_K", ...; "ggml type N" for a number this reader does not know.
std::string GgmlTypeName(GgmlType type);

// One metadata value: a typed view into the file's bytes, valid while its GgufFile lives.
// Cheap to copy. The getters convert where no information is lost and otherwise return
// InvalidArgument naming the key, the stored type and what was asked; every getter of a
// missing key returns NotFound naming it.
class GgufValue {
 public:
  GgufValue() = default;

  std::string_view key() const { return key_; }
  GgufType type() const { return type_; }
  bool is_missing() const { return type_ == GgufType::kMissing; }
  // Arrays only: the elements' type and count (kMissing and 0 otherwise).
  GgufType element_type() const { return element_type_; }
  uint64_t array_size() const { return count_; }

  // Integers of any GGUF integer type whose value fits the asked type.
  Result<uint8_t> GetU8() const;
  Result<uint32_t> GetU32() const;
  Result<uint64_t> GetU64() const;
  Result<int32_t> GetI32() const;
  Result<int64_t> GetI64() const;
  // float32, or float64 (rounded to nearest for GetF32).
  Result<float> GetF32() const;
  Result<double> GetF64() const;
  Result<bool> GetBool() const;
  Result<std::string> GetString() const;
  // The string without a copy, valid while the file lives.
  Result<std::string_view> GetStringView() const;

  // Arrays: every element converted as the scalar getters above do. The element type must be
  // of the asked kind (string, float, integer), checked before any element, so an empty
  // array of uint8 is not an array of strings.
  Result<std::vector<std::string>> GetStringArray() const;
  Result<std::vector<float>> GetF32Array() const;
  Result<std::vector<int32_t>> GetI32Array() const;
  Result<std::vector<uint32_t>> GetU32Array() const;
  Result<std::vector<int64_t>> GetI64Array() const;
  // Element `index` of an array of any type (nested arrays included). Linear in `index`
  // for arrays of strings or arrays, constant otherwise.
  Result<GgufValue> Element(uint64_t index) const;

  // A short rendering for logs and errors: the value, or "[N x type]" for arrays.
  std::string ToString() const;

 private:
  friend class GgufFile;
  friend class GgufParser;

  Status TypeError(std::string_view wanted) const;
  Result<int64_t> SignedValue() const;     // integers that fit int64
  Result<uint64_t> UnsignedValue() const;  // integers that are >= 0
  template <typename T>
  Result<T> GetInteger(std::string_view wanted) const;
  template <typename T, typename Get>
  Result<std::vector<T>> GetArray(std::string_view wanted, Get get) const;

  std::string_view key_;
  GgufType type_ = GgufType::kMissing;
  GgufType element_type_ = GgufType::kMissing;
  uint64_t count_ = 0;
  bool is_element_ = false;
  // Scalars: the value's bytes. Strings: the characters. Arrays: the encoded elements.
  std::span<const std::byte> bytes_;
};

// One tensor info of the file. dims[0] is the innermost (contiguous) dimension, as ggml
// orders them.
struct GgufTensorInfo {
  std::string name;
  std::vector<uint64_t> dims;  // 1 to 4 dimensions, each >= 1
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;         // from the start of the data section, a multiple of alignment
  uint64_t element_count = 0;  // the product of dims
  // Bytes of the tensor's data, when the type's block size is known.
  std::optional<uint64_t> byte_size;
};

// A parsed GGUF file. Move-only; metadata values and tensor spans stay valid across moves.
// Thread-safe for concurrent readers.
class GgufFile {
 public:
  static constexpr uint32_t kDefaultAlignment = 32;

  // Maps and parses `path`: IoError when it cannot be mapped; NotSupported for a version other
  // than 2 or 3 (or a big-endian file); InvalidArgument naming the field for anything
  // malformed: bad magic, counts that cannot fit the file, a string or array running past the
  // end, an unknown metadata type, duplicate keys or tensor names, bad dims, a misaligned
  // offset, a tensor of known size whose data lies outside the file.
  static Result<GgufFile> Open(const std::string& path);
  // Parses bytes the caller keeps alive for the file's lifetime; `name` stands for the path
  // in errors.
  static Result<GgufFile> Parse(std::span<const std::byte> bytes, std::string name = "<memory>");

  GgufFile(GgufFile&&) noexcept = default;
  GgufFile& operator=(GgufFile&&) noexcept = default;

  const std::string& name() const { return name_; }
  uint32_t version() const { return version_; }
  uint32_t alignment() const { return alignment_; }
  // Offset of the data section from the start of the file.
  uint64_t data_offset() const { return data_offset_; }

  // Every metadata value, in file order.
  const std::vector<GgufValue>& metadata() const { return metadata_; }
  // The value of `key`; a value of type kMissing (whose getters return NotFound) if absent.
  GgufValue metadata(std::string_view key) const;

  const std::vector<GgufTensorInfo>& tensors() const { return tensors_; }
  // nullptr when the file has no tensor `name`.
  const GgufTensorInfo* tensor(std::string_view name) const;

  // The bytes of tensor `name`: NotFound if absent, NotSupported when its type's size is not
  // known (naming the type).
  Result<std::span<const std::byte>> TensorData(std::string_view name) const;
  // Its elements as floats (F32, F16, BF16, Q8_0); NotSupported naming any other type.
  Result<std::vector<float>> TensorToFloat(std::string_view name) const;

 private:
  friend class GgufParser;
  GgufFile() = default;

  MappedFile file_;  // empty for Parse()
  std::string name_;
  std::span<const std::byte> bytes_;
  uint32_t version_ = 0;
  uint32_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<GgufValue> metadata_;
  std::unordered_map<std::string_view, size_t> metadata_index_;
  std::vector<GgufTensorInfo> tensors_;
  std::unordered_map<std::string, size_t> tensor_index_;
};

// Limits of the parser (docs/model_formats.md). Counts are further bounded by the bytes the
// file has left: every entry takes some bytes, so no count can make it allocate more than a
// small multiple of the file's size.
inline constexpr uint64_t kGgufMaxKeyBytes = 65535;
inline constexpr uint64_t kGgufMaxTensorNameBytes = 65535;
inline constexpr uint32_t kGgufMaxDims = 4;
inline constexpr int kGgufMaxArrayDepth = 8;

}  // namespace strata::model_io
