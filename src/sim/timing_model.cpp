#include "sim/timing_model.hpp"

#include "comfy/json_util.hpp"
#include "sim/default_data.hpp"
#include "sim/detail/data_reader.hpp"

#include <boost/json/object.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <utility>

namespace comfyfarm::sim {

namespace {

using detail::DataReader;

Result<void> read_shape(const DataReader& r, const json::value& v, const std::string& path,
                        ShapeRule& out) {
  if (!v.is_object()) return r.expected(path, "an object", v);
  const auto& o = v.get_object();
  if (auto k = r.only_keys(o, path,
                           {"from", "width", "height", "batch", "scale", "factor",
                            "model_factor_input", "input_image"});
      !k) {
    return k;
  }
  for (auto [key, field] :
       {std::pair{"from", &out.from}, std::pair{"width", &out.width},
        std::pair{"height", &out.height}, std::pair{"batch", &out.batch},
        std::pair{"scale", &out.scale}, std::pair{"model_factor_input", &out.model_factor_input},
        std::pair{"input_image", &out.input_image}}) {
    if (auto s = r.string(o, key, path, *field); !s) return s;
  }
  return r.number(o, "factor", path, out.factor);
}

Result<void> read_progress(const DataReader& r, const json::value& v, const std::string& path,
                           ProgressRule& out) {
  if (!v.is_object()) return r.expected(path, "an object", v);
  const auto& o = v.get_object();
  if (auto k = r.only_keys(o, path, {"kind", "steps", "start", "end"}); !k) return k;
  std::string kind = "none";
  if (auto s = r.string(o, "kind", path, kind); !s) return s;
  if (kind == "none") {
    out.kind = ProgressKind::kNone;
  } else if (kind == "steps") {
    out.kind = ProgressKind::kSteps;
  } else if (kind == "images") {
    out.kind = ProgressKind::kImages;
  } else {
    return r.error(DataReader::join(path, "kind"),
                   "expected \"none\", \"steps\" or \"images\", found \"" + kind + "\"");
  }
  for (auto [key, field] : {std::pair{"steps", &out.steps}, std::pair{"start", &out.start},
                            std::pair{"end", &out.end}}) {
    if (auto s = r.string(o, key, path, *field); !s) return s;
  }
  return {};
}

Result<void> read_class(const DataReader& r, const json::value& v, const std::string& path,
                        ClassBehaviour& out) {
  if (!v.is_object()) return r.expected(path, "an object", v);
  const auto& o = v.get_object();
  if (auto k = r.only_keys(
          o, path,
          {"base_ms", "per_image_ms", "per_megapixel_ms", "per_step_megapixel_ms",
           "activation_base_bytes", "activation_per_megapixel_bytes", "uses_models",
           "combo_folders", "shape", "progress", "ui", "eval", "progress_text", "always_rerun",
           "not_idempotent", "fingerprint_input", "sampler_input", "cfg_input"});
      !k) {
    return k;
  }
  for (auto [key, field] :
       {std::pair{"base_ms", &out.base_ms}, std::pair{"per_image_ms", &out.per_image_ms},
        std::pair{"per_megapixel_ms", &out.per_megapixel_ms},
        std::pair{"per_step_megapixel_ms", &out.per_step_megapixel_ms}}) {
    if (auto n = r.number(o, key, path, *field); !n) return n;
  }
  if (auto b = r.bytes(o, "activation_base_bytes", path, out.activation_base_bytes); !b) return b;
  if (auto b =
          r.bytes(o, "activation_per_megapixel_bytes", path, out.activation_per_megapixel_bytes);
      !b) {
    return b;
  }
  for (auto [key, field] :
       {std::pair{"uses_models", &out.uses_models}, std::pair{"always_rerun", &out.always_rerun},
        std::pair{"not_idempotent", &out.not_idempotent}}) {
    if (auto b = r.boolean(o, key, path, *field); !b) return b;
  }
  for (auto [key, field] :
       {std::pair{"fingerprint_input", &out.fingerprint_input},
        std::pair{"sampler_input", &out.sampler_input}, std::pair{"cfg_input", &out.cfg_input}}) {
    if (auto s = r.string(o, key, path, *field); !s) return s;
  }
  if (const auto* folders = o.if_contains("combo_folders")) {
    const std::string p = DataReader::join(path, "combo_folders");
    if (!folders->is_object()) return r.expected(p, "an object of input -> folder", *folders);
    for (const auto& kv : folders->get_object()) {
      if (!kv.value().is_string()) {
        return r.expected(DataReader::join(p, kv.key()), "a folder name", kv.value());
      }
      out.combo_folders.emplace_back(std::string(kv.key()), std::string(kv.value().get_string()));
    }
  }
  if (const auto* shape = o.if_contains("shape")) {
    ShapeRule rule;
    if (auto s = read_shape(r, *shape, DataReader::join(path, "shape"), rule); !s) return s;
    out.shape = std::move(rule);
  }
  if (const auto* progress = o.if_contains("progress")) {
    if (auto p = read_progress(r, *progress, DataReader::join(path, "progress"), out.progress);
        !p) {
      return p;
    }
  }
  std::string ui = "none";
  if (auto s = r.string(o, "ui", path, ui); !s) return s;
  if (ui == "none") {
    out.ui = UiKind::kNone;
  } else if (ui == "save_images") {
    out.ui = UiKind::kSaveImages;
  } else if (ui == "preview_images") {
    out.ui = UiKind::kPreviewImages;
  } else if (ui == "text") {
    out.ui = UiKind::kText;
  } else {
    return r.error(
        DataReader::join(path, "ui"),
        "expected \"none\", \"save_images\", \"preview_images\" or \"text\", found \"" + ui + "\"");
  }
  std::string eval = "none";
  if (auto s = r.string(o, "eval", path, eval); !s) return s;
  if (eval == "none") {
    out.eval = EvalKind::kNone;
  } else if (eval == "primitive") {
    out.eval = EvalKind::kPrimitive;
  } else if (eval == "concat") {
    out.eval = EvalKind::kConcat;
  } else if (eval == "image_size") {
    out.eval = EvalKind::kImageSize;
  } else if (eval == "empty_image") {
    out.eval = EvalKind::kEmptyImage;
  } else if (eval == "invert") {
    out.eval = EvalKind::kInvert;
  } else {
    return r.error(DataReader::join(path, "eval"),
                   "expected \"none\", \"primitive\", \"concat\", \"image_size\", "
                   "\"empty_image\" or \"invert\", found \"" +
                       eval + "\"");
  }
  std::string text;
  if (auto s = r.string(o, "progress_text", path, text); !s) return s;
  if (!text.empty() && text != "image_size") {
    return r.error(DataReader::join(path, "progress_text"),
                   "expected \"image_size\", found \"" + text + "\"");
  }
  out.progress_text_image_size = text == "image_size";
  return {};
}

Result<void> read_factors(const DataReader& r, const json::object& o, std::string_view key,
                          std::map<std::string, double, std::less<>>& out) {
  const auto* v = o.if_contains(key);
  if (v == nullptr) return {};
  if (!v->is_object()) return r.expected(key, "an object of name -> factor", *v);
  for (const auto& kv : v->get_object()) {
    double f = 0.0;
    json::object one;
    one.emplace(kv.key(), kv.value());
    if (auto n = r.number(one, kv.key(), key, f); !n) return n;
    if (f <= 0.0) return r.error(DataReader::join(key, kv.key()), "must be positive");
    out.insert_or_assign(std::string(kv.key()), f);
  }
  return {};
}

}  // namespace

Result<TimingModel> TimingModel::parse(std::string_view json_text) {
  auto doc = comfy::parse_json(json_text);
  if (!doc) return fail(Errc::kInvalidArgument, "timing: " + doc.error().message);
  return from_json(*doc);
}

Result<TimingModel> TimingModel::from_json(const json::value& doc) {
  TimingModel m;
  if (auto r = m.apply(doc); !r) return r.error();
  return m;
}

Result<TimingModel> TimingModel::load_default() { return parse(default_timing_json()); }

Result<void> TimingModel::merge_json(std::string_view json_text) {
  auto doc = comfy::parse_json(json_text);
  if (!doc) return fail(Errc::kInvalidArgument, "timing: " + doc.error().message);
  TimingModel copy = *this;
  if (auto r = copy.apply(*doc); !r) return r;
  *this = std::move(copy);
  return {};
}

Result<void> TimingModel::apply(const json::value& doc) {
  const DataReader r("timing");
  if (!doc.is_object()) return r.expected("", "an object", doc);
  const auto& o = doc.get_object();
  if (auto k = r.only_keys(
          o, "",
          {"schema", "speed", "time_scale", "disk_read_bytes_per_s", "vram_upload_bytes_per_s",
           "resident_load_ms", "vram_reserved_bytes", "cfg1_factor", "default_shape",
           "arch_factors", "sampler_factors", "default", "classes"});
      !k) {
    return k;
  }
  std::string schema = "comfyfarm-sim-timing/1";
  if (auto s = r.string(o, "schema", "", schema); !s) return s;
  if (schema != "comfyfarm-sim-timing/1") {
    return r.error("schema", "unsupported schema \"" + schema + "\"");
  }
  for (auto [key, field] : {std::pair{"speed", &speed_}, std::pair{"time_scale", &time_scale_},
                            std::pair{"disk_read_bytes_per_s", &disk_read_bytes_per_s_},
                            std::pair{"vram_upload_bytes_per_s", &vram_upload_bytes_per_s_},
                            std::pair{"resident_load_ms", &resident_load_ms_},
                            std::pair{"cfg1_factor", &cfg1_factor_}}) {
    if (auto n = r.number(o, key, "", *field); !n) return n;
  }
  if (speed_ <= 0.0) return r.error("speed", "must be positive");
  if (disk_read_bytes_per_s_ <= 0.0) return r.error("disk_read_bytes_per_s", "must be positive");
  if (vram_upload_bytes_per_s_ <= 0.0) {
    return r.error("vram_upload_bytes_per_s", "must be positive");
  }
  if (auto b = r.bytes(o, "vram_reserved_bytes", "", vram_reserved_); !b) return b;
  if (const auto* shape = o.if_contains("default_shape")) {
    if (!shape->is_object()) return r.expected("default_shape", "an object", *shape);
    const auto& so = shape->get_object();
    if (auto k = r.only_keys(so, "default_shape", {"width", "height", "batch"}); !k) return k;
    double w = static_cast<double>(default_shape_.width);
    double h = static_cast<double>(default_shape_.height);
    double b = static_cast<double>(default_shape_.batch);
    if (auto n = r.number(so, "width", "default_shape", w); !n) return n;
    if (auto n = r.number(so, "height", "default_shape", h); !n) return n;
    if (auto n = r.number(so, "batch", "default_shape", b); !n) return n;
    default_shape_ = {static_cast<std::int64_t>(w), static_cast<std::int64_t>(h),
                      std::max<std::int64_t>(1, static_cast<std::int64_t>(b))};
  }
  if (auto f = read_factors(r, o, "arch_factors", arch_factors_); !f) return f;
  if (auto f = read_factors(r, o, "sampler_factors", sampler_factors_); !f) return f;
  if (const auto* d = o.if_contains("default")) {
    ClassBehaviour b;
    if (auto c = read_class(r, *d, "default", b); !c) return c;
    default_ = std::move(b);
  }
  if (const auto* classes = o.if_contains("classes")) {
    if (!classes->is_object()) return r.expected("classes", "an object", *classes);
    for (const auto& kv : classes->get_object()) {
      ClassBehaviour b;
      if (auto c = read_class(r, kv.value(), "classes." + std::string(kv.key()), b); !c) {
        return c;
      }
      classes_.insert_or_assign(std::string(kv.key()), std::move(b));
    }
  }
  return {};
}

const ClassBehaviour& TimingModel::behaviour(std::string_view class_type) const {
  const auto it = classes_.find(class_type);
  return it == classes_.end() ? default_ : it->second;
}

bool TimingModel::has_class(std::string_view class_type) const {
  return classes_.find(class_type) != classes_.end();
}

double TimingModel::arch_factor(std::string_view arch) const {
  const auto it = arch_factors_.find(arch);
  return it == arch_factors_.end() ? 1.0 : it->second;
}

double TimingModel::sampler_factor(std::string_view sampler) const {
  const auto it = sampler_factors_.find(sampler);
  return it == sampler_factors_.end() ? 1.0 : it->second;
}

NodeCost TimingModel::cost(const ClassBehaviour& b, const CostInputs& in, double speed,
                           double time_scale) const {
  const double scale = time_scale / (speed > 0.0 ? speed : 1.0);
  const auto batch = static_cast<double>(std::max<std::int64_t>(1, in.batch));
  const double mp = std::max(0.0, in.megapixels);
  NodeCost c;
  switch (b.progress.kind) {
    case ProgressKind::kSteps: {
      double factor = arch_factor(in.arch) * sampler_factor(in.sampler);
      if (in.cfg && std::fabs(*in.cfg - 1.0) < 1e-9) factor *= cfg1_factor_;
      c.setup_ms = (b.base_ms + b.per_image_ms * batch + b.per_megapixel_ms * mp * batch) * scale;
      c.per_update_ms = b.per_step_megapixel_ms * mp * batch * factor * scale;
      c.updates = std::max<std::int64_t>(0, in.steps);
      break;
    }
    case ProgressKind::kImages:
      c.setup_ms = b.base_ms * scale;
      c.per_update_ms = (b.per_image_ms + b.per_megapixel_ms * mp) * scale;
      c.updates = std::max<std::int64_t>(1, in.batch);
      break;
    case ProgressKind::kNone:
      c.setup_ms = (b.base_ms + b.per_image_ms * batch + b.per_megapixel_ms * mp * batch +
                    b.per_step_megapixel_ms *
                        static_cast<double>(std::max<std::int64_t>(0, in.steps)) * mp * batch) *
                   scale;
      break;
  }
  return c;
}

double TimingModel::load_ms(std::uint64_t file_bytes, double time_scale) const {
  return (resident_load_ms_ + static_cast<double>(file_bytes) / disk_read_bytes_per_s_ * 1000.0) *
         time_scale;
}

double TimingModel::upload_ms(std::uint64_t vram_bytes, double time_scale) const {
  return static_cast<double>(vram_bytes) / vram_upload_bytes_per_s_ * 1000.0 * time_scale;
}

}  // namespace comfyfarm::sim
