#include "sim/sim_data.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <string>
#include <utility>

namespace comfyfarm::sim {

Result<SimData> SimData::load_default() { return load({}, {}, {}); }

Result<SimData> SimData::load(std::span<const std::string> catalog_texts,
                              std::span<const std::string> timing_texts,
                              std::span<const std::string> models_texts) {
  SimData d;
  auto catalog = NodeCatalog::load_default();
  if (!catalog) return catalog.error();
  d.catalog = std::move(*catalog);
  for (const auto& text : catalog_texts) {
    auto extra = NodeCatalog::parse(text);
    if (!extra) return extra.error();
    d.catalog.merge(*extra);
  }
  auto timing = TimingModel::load_default();
  if (!timing) return timing.error();
  d.timing = std::move(*timing);
  for (const auto& text : timing_texts) {
    if (auto r = d.timing.merge_json(text); !r) return r.error();
  }
  auto models = ModelLibrary::load_default();
  if (!models) return models.error();
  d.models = std::move(*models);
  for (const auto& text : models_texts) {
    auto extra = ModelLibrary::parse(text);
    if (!extra) return extra.error();
    d.models.merge(*extra);
  }
  return d;
}

json::value SimData::object_info_json(const FolderLister& list) const {
  json::object out = catalog.to_json();
  for (auto& kv : out) {
    const auto& behaviour = timing.behaviour(kv.key());
    if (behaviour.combo_folders.empty()) continue;
    auto* input = kv.value().is_object() ? kv.value().get_object().if_contains("input") : nullptr;
    if (input == nullptr || !input->is_object()) continue;
    for (const auto& [name, folder] : behaviour.combo_folders) {
      json::array names;
      for (auto& f : list(folder)) names.emplace_back(std::move(f));
      for (const auto* group : {"required", "optional"}) {
        auto* g = input->get_object().if_contains(group);
        if (g == nullptr || !g->is_object()) continue;
        auto* spec = g->get_object().if_contains(name);
        if (spec == nullptr || !spec->is_array() || spec->get_array().empty()) continue;
        auto& slot = spec->get_array()[0];
        if (slot.is_array()) {
          slot = names;  // classic combo: [[names...], {options}]
        } else if (slot.is_string() && slot.get_string() == "COMBO" &&
                   spec->get_array().size() > 1 && spec->get_array()[1].is_object()) {
          spec->get_array()[1].get_object()["options"] = names;  // V3 combo
        }
      }
    }
  }
  return out;
}

json::value SimData::object_info_json(std::span<const std::string> input_files) const {
  return object_info_json([&](std::string_view folder) {
    if (folder == "input") return std::vector<std::string>(input_files.begin(), input_files.end());
    return models.files(folder);
  });
}

comfy::ObjectInfo SimData::object_info(const FolderLister& list) const {
  auto info = comfy::ObjectInfo::from_json(object_info_json(list));
  // The catalog decoded before the combos were filled; filling them keeps the shape valid.
  return info ? std::move(*info) : catalog.info();
}

}  // namespace comfyfarm::sim
