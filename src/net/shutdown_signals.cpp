#include "net/shutdown_signals.hpp"

#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <spdlog/spdlog.h>

#include <csignal>
#include <mutex>

namespace comfyfarm::net {

struct ShutdownSignals::State : std::enable_shared_from_this<State> {
  State(boost::asio::any_io_executor executor, std::function<void(int)> callback)
      : signals(std::move(executor), SIGINT, SIGTERM), on_signal(std::move(callback)) {}

  void wait() {
    signals.async_wait([self = shared_from_this()](const boost::system::error_code& ec, int signo) {
      if (ec) return;  // cancelled: the owner went away
      spdlog::info("received signal {}", signo);
      {
        // Held while the callback runs so that the destructor cannot return in the middle of it.
        std::lock_guard lock(self->mutex);
        if (!self->on_signal) return;
        try {
          self->on_signal(signo);
        } catch (const std::exception& e) {
          spdlog::error("signal callback threw: {}", e.what());
        }
      }
      self->wait();
    });
  }

  boost::asio::signal_set signals;
  std::mutex mutex;
  std::function<void(int)> on_signal;
};

ShutdownSignals::ShutdownSignals(boost::asio::any_io_executor executor,
                                 std::function<void(int)> on_signal)
    : state_(std::make_shared<State>(std::move(executor), std::move(on_signal))) {
  state_->wait();
}

ShutdownSignals::~ShutdownSignals() {
  {
    std::lock_guard lock(state_->mutex);
    state_->on_signal = nullptr;
  }
  // The signal_set is touched only on its executor; the pending wait holds the state.
  boost::asio::post(state_->signals.get_executor(), [state = state_] {
    boost::system::error_code ignored;
    state->signals.cancel(ignored);
  });
}

}  // namespace comfyfarm::net
