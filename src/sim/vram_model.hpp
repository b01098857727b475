// VramModel: the simulated GPU's memory. Model files stay resident after use until evicted
// (least recently used first) or unloaded; a running node holds activation memory on top.
#pragma once

#include "core/error.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::sim {

/// A model file in VRAM.
struct ResidentModel {
  std::string key{};  ///< ModelFile::key(): "folder/filename"
  std::uint64_t bytes = 0;
  std::uint64_t last_use = 0;  ///< use counter value at the last load or touch (LRU order)
  friend bool operator==(const ResidentModel&, const ResidentModel&) = default;
};

/// Accounting of total = reserved + resident models + activations + free. Deterministic: recency
/// is a use counter, not a clock. Not thread-safe: one simulated server's strand owns it.
///
///   load(key)      resident? touch : evict LRU unpinned models until it fits, or OOM
///   allocate(n)    evict LRU unpinned models until n fits, or OOM
///   release(n)     the node finished
///   unload_all()   POST /free, or after an OOM (ComfyUI unloads every model then)
///
/// An OOM leaves the state unchanged.
class VramModel {
 public:
  VramModel(std::uint64_t total_bytes, std::uint64_t reserved_bytes);

  [[nodiscard]] std::uint64_t total_bytes() const noexcept { return total_; }
  [[nodiscard]] std::uint64_t reserved_bytes() const noexcept { return reserved_; }
  [[nodiscard]] std::uint64_t resident_bytes() const noexcept;
  [[nodiscard]] std::uint64_t activation_bytes() const noexcept { return activations_; }
  /// What /system_stats reports as vram_free (and torch_vram_free).
  [[nodiscard]] std::uint64_t free_bytes() const noexcept;
  /// Largest amount any single allocation could get: total minus reserved.
  [[nodiscard]] std::uint64_t usable_bytes() const noexcept {
    return total_ > reserved_ ? total_ - reserved_ : 0;
  }

  [[nodiscard]] bool is_resident(std::string_view key) const noexcept;
  /// Resident models, least recently used first.
  [[nodiscard]] std::vector<ResidentModel> resident() const;

  struct LoadResult {
    bool was_resident = false;
    std::vector<ResidentModel> evicted{};
  };
  /// Makes a model resident (or marks it used if it is). `pinned` keys are in use by the same
  /// node and are not evicted. Errc::kResourceExhausted when it cannot fit.
  [[nodiscard]] Result<LoadResult> load(std::string_view key, std::uint64_t bytes,
                                        std::span<const std::string> pinned = {});
  /// Marks a resident model used now.
  void touch(std::string_view key);
  /// Reserves activation memory for a running node, evicting unpinned models if needed.
  /// Errc::kResourceExhausted when it cannot fit. Returns the evicted models.
  [[nodiscard]] Result<std::vector<ResidentModel>> allocate(
      std::uint64_t bytes, std::span<const std::string> pinned = {});
  /// Returns activation memory.
  void release(std::uint64_t bytes) noexcept;
  /// Unloads one model; false when it was not resident.
  bool unload(std::string_view key);
  /// Unloads every model (activations stay). Returns what was resident.
  std::vector<ResidentModel> unload_all();
  /// Changes the card's size (the sim's --vram-gb); models that no longer fit stay until evicted.
  void set_total_bytes(std::uint64_t total_bytes) noexcept { total_ = total_bytes; }

 private:
  /// Space that evicting every unpinned model would leave.
  [[nodiscard]] std::uint64_t available_after_eviction(
      std::span<const std::string> pinned) const noexcept;
  /// Evicts unpinned models, least recently used first, until `bytes` are free.
  void evict_for(std::uint64_t bytes, std::span<const std::string> pinned,
                 std::vector<ResidentModel>& evicted);

  std::uint64_t total_;
  std::uint64_t reserved_;
  std::uint64_t activations_ = 0;
  std::uint64_t uses_ = 0;
  std::vector<ResidentModel> models_;  // unordered; LRU by last_use
};

}  // namespace comfyfarm::sim
