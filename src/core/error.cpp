#include "core/error.hpp"

namespace comfyfarm {

std::string_view to_string(Errc code) noexcept {
  switch (code) {
    case Errc::kInvalidArgument: return "invalid_argument";
    case Errc::kNotFound: return "not_found";
    case Errc::kAlreadyExists: return "already_exists";
    case Errc::kFailedPrecondition: return "failed_precondition";
    case Errc::kResourceExhausted: return "resource_exhausted";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kTimeout: return "timeout";
    case Errc::kCancelled: return "cancelled";
    case Errc::kProtocol: return "protocol_error";
    case Errc::kRejected: return "rejected";
    case Errc::kInternal: return "internal";
  }
  return "unknown";
}

std::string ErrorException::describe(const Error& e) {
  std::string out(to_string(e.code));
  out += ": ";
  out += e.message;
  return out;
}

void throw_exception_from_error(const Error& e, const boost::source_location&) {
  throw ErrorException(e);
}

}  // namespace comfyfarm
