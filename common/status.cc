#include "common/status.h"

#include <cstring>

namespace cyrsync {

std::string_view CodeName(Code code) {
  switch (code) {
    case Code::kOk: return "ok";
    case Code::kNotFound: return "not_found";
    case Code::kInvalidArgument: return "invalid_argument";
    case Code::kCorruption: return "corruption";
    case Code::kIOError: return "io_error";
    case Code::kUnavailable: return "unavailable";
    case Code::kPermissionDenied: return "permission_denied";
    case Code::kAborted: return "aborted";
    case Code::kInternal: return "internal";
    case Code::kFailedPrecondition: return "failed_precondition";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(code_)) + ": " + message_;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

Status NotFoundError(std::string msg) { return {Code::kNotFound, std::move(msg)}; }
Status InvalidArgumentError(std::string msg) { return {Code::kInvalidArgument, std::move(msg)}; }
Status CorruptionError(std::string msg) { return {Code::kCorruption, std::move(msg)}; }
Status IOError(std::string msg) { return {Code::kIOError, std::move(msg)}; }
Status UnavailableError(std::string msg) { return {Code::kUnavailable, std::move(msg)}; }
Status PermissionDeniedError(std::string msg) { return {Code::kPermissionDenied, std::move(msg)}; }
Status AbortedError(std::string msg) { return {Code::kAborted, std::move(msg)}; }
Status InternalError(std::string msg) { return {Code::kInternal, std::move(msg)}; }
Status FailedPreconditionError(std::string msg) {
  return {Code::kFailedPrecondition, std::move(msg)};
}

Status PosixError(std::string_view context, int err) {
  Code code = Code::kIOError;
  switch (err) {
    case ENOENT:
    case ENOTDIR: code = Code::kNotFound; break;
    case EACCES:
    case EPERM: code = Code::kPermissionDenied; break;
    case EINVAL: code = Code::kInvalidArgument; break;
    default: break;
  }
  return Status(code, std::string(context) + ": " + std::strerror(err));
}

}  // namespace cyrsync
