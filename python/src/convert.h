// Conversions between Python objects and Strata's C++ types, shared by the binding's files:
// Status -> the strata.*Error exceptions, and fast reads of token and block-id sequences
// (a list of 8K ints goes through PyLong_AsLong, not pybind11's generic caster).
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <vector>

#include "strata/block_key.h"
#include "strata/status.h"

namespace strata::python {

namespace py = pybind11;

// Thrown by the binding and turned into the Python exception of the Status code (module.cc).
struct StatusError {
  Status status;
};

[[noreturn]] inline void Throw(const Status& status) {
  throw StatusError{status};
}

template <class T>
T Unwrap(Result<T> result) {
  if (!result.ok()) Throw(result.status());
  return std::move(*result);
}

inline void Check(const Status& status) {
  if (!status.ok()) Throw(status);
}

// Registers strata.StrataError and its subclasses on `m` and the translator of StatusError.
void RegisterErrors(py::module_& m);

// Token ids from a list or tuple of ints, or any buffer of integers (numpy, array.array).
std::vector<TokenId> ToTokens(const py::handle& obj);
// Device block ids (0 .. 2^32-1) from the same kinds of objects.
std::vector<uint32_t> ToBlockIds(const py::handle& obj);

void BindManager(py::module_& m);
void BindEngine(py::module_& m);
void BindBench(py::module_& m);

}  // namespace strata::python
