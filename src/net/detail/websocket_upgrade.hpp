// The hand-over from an HTTP session to a WebSocket session (Beast types; internal).
#pragma once

#include "net/detail/server_shared.hpp"
#include "net/http_types.hpp"
#include "net/router.hpp"

#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include <memory>

namespace comfyfarm::net::detail {

/// Takes over `stream` (whose executor is the connection's strand) after an upgrade request on
/// a WebSocket route: registers the session, runs the handshake, calls the route's handler, then
/// reads and writes until the session ends. Returns at once. `route` lives in shared->router.
void start_websocket_session(boost::beast::tcp_stream stream,
                             boost::beast::http::request<boost::beast::http::string_body> upgrade,
                             Request request, const Route& route,
                             std::shared_ptr<ServerShared> shared);

}  // namespace comfyfarm::net::detail
