// SimState: the mutable state of one simulated server that outlives a prompt: VRAM, the output
// cache, file counters, and its settings (speed, time scale, card size, seed).
#pragma once

#include "sim/file_namer.hpp"
#include "sim/output_cache.hpp"
#include "sim/vram_model.hpp"

#include <cstdint>

namespace comfyfarm::sim {

struct SimData;

/// Per-server settings (the sim's command-line flags).
struct SimSettings {
  double speed = 1.0;       ///< relative GPU speed (1.0 = RTX 4090 class; 0.4 = 2.5x slower)
  double time_scale = 1.0;  ///< multiplies every modeled duration (0.01 for fast tests)
  std::uint64_t vram_total_bytes = 24ULL << 30;  ///< --vram-gb
  std::uint64_t seed = 0;                        ///< --seed: temp file names
  bool sampler_previews = false;  ///< --preview-method other than none: a frame per sampler step

  /// The timing file's speed and time_scale, a 24 GiB card, seed 0.
  [[nodiscard]] static SimSettings defaults(const SimData& data);
};

/// Owned by one simulated server and used from its strand only; at most one PromptRun uses it
/// at a time (ComfyUI runs one prompt at a time).
class SimState {
 public:
  SimState(const SimData& data, SimSettings settings);

  [[nodiscard]] const SimSettings& settings() const noexcept { return settings_; }
  void set_speed(double speed) noexcept { settings_.speed = speed; }
  void set_time_scale(double time_scale) noexcept { settings_.time_scale = time_scale; }
  void set_sampler_previews(bool on) noexcept { settings_.sampler_previews = on; }

  [[nodiscard]] VramModel& vram() noexcept { return vram_; }
  [[nodiscard]] const VramModel& vram() const noexcept { return vram_; }
  [[nodiscard]] OutputCache& cache() noexcept { return cache_; }
  [[nodiscard]] const OutputCache& cache() const noexcept { return cache_; }
  [[nodiscard]] FileNamer& files() noexcept { return files_; }

  /// POST /free: unload_models unloads every model from VRAM; free_memory also resets the
  /// executor (the output cache), and implies unload_models, as in ComfyUI's prompt worker.
  void free(bool unload_models, bool free_memory);

  /// A number that differs for every prompt started on this server (IS_CHANGED of classes that
  /// always re-run).
  [[nodiscard]] std::uint64_t next_prompt_serial() noexcept { return ++prompt_serial_; }

 private:
  SimSettings settings_;
  VramModel vram_;
  OutputCache cache_;
  FileNamer files_;
  std::uint64_t prompt_serial_ = 0;
};

}  // namespace comfyfarm::sim
