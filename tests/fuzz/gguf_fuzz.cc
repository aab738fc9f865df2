// libFuzzer harness: the GGUF reader (src/model_io/gguf.h) — GgufFile::Parse of the input,
// then every getter of every metadata value (array elements too) and every tensor's bytes
// and float values.
//
// Input: a GGUF file. A refusal must carry a message; an accepted file must be consistent
// (lookups find what iteration shows, tensor bytes lie inside the input, conversions give
// one float per element); a failed check calls abort().
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "model_io/gguf.h"

namespace {

using strata::model_io::GgmlType;
using strata::model_io::GgufFile;
using strata::model_io::GgufTensorInfo;
using strata::model_io::GgufType;
using strata::model_io::GgufValue;

void Check(bool ok) {
  if (!ok) std::abort();
}

// Element() is linear for arrays of strings or arrays, and nested arrays multiply the
// elements visited: a budget per input keeps an input's cost near its size.
struct Walker {
  int budget = 4096;

  void Walk(const GgufValue& v, int depth) {
    if (--budget < 0) return;
    Check(!v.is_missing());
    // Arrays nest at most kGgufMaxArrayDepth deep (top level 0); scalars one deeper.
    Check(depth <= strata::model_io::kGgufMaxArrayDepth);
    if (v.type() == GgufType::kArray) Check(depth < strata::model_io::kGgufMaxArrayDepth);
    // Every getter, whatever the type: each either succeeds or says why not.
    auto u8 = v.GetU8();
    auto u32 = v.GetU32();
    auto u64 = v.GetU64();
    auto i32 = v.GetI32();
    auto i64 = v.GetI64();
    auto f32 = v.GetF32();
    auto f64 = v.GetF64();
    auto b = v.GetBool();
    auto s = v.GetString();
    auto sv = v.GetStringView();
    for (const strata::Status* st :
         {&u8.status(), &u32.status(), &u64.status(), &i32.status(), &i64.status(), &f32.status(),
          &f64.status(), &b.status(), &s.status(), &sv.status()})
      Check(st->ok() || !st->message().empty());
    // Conversions that lose nothing agree with each other.
    if (u8.ok()) Check(u32.ok() && *u32 == *u8);
    if (u32.ok()) Check(u64.ok() && *u64 == *u32 && i64.ok() && *i64 == *u32);
    if (i32.ok()) Check(i64.ok() && *i64 == *i32);
    if (u64.ok() && i64.ok()) Check(static_cast<int64_t>(*u64) == *i64 && *i64 >= 0);
    if (f32.ok()) Check(f64.ok());
    Check(s.ok() == sv.ok());
    if (s.ok()) Check(*s == *sv);
    // Every scalar is readable as some type.
    Check(u64.ok() || i64.ok() || f64.ok() || b.ok() || s.ok() || v.type() == GgufType::kArray);
    (void)v.ToString();

    auto strings = v.GetStringArray();
    auto floats = v.GetF32Array();
    auto ints = v.GetI32Array();
    auto uints = v.GetU32Array();
    auto longs = v.GetI64Array();
    if (v.type() != GgufType::kArray) {
      Check(!strings.ok() && !floats.ok() && !ints.ok() && !uints.ok() && !longs.ok());
      Check(!v.Element(0).ok());
      return;
    }
    const uint64_t n = v.array_size();
    if (strings.ok()) Check(strings->size() == n && v.element_type() == GgufType::kString);
    if (floats.ok()) Check(floats->size() == n);
    if (ints.ok()) Check(ints->size() == n);
    if (uints.ok()) Check(uints->size() == n);
    if (longs.ok()) Check(longs->size() == n);
    Check(!v.Element(n).ok());
    // The first few elements and the last, each walked in turn.
    for (uint64_t i = 0; i < n && i < 8 && budget > 0; ++i) WalkElement(v, i, depth, strings);
    if (n > 8 && budget > 0) WalkElement(v, n - 1, depth, strings);
  }

  void WalkElement(const GgufValue& v, uint64_t i, int depth,
                   const strata::Result<std::vector<std::string>>& strings) {
    auto element = v.Element(i);
    Check(element.ok());  // the parser checked every element already
    Check(element->type() == v.element_type());
    Check(element->key() == v.key());
    if (strings.ok()) Check(*element->GetString() == (*strings)[i]);
    Walk(*element, depth + 1);
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  strata::Result<GgufFile> file = GgufFile::Parse(bytes, "fuzz.gguf");
  if (!file.ok()) {
    Check(!file.status().message().empty());
    return 0;
  }
  Check(file->version() == 2 || file->version() == 3);
  Check(file->alignment() != 0 && (file->alignment() & (file->alignment() - 1)) == 0);
  Check(file->data_offset() % file->alignment() == 0);

  Walker walker;
  for (const GgufValue& v : file->metadata()) {
    Check(file->metadata(v.key()).type() == v.type());
    walker.Walk(v, 0);
  }
  // A key is missing exactly when no entry has it (the fuzzer writes this key too).
  constexpr std::string_view kProbe = "general.probe";
  bool has_probe = false;
  for (const GgufValue& v : file->metadata()) has_probe |= v.key() == kProbe;
  Check(file->metadata(kProbe).is_missing() == !has_probe);

  for (const GgufTensorInfo& t : file->tensors()) {
    Check(file->tensor(t.name) == &t);
    Check(!t.dims.empty() && t.dims.size() <= strata::model_io::kGgufMaxDims);
    uint64_t product = 1;
    for (uint64_t d : t.dims) product *= d;  // cannot wrap: the parser bounded it
    Check(product == t.element_count && t.element_count >= 1);
    Check(t.offset % file->alignment() == 0);
    auto tensor_data = file->TensorData(t.name);
    if (t.byte_size) {
      Check(tensor_data.ok() && tensor_data->size() == *t.byte_size);
      Check(tensor_data->data() >= bytes.data() &&
            tensor_data->data() + tensor_data->size() <= bytes.data() + bytes.size());
    } else {
      Check(!tensor_data.ok());
    }
    // Bounded: a tensor of a million elements is 4 MB of floats.
    if (t.element_count <= (1u << 20)) {
      auto floats = file->TensorToFloat(t.name);
      const bool converts = t.type == GgmlType::kF32 || t.type == GgmlType::kF16 ||
                            t.type == GgmlType::kBF16 || t.type == GgmlType::kQ8_0;
      Check(floats.ok() == converts);
      if (floats.ok()) Check(floats->size() == t.element_count);
    }
  }
  return 0;
}
