// strata._strata.Manager and what its calls return: Match, KeyList, LoadHandle, StoreHandle.
// Every blocking call releases the GIL; inputs are converted before it is released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "convert.h"
#include "py_manager.h"
#include "strata/config.h"

namespace strata::python {
namespace {

using std::chrono::milliseconds;

// Keys shared with the Match (or list) they came from: slicing copies nothing.
struct KeyList {
  std::shared_ptr<const std::vector<BlockKey>> keys;
  size_t begin = 0, end = 0;

  size_t size() const { return end - begin; }
  std::span<const BlockKey> span() const { return {keys->data() + begin, size()}; }
  const BlockKey& at(py::ssize_t i) const {
    const auto n = static_cast<py::ssize_t>(size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) throw py::index_error("key index out of range");
    return (*keys)[begin + static_cast<size_t>(i)];
  }
  static KeyList Of(std::vector<BlockKey> v) {
    auto p = std::make_shared<const std::vector<BlockKey>>(std::move(v));
    const size_t n = p->size();
    return KeyList{std::move(p), 0, n};
  }
};

py::bytes KeyBytes(const BlockKey& k) {
  return py::bytes(reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size());
}

BlockKey KeyFromBytes(const py::handle& obj) {
  std::string s = obj.cast<std::string>();
  BlockKey k;
  if (s.size() != k.bytes.size())
    throw py::value_error("a block key is 32 bytes, got " + std::to_string(s.size()));
  std::memcpy(k.bytes.data(), s.data(), s.size());
  return k;
}

// A KeyList, or any sequence of 32-byte bytes objects.
KeyList ToKeyList(const py::handle& obj) {
  if (py::isinstance<KeyList>(obj)) return obj.cast<KeyList>();
  std::vector<BlockKey> keys;
  for (py::handle item : obj) keys.push_back(KeyFromBytes(item));
  return KeyList::Of(std::move(keys));
}

// The result of Manager.match, shared with the keys taken from it.
struct Match {
  std::shared_ptr<const MatchResult> result;
};

py::dict LayoutDict(const KvLayout& l) {
  py::dict d;
  d["num_layers"] = l.num_layers;
  d["kv_format"] = l.format == KvFormat::kKeyValue ? "kv" : "latent";
  d["num_kv_heads"] = l.num_kv_heads;
  d["head_dim"] = l.head_dim;
  d["dtype"] = std::string(DTypeName(l.dtype));
  d["tokens_per_block"] = l.tokens_per_block;
  d["chunk_order"] = l.chunk_order == ChunkOrder::kTokenHeadDim ? "nhd" : "hnd";
  d["chunk_bytes"] = l.chunk_bytes();
  d["block_bytes"] = l.block_bytes();
  return d;
}

py::dict StatsDict(const BlockManagerStats& s) {
  py::dict d;
#define STRATA_PY_STAT(name) d[#name] = s.name;
  STRATA_BLOCK_MANAGER_STATS(STRATA_PY_STAT)
#undef STRATA_PY_STAT
  return d;
}

py::object ErrorOrNone(const Status& s) {
  if (s.ok()) return py::none();
  return py::str(std::string(StatusCodeName(s.code())) + ": " + s.message());
}

// Waits for a handle with the GIL released, in slices so Ctrl-C still interrupts.
template <class Handle>
bool WaitHandle(const Handle& h, std::optional<double> timeout_s) {
  const auto deadline = timeout_s
                            ? std::chrono::steady_clock::now() +
                                  std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                      std::chrono::duration<double>(std::max(0.0, *timeout_s)))
                            : std::chrono::steady_clock::time_point::max();
  while (true) {
    const auto now = std::chrono::steady_clock::now();
    const auto left = deadline - now;
    const milliseconds slice =
        std::min(milliseconds(100), std::chrono::ceil<milliseconds>(std::max(left, {})));
    bool done;
    {
      py::gil_scoped_release release;
      done = h.Wait(slice).ok();
    }
    if (done || h.done()) return true;
    if (PyErr_CheckSignals() != 0) throw py::error_already_set();
    if (std::chrono::steady_clock::now() >= deadline) return false;
  }
}

template <class Handle, class Class>
void BindTransferHandle(Class& c) {
  c.def_property_readonly("num_blocks", &Handle::num_blocks)
      .def("done", &Handle::done, "True when every block reached a final state.")
      .def("wait", &WaitHandle<Handle>, py::arg("timeout") = py::none(),
           "Waits (GIL released) until done or `timeout` seconds pass; True when done.")
      .def(
          "state",
          [](const Handle& h, size_t i) {
            if (i >= h.num_blocks()) throw py::index_error("block index out of range");
            return std::string(BlockStateName(h.state(i)));
          },
          py::arg("i"),
          "State of block i: 'pending', 'done', 'skipped', 'dropped', 'failed' or 'cancelled'.")
      .def(
          "states",
          [](const Handle& h) {
            std::vector<std::string> out;
            out.reserve(h.num_blocks());
            for (size_t i = 0; i < h.num_blocks(); ++i)
              out.emplace_back(BlockStateName(h.state(i)));
            return out;
          },
          "Every block's state, in order.")
      .def(
          "error",
          [](const Handle& h, size_t i) {
            if (i >= h.num_blocks()) throw py::index_error("block index out of range");
            return ErrorOrNone(h.error(i));
          },
          py::arg("i"), "Why block i failed, was dropped or cancelled ('code: message'), or None.")
      .def(
          "errors",
          [](const Handle& h) {
            py::list out;
            for (size_t i = 0; i < h.num_blocks(); ++i) out.append(ErrorOrNone(h.error(i)));
            return out;
          },
          "error(i) of every block.")
      .def("cancel", &Handle::Cancel, "Cancels the blocks that have not started.");
}

RequestContext Context(std::string request_id, std::string cache_salt, std::string lora_id) {
  return RequestContext{std::move(request_id), std::move(cache_salt), std::move(lora_id)};
}

void RegisterDeviceCache(Manager& self, const std::vector<uint64_t>& layer_ptrs,
                         uint32_t num_blocks, const std::string& order, size_t block_stride_bytes,
                         size_t component_stride_bytes, const std::string& memory) {
  BlockManager& m = self.get();
  DeviceCache cache;
  if (memory == "host")
    cache.kind = DeviceMemoryKind::kHostEmulated;
  else if (memory == "cuda")
    cache.kind = DeviceMemoryKind::kCuda;
  else
    Throw(Status::InvalidArgument("memory must be 'host' or 'cuda', not '" + memory + "'"));
  if (order == "block_major")
    cache.view.order = DeviceOrder::kBlockMajor;
  else if (order == "kv_major")
    cache.view.order = DeviceOrder::kKvMajor;
  else
    Throw(
        Status::InvalidArgument("order must be 'block_major' or 'kv_major', not '" + order + "'"));
  cache.view.layout = m.options().layout;
  cache.view.num_blocks = num_blocks;
  cache.view.block_stride_bytes = block_stride_bytes;
  cache.view.component_stride_bytes = component_stride_bytes;
  for (uint64_t p : layer_ptrs) {
    if (p == 0) Throw(Status::InvalidArgument("a layer's data pointer is null"));
    cache.view.layer_base.push_back(reinterpret_cast<std::byte*>(static_cast<uintptr_t>(p)));
  }
  Check(m.RegisterDeviceCache(cache));
}

}  // namespace

void BindManager(py::module_& m) {
  py::class_<KeyList>(m, "KeyList", "Block keys (32 bytes each), shared with their Match.")
      .def(py::init([](const py::iterable& keys) { return ToKeyList(keys); }), py::arg("keys"))
      .def("__len__", &KeyList::size)
      .def("__getitem__", [](const KeyList& k, py::ssize_t i) { return KeyBytes(k.at(i)); })
      .def("__getitem__",
           [](const KeyList& k, const py::slice& s) {
             size_t start, stop, step, len;
             if (!s.compute(k.size(), &start, &stop, &step, &len)) throw py::error_already_set();
             if (step != 1) throw py::value_error("KeyList slices take step 1 only");
             return KeyList{k.keys, k.begin + start, k.begin + start + len};
           })
      .def(
          "hex", [](const KeyList& k, py::ssize_t i) { return k.at(i).ToHex(); }, py::arg("i"))
      .def("to_list",
           [](const KeyList& k) {
             py::list out;
             for (const BlockKey& key : k.span()) out.append(KeyBytes(key));
             return out;
           })
      .def("__eq__", [](const KeyList& a, const KeyList& b) {
        return a.size() == b.size() &&
               std::equal(a.span().begin(), a.span().end(), b.span().begin());
      });

  py::class_<Match>(m, "Match", "The longest cached prefix of a prompt (Manager.match).")
      .def_property_readonly("request_id", [](const Match& x) { return x.result->request_id; })
      .def_property_readonly("num_prompt_tokens",
                             [](const Match& x) { return x.result->num_prompt_tokens; })
      .def_property_readonly("num_matched_tokens",
                             [](const Match& x) { return x.result->num_matched_tokens; })
      .def_property_readonly("num_matched_blocks",
                             [](const Match& x) { return x.result->num_matched_blocks(); })
      .def_property_readonly(
          "tiers",
          [](const Match& x) {
            std::vector<int> out;
            for (Tier t : x.result->tiers) out.push_back(static_cast<int>(t));
            return out;
          },
          "Tier of each matched block: 2 (G2 host), 3 (G3 disk), 4 (G4 shared).")
      .def_property_readonly(
          "keys",
          [](const Match& x) {
            auto keys = std::shared_ptr<const std::vector<BlockKey>>(x.result, &x.result->keys);
            return KeyList{keys, 0, keys->size()};
          },
          "Keys of every full block of the prompt (matched or not), for Manager.store.")
      .def("__repr__", [](const Match& x) {
        return "<strata.Match " + x.result->request_id + ": " +
               std::to_string(x.result->num_matched_tokens) + " of " +
               std::to_string(x.result->num_prompt_tokens) + " tokens>";
      });

  auto load = py::class_<LoadHandle>(m, "LoadHandle",
                                     "An asynchronous load; only usable_blocks may be used.");
  BindTransferHandle<LoadHandle>(load);
  load.def_property_readonly("usable_blocks", &LoadHandle::usable_blocks,
                             "Leading blocks in 'done': the only loaded blocks to use.")
      .def_property_readonly("usable_tokens", &LoadHandle::usable_tokens);
  auto store = py::class_<StoreHandle>(m, "StoreHandle",
                                       "An asynchronous store; the device blocks may be "
                                       "overwritten once it is done.");
  BindTransferHandle<StoreHandle>(store);

  py::class_<Manager>(m, "Manager", "A Strata BlockManager (the Python class wraps it).")
      .def(py::init(&Manager::FromToml), py::arg("toml"), py::arg("name") = "<python>",
           py::arg("use_env") = true)
      .def("close", &Manager::Close)
      .def_property_readonly("layout",
                             [](const Manager& s) { return LayoutDict(s.get().options().layout); })
      .def_property_readonly("rank", [](const Manager& s) { return s.get().options().rank; })
      .def_property_readonly("world_size",
                             [](const Manager& s) { return s.get().options().world_size; })
      .def_property_readonly("model_fingerprint",
                             [](const Manager& s) { return s.get().options().model_fingerprint; })
      .def_property_readonly("daemon_socket",
                             [](const Manager& s) { return s.get().options().daemon.socket; })
      .def("register_device_cache", &RegisterDeviceCache, py::arg("layer_ptrs"),
           py::arg("num_blocks"), py::arg("order"), py::arg("block_stride_bytes") = 0,
           py::arg("component_stride_bytes") = 0, py::arg("memory") = "host")
      .def(
          "compute_keys",
          [](const Manager& s, const py::object& tokens, std::string cache_salt,
             std::string lora_id) {
            const std::vector<TokenId> t = ToTokens(tokens);
            const RequestContext ctx = Context("keys", std::move(cache_salt), std::move(lora_id));
            return KeyList::Of(Unwrap(s.get().ComputeKeys(t, ctx)));
          },
          py::arg("tokens"), py::arg("cache_salt") = "", py::arg("lora_id") = "")
      .def(
          "match",
          [](Manager& s, const py::object& tokens, std::string request_id, std::string cache_salt,
             std::string lora_id) {
            const std::vector<TokenId> t = ToTokens(tokens);
            const RequestContext ctx =
                Context(std::move(request_id), std::move(cache_salt), std::move(lora_id));
            BlockManager& m = s.get();
            py::gil_scoped_release release;
            return Match{std::make_shared<const MatchResult>(Unwrap(m.Match(t, ctx)))};
          },
          py::arg("tokens"), py::arg("request_id"), py::arg("cache_salt") = "",
          py::arg("lora_id") = "")
      .def(
          "load",
          [](Manager& s, const Match& match, const py::object& device_blocks, size_t first_block) {
            const std::vector<uint32_t> blocks = ToBlockIds(device_blocks);
            BlockManager& m = s.get();
            py::gil_scoped_release release;
            return Unwrap(m.Load(*match.result, blocks, first_block));
          },
          py::arg("match"), py::arg("device_blocks"), py::arg("first_block") = 0)
      .def(
          "store",
          [](Manager& s, std::string request_id, const py::object& keys,
             const py::object& device_blocks, std::string cache_salt, std::string lora_id) {
            const KeyList k = ToKeyList(keys);
            const std::vector<uint32_t> blocks = ToBlockIds(device_blocks);
            const RequestContext ctx =
                Context(std::move(request_id), std::move(cache_salt), std::move(lora_id));
            BlockManager& m = s.get();
            py::gil_scoped_release release;
            return Unwrap(m.Store(ctx, k.span(), blocks));
          },
          py::arg("request_id"), py::arg("keys"), py::arg("device_blocks"),
          py::arg("cache_salt") = "", py::arg("lora_id") = "")
      .def(
          "release",
          [](Manager& s, const std::string& id) {
            BlockManager& m = s.get();
            py::gil_scoped_release release;
            m.Release(id);
          },
          py::arg("request_id"))
      .def(
          "cancel",
          [](Manager& s, const std::string& id) {
            BlockManager& m = s.get();
            py::gil_scoped_release release;
            m.Cancel(id);
          },
          py::arg("request_id"))
      .def("flush_disk",
           [](Manager& s) {
             BlockManager& m = s.get();
             py::gil_scoped_release release;
             Check(m.FlushDisk());
           })
      .def(
          "pin",
          [](Manager& s, const py::object& keys) { Check(s.get().Pin(ToKeyList(keys).span())); },
          py::arg("keys"))
      .def(
          "unpin",
          [](Manager& s, const py::object& keys) { Check(s.get().Unpin(ToKeyList(keys).span())); },
          py::arg("keys"))
      .def("stats", [](const Manager& s) { return StatsDict(s.get().stats()); })
      .def("metrics_text", &Manager::MetricsText)
      .def(
          "serve_metrics",
          [](Manager& s, uint16_t port, const std::string& host) {
            return s.ServeMetrics(host, port);
          },
          py::arg("port") = 0, py::arg("host") = "127.0.0.1");

  m.def(
      "describe_config",
      [](const std::string& toml, const std::string& name, bool use_env) {
        return DescribeConfig(
            Unwrap(LoadConfigFromString(toml, use_env ? ProcessEnv() : FixedEnv({}), name)));
      },
      py::arg("toml"), py::arg("name") = "<python>", py::arg("use_env") = true);
}

}  // namespace strata::python
