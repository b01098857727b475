#include "net/detail/io_error.hpp"

#include <boost/asio/error.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/websocket/error.hpp>

#include <string>

namespace comfyfarm::net::detail {

namespace asio_error = boost::asio::error;
namespace http_error = boost::beast::http;
namespace ws_error = boost::beast::websocket;

bool is_connection_closed(const boost::system::error_code& ec) {
  return ec == asio_error::eof || ec == asio_error::connection_reset ||
         ec == asio_error::connection_aborted || ec == asio_error::broken_pipe ||
         ec == asio_error::not_connected || ec == asio_error::bad_descriptor ||
         ec == http_error::error::end_of_stream || ec == http_error::error::partial_message ||
         ec == ws_error::error::closed;
}

Error io_error(const boost::system::error_code& ec, std::string_view what) {
  auto message = [&](std::string_view summary) {
    std::string out(what);
    out += ": ";
    out += summary;
    if (summary != ec.message()) {
      out += " (";
      out += ec.message();
      out += ")";
    }
    return out;
  };
  if (ec == asio_error::connection_refused) {
    return fail(Errc::kUnavailable, message("connection refused"));
  }
  if (ec == boost::beast::error::timeout || ec == asio_error::timed_out) {
    return fail(Errc::kTimeout, message("timed out"));
  }
  if (ec == asio_error::operation_aborted) return fail(Errc::kCancelled, message("cancelled"));
  if (is_connection_closed(ec)) return fail(Errc::kUnavailable, message("connection reset"));
  if (ec == asio_error::host_not_found || ec == asio_error::host_not_found_try_again ||
      ec == asio_error::no_data) {
    return fail(Errc::kUnavailable, message("cannot resolve host"));
  }
  if (ec == asio_error::network_unreachable || ec == asio_error::host_unreachable) {
    return fail(Errc::kUnavailable, message("unreachable"));
  }
  if (ec == http_error::error::body_limit || ec == http_error::error::header_limit ||
      ec == http_error::error::buffer_overflow || ec == ws_error::error::message_too_big ||
      ec == ws_error::error::buffer_overflow) {
    return fail(Errc::kResourceExhausted, message("size limit exceeded"));
  }
  if (ec.category() == http_error::make_error_code(http_error::error::bad_method).category() ||
      ec.category() == ws_error::make_error_code(ws_error::error::bad_http_version).category()) {
    return fail(Errc::kProtocol, message("protocol error"));
  }
  return fail(Errc::kUnavailable, message(ec.message()));
}

}  // namespace comfyfarm::net::detail
