// safetensors parsing: the 8-byte header length, the JSON header checked tensor by tensor
// against the file's size, and the Hugging Face directory layouts over it.
#include "model_io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <filesystem>
#include <optional>
#include <set>
#include <system_error>
#include <utility>

#include <fmt/format.h>

namespace strata::model_io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

static_assert(std::endian::native == std::endian::little, "safetensors files are little-endian");

struct DtypeEntry {
  std::string_view name;
  SafetensorsDtype dtype;
  size_t bytes;
};

constexpr DtypeEntry kDtypes[] = {
    {"BOOL", SafetensorsDtype::kBool, 1},       {"U8", SafetensorsDtype::kU8, 1},
    {"I8", SafetensorsDtype::kI8, 1},           {"F8_E5M2", SafetensorsDtype::kF8_E5M2, 1},
    {"F8_E4M3", SafetensorsDtype::kF8_E4M3, 1}, {"I16", SafetensorsDtype::kI16, 2},
    {"U16", SafetensorsDtype::kU16, 2},         {"F16", SafetensorsDtype::kF16, 2},
    {"BF16", SafetensorsDtype::kBF16, 2},       {"I32", SafetensorsDtype::kI32, 4},
    {"U32", SafetensorsDtype::kU32, 4},         {"F32", SafetensorsDtype::kF32, 4},
    {"F64", SafetensorsDtype::kF64, 8},         {"I64", SafetensorsDtype::kI64, 8},
    {"U64", SafetensorsDtype::kU64, 8},
};

std::optional<SafetensorsDtype> DtypeFromName(std::string_view name) {
  for (const DtypeEntry& e : kDtypes)
    if (e.name == name) return e.dtype;
  return std::nullopt;
}

std::optional<FloatFormat> DtypeFloatFormat(SafetensorsDtype dtype) {
  switch (dtype) {
    case SafetensorsDtype::kF32:
      return FloatFormat::kF32;
    case SafetensorsDtype::kF16:
      return FloatFormat::kF16;
    case SafetensorsDtype::kBF16:
      return FloatFormat::kBF16;
    default:
      return std::nullopt;
  }
}

// A short rendering of a JSON value for errors (never the whole of a large one).
std::string Show(const json& j) {
  switch (j.type()) {
    case json::value_t::object:
      return fmt::format("an object of {} entries", j.size());
    case json::value_t::array:
      return fmt::format("an array of {} elements", j.size());
    case json::value_t::string: {
      const std::string& s = j.get_ref<const std::string&>();
      if (s.size() <= 64) return fmt::format("\"{}\"", s);
      return fmt::format("a string of {} bytes", s.size());
    }
    default:
      return j.dump(-1, ' ', false, json::error_handler_t::replace);
  }
}

std::string Join(const std::string& dir, std::string_view name) {
  return (fs::path(dir) / name).string();
}

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

// Reads and parses a JSON file of at most kModelJsonMaxBytes.
Result<json> ReadJsonFile(const std::string& path) {
  Result<MappedFile> file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  if (file->size() > kModelJsonMaxBytes)
    return Status::InvalidArgument(
        fmt::format("{} is {} bytes, over the limit of {} for a JSON "
                    "file of a model",
                    path, file->size(), kModelJsonMaxBytes));
  const auto* begin = reinterpret_cast<const char*>(file->bytes().data());
  json j = json::parse(begin, begin + file->size(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Status::InvalidArgument(fmt::format("{} is not valid JSON", path));
  return j;
}

// A shard named by an index must be a file in the model's directory, not a path.
bool PlainFileName(const std::string& name) {
  return !name.empty() && name != "." && name != ".." && name.find('/') == std::string::npos &&
         name.find('\0') == std::string::npos;
}

}  // namespace

std::string_view SafetensorsDtypeName(SafetensorsDtype dtype) {
  for (const DtypeEntry& e : kDtypes)
    if (e.dtype == dtype) return e.name;
  return "?";
}

size_t SafetensorsDtypeBytes(SafetensorsDtype dtype) {
  for (const DtypeEntry& e : kDtypes)
    if (e.dtype == dtype) return e.bytes;
  return 0;
}

// --- SafetensorsFile

Result<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  Result<MappedFile> mapped = MappedFile::Open(path);
  if (!mapped.ok()) return mapped.status();
  const std::span<const std::byte> bytes = mapped->bytes();
  return ParseImpl(bytes, path, std::move(*mapped));
}

Result<SafetensorsFile> SafetensorsFile::Parse(std::span<const std::byte> bytes, std::string name) {
  return ParseImpl(bytes, std::move(name), MappedFile());
}

Result<SafetensorsFile> SafetensorsFile::ParseImpl(std::span<const std::byte> bytes,
                                                   std::string name, MappedFile mapped) {
  auto error = [&](std::string msg) {
    return Status::InvalidArgument(fmt::format("safetensors file {}: {}", name, msg));
  };
  uint64_t header_length = 0;
  if (bytes.size() < sizeof header_length)
    return error(fmt::format("{} bytes are too short for the 8-byte header length", bytes.size()));
  std::memcpy(&header_length, bytes.data(), sizeof header_length);
  if (header_length > kSafetensorsMaxHeaderBytes)
    return error(
        fmt::format("header length {} is over the limit of {} bytes (not a safetensors "
                    "file?)",
                    header_length, kSafetensorsMaxHeaderBytes));
  if (header_length > bytes.size() - 8)
    return error(
        fmt::format("header of {} bytes runs past the end of the file ({} bytes): the "
                    "file is truncated",
                    header_length, bytes.size()));
  const auto* header = reinterpret_cast<const char*>(bytes.data() + 8);
  // JSON parsers keep one of two equal keys silently, so a header naming a tensor twice would
  // mean whatever this parser picks; a top-level key seen twice is refused instead.
  std::set<std::string> keys;
  std::string duplicate;
  const json::parser_callback_t note_keys = [&](int depth, json::parse_event_t event,
                                                json& parsed) {
    if (depth == 1 && event == json::parse_event_t::key && duplicate.empty() &&
        parsed.is_string() && !keys.insert(parsed.get<std::string>()).second)
      duplicate = parsed.get<std::string>();
    return true;
  };
  const json j = json::parse(header, header + header_length, note_keys,
                             /*allow_exceptions=*/false);
  if (j.is_discarded()) return error("the header is not valid JSON");
  if (!j.is_object()) return error(fmt::format("the header is {}, not a JSON object", Show(j)));
  if (!duplicate.empty()) return error(fmt::format("the header names '{}' twice", duplicate));

  SafetensorsFile file;
  file.file_ = std::move(mapped);
  file.name_ = name;  // a copy: `error` above still names the file
  file.data_offset_ = 8 + header_length;
  file.data_ = bytes.subspan(static_cast<size_t>(file.data_offset_));
  const uint64_t data_size = file.data_.size();

  for (const auto& item : j.items()) {
    // Not a structured binding: Clang 14 (the fuzz build) cannot capture one in `bad` below.
    const std::string& key = item.key();
    const json& entry = item.value();
    if (key == "__metadata__") {
      if (!entry.is_object())
        return error(fmt::format("__metadata__ is {}, not an object of strings", Show(entry)));
      for (const auto& [mkey, mvalue] : entry.items()) {
        if (!mvalue.is_string())
          return error(fmt::format("__metadata__ '{}' is {}, not a string", mkey, Show(mvalue)));
        file.metadata_.emplace(mkey, mvalue.get<std::string>());
      }
      continue;
    }
    auto bad = [&](std::string msg) { return error(fmt::format("tensor '{}': {}", key, msg)); };
    if (!entry.is_object()) return bad(fmt::format("its entry is {}, not an object", Show(entry)));
    SafetensorsTensorInfo info;
    info.name = key;

    const auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) return bad("it has no dtype string");
    const std::optional<SafetensorsDtype> parsed =
        DtypeFromName(dtype->get_ref<const std::string&>());
    if (!parsed) return bad(fmt::format("unknown dtype {}", Show(*dtype)));
    info.dtype = *parsed;
    const uint64_t element_bytes = SafetensorsDtypeBytes(info.dtype);

    const auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array()) return bad("it has no shape array");
    if (shape->size() > kSafetensorsMaxDims)
      return bad(fmt::format("its shape has {} dimensions, over the limit of {}", shape->size(),
                             kSafetensorsMaxDims));
    info.element_count = 1;
    for (const json& dim : *shape) {
      if (!dim.is_number_unsigned())
        return bad(fmt::format("shape element {} is not a non-negative integer", Show(dim)));
      const uint64_t d = dim.get<uint64_t>();
      info.shape.push_back(d);
      if (info.element_count != 0 && d > UINT64_MAX / element_bytes / info.element_count)
        return bad(fmt::format("its shape overflows a 64-bit byte count at dimension {} ({})",
                               info.shape.size() - 1, d));
      info.element_count *= d;
    }

    const auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 ||
        !(*offsets)[0].is_number_unsigned() || !(*offsets)[1].is_number_unsigned())
      return bad("data_offsets is not an array of two non-negative integers");
    info.begin = (*offsets)[0].get<uint64_t>();
    info.end = (*offsets)[1].get<uint64_t>();
    if (info.begin > info.end)
      return bad(fmt::format("data_offsets [{}, {}) end before they begin", info.begin, info.end));
    if (info.end > data_size)
      return bad(
          fmt::format("data_offsets [{}, {}) run past the end of the data section ({} "
                      "bytes): the file is truncated or the header is wrong",
                      info.begin, info.end, data_size));
    const uint64_t want = info.element_count * element_bytes;
    if (info.end - info.begin != want)
      return bad(fmt::format("data_offsets [{}, {}) hold {} bytes, but shape {} of {} takes {}",
                             info.begin, info.end, info.end - info.begin, shape->dump(),
                             SafetensorsDtypeName(info.dtype), want));
    file.tensors_.push_back(std::move(info));
  }
  // The spec wants the data section tiled exactly: no overlap (two names for the same bytes,
  // or a tensor whose bytes another one also claims), no hole and nothing after the last
  // tensor (room for a second file format hidden in the same bytes, a "polyglot").
  std::vector<const SafetensorsTensorInfo*> by_offset;
  by_offset.reserve(file.tensors_.size());
  for (const SafetensorsTensorInfo& t : file.tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const auto* a, const auto* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;  // the data section is tiled up to here
  const SafetensorsTensorInfo* previous = nullptr;
  for (const SafetensorsTensorInfo* t : by_offset) {
    if (t->begin < covered)
      return error(
          fmt::format("tensor '{}' at data_offsets [{}, {}) overlaps tensor '{}' at "
                      "[{}, {})",
                      t->name, t->begin, t->end, previous->name, previous->begin, previous->end));
    if (t->begin > covered)
      return error(
          fmt::format("the data section has a hole of {} bytes at [{}, {}) before "
                      "tensor '{}'",
                      t->begin - covered, covered, t->begin, t->name));
    covered = t->end;
    previous = t;
  }
  if (covered != data_size)
    return error(
        fmt::format("the data section is {} bytes but its tensors end at {}: {} "
                    "bytes after the last tensor belong to none",
                    data_size, covered, data_size - covered));
  // nlohmann's objects iterate in key order, so tensors_ is sorted by name.
  for (size_t i = 0; i < file.tensors_.size(); ++i) file.index_.emplace(file.tensors_[i].name, i);
  return file;
}

const SafetensorsTensorInfo* SafetensorsFile::tensor(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Result<std::span<const std::byte>> SafetensorsFile::TensorData(std::string_view name) const {
  const SafetensorsTensorInfo* t = tensor(name);
  if (t == nullptr)
    return Status::NotFound(fmt::format("safetensors file {} has no tensor '{}'", name_, name));
  return data_.subspan(t->begin, t->end - t->begin);
}

Result<std::vector<float>> SafetensorsFile::TensorToFloat(std::string_view name) const {
  const SafetensorsTensorInfo* t = tensor(name);
  if (t == nullptr)
    return Status::NotFound(fmt::format("safetensors file {} has no tensor '{}'", name_, name));
  const std::optional<FloatFormat> format = DtypeFloatFormat(t->dtype);
  if (!format)
    return Status::NotSupported(fmt::format(
        "safetensors file {}: tensor '{}' is {}; only F32, F16 and BF16 convert to float", name_,
        name, SafetensorsDtypeName(t->dtype)));
  std::vector<float> out(t->element_count);
  Status s = ConvertToFloat(*format, data_.subspan(t->begin, t->end - t->begin), out);
  if (!s.ok()) return s.WithContext(fmt::format("safetensors file {}: tensor '{}'", name_, name));
  return out;
}

// --- SafetensorsModel

Result<SafetensorsModel> SafetensorsModel::OpenDir(const std::string& dir) {
  SafetensorsModel model;
  model.dir_ = dir;
  const std::string config_path = Join(dir, "config.json");
  if (!Exists(config_path))
    return Status::NotFound(fmt::format(
        "{} has no config.json: a Hugging Face model directory holds config.json beside its "
        "model.safetensors or model.safetensors.index.json",
        dir));
  Result<json> config = ReadJsonFile(config_path);
  if (!config.ok()) return config.status();
  if (!config->is_object())
    return Status::InvalidArgument(
        fmt::format("{} is {}, not a JSON object", config_path, Show(*config)));
  model.config_ = std::move(*config);

  const std::string index_path = Join(dir, "model.safetensors.index.json");
  const std::string single_path = Join(dir, "model.safetensors");
  // tensor -> shard file, from the index; empty without one.
  std::map<std::string, std::string> weight_map;
  std::set<std::string> shard_names;
  // model.safetensors first, as transformers' from_pretrained looks: a directory with both
  // loads the single file there, and must load the same weights here.
  if (Exists(single_path)) {
    shard_names.insert("model.safetensors");
  } else if (Exists(index_path)) {
    Result<json> index = ReadJsonFile(index_path);
    if (!index.ok()) return index.status();
    const auto map = index->is_object() ? index->find("weight_map") : index->end();
    if (!index->is_object() || map == index->end() || !map->is_object())
      return Status::InvalidArgument(
          fmt::format("{} has no weight_map object (tensor name -> shard file)", index_path));
    for (const auto& [tensor, shard] : map->items()) {
      if (!shard.is_string() || !PlainFileName(shard.get<std::string>()))
        return Status::InvalidArgument(
            fmt::format("{}: weight_map '{}' is {}, not the name of a file in {}", index_path,
                        tensor, Show(shard), dir));
      weight_map.emplace(tensor, shard.get<std::string>());
      shard_names.insert(shard.get<std::string>());
    }
    if (shard_names.empty())
      return Status::InvalidArgument(fmt::format("{}: weight_map is empty", index_path));
  } else {
    return Status::NotFound(
        fmt::format("{} has neither model.safetensors nor model.safetensors.index.json", dir));
  }

  for (const std::string& shard_name : shard_names) {
    Result<SafetensorsFile> shard = SafetensorsFile::Open(Join(dir, shard_name));
    if (!shard.ok()) return shard.status();
    const size_t shard_number = model.shards_.size();
    for (const SafetensorsTensorInfo& t : shard->tensors()) {
      auto [it, inserted] = model.shard_index_.emplace(t.name, shard_number);
      if (!inserted)
        return Status::InvalidArgument(fmt::format("{}: tensor '{}' is in both {} and {}", dir,
                                                   t.name, model.shards_[it->second].name(),
                                                   shard->name()));
    }
    model.shards_.push_back(std::move(*shard));
  }
  for (const auto& [tensor, shard_name] : weight_map) {
    const SafetensorsFile* shard = model.shard_of(tensor);
    if (shard == nullptr || fs::path(shard->name()).filename() != shard_name)
      return Status::InvalidArgument(fmt::format(
          "{}: the index puts tensor '{}' in {}, but {}", dir, tensor, shard_name,
          shard == nullptr
              ? "no shard has it"
              : fmt::format("it is in {}", fs::path(shard->name()).filename().string())));
  }
  return model;
}

std::vector<std::string> SafetensorsModel::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(shard_index_.size());
  for (const auto& [name, shard] : shard_index_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

const SafetensorsFile* SafetensorsModel::shard_of(std::string_view name) const {
  auto it = shard_index_.find(std::string(name));
  return it == shard_index_.end() ? nullptr : &shards_[it->second];
}

const SafetensorsTensorInfo* SafetensorsModel::tensor(std::string_view name) const {
  const SafetensorsFile* shard = shard_of(name);
  return shard == nullptr ? nullptr : shard->tensor(name);
}

Result<std::span<const std::byte>> SafetensorsModel::TensorData(std::string_view name) const {
  const SafetensorsFile* shard = shard_of(name);
  if (shard == nullptr)
    return Status::NotFound(fmt::format("model {} has no tensor '{}'", dir_, name));
  return shard->TensorData(name);
}

Result<std::vector<float>> SafetensorsModel::TensorToFloat(std::string_view name) const {
  const SafetensorsFile* shard = shard_of(name);
  if (shard == nullptr)
    return Status::NotFound(fmt::format("model {} has no tensor '{}'", dir_, name));
  return shard->TensorToFloat(name);
}

}  // namespace strata::model_io
