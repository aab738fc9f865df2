// strata._strata._time_calls: the C++ side of python/bench/overhead_bench.py. It times the
// same Match / Load / Store calls the Python binding makes, from C++, in the same process and
// run, so the script can report what the Python layer adds to each call.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "convert.h"
#include "py_manager.h"

namespace strata::python {
namespace {

double MedianUs(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

// Per iteration: Match(tokens) under `request_id`, Load of every matched block into
// device_blocks, wait, Store of the prompt's keys (present: skipped) from the same blocks,
// wait, Release. Only the calls are timed, not the copies they start.
py::dict TimeCalls(Manager& self, const py::object& tokens_obj, const py::object& blocks_obj,
                   const std::string& request_id, uint32_t iterations) {
  const std::vector<TokenId> tokens = ToTokens(tokens_obj);
  const std::vector<uint32_t> blocks = ToBlockIds(blocks_obj);
  BlockManager& m = self.get();
  std::vector<double> match_us, load_us, store_us;
  {
    py::gil_scoped_release release;
    using Clock = std::chrono::steady_clock;
    auto us = [](Clock::time_point a, Clock::time_point b) {
      return std::chrono::duration<double, std::micro>(b - a).count();
    };
    const RequestContext ctx{request_id, "", ""};
    for (uint32_t i = 0; i < iterations; ++i) {
      auto t0 = Clock::now();
      MatchResult match = Unwrap(m.Match(tokens, ctx));
      auto t1 = Clock::now();
      const size_t n = std::min(match.num_matched_blocks(), blocks.size());
      LoadHandle load = Unwrap(m.Load(match, std::span(blocks).first(n)));
      auto t2 = Clock::now();
      Check(load.Wait(std::chrono::milliseconds(60000)));
      const size_t k = std::min(match.keys.size(), blocks.size());
      auto t3 = Clock::now();
      StoreHandle store =
          Unwrap(m.Store(ctx, std::span(match.keys).first(k), std::span(blocks).first(k)));
      auto t4 = Clock::now();
      Check(store.Wait(std::chrono::milliseconds(60000)));
      m.Release(request_id);
      match_us.push_back(us(t0, t1));
      load_us.push_back(us(t1, t2));
      store_us.push_back(us(t3, t4));
    }
  }
  py::dict out;
  out["match_us"] = MedianUs(match_us);
  out["load_us"] = MedianUs(load_us);
  out["store_us"] = MedianUs(store_us);
  return out;
}

}  // namespace

void BindBench(py::module_& m) {
  m.def("_time_calls", &TimeCalls, py::arg("manager"), py::arg("tokens"), py::arg("device_blocks"),
        py::arg("request_id"), py::arg("iterations"),
        "Median microseconds of Match, Load and Store called from C++ (benchmarks only).");
}

}  // namespace strata::python
