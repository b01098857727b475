// How a socket-level error_code becomes a comfyfarm::Error (clients and sessions share it).
#pragma once

#include "core/error.hpp"

#include <boost/system/error_code.hpp>

#include <string_view>

namespace comfyfarm::net::detail {

/// Maps an I/O failure of `what` ("connect to 127.0.0.1:8188", "read response") to an Error:
/// refused -> kUnavailable "connection refused"; reset, EOF, broken pipe -> kUnavailable
/// "connection reset"; Beast/Asio timeouts -> kTimeout; operation_aborted -> kCancelled;
/// name resolution -> kUnavailable; HTTP/WebSocket protocol violations -> kProtocol.
Error io_error(const boost::system::error_code& ec, std::string_view what);

/// True for the errors that mean "the peer closed or dropped the connection".
bool is_connection_closed(const boost::system::error_code& ec);

}  // namespace comfyfarm::net::detail
