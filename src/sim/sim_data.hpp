// SimData: the immutable data a simulated server runs on (node catalog, timing model, model
// files), shared by every server of a process, and the /object_info body built from it.
#pragma once

#include "comfy/bodies.hpp"
#include "core/error.hpp"
#include "sim/model_library.hpp"
#include "sim/node_catalog.hpp"
#include "sim/timing_model.hpp"

#include <boost/json/value.hpp>

#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::sim {

/// Lists the files of a folder ("checkpoints", ..., "input") for the combos filled at run time.
using FolderLister = std::function<std::vector<std::string>(std::string_view folder)>;

struct SimData {
  NodeCatalog catalog{};
  TimingModel timing{};
  ModelLibrary models{};

  /// The built-in data (data/sim/*.json, compiled in).
  [[nodiscard]] static Result<SimData> load_default();
  /// The built-in data with user files applied in order: each catalog file may add or replace
  /// classes, each timing file classes and globals, each models file model files.
  [[nodiscard]] static Result<SimData> load(std::span<const std::string> catalog_texts,
                                            std::span<const std::string> timing_texts,
                                            std::span<const std::string> models_texts);

  /// GET /object_info's body: the catalog verbatim, with every combo that timing's
  /// "combo_folders" marks filled with list(folder) (model folders, "input" for LoadImage).
  [[nodiscard]] json::value object_info_json(const FolderLister& list) const;
  /// The same with model folders listed from `models` and the "input" folder from input_files.
  [[nodiscard]] json::value object_info_json(std::span<const std::string> input_files) const;
  /// object_info_json decoded (what a prompt validator checks against).
  [[nodiscard]] comfy::ObjectInfo object_info(const FolderLister& list) const;
};

}  // namespace comfyfarm::sim
