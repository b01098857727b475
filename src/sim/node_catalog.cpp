#include "sim/node_catalog.hpp"

#include "comfy/json_util.hpp"
#include "sim/default_data.hpp"

#include <string>
#include <utility>

namespace comfyfarm::sim {

Result<NodeCatalog> NodeCatalog::parse(std::string_view json_text) {
  auto doc = comfy::parse_json(json_text);
  if (!doc) return fail(Errc::kInvalidArgument, "node catalog: " + doc.error().message);
  return from_json(*doc);
}

Result<NodeCatalog> NodeCatalog::from_json(const json::value& doc) {
  if (!doc.is_object()) {
    return fail(Errc::kInvalidArgument,
                "node catalog: expected an object of class name -> "
                "object_info entry, found " +
                    std::string(comfy::kind_name(doc)));
  }
  auto info = comfy::ObjectInfo::from_json(doc);
  if (!info) {
    return fail(Errc::kInvalidArgument, "node catalog: " + info.error().message);
  }
  for (const auto& c : info->classes) {
    if (c.name.empty()) {
      return fail(Errc::kInvalidArgument, "node catalog: " + c.class_type + ": empty \"name\"");
    }
  }
  NodeCatalog out;
  out.raw_ = doc.get_object();
  out.info_ = std::move(*info);
  return out;
}

Result<NodeCatalog> NodeCatalog::load_default() { return parse(default_catalog_json()); }

void NodeCatalog::merge(const NodeCatalog& other) {
  for (const auto& c : other.info_.classes) {
    bool replaced = false;
    for (auto& mine : info_.classes) {
      if (mine.class_type == c.class_type) {
        mine = c;
        replaced = true;
        break;
      }
    }
    if (!replaced) info_.classes.push_back(c);
    // insert_or_assign keeps the position of an existing key.
    raw_.insert_or_assign(c.class_type, other.raw_.at(c.class_type));
  }
}

const comfy::NodeClassInfo* NodeCatalog::find(std::string_view class_type) const noexcept {
  return info_.find(class_type);
}

bool NodeCatalog::is_output_node(std::string_view class_type) const noexcept {
  const auto* c = find(class_type);
  return c != nullptr && c->output_node;
}

}  // namespace comfyfarm::sim
