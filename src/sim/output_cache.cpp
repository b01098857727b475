#include "sim/output_cache.hpp"

#include <utility>

namespace comfyfarm::sim {

const CacheEntry* OutputCache::find(std::string_view signature) const noexcept {
  const auto it = entries_.find(signature);
  return it == entries_.end() ? nullptr : &it->second;
}

void OutputCache::store(std::string signature, CacheEntry entry) {
  entries_.insert_or_assign(std::move(signature), std::move(entry));
}

void OutputCache::retain_only(const std::set<std::string, std::less<>>& signatures) {
  std::erase_if(entries_, [&](const auto& kv) { return !signatures.contains(kv.first); });
}

}  // namespace comfyfarm::sim
