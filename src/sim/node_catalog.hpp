// NodeCatalog: the node classes a simulated server offers, in /object_info's shape, read from data
// files (the built-in default plus user files) so that nodes can be added without recompiling.
#pragma once

#include "comfy/bodies.hpp"
#include "core/error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstddef>
#include <string_view>

namespace comfyfarm::sim {

namespace json = boost::json;

/// The node classes, each kept twice: verbatim as written in the files (served as /object_info
/// with its key order) and decoded (for lookups). Immutable after loading; safe to share between
/// simulated servers and threads.
class NodeCatalog {
 public:
  /// Parses one catalog file: an object of class name -> /object_info entry. Errors are
  /// Errc::kInvalidArgument and name the class and field ("KSampler: output: expected an array").
  [[nodiscard]] static Result<NodeCatalog> parse(std::string_view json_text);
  [[nodiscard]] static Result<NodeCatalog> from_json(const json::value& doc);
  /// The built-in catalog (data/sim/nodes.json, compiled in).
  [[nodiscard]] static Result<NodeCatalog> load_default();

  /// Adds the classes of `other`: a class already here is replaced in place (the later file
  /// wins), a new one is appended.
  void merge(const NodeCatalog& other);

  [[nodiscard]] const comfy::NodeClassInfo* find(std::string_view class_type) const noexcept;
  [[nodiscard]] bool contains(std::string_view class_type) const noexcept {
    return find(class_type) != nullptr;
  }
  /// OUTPUT_NODE of the class; false for an unknown class.
  [[nodiscard]] bool is_output_node(std::string_view class_type) const noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return info_.classes.size(); }

  /// The classes as written in the files (model-file combos still empty; see
  /// SimData::object_info_json for the body a server sends).
  [[nodiscard]] const json::object& to_json() const noexcept { return raw_; }
  /// The classes decoded, in file order.
  [[nodiscard]] const comfy::ObjectInfo& info() const noexcept { return info_; }

 private:
  json::object raw_;
  comfy::ObjectInfo info_;
};

}  // namespace comfyfarm::sim
