#include "net/io_runtime.hpp"

#include <spdlog/spdlog.h>

#include <exception>

namespace comfyfarm::net {

IoRuntime::IoRuntime(unsigned threads)
    : context_(static_cast<int>(threads == 0 ? 1 : threads)), work_(context_.get_executor()) {
  if (threads == 0) threads = 1;
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) {
    threads_.emplace_back([this] {
      for (;;) {
        try {
          context_.run();
          return;
        } catch (const std::exception& e) {
          spdlog::error("io: exception escaped a handler: {}", e.what());
        } catch (...) {
          spdlog::error("io: unknown exception escaped a handler");
        }
      }
    });
  }
}

IoRuntime::~IoRuntime() {
  stop();
  join();
}

void IoRuntime::release() { work_.reset(); }

void IoRuntime::stop() {
  context_.stop();
}

void IoRuntime::join() {
  for (auto& t : threads_) {
    if (t.joinable()) t.join();
  }
}

}  // namespace comfyfarm::net
