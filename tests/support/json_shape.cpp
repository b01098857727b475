#include "support/json_shape.hpp"

#include "comfy/json_util.hpp"

#include <algorithm>

namespace comfyfarm::test {

namespace json = boost::json;

std::string json_kind(const json::value& v) {
  switch (v.kind()) {
    case json::kind::int64:
    case json::kind::uint64:
      return "integer";
    case json::kind::double_:
      return "float";
    default:
      return std::string(comfy::kind_name(v));
  }
}

void compare_shape(const json::value& want, const json::value& got, const std::string& path,
                   const std::string& key, const ShapeOptions& opt,
                   std::vector<std::string>& diffs) {
  if (json_kind(want) != json_kind(got)) {
    diffs.push_back(path + ": " + json_kind(got) + " " + comfy::dumps(got).substr(0, 200) +
                    ", recorded " + json_kind(want) + " " + comfy::dumps(want).substr(0, 200));
    return;
  }
  const bool ignored = opt.ignore_values.contains(key);
  if (want.is_object()) {
    std::vector<std::string> wk;
    std::vector<std::string> gk;
    for (const auto& kv : want.get_object()) wk.emplace_back(kv.key());
    for (const auto& kv : got.get_object()) gk.emplace_back(kv.key());
    if (opt.unordered_objects.contains(key)) {
      std::sort(wk.begin(), wk.end());
      std::sort(gk.begin(), gk.end());
    }
    if (wk != gk) {
      std::string a;
      std::string b;
      for (const auto& k : gk) a += k + ",";
      for (const auto& k : wk) b += k + ",";
      diffs.push_back(path + ": keys [" + a + "], recorded [" + b + "]");
      return;
    }
    for (const auto& k : wk) {
      compare_shape(want.at(k), got.at(k), path + "." + k, k, opt, diffs);
    }
    return;
  }
  if (want.is_array()) {
    const auto& w = want.get_array();
    const auto& g = got.get_array();
    if (w.size() != g.size()) {
      if (ignored) return;
      diffs.push_back(path + ": " + std::to_string(g.size()) + " elements, recorded " +
                      std::to_string(w.size()) + " (" + comfy::dumps(got).substr(0, 300) +
                      " vs " + comfy::dumps(want).substr(0, 300) + ")");
      return;
    }
    for (std::size_t i = 0; i < w.size(); ++i) {
      compare_shape(w[i], g[i], path + "[" + std::to_string(i) + "]",
                    ignored ? key : std::string(), opt, diffs);
    }
    return;
  }
  if (ignored) return;
  if (want != got) {
    diffs.push_back(path + ": " + comfy::dumps(got).substr(0, 400) + ", recorded " +
                    comfy::dumps(want).substr(0, 400));
  }
}

std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += "  " + l + "\n";
  return out;
}

}  // namespace comfyfarm::test
