// OutputCache: ComfyUI's default ("classic") output cache, keyed by a node's input signature.
// Only entries that the current prompt also has survive its start (clean_unused), so a backend
// reuses work only from the immediately preceding prompt.
#pragma once

#include <boost/json/object.hpp>

#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>

namespace comfyfarm::sim {

namespace json = boost::json;

/// What a cached node left behind. The simulator recomputes values from the graph, so only the
/// UI (replayed by "executed" when a cached output node comes up again) is kept.
struct CacheEntry {
  std::optional<json::object> ui{};  ///< the node's ui dict, e.g. {"images": [...]}
};

/// Not thread-safe: one simulated server's strand owns it.
class OutputCache {
 public:
  [[nodiscard]] const CacheEntry* find(std::string_view signature) const noexcept;
  [[nodiscard]] bool contains(std::string_view signature) const noexcept {
    return find(signature) != nullptr;
  }
  void store(std::string signature, CacheEntry entry);
  /// clean_unused at prompt start: drops every entry whose signature the new prompt lacks.
  void retain_only(const std::set<std::string, std::less<>>& signatures);
  /// POST /free {"free_memory": true}: the executor is reset.
  void clear() noexcept { entries_.clear(); }
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

 private:
  std::map<std::string, CacheEntry, std::less<>> entries_;
};

}  // namespace comfyfarm::sim
