// strata._strata.ReferenceModel: the reference engine's model and paged KV cache, for tests
// and examples that compute real KV in Python (e.g. through the vLLM connector) and check that
// a reloaded cache gives the same logits.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <vector>

#include "convert.h"
#include "engine/kv_cache.h"
#include "engine/model.h"

namespace strata::python {
namespace {

class ReferenceModel {
 public:
  ReferenceModel(const std::string& preset, uint64_t seed, uint32_t num_blocks) {
    config_ = Unwrap(engine::ModelConfig::Preset(preset, seed));
    model_ = Unwrap(engine::Model::Create(config_));
    kv_ = Unwrap(engine::PagedKvCache::Create(config_.kv_layout(), num_blocks));
  }

  // Layer l's cache as [num_blocks, 2, tokens_per_block, kv_heads, head_dim] float32
  // (FlashInfer's order), in the model's memory.
  py::buffer_info LayerBuffer(uint32_t layer) const {
    const KvLayout& l = kv_->layout();
    const auto f = static_cast<py::ssize_t>(sizeof(float));
    return py::buffer_info(
        kv_->chunk(layer, 0, 0), f, py::format_descriptor<float>::format(), 5,
        {static_cast<py::ssize_t>(kv_->num_blocks()), py::ssize_t{2},
         static_cast<py::ssize_t>(l.tokens_per_block), static_cast<py::ssize_t>(l.num_kv_heads),
         static_cast<py::ssize_t>(l.head_dim)},
        {static_cast<py::ssize_t>(l.layer_block_bytes()), static_cast<py::ssize_t>(l.chunk_bytes()),
         static_cast<py::ssize_t>(l.num_kv_heads * l.head_dim) * f,
         static_cast<py::ssize_t>(l.head_dim) * f, f},
        /*readonly=*/false);
  }

  // Runs tokens at positions [start, start + len) of one sequence whose blocks are
  // `block_ids` (positions before start must hold KV); the logits of the last position.
  py::array_t<float> Forward(const py::object& tokens, uint32_t start,
                             const py::object& block_ids) {
    const std::vector<TokenId> t = ToTokens(tokens);
    const std::vector<uint32_t> blocks = ToBlockIds(block_ids);
    if (t.empty()) throw py::value_error("forward needs at least one token");
    const size_t need =
        (size_t{start} + t.size() + config_.tokens_per_block - 1) / config_.tokens_per_block;
    if (blocks.size() < need)
      throw py::value_error(std::to_string(start + t.size()) + " positions need " +
                            std::to_string(need) + " blocks, got " + std::to_string(blocks.size()));
    for (uint32_t b : blocks)
      if (b >= kv_->num_blocks())
        throw py::value_error("block id " + std::to_string(b) + " is out of range");
    std::vector<engine::ForwardRow> rows;
    for (size_t i = 0; i < t.size(); ++i)
      rows.push_back({0, static_cast<uint32_t>(start + i), t[i], i + 1 == t.size()});
    const std::span<const uint32_t> table[] = {blocks};
    std::vector<float> logits;
    {
      py::gil_scoped_release release;
      Check(model_->Forward(rows, table, *kv_, ws_, &logits));
    }
    py::array_t<float> out(static_cast<py::ssize_t>(logits.size()));
    std::memcpy(out.mutable_data(), logits.data(), logits.size() * sizeof(float));
    return out;
  }

  const engine::ModelConfig& config() const { return config_; }
  uint32_t num_blocks() const { return kv_->num_blocks(); }

 private:
  engine::ModelConfig config_;
  std::unique_ptr<engine::Model> model_;
  std::unique_ptr<engine::PagedKvCache> kv_;
  engine::Workspace ws_;
};

// One layer of a ReferenceModel's cache, exporting the buffer protocol; it keeps the model
// alive, so numpy.asarray(layer) or torch.from_numpy of it stays valid.
struct KvLayer {
  std::shared_ptr<ReferenceModel> model;
  uint32_t layer = 0;
};

}  // namespace

void BindEngine(py::module_& m) {
  py::class_<KvLayer>(m, "KvLayer", py::buffer_protocol(),
                      "One layer of a ReferenceModel's KV cache (numpy.asarray views it).")
      .def_buffer([](KvLayer& k) { return k.model->LayerBuffer(k.layer); });
  py::class_<ReferenceModel, std::shared_ptr<ReferenceModel>>(
      m, "ReferenceModel",
      "The reference engine's model (synthetic Llama weights) and its "
      "paged fp32 KV cache.")
      .def(py::init<const std::string&, uint64_t, uint32_t>(), py::arg("preset") = "tiny",
           py::arg("seed") = 1, py::arg("num_blocks") = 64)
      .def(
          "kv_layers",
          [](const std::shared_ptr<ReferenceModel>& r) {
            std::vector<KvLayer> out;
            for (uint32_t l = 0; l < r->config().num_layers; ++l) out.push_back({r, l});
            return out;
          },
          "Every layer's cache; numpy.asarray(layer) is a zero-copy "
          "[num_blocks, 2, tokens_per_block, kv_heads, head_dim] float32 view.")
      .def("forward", &ReferenceModel::Forward, py::arg("tokens"), py::arg("start"),
           py::arg("block_ids"))
      .def_property_readonly("num_blocks", &ReferenceModel::num_blocks)
      .def_property_readonly("fingerprint",
                             [](const ReferenceModel& r) { return r.config().Fingerprint(); })
      .def_property_readonly("vocab_size",
                             [](const ReferenceModel& r) { return r.config().vocab_size; })
      .def_property_readonly("num_layers",
                             [](const ReferenceModel& r) { return r.config().num_layers; })
      .def_property_readonly("num_kv_heads",
                             [](const ReferenceModel& r) { return r.config().num_kv_heads; })
      .def_property_readonly("head_dim",
                             [](const ReferenceModel& r) { return r.config().head_dim; })
      .def_property_readonly("tokens_per_block",
                             [](const ReferenceModel& r) { return r.config().tokens_per_block; });
}

}  // namespace strata::python
