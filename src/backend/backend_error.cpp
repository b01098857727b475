#include "backend/backend_error.hpp"

namespace comfyfarm::backend {

std::string_view to_string(BackendErrc code) noexcept {
  switch (code) {
    case BackendErrc::kRefused: return "refused";
    case BackendErrc::kReset: return "reset";
    case BackendErrc::kTimeout: return "timeout";
    case BackendErrc::kServerError: return "server_error";
    case BackendErrc::kValidation: return "validation";
    case BackendErrc::kBadRequest: return "bad_request";
    case BackendErrc::kProtocol: return "protocol";
    case BackendErrc::kCancelled: return "cancelled";
    case BackendErrc::kInvalidArgument: return "invalid_argument";
  }
  return "unknown";
}

Error BackendError::to_error() const {
  Errc code_out = Errc::kInternal;
  switch (code) {
    case BackendErrc::kRefused:
    case BackendErrc::kReset:
    case BackendErrc::kServerError: code_out = Errc::kUnavailable; break;
    case BackendErrc::kTimeout: code_out = Errc::kTimeout; break;
    case BackendErrc::kValidation:
    case BackendErrc::kBadRequest: code_out = Errc::kRejected; break;
    case BackendErrc::kProtocol: code_out = Errc::kProtocol; break;
    case BackendErrc::kCancelled: code_out = Errc::kCancelled; break;
    case BackendErrc::kInvalidArgument: code_out = Errc::kInvalidArgument; break;
  }
  return Error{code_out, message};
}

void throw_exception_from_error(const BackendError& e, const boost::source_location&) {
  throw ErrorException(e.to_error());
}

BackendError from_transport_error(const Error& error, std::string_view what) {
  BackendError out;
  out.message = std::string(what) + ": " + error.message;
  switch (error.code) {
    case Errc::kUnavailable:
      out.code = error.message.find("refused") != std::string::npos ? BackendErrc::kRefused
                                                                     : BackendErrc::kReset;
      break;
    case Errc::kTimeout: out.code = BackendErrc::kTimeout; break;
    case Errc::kCancelled: out.code = BackendErrc::kCancelled; break;
    case Errc::kInvalidArgument:
    case Errc::kFailedPrecondition: out.code = BackendErrc::kInvalidArgument; break;
    default: out.code = BackendErrc::kProtocol; break;
  }
  return out;
}

BackendError from_http_status(int status, std::string_view body, std::string_view what) {
  BackendError out;
  out.http_status = status;
  if (status == 400) {
    if (auto parsed = comfy::PromptErrorResponse::parse(body)) {
      out.code = BackendErrc::kValidation;
      out.message = std::string(what) + ": rejected by the backend: " + parsed->error.type +
                    " (" + parsed->error.message + ")";
      out.validation = std::move(*parsed);
      return out;
    }
  }
  out.code = status >= 500 ? BackendErrc::kServerError : BackendErrc::kBadRequest;
  std::string snippet(body.substr(0, 200));
  out.message = std::string(what) + ": HTTP " + std::to_string(status) +
                (snippet.empty() ? std::string() : ": " + snippet);
  return out;
}

}  // namespace comfyfarm::backend
