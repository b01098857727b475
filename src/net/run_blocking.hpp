// run_blocking: the one way to run blocking work (SQLite, files, libpq) from an I/O coroutine.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <optional>
#include <type_traits>
#include <utility>

namespace comfyfarm::net {

/// Runs `f()` on `pool` and resumes the calling coroutine on its own executor with the result
/// (or the exception f threw). The I/O thread is free meanwhile. Not cancellable: once started,
/// f runs to the end and the caller waits for it.
template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> run_blocking(boost::asio::thread_pool& pool, F f) {
  using R = std::invoke_result_t<F&>;
  if constexpr (std::is_void_v<R>) {
    co_await boost::asio::co_spawn(
        pool.get_executor(),
        [fn = std::move(f)]() mutable -> boost::asio::awaitable<void> {
          fn();
          co_return;
        },
        boost::asio::use_awaitable);
  } else {
    // co_spawn needs a default-constructible result; optional<R> is one for any R.
    std::optional<R> out = co_await boost::asio::co_spawn(
        pool.get_executor(),
        [fn = std::move(f)]() mutable -> boost::asio::awaitable<std::optional<R>> {
          co_return std::optional<R>(fn());
        },
        boost::asio::use_awaitable);
    co_return std::move(*out);
  }
}

}  // namespace comfyfarm::net
