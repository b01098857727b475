// The simulator's default data files (data/sim/*.json), compiled into the binary at build time
// so that a simulated server needs no data path at run time.
#pragma once

#include <string_view>

namespace comfyfarm::sim {

/// data/sim/nodes.json: the node catalog in /object_info's shape.
[[nodiscard]] std::string_view default_catalog_json() noexcept;
/// data/sim/timing.json: per-class behaviour and cost.
[[nodiscard]] std::string_view default_timing_json() noexcept;
/// data/sim/models.json: the model files a simulated server has.
[[nodiscard]] std::string_view default_models_json() noexcept;

}  // namespace comfyfarm::sim
