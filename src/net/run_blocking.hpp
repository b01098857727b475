// run_blocking: the one way to run blocking work (SQLite, files, libpq) from an I/O coroutine.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <functional>
#include <optional>
#include <type_traits>
#include <utility>

namespace comfyfarm::net {

namespace detail {

template <class F>
boost::asio::awaitable<void> call_void(std::reference_wrapper<F> f) {
  f.get()();
  co_return;
}

// co_spawn needs a default-constructible result; optional<R> is one for any R.
template <class F, class R = std::invoke_result_t<F&>>
boost::asio::awaitable<std::optional<R>> call_value(std::reference_wrapper<F> f) {
  co_return std::optional<R>(f.get()());
}

template <class>
inline constexpr bool kAlwaysFalse = false;

}  // namespace detail

/// Runs `f()` on `pool` and resumes the calling coroutine on its own executor with the result
/// (or the exception f threw). The I/O thread is free meanwhile. Not cancellable: once started,
/// f runs to the end and the caller waits for it.
///
/// `f` is a named callable of the caller, used in place (it outlives the call because the caller
/// awaits it):
///
///   auto load = [&store, id] { return store.load(id); };
///   auto job = co_await run_blocking(pool, load);
///
/// A lambda written inside the co_await expression does not compile, on purpose: GCC 12
/// destroys such a temporary twice (its captures are freed twice).
template <class F>
boost::asio::awaitable<std::invoke_result_t<F&>> run_blocking(boost::asio::thread_pool& pool, F& f) {
  using R = std::invoke_result_t<F&>;
  if constexpr (std::is_void_v<R>) {
    auto work = detail::call_void(std::ref(f));
    co_await boost::asio::co_spawn(pool.get_executor(), std::move(work),
                                   boost::asio::use_awaitable);
  } else {
    auto work = detail::call_value(std::ref(f));
    std::optional<R> out = co_await boost::asio::co_spawn(pool.get_executor(), std::move(work),
                                                          boost::asio::use_awaitable);
    co_return std::move(*out);
  }
}

template <class F>
  requires(!std::is_lvalue_reference_v<F>)
void run_blocking(boost::asio::thread_pool&, F&&) {
  static_assert(detail::kAlwaysFalse<F>,
                "run_blocking takes a named callable: `auto work = [..] {..}; co_await "
                "run_blocking(pool, work);` (GCC 12 destroys a lambda temporary in a co_await "
                "expression twice)");
}

}  // namespace comfyfarm::net
