// Tiny GGUF and safetensors writers for tests: they build files byte by byte as the formats
// specify (docs/model_formats.md), independently of the readers, including files the readers
// must refuse (any count, type or offset can be set by hand).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace strata::model_io::testing {

// Appends the little-endian bytes of `v`.
template <typename T>
void Put(std::string& out, T v) {
  char b[sizeof(T)];
  std::memcpy(b, &v, sizeof v);
  out.append(b, sizeof b);
}

inline void PutGgufString(std::string& out, std::string_view s) {
  Put<uint64_t>(out, s.size());
  out.append(s);
}

inline std::span<const std::byte> AsBytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// Builds a GGUF file: metadata entries and tensors in the order added. Value type numbers are
// gguf_type's (0 uint8 ... 12 float64), tensor types ggml_type's.
class GgufWriter {
 public:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> dims;
    uint32_t type = 0;
    std::string data;
    // Written as given when set; otherwise the next aligned offset.
    std::optional<uint64_t> offset;
  };

  uint32_t version = 3;
  uint32_t alignment = 32;  // used for layout; write general.alignment yourself to change it
  std::optional<uint64_t> kv_count;  // overrides the real counts in the header
  std::optional<uint64_t> tensor_count;

  // An entry whose value is already encoded (as the type's bytes follow the type number).
  void AddRaw(std::string_view key, uint32_t type, std::string encoded) {
    std::string kv;
    PutGgufString(kv, key);
    Put<uint32_t>(kv, type);
    kv += encoded;
    kvs_.push_back(std::move(kv));
  }
  template <typename T>
  void Add(std::string_view key, uint32_t type, T v) {
    std::string enc;
    Put<T>(enc, v);
    AddRaw(key, type, enc);
  }
  void AddString(std::string_view key, std::string_view s) {
    std::string enc;
    PutGgufString(enc, s);
    AddRaw(key, 8, enc);
  }
  template <typename T>
  void AddArray(std::string_view key, uint32_t element_type, const std::vector<T>& values) {
    std::string enc;
    Put<uint32_t>(enc, element_type);
    Put<uint64_t>(enc, values.size());
    for (const T& v : values) Put<T>(enc, v);
    AddRaw(key, 9, enc);
  }
  void AddStringArray(std::string_view key, const std::vector<std::string>& values) {
    std::string enc;
    Put<uint32_t>(enc, 8);
    Put<uint64_t>(enc, values.size());
    for (const std::string& v : values) PutGgufString(enc, v);
    AddRaw(key, 9, enc);
  }
  void AddTensor(Tensor t) { tensors_.push_back(std::move(t)); }

  std::string Build() const {
    std::string out = "GGUF";
    Put<uint32_t>(out, version);
    Put<uint64_t>(out, tensor_count.value_or(tensors_.size()));
    Put<uint64_t>(out, kv_count.value_or(kvs_.size()));
    for (const std::string& kv : kvs_) out += kv;
    std::vector<uint64_t> offsets;
    uint64_t next = 0;
    for (const Tensor& t : tensors_) {
      const uint64_t at = t.offset.value_or(next);
      offsets.push_back(at);
      next = AlignUp(std::max(next, at + t.data.size()));
      PutGgufString(out, t.name);
      Put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
      for (uint64_t d : t.dims) Put<uint64_t>(out, d);
      Put<uint32_t>(out, t.type);
      Put<uint64_t>(out, at);
    }
    if (tensors_.empty()) return out;
    out.resize(AlignUp(out.size()), '\0');
    const size_t data_start = out.size();
    for (size_t i = 0; i < tensors_.size(); ++i) {
      if (tensors_[i].data.empty()) continue;  // an offset far past the end stays unwritten
      const size_t at = data_start + offsets[i];
      if (out.size() < at + tensors_[i].data.size()) out.resize(at + tensors_[i].data.size());
      std::memcpy(out.data() + at, tensors_[i].data.data(), tensors_[i].data.size());
    }
    return out;
  }

 private:
  uint64_t AlignUp(uint64_t v) const { return (v + alignment - 1) / alignment * alignment; }

  std::vector<std::string> kvs_;
  std::vector<Tensor> tensors_;
};

// Builds a safetensors file: the header JSON (padded with spaces to a multiple of 8), then the
// tensors' bytes in the order added. `header` can be edited before Build to break it.
class SafetensorsWriter {
 public:
  nlohmann::json header = nlohmann::json::object();

  void AddMetadata(const std::string& key, const std::string& value) {
    header["__metadata__"][key] = value;
  }
  void AddTensor(const std::string& name, const std::string& dtype, std::vector<uint64_t> shape,
                 const std::string& bytes) {
    header[name] = {{"dtype", dtype},
                    {"shape", shape},
                    {"data_offsets", {data_.size(), data_.size() + bytes.size()}}};
    data_ += bytes;
  }
  std::string Build() const {
    std::string json = header.dump();
    json.resize((json.size() + 7) / 8 * 8, ' ');
    std::string out;
    Put<uint64_t>(out, json.size());
    return out + json + data_;
  }

 private:
  std::string data_;
};

// The bytes of a vector of trivially copyable values.
template <typename T>
std::string Bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

}  // namespace strata::model_io::testing
