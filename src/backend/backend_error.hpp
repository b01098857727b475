// BackendError: what went wrong talking to one ComfyUI server, typed so that the farm can
// classify failures (retry elsewhere, retry later, reject the workflow) without parsing text.
#pragma once

#include "comfy/bodies.hpp"
#include "core/error.hpp"

#include <boost/system/result.hpp>

#include <optional>
#include <string>
#include <string_view>

namespace comfyfarm::backend {

enum class BackendErrc {
  kRefused,      ///< TCP connection refused: nothing listens there (process down)
  kReset,        ///< the connection was reset or closed mid-request
  kTimeout,      ///< connect or request deadline passed
  kServerError,  ///< HTTP 5xx (ComfyUI answers 500 to malformed bodies and crashes in handlers)
  kValidation,   ///< HTTP 400 with ComfyUI's {error, node_errors}: the workflow was rejected
  kBadRequest,   ///< another 4xx
  kProtocol,     ///< an answer that is not what ComfyUI sends (bad JSON, wrong shape)
  kCancelled,    ///< cancelled by the caller or because the link stopped
  kInvalidArgument,  ///< the caller's input cannot be sent (bad URL, bad file name)
};

std::string_view to_string(BackendErrc code) noexcept;

struct BackendError {
  BackendErrc code = BackendErrc::kProtocol;
  std::string message;
  int http_status = 0;  ///< the HTTP status when the server answered, else 0
  /// For kValidation: ComfyUI's error body, node by node.
  std::optional<comfy::PromptErrorResponse> validation;

  /// The general error this maps to (for logs and the farm's own HTTP error bodies).
  Error to_error() const;
};

[[noreturn]] void throw_exception_from_error(const BackendError& e,
                                             const boost::source_location& loc);

template <class T>
using BackendResult = boost::system::result<T, BackendError>;

/// Maps a transport error of the net clients (refused, reset, timeout, cancelled) to a
/// BackendError; `what` names the call ("POST /prompt").
BackendError from_transport_error(const Error& error, std::string_view what);

/// Maps a non-2xx HTTP answer to a BackendError. A 400 whose body is ComfyUI's validation
/// error becomes kValidation with the parsed body.
BackendError from_http_status(int status, std::string_view body, std::string_view what);

}  // namespace comfyfarm::backend
