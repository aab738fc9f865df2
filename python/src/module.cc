// strata._strata: the native half of the `strata` Python package. Thin: every call goes to
// the same BlockManager the C and C++ APIs use; the package's Python half (strata/__init__.py)
// adds configuration from dicts and files and the torch tensor layouts.
#include <pybind11/pybind11.h>

#include <array>
#include <cstring>
#include <limits>
#include <string>
#include <utility>

#include <spdlog/spdlog.h>

#include "convert.h"
#include "strata/version.h"

namespace strata::python {
namespace {

struct ErrorClass {
  StatusCode code;
  const char* name;
  PyObject* builtin;  // the built-in exception it also derives from, or nullptr
};

// Owned by the module for the life of the interpreter.
std::array<PyObject*, 12> g_errors{};
PyObject* g_base_error = nullptr;

PyObject* ErrorFor(StatusCode code) {
  PyObject* type = g_errors[static_cast<size_t>(code)];
  return type != nullptr ? type : g_base_error;
}

template <class Int>
bool FromBuffer(const py::handle& obj, std::vector<Int>* out) {
  if (!PyObject_CheckBuffer(obj.ptr())) return false;
  py::buffer_info info = py::reinterpret_borrow<py::buffer>(obj).request();
  if (info.ndim != 1)
    throw py::value_error("expected a one-dimensional array of integers, got " +
                          std::to_string(info.ndim) + " dimensions");
  const char f = info.format.empty() ? '?' : info.format.back();
  const auto n = static_cast<size_t>(info.shape[0]);
  const auto stride = static_cast<size_t>(info.strides[0]);
  out->resize(n);
  auto read = [&](auto tag) {
    using T = decltype(tag);
    if (info.itemsize != sizeof(T)) throw py::value_error("unexpected item size");
    const auto* base = static_cast<const char*>(info.ptr);
    for (size_t i = 0; i < n; ++i) {
      T v;
      std::memcpy(&v, base + i * stride, sizeof(T));
      if (!std::in_range<Int>(v))
        throw py::value_error("value " + std::to_string(v) + " at index " + std::to_string(i) +
                              " is out of range");
      (*out)[i] = static_cast<Int>(v);
    }
  };
  switch (f) {
    case 'b':
      read(int8_t{});
      break;
    case 'B':
      read(uint8_t{});
      break;
    case 'h':
      read(int16_t{});
      break;
    case 'H':
      read(uint16_t{});
      break;
    case 'i':
      read(int32_t{});
      break;
    case 'I':
      read(uint32_t{});
      break;
    case 'l':
    case 'q':
      read(int64_t{});
      break;
    case 'L':
    case 'Q':
      read(uint64_t{});
      break;
    default:
      throw py::type_error("expected an array of integers, got buffer format '" + info.format +
                           "'");
  }
  return true;
}

// An exact int of at most one 30-bit digit (every token id and block id), read without a
// call: the list of an 8K-token prompt converts in a quarter of the time of
// PyLong_AsLongLongAndOverflow per item (python/bench/overhead_bench.py). CPython 3.11's
// integer layout only; other versions take the API call.
inline bool SmallInt(PyObject* o, long long* v) {
#if PY_VERSION_HEX >= 0x030B0000 && PY_VERSION_HEX < 0x030C0000
  if (!PyLong_CheckExact(o)) return false;
  const Py_ssize_t size = Py_SIZE(o);
  if (size < -1 || size > 1) return false;
  *v = size * static_cast<long long>(reinterpret_cast<PyLongObject*>(o)->ob_digit[0]);
  return true;
#else
  (void)o;
  (void)v;
  return false;
#endif
}

template <class Int>
std::vector<Int> ToInts(const py::handle& obj, const char* what) {
  std::vector<Int> out;
  if (PyList_Check(obj.ptr()) || PyTuple_Check(obj.ptr())) {
    PyObject* seq = obj.ptr();
    const Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject** items = PySequence_Fast_ITEMS(seq);
    out.resize(static_cast<size_t>(n));
    for (Py_ssize_t i = 0; i < n; ++i) {
      long long v;
      if (SmallInt(items[i], &v)) {
        if (v < static_cast<long long>(std::numeric_limits<Int>::min()) ||
            v > static_cast<long long>(std::numeric_limits<Int>::max()))
          throw py::value_error(std::string(what) + "[" + std::to_string(i) + "] is out of range");
        out[static_cast<size_t>(i)] = static_cast<Int>(v);
        continue;
      }
      int overflow = 0;
      v = PyLong_AsLongLongAndOverflow(items[i], &overflow);
      if (v == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        throw py::type_error(std::string(what) + "[" + std::to_string(i) + "] is not an int");
      }
      if (overflow != 0 || v < static_cast<long long>(std::numeric_limits<Int>::min()) ||
          v > static_cast<long long>(std::numeric_limits<Int>::max()))
        throw py::value_error(std::string(what) + "[" + std::to_string(i) + "] is out of range");
      out[static_cast<size_t>(i)] = static_cast<Int>(v);
    }
    return out;
  }
  if (FromBuffer(obj, &out)) return out;
  // Anything else iterable (a range, a generator): the slow, general path.
  if (!PyIter_Check(obj.ptr()) && !py::hasattr(obj, "__iter__"))
    throw py::type_error(std::string(what) + " must be a sequence of ints");
  for (py::handle item : obj) {
    const auto v = item.cast<long long>();
    if (v < static_cast<long long>(std::numeric_limits<Int>::min()) ||
        v > static_cast<long long>(std::numeric_limits<Int>::max()))
      throw py::value_error(std::string(what) + "[" + std::to_string(out.size()) +
                            "] is out of range");
    out.push_back(static_cast<Int>(v));
  }
  return out;
}

}  // namespace

std::vector<TokenId> ToTokens(const py::handle& obj) {
  return ToInts<TokenId>(obj, "tokens");
}
std::vector<uint32_t> ToBlockIds(const py::handle& obj) {
  return ToInts<uint32_t>(obj, "block_ids");
}

void RegisterErrors(py::module_& m) {
  g_base_error = PyErr_NewExceptionWithDoc(
      "strata._strata.StrataError",
      "A Strata call failed. `code` is the status code's name (e.g. 'invalid_argument').",
      PyExc_Exception, nullptr);
  if (PyObject_SetAttrString(g_base_error, "code", py::str("unknown").ptr()) != 0)
    throw py::error_already_set();
  m.add_object("StrataError", py::handle(g_base_error));
  const ErrorClass classes[] = {
      {StatusCode::kInvalidArgument, "InvalidArgumentError", PyExc_ValueError},
      {StatusCode::kNotFound, "NotFoundError", PyExc_LookupError},
      {StatusCode::kAlreadyExists, "AlreadyExistsError", nullptr},
      {StatusCode::kResourceExhausted, "ResourceExhaustedError", nullptr},
      {StatusCode::kUnavailable, "UnavailableError", PyExc_ConnectionError},
      {StatusCode::kIoError, "IoError", PyExc_OSError},
      {StatusCode::kCorruption, "CorruptionError", nullptr},
      {StatusCode::kCancelled, "CancelledError", nullptr},
      {StatusCode::kTimedOut, "TimedOutError", PyExc_TimeoutError},
      {StatusCode::kNotSupported, "NotSupportedError", PyExc_NotImplementedError},
      {StatusCode::kInternal, "InternalError", PyExc_RuntimeError},
  };
  for (const ErrorClass& c : classes) {
    py::tuple bases = c.builtin != nullptr
                          ? py::make_tuple(py::handle(g_base_error), py::handle(c.builtin))
                          : py::make_tuple(py::handle(g_base_error));
    PyObject* type =
        PyErr_NewException((std::string("strata._strata.") + c.name).c_str(), bases.ptr(), nullptr);
    if (type == nullptr) throw py::error_already_set();
    // The code as a class attribute too, so errors raised from Python carry it.
    if (PyObject_SetAttrString(type, "code", py::str(std::string(StatusCodeName(c.code))).ptr()) !=
        0)
      throw py::error_already_set();
    g_errors[static_cast<size_t>(c.code)] = type;
    m.add_object(c.name, py::handle(type));
  }
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      PyObject* type = ErrorFor(e.status.code());
      py::object error = py::reinterpret_steal<py::object>(
          PyObject_CallFunction(type, "s", e.status.message().c_str()));
      if (!error) return;  // the call set its own error
      error.attr("code") = py::str(std::string(StatusCodeName(e.status.code())));
      PyErr_SetObject(type, error.ptr());
    }
  });
}

PYBIND11_MODULE(_strata, m) {
  m.doc() = "Native part of the strata package: the BlockManager and its handles.";
  m.attr("__version__") = STRATA_VERSION_STRING;
  RegisterErrors(m);
  m.def(
      "set_log_level",
      [](const std::string& level) {
        const auto l = spdlog::level::from_str(level);
        if (l == spdlog::level::off && level != "off")
          throw py::value_error(
              "log level must be trace, debug, info, warning, error, "
              "critical or off, not '" +
              level + "'");
        spdlog::set_level(l);
      },
      py::arg("level"), "Strata's log level (its C++ log lines go to stdout).");
  BindManager(m);
  BindEngine(m);
  BindBench(m);
}

}  // namespace strata::python
