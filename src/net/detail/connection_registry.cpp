#include "net/detail/connection_registry.hpp"

#include <boost/asio/post.hpp>

#include <atomic>

namespace comfyfarm::net::detail {

std::uint64_t next_connection_id() {
  static std::atomic<std::uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

bool ConnectionRegistry::add(std::uint64_t id, std::weak_ptr<Connection> connection) {
  std::lock_guard lock(mutex_);
  if (stopping_) return false;
  connections_.emplace(id, std::move(connection));
  return true;
}

void ConnectionRegistry::remove(std::uint64_t id) {
  std::unique_lock lock(mutex_);
  connections_.erase(id);
  fire_if_done(lock);
}

bool ConnectionRegistry::begin_stop(std::function<void()> on_stopped) {
  bool first = false;
  {
    std::unique_lock lock(mutex_);
    first = !stopping_;
    stopping_ = true;
    if (on_stopped) {
      if (stopped_) {
        boost::asio::post(executor_, std::move(on_stopped));
      } else {
        on_stopped_.push_back(std::move(on_stopped));
      }
    }
  }
  if (first) {
    for (auto& c : snapshot()) c->shutdown(false);
  }
  std::unique_lock lock(mutex_);
  fire_if_done(lock);
  return first;
}

void ConnectionRegistry::force_all() {
  for (auto& c : snapshot()) c->shutdown(true);
}

void ConnectionRegistry::set_acceptor_closed() {
  std::unique_lock lock(mutex_);
  acceptor_closed_ = true;
  fire_if_done(lock);
}

bool ConnectionRegistry::stopping() const {
  std::lock_guard lock(mutex_);
  return stopping_;
}

bool ConnectionRegistry::stopped() const {
  std::lock_guard lock(mutex_);
  return stopped_;
}

std::size_t ConnectionRegistry::size() const {
  std::lock_guard lock(mutex_);
  return connections_.size();
}

std::vector<std::shared_ptr<Connection>> ConnectionRegistry::snapshot() const {
  std::vector<std::shared_ptr<Connection>> out;
  std::lock_guard lock(mutex_);
  out.reserve(connections_.size());
  for (const auto& [id, weak] : connections_) {
    if (auto c = weak.lock()) out.push_back(std::move(c));
  }
  return out;
}

void ConnectionRegistry::fire_if_done(std::unique_lock<std::mutex>& lock) {
  if (!stopping_ || !acceptor_closed_ || !connections_.empty() || stopped_) return;
  stopped_ = true;
  auto callbacks = std::move(on_stopped_);
  on_stopped_.clear();
  lock.unlock();
  for (auto& cb : callbacks) boost::asio::post(executor_, std::move(cb));
}

}  // namespace comfyfarm::net::detail
