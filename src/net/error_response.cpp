#include "net/error_response.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

namespace comfyfarm::net {

int http_status(Errc code) noexcept {
  switch (code) {
    case Errc::kInvalidArgument: return 400;
    case Errc::kNotFound: return 404;
    case Errc::kAlreadyExists: return 409;
    case Errc::kFailedPrecondition: return 409;
    case Errc::kResourceExhausted: return 429;
    case Errc::kUnavailable: return 503;
    case Errc::kTimeout: return 504;
    case Errc::kCancelled: return 503;
    case Errc::kProtocol: return 502;
    case Errc::kRejected: return 422;
    case Errc::kInternal: return 500;
  }
  return 500;
}

Response json_error(int status, Errc code, std::string_view message) {
  boost::json::object inner;
  inner["code"] = to_string(code);
  inner["message"] = message;
  boost::json::object body;
  body["error"] = std::move(inner);
  return Response::json(body, status);
}

Response error_response(const Error& error) {
  return json_error(http_status(error.code), error.code, error.message);
}

}  // namespace comfyfarm::net
