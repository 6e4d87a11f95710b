// Status and Result<T>: errors are values. A Status carries a code and a message with the context
// (path, mailbox, offset) attached by the lowest layer that knows it. Thread-compatible.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace cyrsync {

enum class Code {
  kOk = 0,
  kNotFound,          // a file or folder is not there; on a live spool a vanished file is normal
  kInvalidArgument,   // bad input from the caller or the configuration
  kCorruption,        // bad bytes on disk or on the wire; never retried
  kIOError,           // local disk failure
  kUnavailable,       // network or peer; retry with backoff
  kPermissionDenied,  // access refused
  kAborted,           // a lost race; retry at a higher level
  kInternal,          // a bug in our code
  kFailedPrecondition,  // the system is not in a state the operation needs (e.g. a guard refused)
};

std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

Status NotFoundError(std::string msg);
Status InvalidArgumentError(std::string msg);
Status CorruptionError(std::string msg);
Status IOError(std::string msg);
Status UnavailableError(std::string msg);
Status PermissionDeniedError(std::string msg);
Status AbortedError(std::string msg);
Status InternalError(std::string msg);
Status FailedPreconditionError(std::string msg);
// Maps errno to a code (ENOENT -> kNotFound, EACCES -> kPermissionDenied, ...) with
// "<context>: <strerror>".
Status PosixError(std::string_view context, int err);

// Result<T>: a value or a non-OK Status. Shaped like std::expected so it can be swapped later.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status status) : v_(std::move(status)) {  // NOLINT(google-explicit-constructor)
    if (std::get<Status>(v_).ok()) {
      v_ = Status(Code::kInternal, "Result constructed from OK status");
    }
  }

  bool has_value() const { return std::holds_alternative<T>(v_); }
  bool ok() const { return has_value(); }
  explicit operator bool() const { return has_value(); }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const Status& error() const { return std::get<Status>(v_); }
  Status status() const { return has_value() ? Status::Ok() : error(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Status> v_;
};

namespace internal {
inline Status AsStatus(Status s) { return s; }
template <typename T>
Status AsStatus(const Result<T>& r) {
  return r.status();
}
}  // namespace internal

}  // namespace cyrsync

#define CYRSYNC_CONCAT_IMPL(a, b) a##b
#define CYRSYNC_CONCAT(a, b) CYRSYNC_CONCAT_IMPL(a, b)

#define RETURN_IF_ERROR(expr)                                           \
  do {                                                                  \
    ::cyrsync::Status _st = ::cyrsync::internal::AsStatus((expr));      \
    if (!_st.ok()) return _st;                                          \
  } while (0)

#define ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                          \
  if (!tmp.has_value()) return tmp.error();   \
  lhs = std::move(tmp).value()

#define ASSIGN_OR_RETURN(lhs, expr) \
  ASSIGN_OR_RETURN_IMPL(CYRSYNC_CONCAT(_res_, __LINE__), lhs, expr)
