#include "sim/vram_model.hpp"

#include <algorithm>
#include <string>

namespace comfyfarm::sim {

namespace {

bool is_pinned(std::span<const std::string> pinned, std::string_view key) {
  return std::find(pinned.begin(), pinned.end(), key) != pinned.end();
}

std::string oom_message(std::uint64_t bytes, std::uint64_t available) {
  return "out of VRAM: " + std::to_string(bytes) + " bytes needed, " + std::to_string(available) +
         " bytes available after evicting every unpinned model";
}

}  // namespace

VramModel::VramModel(std::uint64_t total_bytes, std::uint64_t reserved_bytes)
    : total_(total_bytes), reserved_(reserved_bytes) {}

std::uint64_t VramModel::resident_bytes() const noexcept {
  std::uint64_t sum = 0;
  for (const auto& m : models_) sum += m.bytes;
  return sum;
}

std::uint64_t VramModel::free_bytes() const noexcept {
  const std::uint64_t used = reserved_ + resident_bytes() + activations_;
  return used >= total_ ? 0 : total_ - used;
}

bool VramModel::is_resident(std::string_view key) const noexcept {
  return std::any_of(models_.begin(), models_.end(),
                     [&](const ResidentModel& m) { return m.key == key; });
}

std::vector<ResidentModel> VramModel::resident() const {
  std::vector<ResidentModel> out = models_;
  std::sort(out.begin(), out.end(),
            [](const ResidentModel& a, const ResidentModel& b) { return a.last_use < b.last_use; });
  return out;
}

std::uint64_t VramModel::available_after_eviction(
    std::span<const std::string> pinned) const noexcept {
  std::uint64_t fixed = reserved_ + activations_;
  for (const auto& m : models_) {
    if (is_pinned(pinned, m.key)) fixed += m.bytes;
  }
  return fixed >= total_ ? 0 : total_ - fixed;
}

void VramModel::evict_for(std::uint64_t bytes, std::span<const std::string> pinned,
                          std::vector<ResidentModel>& evicted) {
  for (const auto& m : resident()) {
    if (free_bytes() >= bytes) break;
    if (is_pinned(pinned, m.key)) continue;
    unload(m.key);
    evicted.push_back(m);
  }
}

Result<VramModel::LoadResult> VramModel::load(std::string_view key, std::uint64_t bytes,
                                              std::span<const std::string> pinned) {
  LoadResult out;
  if (is_resident(key)) {
    touch(key);
    out.was_resident = true;
    return out;
  }
  if (const auto available = available_after_eviction(pinned); bytes > available) {
    return fail(Errc::kResourceExhausted,
                oom_message(bytes, available) + " (loading " + std::string(key) + ")");
  }
  evict_for(bytes, pinned, out.evicted);
  models_.push_back({std::string(key), bytes, ++uses_});
  return out;
}

void VramModel::touch(std::string_view key) {
  for (auto& m : models_) {
    if (m.key == key) m.last_use = ++uses_;
  }
}

Result<std::vector<ResidentModel>> VramModel::allocate(std::uint64_t bytes,
                                                       std::span<const std::string> pinned) {
  std::vector<ResidentModel> evicted;
  if (bytes == 0) return evicted;
  if (const auto available = available_after_eviction(pinned); bytes > available) {
    return fail(Errc::kResourceExhausted, oom_message(bytes, available) + " (activations)");
  }
  evict_for(bytes, pinned, evicted);
  activations_ += bytes;
  return evicted;
}

void VramModel::release(std::uint64_t bytes) noexcept {
  activations_ = bytes > activations_ ? 0 : activations_ - bytes;
}

bool VramModel::unload(std::string_view key) {
  const auto it = std::find_if(models_.begin(), models_.end(),
                               [&](const ResidentModel& m) { return m.key == key; });
  if (it == models_.end()) return false;
  models_.erase(it);
  return true;
}

std::vector<ResidentModel> VramModel::unload_all() {
  std::vector<ResidentModel> out = resident();
  models_.clear();
  return out;
}

}  // namespace comfyfarm::sim
