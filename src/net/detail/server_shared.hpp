// What an HttpServer's connections share: the router, the options and the registry.
#pragma once

#include "net/detail/connection_registry.hpp"
#include "net/http_server.hpp"
#include "net/router.hpp"

#include <memory>

namespace comfyfarm::net::detail {

struct ServerShared {
  ServerShared(std::shared_ptr<const Router> r, HttpServerOptions o,
               boost::asio::any_io_executor executor)
      : router(std::move(r)), options(std::move(o)), registry(std::move(executor)) {}

  std::shared_ptr<const Router> router;
  const HttpServerOptions options;
  ConnectionRegistry registry;
};

}  // namespace comfyfarm::net::detail
