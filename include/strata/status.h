// Status and Result<T>: the single error model of Strata's public API.
//
// Every fallible call returns a Status (or a Result<T> holding a value or a
// Status). No exception crosses the API. A non-OK Status always carries a
// human-readable reason naming what failed: the argument, the errno, the file,
// the block. Callers branch on code(); people read message().
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "strata/export.h"

namespace strata {

enum class StatusCode : uint8_t {
  kOk = 0,
  kInvalidArgument,    // the caller passed something malformed; message names it
  kNotFound,           // a key, file or request that does not exist
  kAlreadyExists,      // create of something already present
  kResourceExhausted,  // a budget, queue or tier is full
  kUnavailable,        // a tier or server cannot be reached right now
  kIoError,            // a system call failed; sys_errno() holds errno
  kCorruption,         // bytes read do not match their checksum, key or fingerprint
  kCancelled,          // the operation was cancelled by the caller
  kTimedOut,           // a wait ran out before completion
  kNotSupported,       // the build or the platform cannot do this
  kInternal,           // a broken invariant inside Strata (a bug)
};

// Stable lower-case name of a code, e.g. "invalid_argument".
STRATA_EXPORT std::string_view StatusCodeName(StatusCode code);

// Exported through this declaration: GCC and Clang disagree on where a GNU attribute may
// stand beside [[nodiscard]] in a class head.
class STRATA_EXPORT Status;

class [[nodiscard]] Status {
 public:
  // The default Status is OK and allocates nothing.
  Status() noexcept = default;

  static Status Ok() noexcept { return Status(); }
  static Status InvalidArgument(std::string msg) {
    return {StatusCode::kInvalidArgument, std::move(msg)};
  }
  static Status NotFound(std::string msg) { return {StatusCode::kNotFound, std::move(msg)}; }
  static Status AlreadyExists(std::string msg) {
    return {StatusCode::kAlreadyExists, std::move(msg)};
  }
  static Status ResourceExhausted(std::string msg) {
    return {StatusCode::kResourceExhausted, std::move(msg)};
  }
  static Status Unavailable(std::string msg) { return {StatusCode::kUnavailable, std::move(msg)}; }
  static Status Corruption(std::string msg) { return {StatusCode::kCorruption, std::move(msg)}; }
  static Status Cancelled(std::string msg) { return {StatusCode::kCancelled, std::move(msg)}; }
  static Status TimedOut(std::string msg) { return {StatusCode::kTimedOut, std::move(msg)}; }
  static Status NotSupported(std::string msg) {
    return {StatusCode::kNotSupported, std::move(msg)};
  }
  static Status Internal(std::string msg) { return {StatusCode::kInternal, std::move(msg)}; }
  // An I/O error: `what` says which call on which object ("pwrite /cache/r3 at 4096");
  // the errno's symbolic name and text are appended.
  static Status IoError(std::string_view what, int sys_errno);
  // A status of any code (e.g. one that crossed a process boundary as its number).
  static Status FromCode(StatusCode code, std::string msg) { return {code, std::move(msg)}; }

  bool ok() const noexcept { return code_ == StatusCode::kOk; }
  StatusCode code() const noexcept { return code_; }
  const std::string& message() const noexcept { return message_; }
  // errno of an kIoError, 0 otherwise.
  int sys_errno() const noexcept { return errno_; }

  // "ok", or "<code name>: <message>".
  std::string ToString() const;
  // The same error with `context` prepended to the message ("loading block 7: ...").
  Status WithContext(std::string_view context) const;

  friend bool operator==(const Status& a, const Status& b) {
    return a.code_ == b.code_ && a.message_ == b.message_;
  }

 private:
  Status(StatusCode code, std::string msg, int sys_errno = 0)
      : code_(code), errno_(sys_errno), message_(std::move(msg)) {}

  StatusCode code_ = StatusCode::kOk;
  int errno_ = 0;
  std::string message_;
};

// A value of type T, or the Status saying why there is none.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : status_(std::move(status)) {  // NOLINT: implicit by design
    if (status_.ok())
      status_ = Status::Internal("Result constructed from an OK Status without a value");
  }

  bool ok() const noexcept { return value_.has_value(); }
  const Status& status() const noexcept { return status_; }

  // Precondition: ok().
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }
  T&& operator*() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace strata

#define STRATA_CONCAT_INNER_(a, b) a##b
#define STRATA_CONCAT_(a, b) STRATA_CONCAT_INNER_(a, b)

// Returns the Status of `expr` from the enclosing function when it is not OK.
#define STRATA_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::strata::Status strata_status_ = (expr);        \
    if (!strata_status_.ok()) return strata_status_; \
  } while (0)

// `lhs = value of expr`, or return its Status from the enclosing function.
#define STRATA_ASSIGN_OR_RETURN(lhs, expr) \
  STRATA_ASSIGN_OR_RETURN_IMPL_(STRATA_CONCAT_(strata_result_, __LINE__), lhs, expr)
#define STRATA_ASSIGN_OR_RETURN_IMPL_(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) return tmp.status();                 \
  lhs = std::move(tmp).value()
