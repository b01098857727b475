#include "sim/sim_state.hpp"

#include "sim/sim_data.hpp"

namespace comfyfarm::sim {

SimSettings SimSettings::defaults(const SimData& data) {
  SimSettings s;
  s.speed = data.timing.default_speed();
  s.time_scale = data.timing.default_time_scale();
  return s;
}

SimState::SimState(const SimData& data, SimSettings settings)
    : settings_(settings),
      vram_(settings.vram_total_bytes, data.timing.vram_reserved_bytes()),
      files_(settings.seed) {}

void SimState::free(bool unload_models, bool free_memory) {
  if (unload_models || free_memory) vram_.unload_all();
  if (free_memory) cache_.clear();
}

}  // namespace comfyfarm::sim
