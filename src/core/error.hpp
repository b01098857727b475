// Error and Result: how every expected failure travels through comfyfarm (no exceptions for them).
#pragma once

#include <boost/assert/source_location.hpp>
#include <boost/system/result.hpp>

#include <string>
#include <string_view>
#include <utility>

namespace comfyfarm {

/// What went wrong, coarse enough for a caller to branch on and for one function to map to an
/// HTTP status. The message carries the detail for humans.
enum class Errc {
  kInvalidArgument,    ///< the caller's input is malformed (bad JSON, bad workflow, bad flag)
  kNotFound,           ///< an id or path that does not exist
  kAlreadyExists,      ///< a create that collides with an existing id
  kFailedPrecondition, ///< valid input, wrong state (e.g. backend draining)
  kResourceExhausted,  ///< a bounded queue is full, a size limit is exceeded
  kUnavailable,        ///< a peer cannot be reached (refused, reset, closed)
  kTimeout,            ///< a deadline passed
  kCancelled,          ///< the operation was cancelled by its owner
  kProtocol,           ///< a peer answered something the protocol does not allow
  kRejected,           ///< a peer refused the request on its merits (e.g. ComfyUI validation)
  kInternal,           ///< a bug or an unexpected failure of ours
};

/// Stable lowercase name of an error code, used in logs and JSON error bodies.
std::string_view to_string(Errc code) noexcept;

struct Error {
  Errc code = Errc::kInternal;
  std::string message;

  friend bool operator==(const Error&, const Error&) = default;
};

/// Thrown only by Result::value() on an error; callers that branch on the error never see it.
class ErrorException : public std::exception {
 public:
  explicit ErrorException(Error error) : error_(std::move(error)), what_(describe(error_)) {}
  const char* what() const noexcept override { return what_.c_str(); }
  const Error& error() const noexcept { return error_; }

 private:
  static std::string describe(const Error& e);
  Error error_;
  std::string what_;
};

[[noreturn]] void throw_exception_from_error(const Error& e, const boost::source_location& loc);

template <class T>
using Result = boost::system::result<T, Error>;

/// Shorthand for the error alternative of a Result: `return fail(Errc::kNotFound, "no job " + id);`
inline Error fail(Errc code, std::string message) { return Error{code, std::move(message)}; }

}  // namespace comfyfarm
