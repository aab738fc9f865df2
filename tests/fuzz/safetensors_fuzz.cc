// libFuzzer harness: the safetensors reader (src/model_io/safetensors.h) —
// SafetensorsFile::Parse of the input, then every tensor's bytes and float values.
//
// Input: a safetensors file. A refusal must carry a message; an accepted file must be
// consistent (tensors sorted and found by name, their byte ranges tiling the data section
// inside the input, product(shape) * dtype size bytes each, one float per element); a failed
// check calls abort().
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "model_io/safetensors.h"

namespace {

using strata::model_io::SafetensorsDtype;
using strata::model_io::SafetensorsFile;
using strata::model_io::SafetensorsTensorInfo;

void Check(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  strata::Result<SafetensorsFile> file = SafetensorsFile::Parse(bytes, "fuzz.safetensors");
  if (!file.ok()) {
    Check(!file.status().message().empty());
    return 0;
  }
  Check(file->data_offset() >= 8 && file->data_offset() <= size);

  const std::vector<SafetensorsTensorInfo>& tensors = file->tensors();
  Check(std::is_sorted(tensors.begin(), tensors.end(),
                       [](const auto& a, const auto& b) { return a.name < b.name; }));
  uint64_t total = 0;
  for (const SafetensorsTensorInfo& t : tensors) {
    Check(file->tensor(t.name) == &t);
    Check(t.name != "__metadata__");
    Check(t.shape.size() <= strata::model_io::kSafetensorsMaxDims);
    uint64_t product = 1;
    for (uint64_t d : t.shape) product *= d;  // cannot wrap: the parser bounded it
    Check(product == t.element_count);
    const size_t element_bytes = strata::model_io::SafetensorsDtypeBytes(t.dtype);
    Check(element_bytes != 0 && t.begin <= t.end);
    Check(t.end - t.begin == t.element_count * element_bytes);
    total += t.end - t.begin;

    auto tensor_data = file->TensorData(t.name);
    Check(tensor_data.ok() && tensor_data->size() == t.end - t.begin);
    Check(tensor_data->empty() ||
          (tensor_data->data() == bytes.data() + file->data_offset() + t.begin &&
           tensor_data->data() + tensor_data->size() <= bytes.data() + bytes.size()));
    if (t.element_count <= (1u << 20)) {  // bounded: 4 MB of floats at most
      auto floats = file->TensorToFloat(t.name);
      const bool converts = t.dtype == SafetensorsDtype::kF32 ||
                            t.dtype == SafetensorsDtype::kF16 || t.dtype == SafetensorsDtype::kBF16;
      Check(floats.ok() == converts);
      if (floats.ok()) Check(floats->size() == t.element_count);
    }
  }
  // The tensors tile the data section exactly.
  Check(total == size - file->data_offset());
  // A name is found exactly when some tensor has it (the fuzzer writes this name too).
  const auto probe =
      std::find_if(tensors.begin(), tensors.end(), [](const auto& t) { return t.name == "probe"; });
  Check(file->tensor("probe") == (probe == tensors.end() ? nullptr : &*probe));
  return 0;
}
