// IoRuntime: the process's one io_context and the N threads that run it.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <optional>
#include <thread>
#include <vector>

namespace comfyfarm::net {

/// Owns an io_context and runs it on `threads` threads from construction until stop(). An
/// exception escaping a handler is logged and the thread goes on running. The destructor stops
/// and joins; destroy servers and clients that use the context before it.
class IoRuntime {
 public:
  explicit IoRuntime(unsigned threads = 1);
  ~IoRuntime();
  IoRuntime(const IoRuntime&) = delete;
  IoRuntime& operator=(const IoRuntime&) = delete;

  boost::asio::io_context& context() { return context_; }
  boost::asio::any_io_executor executor() { return context_.get_executor(); }

  /// Lets the threads return once no work is left (pending operations still complete).
  void release();
  /// Stops the io_context now; handlers not yet run are not run. Thread-safe.
  void stop();
  /// Waits for the threads to return (after release() or stop()). Not from an I/O thread.
  void join();

 private:
  boost::asio::io_context context_;
  std::optional<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> threads_;
};

}  // namespace comfyfarm::net
