// The foreground life of a server command (`sim`, `serve`): start it, write its ready file, say
// where it listens, and run until SIGINT/SIGTERM stops it gracefully (a second signal: at once).
#pragma once

#include "net/io_runtime.hpp"
#include "net/ready_file.hpp"
#include "net/shutdown_signals.hpp"

#include <boost/json/object.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <functional>
#include <future>
#include <iostream>
#include <string>

namespace comfyfarm::app {

struct ServerHooks {
  std::string name;                 ///< for the log lines ("sim", "farm")
  std::function<void()> start;      ///< starts serving (called on the main thread)
  std::function<std::string()> address;  ///< "HOST:PORT" once started
  std::function<boost::json::object()> ready_fields;  ///< the ready file's extra fields
  std::function<void()> announce;   ///< prints where to point a client (stdout)
  /// Starts a graceful stop; calls `done` (any thread) when it is over.
  std::function<void(std::function<void()> done)> stop;
  std::string stopping_message = "stopping";  ///< logged on the first signal
};

/// Returns the exit status: 0 after a signal, 1 when the ready file could not be written. The
/// signal handling is installed before the ready file exists, so that a SIGTERM sent as soon as
/// it appears stops the server gracefully. The caller stops the io runtime afterwards.
inline int run_until_signalled(net::IoRuntime& io, const std::string& ready_file, const ServerHooks& h) {
  std::promise<void> stopped;
  auto stopped_future = stopped.get_future();
  std::atomic<bool> finished{false};
  std::atomic<int> signals{0};
  auto finish = [&finished, &stopped] {
    if (!finished.exchange(true)) stopped.set_value();
  };
  net::ShutdownSignals shutdown(io.executor(), [&](int signo) {
    if (signals.fetch_add(1) == 0) {
      spdlog::info("{}: signal {}: {}", h.name, signo, h.stopping_message);
      h.stop(finish);
    } else {
      spdlog::warn("{}: signal {} again: stopping now", h.name, signo);
      finish();
    }
  });
  h.start();
  auto ready = ready_file.empty() ? Result<void>()
                                  : net::write_ready_file(ready_file, h.address(), h.ready_fields());
  if (!ready) {
    std::string message = ready.error().message;
    for (auto& c : message) {
      if (c == '\n') c = ' ';
    }
    std::cerr << "comfyfarm: error: " << message << "\n";
    return 1;
  }
  h.announce();
  stopped_future.wait();
  return 0;
}

}  // namespace comfyfarm::app
