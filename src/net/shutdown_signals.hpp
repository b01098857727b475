// ShutdownSignals: turns SIGINT/SIGTERM into a callback on the io_context.
#pragma once

#include <boost/asio/any_io_executor.hpp>

#include <functional>
#include <memory>

namespace comfyfarm::net {

/// Installs SIGINT and SIGTERM handling (asio::signal_set) for as long as the object lives.
/// `on_signal(signal_number)` runs on `executor` for every such signal: the first typically
/// starts a graceful stop, a second one may force it. Create at most one per process.
class ShutdownSignals {
 public:
  ShutdownSignals(boost::asio::any_io_executor executor, std::function<void(int)> on_signal);
  ~ShutdownSignals();
  ShutdownSignals(const ShutdownSignals&) = delete;
  ShutdownSignals& operator=(const ShutdownSignals&) = delete;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace comfyfarm::net
