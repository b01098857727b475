#include "sim/detail/graph_eval.hpp"

#include "comfy/json_util.hpp"
#include "sim/sim_data.hpp"

#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

namespace comfyfarm::sim::detail {

namespace {

/// Types that are data, not weights: values of these types carry no model dependency.
bool is_data_type(std::string_view type) {
  static constexpr std::string_view kData[] = {"IMAGE",  "LATENT",  "MASK", "INT",  "FLOAT",
                                               "STRING", "BOOLEAN", "*",    "NOISE"};
  return std::find(std::begin(kData), std::end(kData), type) != std::end(kData);
}

bool has_size(std::string_view type) {
  return type == "IMAGE" || type == "LATENT" || type == "MASK";
}

std::string type_name(const comfy::TypeSlot& slot) {
  if (const auto* s = std::get_if<std::string>(&slot)) return *s;
  return "COMBO";
}

void add_unique(std::vector<std::string>& v, const std::string& s) {
  if (std::find(v.begin(), v.end(), s) == v.end()) v.push_back(s);
}

const ValueInfo* linked_value(const comfy::NodeInput& in, const std::vector<NodeFacts>& facts) {
  if (!in.link) return nullptr;
  const auto& src = facts[in.link->source];
  if (in.link->output_index >= src.outputs.size()) return nullptr;
  return &src.outputs[in.link->output_index];
}

const ValueInfo* linked_value(const comfy::Node& node, std::string_view name,
                              const std::vector<NodeFacts>& facts) {
  const auto* in = node.input(name);
  return in == nullptr ? nullptr : linked_value(*in, facts);
}

bool is_unique_id_class(const comfy::NodeClassInfo* info) {
  if (info == nullptr || !info->hidden) return false;
  for (const auto& h : *info->hidden) {
    if (const auto* s = std::get_if<std::string>(&h.type); s != nullptr && *s == "UNIQUE_ID") {
      return true;
    }
  }
  return false;
}

std::string hex128(const XXH128_hash_t& h) {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(h.high64),
                static_cast<unsigned long long>(h.low64));
  return buf;
}

std::optional<Shape> compute_shape(const comfy::Node& node, const ClassBehaviour& b,
                                   const SimData& data, const InputFileHooks& hooks,
                                   const std::vector<NodeFacts>& facts) {
  std::optional<Shape> base;
  if (b.shape && !b.shape->from.empty()) {
    if (const auto* v = linked_value(node, b.shape->from, facts)) base = v->shape;
  }
  if (!base) {
    for (const auto& in : node.inputs) {
      if (const auto* v = linked_value(in, facts); v != nullptr && v->shape) {
        base = v->shape;
        break;
      }
    }
  }
  if (!b.shape) return base;
  const auto& rule = *b.shape;
  const auto& d = data.timing.default_shape();
  Shape s = base.value_or(Shape{d.width, d.height, d.batch});
  if (!rule.input_image.empty()) {
    std::optional<Shape> found;
    const auto name = input_value(node, rule.input_image, data, facts);
    if (hooks.image_shape && name && name->is_string()) {
      found = hooks.image_shape(std::string_view(name->get_string()));
    }
    s = found.value_or(Shape{d.width, d.height, 1});
  }
  // -1: not set by the rule; 0 keeps the aspect ratio of the input (LatentUpscale, ImageScale).
  const std::int64_t width =
      rule.width.empty() ? -1 : as_int(input_value(node, rule.width, data, facts)).value_or(-1);
  const std::int64_t height =
      rule.height.empty() ? -1 : as_int(input_value(node, rule.height, data, facts)).value_or(-1);
  const std::int64_t old_w = s.width;
  const std::int64_t old_h = s.height;
  if (width > 0) s.width = width;
  if (height > 0) s.height = height;
  if (width == 0 && height > 0 && old_h > 0)
    s.width = std::max<std::int64_t>(1, old_w * height / old_h);
  if (height == 0 && width > 0 && old_w > 0)
    s.height = std::max<std::int64_t>(1, old_h * width / old_w);
  if (!rule.batch.empty()) {
    if (const auto batch = as_int(input_value(node, rule.batch, data, facts));
        batch && *batch > 0) {
      s.batch = *batch;
    }
  }
  double factor = rule.factor > 0.0 ? rule.factor : 1.0;
  if (!rule.model_factor_input.empty()) {
    if (const auto* v = linked_value(node, rule.model_factor_input, facts);
        v != nullptr && v->model_scale > 0.0) {
      factor = v->model_scale;
    }
  }
  if (!rule.scale.empty()) {
    if (const auto scale = as_double(input_value(node, rule.scale, data, facts)); scale) {
      factor *= *scale;
    }
  }
  if (factor != 1.0) {
    s.width = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::round(static_cast<double>(s.width) * factor)));
    s.height = std::max<std::int64_t>(
        1, static_cast<std::int64_t>(std::round(static_cast<double>(s.height) * factor)));
  }
  return s;
}

}  // namespace

std::optional<std::int64_t> as_int(const std::optional<json::value>& v) {
  if (!v) return std::nullopt;
  if (v->is_int64()) return v->get_int64();
  if (v->is_uint64()) return static_cast<std::int64_t>(v->get_uint64());
  if (v->is_double()) return static_cast<std::int64_t>(v->get_double());
  return std::nullopt;
}

std::optional<double> as_double(const std::optional<json::value>& v) {
  if (!v) return std::nullopt;
  if (v->is_double()) return v->get_double();
  if (v->is_int64()) return static_cast<double>(v->get_int64());
  if (v->is_uint64()) return static_cast<double>(v->get_uint64());
  return std::nullopt;
}

std::optional<json::value> input_value(const comfy::Node& node, std::string_view name,
                                       const SimData& data, const std::vector<NodeFacts>& facts) {
  if (const auto* in = node.input(name)) {
    if (!in->link) return *in->value;
    if (const auto* v = linked_value(*in, facts); v != nullptr && v->scalar) return v->scalar;
    return std::nullopt;
  }
  if (const auto* info = data.catalog.find(node.class_type)) {
    if (const auto* spec = info->find_input(name); spec != nullptr && spec->options) {
      if (const auto* def = spec->options->if_contains("default")) return *def;
    }
  }
  return std::nullopt;
}

std::vector<NodeFacts> evaluate_graph(const comfy::Workflow& graph, const SimData& data,
                                      const InputFileHooks& hooks, std::uint64_t prompt_serial) {
  const auto nodes = graph.nodes();
  std::vector<NodeFacts> facts(nodes.size());
  for (const auto id : graph.topological_order()) {
    const std::size_t index = *graph.index_of(id);
    const comfy::Node& node = nodes[index];
    const auto* info = data.catalog.find(node.class_type);
    const auto& b = data.timing.behaviour(node.class_type);
    NodeFacts& f = facts[index];

    // Model files: a loader's own, and what its linked inputs carry.
    for (const auto& [input, folder] : b.combo_folders) {
      if (folder == "input") continue;
      const auto* in = node.input(input);
      if (in == nullptr || in->link || !in->value->is_string()) continue;
      f.loads.push_back(data.models.resolve(folder, std::string_view(in->value->get_string())));
    }
    std::vector<std::string> carried;
    double model_scale = 0.0;
    for (const auto& in : node.inputs) {
      const auto* v = linked_value(in, facts);
      if (v == nullptr) continue;
      for (const auto& m : v->models) add_unique(carried, m);
      if (f.arch.empty()) f.arch = v->arch;
      if (v->model_scale > 0.0) model_scale = v->model_scale;
    }
    f.needs = carried;
    for (const auto& m : f.loads) {
      add_unique(carried, m.key());
      if (!m.arch.empty()) f.arch = m.arch;
      if (m.scale > 0.0) model_scale = m.scale;
    }

    f.work_shape = compute_shape(node, b, data, hooks, facts);

    std::optional<std::array<double, 3>> rgb;
    if (b.eval == EvalKind::kEmptyImage) {
      if (const auto color = as_int(input_value(node, "color", data, facts))) {
        rgb = std::array<double, 3>{static_cast<double>((*color >> 16) & 0xFF) / 255.0,
                                    static_cast<double>((*color >> 8) & 0xFF) / 255.0,
                                    static_cast<double>(*color & 0xFF) / 255.0};
      }
    } else {
      for (const auto& in : node.inputs) {
        if (const auto* v = linked_value(in, facts); v != nullptr && v->rgb) {
          rgb = v->rgb;
          break;
        }
      }
      if (rgb && b.eval == EvalKind::kInvert) {
        for (auto& c : *rgb) c = 1.0 - c;
      }
    }

    const std::size_t output_count = info == nullptr ? 0 : info->output.size();
    f.outputs.resize(output_count);
    for (std::size_t i = 0; i < output_count; ++i) {
      ValueInfo& out = f.outputs[i];
      out.type = type_name(info->output[i]);
      if (has_size(out.type)) out.shape = f.work_shape;
      if (out.type == "IMAGE") out.rgb = rgb;
      if (!is_data_type(out.type)) {
        out.models = carried;
        out.arch = f.arch;
        out.model_scale = model_scale;
      }
    }
    switch (b.eval) {
      case EvalKind::kPrimitive:
        if (!f.outputs.empty()) f.outputs[0].scalar = input_value(node, "value", data, facts);
        break;
      case EvalKind::kConcat: {
        const auto a = input_value(node, "string_a", data, facts);
        const auto s = input_value(node, "string_b", data, facts);
        const auto d = input_value(node, "delimiter", data, facts);
        if (!f.outputs.empty() && a && s && d && a->is_string() && s->is_string() &&
            d->is_string()) {
          std::string text(a->get_string());
          text += d->get_string();
          text += s->get_string();
          f.outputs[0].scalar = json::value(text);
        }
        break;
      }
      case EvalKind::kImageSize: {
        const auto* v = linked_value(node, "image", facts);
        if (v != nullptr && v->shape && f.outputs.size() >= 3) {
          f.outputs[0].scalar = json::value(v->shape->width);
          f.outputs[1].scalar = json::value(v->shape->height);
          f.outputs[2].scalar = json::value(v->shape->batch);
        }
        if (v != nullptr) f.work_shape = v->shape;
        break;
      }
      default:
        break;
    }

    // Cache signature: class, IS_CHANGED, the id when the class needs it, then the inputs by
    // name, a literal by value and a link by its source's signature and output index.
    std::string key(node.class_type);
    key += '\0';
    if (const auto* changed = node.object->if_contains("is_changed")) {
      key += "C" + comfy::canonical_json(*changed);
    } else if (b.always_rerun) {
      key += "T" + std::to_string(prompt_serial);
    } else if (!b.fingerprint_input.empty()) {
      const auto name = input_value(node, b.fingerprint_input, data, facts);
      key += "F";
      if (hooks.fingerprint && name && name->is_string()) {
        key += hooks.fingerprint(std::string_view(name->get_string()));
      }
    }
    key += '\0';
    if (b.not_idempotent || is_unique_id_class(info)) key += "I" + std::string(node.id);
    key += '\0';
    std::vector<const comfy::NodeInput*> inputs;
    for (const auto& in : node.inputs) inputs.push_back(&in);
    std::sort(inputs.begin(), inputs.end(),
              [](const auto* x, const auto* y) { return x->name < y->name; });
    for (const auto* in : inputs) {
      key += in->name;
      key += '\0';
      if (in->link) {
        key +=
            "L" + facts[in->link->source].signature + ":" + std::to_string(in->link->output_index);
      } else {
        key += "V" + comfy::canonical_json(*in->value);
      }
      key += '\0';
    }
    f.signature = hex128(XXH3_128bits(key.data(), key.size()));
  }
  return facts;
}

}  // namespace comfyfarm::sim::detail
