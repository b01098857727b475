// ExecutionList: ComfyUI's execution order (comfy_execution/graph.py ExecutionList): a
// topological dissolve of the graph from the outputs, picking among ready nodes the way
// ux_friendly_pick_node does.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <vector>

namespace comfyfarm::sim::detail {

/// Nodes are indices into the workflow's node list. `inputs(n)` gives node n's linked sources
/// in the order of its inputs; `cached(n)` whether the cache holds node n; `is_output(n)`
/// whether its class is an output node. Lazy inputs, async nodes and node expansion are not
/// modelled (no class in the catalog has them).
class ExecutionList {
 public:
  ExecutionList(std::function<std::vector<std::size_t>(std::size_t)> inputs,
                std::function<bool(std::size_t)> cached,
                std::function<bool(std::size_t)> is_output);

  /// add_node: an iterative depth-first walk from `node` (pop, mark pending, push the uncached
  /// sources of its links in input order), then the blocking links.
  void add_node(std::size_t node);
  [[nodiscard]] bool empty() const noexcept { return pending_.empty(); }
  /// The node to run next (stage_node_execution with ux_friendly_pick_node): among the ready
  /// nodes in pending order, an output node, else one that directly feeds an output node, else
  /// one two links before an output node, else the first. nullopt when nothing is ready (a cycle).
  [[nodiscard]] std::optional<std::size_t> pick() const;
  /// complete_node_execution: removes the node and unblocks what it fed.
  void complete(std::size_t node);

 private:
  [[nodiscard]] bool is_pending(std::size_t node) const;
  std::vector<std::size_t>* blocking_of(std::size_t node);
  [[nodiscard]] const std::vector<std::size_t>* blocking_of(std::size_t node) const;

  struct Entry {
    std::size_t node = 0;
    std::vector<std::size_t> blockers{};  ///< nodes this one waits for
    std::vector<std::size_t> blocking{};  ///< nodes waiting for this one, in link order
  };

  std::function<std::vector<std::size_t>(std::size_t)> inputs_;
  std::function<bool(std::size_t)> cached_;
  std::function<bool(std::size_t)> is_output_;
  std::vector<Entry> pending_;  ///< insertion order (Python dict order of pendingNodes)
};

}  // namespace comfyfarm::sim::detail
