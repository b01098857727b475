// ConnectionRegistry: the live connections of one server and the bookkeeping of its stop.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

namespace comfyfarm::net::detail {

/// A connection a server can stop: an HTTP session or a WebSocket session.
class Connection {
 public:
  virtual ~Connection() = default;
  /// Graceful (finish in-flight work, then close) or forced (close now, cancel handlers).
  /// Thread-safe: implementations post to their strand.
  virtual void shutdown(bool force) = 0;
};

/// A process-unique connection id.
std::uint64_t next_connection_id();

/// Thread-safe set of live connections. Once stopping, add() refuses new ones; when the set is
/// empty and the acceptor is closed, the on_stopped callbacks are posted to the executor.
class ConnectionRegistry {
 public:
  explicit ConnectionRegistry(boost::asio::any_io_executor executor)
      : executor_(std::move(executor)) {}

  /// Registers a connection; false once stopping (the caller closes it).
  bool add(std::uint64_t id, std::weak_ptr<Connection> connection);
  void remove(std::uint64_t id);

  /// Marks the registry stopping, remembers on_stopped and asks every connection to stop
  /// gracefully. Returns false if it was already stopping (on_stopped is still honoured).
  bool begin_stop(std::function<void()> on_stopped);
  /// Asks every remaining connection to close now.
  void force_all();
  void set_acceptor_closed();

  bool stopping() const;
  bool stopped() const;
  std::size_t size() const;

 private:
  std::vector<std::shared_ptr<Connection>> snapshot() const;
  void fire_if_done(std::unique_lock<std::mutex>& lock);

  boost::asio::any_io_executor executor_;
  mutable std::mutex mutex_;
  std::unordered_map<std::uint64_t, std::weak_ptr<Connection>> connections_;
  std::vector<std::function<void()>> on_stopped_;
  bool stopping_ = false;
  bool acceptor_closed_ = false;
  bool stopped_ = false;
};

}  // namespace comfyfarm::net::detail
