#include "sim/detail/execution_list.hpp"

#include <algorithm>
#include <tuple>
#include <utility>

namespace comfyfarm::sim::detail {

namespace {

void add_unique(std::vector<std::size_t>& v, std::size_t n) {
  if (std::find(v.begin(), v.end(), n) == v.end()) v.push_back(n);
}

}  // namespace

ExecutionList::ExecutionList(std::function<std::vector<std::size_t>(std::size_t)> inputs,
                             std::function<bool(std::size_t)> cached,
                             std::function<bool(std::size_t)> is_output)
    : inputs_(std::move(inputs)), cached_(std::move(cached)), is_output_(std::move(is_output)) {}

bool ExecutionList::is_pending(std::size_t node) const { return blocking_of(node) != nullptr; }

std::vector<std::size_t>* ExecutionList::blocking_of(std::size_t node) {
  for (auto& e : pending_) {
    if (e.node == node) return &e.blocking;
  }
  return nullptr;
}

const std::vector<std::size_t>* ExecutionList::blocking_of(std::size_t node) const {
  for (const auto& e : pending_) {
    if (e.node == node) return &e.blocking;
  }
  return nullptr;
}

void ExecutionList::add_node(std::size_t node) {
  std::vector<std::size_t> stack{node};
  std::vector<std::tuple<std::size_t, std::size_t>> links;  // (from, to)
  while (!stack.empty()) {
    const std::size_t id = stack.back();
    stack.pop_back();
    if (is_pending(id)) continue;
    pending_.push_back({id, {}, {}});
    for (const std::size_t from : inputs_(id)) {
      if (!cached_(from)) stack.push_back(from);
      links.emplace_back(from, id);
    }
  }
  // add_strong_link: only links from a node that will run (uncached, or already pending); every
  // uncached source was pushed above, so it is pending by now.
  for (const auto& [from, to] : links) {
    if (cached_(from) && !is_pending(from)) continue;
    add_unique(*blocking_of(from), to);
    for (auto& e : pending_) {
      if (e.node == to) add_unique(e.blockers, from);
    }
  }
}

std::optional<std::size_t> ExecutionList::pick() const {
  std::vector<const Entry*> ready;
  for (const auto& e : pending_) {
    if (e.blockers.empty()) ready.push_back(&e);
  }
  if (ready.empty()) return std::nullopt;
  for (const auto* e : ready) {
    if (is_output_(e->node)) return e->node;
  }
  for (const auto* e : ready) {
    for (const std::size_t b : e->blocking) {
      if (is_output_(b)) return e->node;
    }
  }
  for (const auto* e : ready) {
    for (const std::size_t b : e->blocking) {
      const auto* next = blocking_of(b);
      if (next == nullptr) continue;
      for (const std::size_t b1 : *next) {
        if (is_output_(b1)) return e->node;
      }
    }
  }
  return ready.front()->node;
}

void ExecutionList::complete(std::size_t node) {
  const auto it = std::find_if(pending_.begin(), pending_.end(),
                               [&](const Entry& e) { return e.node == node; });
  if (it == pending_.end()) return;
  pending_.erase(it);
  for (auto& e : pending_) {
    std::erase(e.blockers, node);
    std::erase(e.blocking, node);
  }
}

}  // namespace comfyfarm::sim::detail
