// The one place where comfyfarm::Errc becomes an HTTP status and a JSON error body.
// (ComfyUI-compatible routes answer in ComfyUI's own error shapes instead; see comfy/.)
#pragma once

#include "core/error.hpp"
#include "net/http_types.hpp"

#include <string_view>

namespace comfyfarm::net {

/// The HTTP status for an error code:
///   kInvalidArgument 400, kNotFound 404, kAlreadyExists 409, kFailedPrecondition 409,
///   kResourceExhausted 429, kUnavailable 503, kTimeout 504, kCancelled 503 (the server gave up
///   the work, typically while shutting down; a client may retry), kProtocol 502 (a peer of ours
///   misbehaved), kRejected 422, kInternal 500.
int http_status(Errc code) noexcept;

/// A JSON error response with an explicit status, for the few statuses no Errc names (405, 413,
/// 431, 426): `{"error":{"code":"<to_string(code)>","message":"..."}}`.
Response json_error(int status, Errc code, std::string_view message);

/// json_error(http_status(error.code), error.code, error.message).
Response error_response(const Error& error);

}  // namespace comfyfarm::net
