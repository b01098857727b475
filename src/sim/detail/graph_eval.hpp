// Graph evaluation for the planner: what the simulator knows about each node's outputs without
// running anything (image sizes, small values, model files) and each node's cache signature.
#pragma once

#include "comfy/workflow.hpp"
#include "sim/model_library.hpp"

#include <boost/json/value.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::sim {
struct SimData;
}  // namespace comfyfarm::sim

namespace comfyfarm::sim::detail {

namespace json = boost::json;

/// Image or latent size in pixels.
struct Shape {
  std::int64_t width = 0;
  std::int64_t height = 0;
  std::int64_t batch = 1;

  [[nodiscard]] double megapixels() const {
    return static_cast<double>(width) * static_cast<double>(height) / 1e6;
  }
};

/// What is known about one output of a node.
struct ValueInfo {
  std::string type{};                          ///< IMAGE, LATENT, MODEL, INT, ...
  std::optional<Shape> shape{};                ///< IMAGE/LATENT/MASK outputs
  std::optional<json::value> scalar{};         ///< INT/FLOAT/STRING/BOOLEAN values it can compute
  std::optional<std::array<double, 3>> rgb{};  ///< colour (0..1) of a one-colour image
  std::string arch{};                          ///< model family carried along
  double model_scale = 0.0;                    ///< an upscale model's factor
  std::vector<std::string> models{};           ///< model keys this value needs on the GPU
};

/// Everything the planner needs about one node.
struct NodeFacts {
  std::vector<ValueInfo> outputs{};
  std::optional<Shape> work_shape{};  ///< the size its cost is computed on
  std::vector<ModelFile> loads{};     ///< files a loader class loads
  std::vector<std::string> needs{};   ///< model keys carried by its linked inputs
  std::string arch{};                 ///< the model family of its inputs (or its own file)
  std::string signature{};            ///< cache key (hex of XXH3-128)
};

/// Callbacks into the server: the size of an uploaded input image and a fingerprint of its
/// bytes (LoadImage's IS_CHANGED). Either may be empty.
struct InputFileHooks {
  std::function<std::optional<Shape>(std::string_view filename)> image_shape{};
  std::function<std::string(std::string_view filename)> fingerprint{};
};

/// Evaluates every node of the graph (all of them, reachable or not), in node order of the
/// workflow. `prompt_serial` feeds IS_CHANGED of classes that always re-run.
[[nodiscard]] std::vector<NodeFacts> evaluate_graph(const comfy::Workflow& graph,
                                                    const SimData& data,
                                                    const InputFileHooks& hooks,
                                                    std::uint64_t prompt_serial);

/// A literal input (or a linked one whose value is known), else the catalog's default.
[[nodiscard]] std::optional<json::value> input_value(const comfy::Node& node, std::string_view name,
                                                     const SimData& data,
                                                     const std::vector<NodeFacts>& facts);

[[nodiscard]] std::optional<std::int64_t> as_int(const std::optional<json::value>& v);
[[nodiscard]] std::optional<double> as_double(const std::optional<json::value>& v);

}  // namespace comfyfarm::sim::detail
