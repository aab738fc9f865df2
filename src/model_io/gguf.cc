// GGUF v2/v3 parsing: every length and count is checked against the bytes left before it is
// used, so a malformed file gives an error naming the field, never a huge allocation.
#include "model_io/gguf.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <utility>

#include <fmt/format.h>

namespace strata::model_io {
namespace {

static_assert(std::endian::native == std::endian::little, "GGUF v2/v3 files are little-endian");

// Reads little-endian fields from a byte span; every read is bounds-checked.
struct Cursor {
  std::span<const std::byte> bytes;
  size_t pos = 0;

  size_t remaining() const { return bytes.size() - pos; }
  bool Take(uint64_t n, std::span<const std::byte>* out) {
    if (n > remaining()) return false;
    *out = bytes.subspan(pos, static_cast<size_t>(n));
    pos += static_cast<size_t>(n);
    return true;
  }
  template <typename T>
  bool Read(T* v) {
    if (sizeof(T) > remaining()) return false;
    std::memcpy(v, bytes.data() + pos, sizeof(T));
    pos += sizeof(T);
    return true;
  }
};

template <typename T>
T Load(std::span<const std::byte> b) {
  T v;
  std::memcpy(&v, b.data(), sizeof v);
  return v;
}

std::string_view AsChars(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Bytes of a scalar GGUF type; 0 for string, array and unknown numbers.
size_t ScalarBytes(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kBool:
      return 1;
    case GgufType::kUint16:
    case GgufType::kInt16:
      return 2;
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kFloat32:
      return 4;
    case GgufType::kUint64:
    case GgufType::kInt64:
    case GgufType::kFloat64:
      return 8;
    default:
      return 0;
  }
}

bool KnownType(uint32_t raw) {
  return raw <= static_cast<uint32_t>(GgufType::kFloat64);
}

// The fewest bytes one encoded element of `type` can take (a string's or array's length).
uint64_t MinEncodedBytes(GgufType type) {
  if (type == GgufType::kString) return 8;
  if (type == GgufType::kArray) return 12;
  return ScalarBytes(type);
}

Status BadValue(std::string msg) {
  return Status::InvalidArgument(std::move(msg));
}

// Decodes one value of `type` at the cursor, checking it fits; the value's key is left
// empty. Errors carry no file name (the caller adds it).
Result<GgufValue> DecodeValue(Cursor& c, GgufType type, int depth);

struct ValueBuilder {
  GgufType type;
  GgufType element_type = GgufType::kMissing;
  uint64_t count = 0;
  std::span<const std::byte> bytes;
};

}  // namespace

// Builds GgufValues and GgufFiles; a friend of both.
class GgufParser {
 public:
  static GgufValue Make(const ValueBuilder& b) {
    GgufValue v;
    v.type_ = b.type;
    v.element_type_ = b.element_type;
    v.count_ = b.count;
    v.bytes_ = b.bytes;
    return v;
  }
  static void SetKey(GgufValue& v, std::string_view key, bool is_element) {
    v.key_ = key;
    v.is_element_ = is_element;
  }
  static Result<GgufFile> Parse(std::span<const std::byte> bytes, std::string name,
                                MappedFile file);
};

namespace {

Result<GgufValue> DecodeValue(Cursor& c, GgufType type, int depth) {
  ValueBuilder b{type};
  if (const size_t size = ScalarBytes(type); size != 0) {
    if (!c.Take(size, &b.bytes))
      return BadValue(fmt::format("a {} needs {} bytes at offset {}, {} are left",
                                  GgufTypeName(type), size, c.pos, c.remaining()));
    if (type == GgufType::kBool && static_cast<uint8_t>(b.bytes[0]) > 1)
      return BadValue(fmt::format("a bool at offset {} is {}, not 0 or 1", c.pos - 1,
                                  static_cast<unsigned>(b.bytes[0])));
    return GgufParser::Make(b);
  }
  if (type == GgufType::kString) {
    uint64_t length = 0;
    if (!c.Read(&length))
      return BadValue(fmt::format("a string length needs 8 bytes at offset {}, {} are left", c.pos,
                                  c.remaining()));
    if (!c.Take(length, &b.bytes))
      return BadValue(
          fmt::format("a string of {} bytes at offset {} runs past the end ({} "
                      "bytes are left)",
                      length, c.pos, c.remaining()));
    return GgufParser::Make(b);
  }
  if (type != GgufType::kArray)
    return BadValue(fmt::format("unknown value type {}", static_cast<uint32_t>(type)));
  if (depth >= kGgufMaxArrayDepth)
    return BadValue(
        fmt::format("arrays nest deeper than {} levels at offset {}", kGgufMaxArrayDepth, c.pos));
  uint32_t raw_element = 0;
  if (!c.Read(&raw_element) || !c.Read(&b.count))
    return BadValue(fmt::format("an array header needs 12 bytes at offset {}, {} are left", c.pos,
                                c.remaining()));
  if (!KnownType(raw_element))
    return BadValue(
        fmt::format("an array at offset {} has unknown element type {}", c.pos - 12, raw_element));
  b.element_type = static_cast<GgufType>(raw_element);
  const uint64_t min_bytes = MinEncodedBytes(b.element_type);
  if (b.count > c.remaining() / min_bytes)
    return BadValue(fmt::format(
        "an array of {} {} at offset {} cannot fit in the {} bytes left (each takes at least {})",
        b.count, GgufTypeName(b.element_type), c.pos - 12, c.remaining(), min_bytes));
  if (const size_t size = ScalarBytes(b.element_type); size != 0) {
    if (!c.Take(b.count * size, &b.bytes)) return Status::Internal("GGUF array bounds");
    if (b.element_type == GgufType::kBool)
      for (size_t i = 0; i < b.bytes.size(); ++i)
        if (static_cast<uint8_t>(b.bytes[i]) > 1)
          return BadValue(fmt::format("element {} of a bool array is {}, not 0 or 1", i,
                                      static_cast<unsigned>(b.bytes[i])));
    return GgufParser::Make(b);
  }
  const size_t start = c.pos;
  for (uint64_t i = 0; i < b.count; ++i) {
    Result<GgufValue> element = DecodeValue(c, b.element_type, depth + 1);
    if (!element.ok())
      return element.status().WithContext(fmt::format("element {} of {}", i, b.count));
  }
  b.bytes = c.bytes.subspan(start, c.pos - start);
  return GgufParser::Make(b);
}

// ggml block geometry: elements per block and bytes per block, for types whose size is known.
struct Block {
  uint32_t elements;
  uint32_t bytes;
};

std::optional<Block> GgmlBlock(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return Block{1, 4};
    case GgmlType::kF16:
    case GgmlType::kBF16:
      return Block{1, 2};
    case GgmlType::kQ4_0:
      return Block{32, 18};
    case GgmlType::kQ4_1:
      return Block{32, 20};
    case GgmlType::kQ5_0:
      return Block{32, 22};
    case GgmlType::kQ5_1:
      return Block{32, 24};
    case GgmlType::kQ8_0:
      return Block{32, 34};
    case GgmlType::kQ8_1:
      return Block{32, 36};
    case GgmlType::kQ2_K:
      return Block{256, 84};
    case GgmlType::kQ3_K:
      return Block{256, 110};
    case GgmlType::kQ4_K:
      return Block{256, 144};
    case GgmlType::kQ5_K:
      return Block{256, 176};
    case GgmlType::kQ6_K:
      return Block{256, 210};
    case GgmlType::kQ8_K:
      return Block{256, 292};
    case GgmlType::kI8:
      return Block{1, 1};
    case GgmlType::kI16:
      return Block{1, 2};
    case GgmlType::kI32:
      return Block{1, 4};
    case GgmlType::kI64:
    case GgmlType::kF64:
      return Block{1, 8};
  }
  return std::nullopt;
}

std::optional<FloatFormat> GgmlFloatFormat(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return FloatFormat::kF32;
    case GgmlType::kF16:
      return FloatFormat::kF16;
    case GgmlType::kBF16:
      return FloatFormat::kBF16;
    case GgmlType::kQ8_0:
      return FloatFormat::kQ8_0;
    default:
      return std::nullopt;
  }
}

// Whether an array whose elements are `element` can be read as an array of `wanted` (the
// scalar getter's type name): strings as strings, floats as floats, integers as integers.
bool ElementTypeFits(GgufType element, std::string_view wanted) {
  if (wanted == "string") return element == GgufType::kString;
  if (wanted == "float32") return element == GgufType::kFloat32 || element == GgufType::kFloat64;
  switch (element) {
    case GgufType::kUint8:
    case GgufType::kInt8:
    case GgufType::kUint16:
    case GgufType::kInt16:
    case GgufType::kUint32:
    case GgufType::kInt32:
    case GgufType::kUint64:
    case GgufType::kInt64:
      return true;
    default:
      return false;
  }
}

std::string Quoted(std::string_view s) {
  constexpr size_t kShown = 64;
  if (s.size() <= kShown) return fmt::format("\"{}\"", s);
  return fmt::format("\"{}...\" ({} bytes)", s.substr(0, kShown), s.size());
}

}  // namespace

std::string GgufTypeName(GgufType type) {
  switch (type) {
    case GgufType::kUint8:
      return "uint8";
    case GgufType::kInt8:
      return "int8";
    case GgufType::kUint16:
      return "uint16";
    case GgufType::kInt16:
      return "int16";
    case GgufType::kUint32:
      return "uint32";
    case GgufType::kInt32:
      return "int32";
    case GgufType::kFloat32:
      return "float32";
    case GgufType::kBool:
      return "bool";
    case GgufType::kString:
      return "string";
    case GgufType::kArray:
      return "array";
    case GgufType::kUint64:
      return "uint64";
    case GgufType::kInt64:
      return "int64";
    case GgufType::kFloat64:
      return "float64";
    case GgufType::kMissing:
      return "missing";
  }
  return fmt::format("type {}", static_cast<uint32_t>(type));
}

std::string GgmlTypeName(GgmlType type) {
  switch (type) {
    case GgmlType::kF32:
      return "F32";
    case GgmlType::kF16:
      return "F16";
    case GgmlType::kQ4_0:
      return "Q4_0";
    case GgmlType::kQ4_1:
      return "Q4_1";
    case GgmlType::kQ5_0:
      return "Q5_0";
    case GgmlType::kQ5_1:
      return "Q5_1";
    case GgmlType::kQ8_0:
      return "Q8_0";
    case GgmlType::kQ8_1:
      return "Q8_1";
    case GgmlType::kQ2_K:
      return "Q2_K";
    case GgmlType::kQ3_K:
      return "Q3_K";
    case GgmlType::kQ4_K:
      return "Q4_K";
    case GgmlType::kQ5_K:
      return "Q5_K";
    case GgmlType::kQ6_K:
      return "Q6_K";
    case GgmlType::kQ8_K:
      return "Q8_K";
    case GgmlType::kI8:
      return "I8";
    case GgmlType::kI16:
      return "I16";
    case GgmlType::kI32:
      return "I32";
    case GgmlType::kI64:
      return "I64";
    case GgmlType::kF64:
      return "F64";
    case GgmlType::kBF16:
      return "BF16";
  }
  return fmt::format("ggml type {}", static_cast<uint32_t>(type));
}

// --- GgufValue

Status GgufValue::TypeError(std::string_view wanted) const {
  const std::string what = is_element_ ? fmt::format("an element of GGUF metadata '{}'", key_)
                                       : fmt::format("GGUF metadata '{}'", key_);
  if (is_missing()) return Status::NotFound(fmt::format("GGUF metadata key '{}' is missing", key_));
  std::string have = type_ == GgufType::kArray
                         ? fmt::format("an array of {} {}", count_, GgufTypeName(element_type_))
                         : fmt::format("a {}", GgufTypeName(type_));
  return Status::InvalidArgument(fmt::format("{} is {}, not {}", what, have, wanted));
}

Result<int64_t> GgufValue::SignedValue() const {
  switch (type_) {
    case GgufType::kInt8:
      return Load<int8_t>(bytes_);
    case GgufType::kInt16:
      return Load<int16_t>(bytes_);
    case GgufType::kInt32:
      return Load<int32_t>(bytes_);
    case GgufType::kInt64:
      return Load<int64_t>(bytes_);
    case GgufType::kUint8:
      return Load<uint8_t>(bytes_);
    case GgufType::kUint16:
      return Load<uint16_t>(bytes_);
    case GgufType::kUint32:
      return Load<uint32_t>(bytes_);
    case GgufType::kUint64: {
      const uint64_t v = Load<uint64_t>(bytes_);
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) break;
      return static_cast<int64_t>(v);
    }
    default:
      return TypeError("an integer");
  }
  return TypeError("an integer that fits int64");
}

Result<uint64_t> GgufValue::UnsignedValue() const {
  if (type_ == GgufType::kUint64) return Load<uint64_t>(bytes_);
  Result<int64_t> v = SignedValue();
  if (!v.ok()) return v.status();
  if (*v < 0) return TypeError(fmt::format("a non-negative integer (it is {})", *v));
  return static_cast<uint64_t>(*v);
}

template <typename T>
Result<T> GgufValue::GetInteger(std::string_view wanted) const {
  if constexpr (std::is_unsigned_v<T>) {
    Result<uint64_t> v = UnsignedValue();
    if (!v.ok()) return v.status();
    if (*v > std::numeric_limits<T>::max())
      return TypeError(fmt::format("a {} ({} does not fit)", wanted, *v));
    return static_cast<T>(*v);
  } else {
    Result<int64_t> v = SignedValue();
    if (!v.ok()) return v.status();
    if (*v < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
        *v > static_cast<int64_t>(std::numeric_limits<T>::max()))
      return TypeError(fmt::format("a {} ({} does not fit)", wanted, *v));
    return static_cast<T>(*v);
  }
}

Result<uint8_t> GgufValue::GetU8() const {
  return GetInteger<uint8_t>("uint8");
}
Result<uint32_t> GgufValue::GetU32() const {
  return GetInteger<uint32_t>("uint32");
}
Result<uint64_t> GgufValue::GetU64() const {
  return GetInteger<uint64_t>("uint64");
}
Result<int32_t> GgufValue::GetI32() const {
  return GetInteger<int32_t>("int32");
}
Result<int64_t> GgufValue::GetI64() const {
  return GetInteger<int64_t>("int64");
}

Result<float> GgufValue::GetF32() const {
  if (type_ == GgufType::kFloat32) return Load<float>(bytes_);
  if (type_ == GgufType::kFloat64) {
    // A finite double beyond float's range would become infinity: an error, not a rounding.
    const double d = Load<double>(bytes_);
    if (std::isfinite(d) && std::fabs(d) > static_cast<double>(std::numeric_limits<float>::max()))
      return TypeError(fmt::format("a float32 ({} does not fit)", d));
    return static_cast<float>(d);
  }
  return TypeError("a float32");
}

Result<double> GgufValue::GetF64() const {
  if (type_ == GgufType::kFloat64) return Load<double>(bytes_);
  if (type_ == GgufType::kFloat32) return static_cast<double>(Load<float>(bytes_));
  return TypeError("a float64");
}

Result<bool> GgufValue::GetBool() const {
  if (type_ != GgufType::kBool) return TypeError("a bool");
  return static_cast<uint8_t>(bytes_[0]) != 0;
}

Result<std::string_view> GgufValue::GetStringView() const {
  if (type_ != GgufType::kString) return TypeError("a string");
  return AsChars(bytes_);
}

Result<std::string> GgufValue::GetString() const {
  Result<std::string_view> s = GetStringView();
  if (!s.ok()) return s.status();
  return std::string(*s);
}

Result<GgufValue> GgufValue::Element(uint64_t index) const {
  if (type_ != GgufType::kArray) return TypeError("an array");
  if (index >= count_)
    return Status::InvalidArgument(fmt::format(
        "element {} of GGUF metadata '{}' asked for; the array has {}", index, key_, count_));
  GgufValue element;
  if (const size_t size = ScalarBytes(element_type_); size != 0) {
    element = GgufParser::Make(
        {element_type_, GgufType::kMissing, 0, bytes_.subspan(index * size, size)});
  } else {
    Cursor c{bytes_};
    for (uint64_t i = 0;; ++i) {
      Result<GgufValue> v = DecodeValue(c, element_type_, 1);
      if (!v.ok()) return v.status().WithContext(fmt::format("GGUF metadata '{}'", key_));
      if (i == index) {
        element = *v;
        break;
      }
    }
  }
  GgufParser::SetKey(element, key_, /*is_element=*/true);
  return element;
}

template <typename T, typename Get>
Result<std::vector<T>> GgufValue::GetArray(std::string_view wanted, Get get) const {
  // The element type is checked before any element: an empty array of uint8 is no more an
  // array of strings than a full one.
  if (type_ != GgufType::kArray || !ElementTypeFits(element_type_, wanted))
    return TypeError(fmt::format("an array of {}", wanted));
  std::vector<T> out;
  const size_t size = ScalarBytes(element_type_);
  Cursor c{bytes_};
  for (uint64_t i = 0; i < count_; ++i) {
    GgufValue element;
    if (size != 0) {
      element =
          GgufParser::Make({element_type_, GgufType::kMissing, 0, bytes_.subspan(i * size, size)});
    } else {
      Result<GgufValue> v = DecodeValue(c, element_type_, 1);
      if (!v.ok()) return v.status().WithContext(fmt::format("GGUF metadata '{}'", key_));
      element = *v;
    }
    GgufParser::SetKey(element, key_, /*is_element=*/true);
    auto value = get(element);
    if (!value.ok()) return value.status().WithContext(fmt::format("element {} of {}", i, count_));
    // Reserved only once an element converted: an array of a million bytes asked for as
    // strings fails at its first element, not after reserving a million std::strings.
    if (i == 0) out.reserve(count_);
    out.push_back(std::move(*value));
  }
  return out;
}

Result<std::vector<std::string>> GgufValue::GetStringArray() const {
  return GetArray<std::string>("string", [](const GgufValue& v) { return v.GetString(); });
}
Result<std::vector<float>> GgufValue::GetF32Array() const {
  return GetArray<float>("float32", [](const GgufValue& v) { return v.GetF32(); });
}
Result<std::vector<int32_t>> GgufValue::GetI32Array() const {
  return GetArray<int32_t>("int32", [](const GgufValue& v) { return v.GetI32(); });
}
Result<std::vector<uint32_t>> GgufValue::GetU32Array() const {
  return GetArray<uint32_t>("uint32", [](const GgufValue& v) { return v.GetU32(); });
}
Result<std::vector<int64_t>> GgufValue::GetI64Array() const {
  return GetArray<int64_t>("int64", [](const GgufValue& v) { return v.GetI64(); });
}

std::string GgufValue::ToString() const {
  switch (type_) {
    case GgufType::kMissing:
      return "<missing>";
    case GgufType::kArray:
      return fmt::format("[{} x {}]", count_, GgufTypeName(element_type_));
    case GgufType::kString:
      return Quoted(AsChars(bytes_));
    case GgufType::kBool:
      return *GetBool() ? "true" : "false";
    case GgufType::kFloat32:
    case GgufType::kFloat64:
      return fmt::format("{}", *GetF64());
    case GgufType::kUint64:
      return fmt::format("{}", Load<uint64_t>(bytes_));
    default: {
      Result<int64_t> v = SignedValue();
      return v.ok() ? fmt::format("{}", *v) : "?";
    }
  }
}

// --- GgufFile

Result<GgufFile> GgufParser::Parse(std::span<const std::byte> bytes, std::string name,
                                   MappedFile mapped) {
  auto error = [&](std::string msg) {
    return Status::InvalidArgument(fmt::format("GGUF file {}: {}", name, msg));
  };
  Cursor c{bytes};
  char magic[4];
  if (!c.Read(&magic))
    return error(fmt::format("{} bytes are too short for the GGUF header", bytes.size()));
  if (std::memcmp(magic, "GGUF", 4) != 0)
    return error(
        fmt::format("does not start with the magic \"GGUF\" (found {:02x} {:02x} "
                    "{:02x} {:02x}); not a GGUF file",
                    static_cast<uint8_t>(magic[0]), static_cast<uint8_t>(magic[1]),
                    static_cast<uint8_t>(magic[2]), static_cast<uint8_t>(magic[3])));
  uint32_t version = 0;
  uint64_t tensor_count = 0;
  uint64_t kv_count = 0;
  if (!c.Read(&version) || !c.Read(&tensor_count) || !c.Read(&kv_count))
    return error(fmt::format("{} bytes are too short for the 24-byte GGUF header", bytes.size()));
  if (version != 2 && version != 3) {
    const uint32_t swapped = __builtin_bswap32(version);
    if (swapped == 2 || swapped == 3)
      return Status::NotSupported(
          fmt::format("GGUF file {}: a big-endian GGUF (version {}); only little-endian files "
                      "are read",
                      name, swapped));
    return Status::NotSupported(fmt::format(
        "GGUF file {}: version {} is not supported (versions 2 and 3 are read{})", name, version,
        version == 1 ? "; version 1 used 32-bit lengths, convert it with a newer llama.cpp" : ""));
  }
  // Each key/value takes at least 14 bytes (a 1-byte key and a 1-byte value); each tensor
  // info at least 33 (a 1-byte name, one dimension).
  constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;
  constexpr uint64_t kMinTensorBytes = 8 + 1 + 4 + 8 + 4 + 8;
  if (kv_count > c.remaining() / kMinKvBytes)
    return error(fmt::format("metadata count {} cannot fit in the {} bytes after the header",
                             kv_count, c.remaining()));
  if (tensor_count > c.remaining() / kMinTensorBytes ||
      kv_count * kMinKvBytes + tensor_count * kMinTensorBytes > c.remaining())
    return error(fmt::format(
        "tensor count {} (with {} metadata entries) cannot fit in the {} bytes after the header",
        tensor_count, kv_count, c.remaining()));

  GgufFile file;
  file.file_ = std::move(mapped);
  file.name_ = name;  // a copy: `error` above still names the file
  file.bytes_ = bytes;
  file.version_ = version;
  // Vectors grow as entries parse, never from the counts: memory follows the bytes read.
  for (uint64_t i = 0; i < kv_count; ++i) {
    const size_t at = c.pos;
    uint64_t key_length = 0;
    std::span<const std::byte> key_bytes;
    if (!c.Read(&key_length))
      return error(
          fmt::format("metadata entry {} of {}: its key length at offset {} runs past "
                      "the end",
                      i, kv_count, at));
    if (key_length == 0 || key_length > kGgufMaxKeyBytes)
      return error(
          fmt::format("metadata entry {} of {} at offset {}: key length {} is not "
                      "in 1..{}",
                      i, kv_count, at, key_length, kGgufMaxKeyBytes));
    if (!c.Take(key_length, &key_bytes))
      return error(
          fmt::format("metadata entry {} of {}: its {}-byte key at offset {} runs past "
                      "the end",
                      i, kv_count, key_length, at + 8));
    const std::string_view key = AsChars(key_bytes);
    uint32_t raw_type = 0;
    if (!c.Read(&raw_type))
      return error(fmt::format("metadata '{}': its type runs past the end of the file", key));
    if (!KnownType(raw_type))
      return error(fmt::format("metadata '{}' has unknown value type {}", key, raw_type));
    Result<GgufValue> value = DecodeValue(c, static_cast<GgufType>(raw_type), 0);
    if (!value.ok()) return error(fmt::format("metadata '{}': {}", key, value.status().message()));
    SetKey(*value, key, /*is_element=*/false);
    if (!file.metadata_index_.emplace(key, file.metadata_.size()).second)
      return error(fmt::format("metadata key '{}' appears twice", key));
    file.metadata_.push_back(*value);
  }

  if (const GgufValue align = file.metadata("general.alignment"); !align.is_missing()) {
    Result<uint32_t> a = align.GetU32();
    if (!a.ok()) return error(a.status().message());
    if (*a == 0 || !std::has_single_bit(*a))
      return error(fmt::format("general.alignment is {}, not a power of two", *a));
    file.alignment_ = *a;
  }

  for (uint64_t i = 0; i < tensor_count; ++i) {
    const size_t at = c.pos;
    uint64_t name_length = 0;
    std::span<const std::byte> name_bytes;
    if (!c.Read(&name_length) || name_length == 0 || name_length > kGgufMaxTensorNameBytes ||
        !c.Take(name_length, &name_bytes))
      return error(
          fmt::format("tensor info {} of {} at offset {}: its name (length {}) is not "
                      "1..{} bytes within the file",
                      i, tensor_count, at, name_length, kGgufMaxTensorNameBytes));
    GgufTensorInfo info;
    info.name = std::string(AsChars(name_bytes));
    uint32_t n_dims = 0;
    if (!c.Read(&n_dims))
      return error(fmt::format("tensor '{}': its dimension count runs past the end", info.name));
    if (n_dims == 0 || n_dims > kGgufMaxDims)
      return error(
          fmt::format("tensor '{}' has {} dimensions, not 1..{}", info.name, n_dims, kGgufMaxDims));
    info.element_count = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = 0;
      if (!c.Read(&dim))
        return error(fmt::format("tensor '{}': dimension {} runs past the end", info.name, d));
      if (dim == 0 ||
          dim > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / info.element_count)
        return error(
            fmt::format("tensor '{}': dimension {} is {}, which is 0 or makes the "
                        "element count overflow int64",
                        info.name, d, dim));
      info.dims.push_back(dim);
      info.element_count *= dim;
    }
    uint32_t raw_type = 0;
    if (!c.Read(&raw_type) || !c.Read(&info.offset))
      return error(fmt::format("tensor '{}': its type and offset run past the end", info.name));
    info.type = static_cast<GgmlType>(raw_type);
    if (info.offset % file.alignment_ != 0)
      return error(fmt::format("tensor '{}': offset {} is not a multiple of the alignment {}",
                               info.name, info.offset, file.alignment_));
    if (const std::optional<Block> block = GgmlBlock(info.type)) {
      if (info.dims[0] % block->elements != 0)
        return error(
            fmt::format("tensor '{}' is {} with {} elements in a row, not a multiple of "
                        "its block of {}",
                        info.name, GgmlTypeName(info.type), info.dims[0], block->elements));
      // element_count alone fits int64, but a 4- or 8-byte type can take 2^65 bytes: a size
      // that wrapped would pass the bounds check below and TensorToFloat would then allocate
      // element_count floats.
      const uint64_t blocks = info.element_count / block->elements;
      if (blocks > std::numeric_limits<uint64_t>::max() / block->bytes)
        return error(fmt::format("tensor '{}': {} elements of {} overflow a 64-bit byte size",
                                 info.name, info.element_count, GgmlTypeName(info.type)));
      info.byte_size = blocks * block->bytes;
    }
    if (!file.tensor_index_.emplace(info.name, file.tensors_.size()).second)
      return error(fmt::format("tensor '{}' appears twice", info.name));
    file.tensors_.push_back(std::move(info));
  }

  // The data section starts at the next multiple of the alignment.
  const uint64_t align = file.alignment_;
  file.data_offset_ = (c.pos + align - 1) / align * align;
  const uint64_t data_size =
      file.data_offset_ <= bytes.size() ? bytes.size() - file.data_offset_ : 0;
  for (const GgufTensorInfo& t : file.tensors_) {
    if (!t.byte_size) continue;
    if (t.offset > data_size || *t.byte_size > data_size - t.offset)
      return error(fmt::format(
          "tensor '{}' ({} {} bytes at data offset {}, file offset {}) extends past the end of "
          "the file ({} bytes): the file is truncated or its tensor info is wrong",
          t.name, GgmlTypeName(t.type), *t.byte_size, t.offset, file.data_offset_ + t.offset,
          bytes.size()));
  }
  return file;
}

Result<GgufFile> GgufFile::Open(const std::string& path) {
  Result<MappedFile> mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  const std::span<const std::byte> bytes = mapped->bytes();
  return GgufParser::Parse(bytes, path, std::move(*mapped));
}

Result<GgufFile> GgufFile::Parse(std::span<const std::byte> bytes, std::string name) {
  return GgufParser::Parse(bytes, std::move(name), MappedFile());
}

GgufValue GgufFile::metadata(std::string_view key) const {
  if (auto it = metadata_index_.find(key); it != metadata_index_.end())
    return metadata_[it->second];
  GgufValue missing;
  GgufParser::SetKey(missing, key, /*is_element=*/false);
  return missing;
}

const GgufTensorInfo* GgufFile::tensor(std::string_view name) const {
  auto it = tensor_index_.find(std::string(name));
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Result<std::span<const std::byte>> GgufFile::TensorData(std::string_view name) const {
  const GgufTensorInfo* t = tensor(name);
  if (t == nullptr)
    return Status::NotFound(fmt::format("GGUF file {} has no tensor '{}'", name_, name));
  if (!t->byte_size)
    return Status::NotSupported(
        fmt::format("GGUF file {}: tensor '{}' is of {}, whose size this reader does not know",
                    name_, name, GgmlTypeName(t->type)));
  return bytes_.subspan(data_offset_ + t->offset, *t->byte_size);
}

Result<std::vector<float>> GgufFile::TensorToFloat(std::string_view name) const {
  const GgufTensorInfo* t = tensor(name);
  if (t == nullptr)
    return Status::NotFound(fmt::format("GGUF file {} has no tensor '{}'", name_, name));
  const std::optional<FloatFormat> format = GgmlFloatFormat(t->type);
  if (!format)
    return Status::NotSupported(
        fmt::format("GGUF file {}: tensor '{}' is {}; only F32, F16, BF16 and Q8_0 convert to "
                    "float",
                    name_, name, GgmlTypeName(t->type)));
  Result<std::span<const std::byte>> data = TensorData(name);
  if (!data.ok()) return data.status();
  std::vector<float> out(t->element_count);
  Status s = ConvertToFloat(*format, *data, out);
  if (!s.ok()) return s.WithContext(fmt::format("GGUF file {}: tensor '{}'", name_, name));
  return out;
}

}  // namespace strata::model_io
