#include "sim/fault_set.hpp"

#include <boost/json/array.hpp>
#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace comfyfarm::sim {

namespace json = boost::json;

namespace {

constexpr std::string_view kNames[] = {
    "oom",       "crash",        "stall",      "ws-silence",
    "ws-drop",   "http-latency", "http-error", "slow-object-info",
    "node-error"};

bool known_name(std::string_view name) {
  return std::find(std::begin(kNames), std::end(kNames), name) != std::end(kNames);
}

std::optional<std::uint64_t> parse_uint(std::string_view s) {
  std::uint64_t v = 0;
  const auto* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, v);
  if (s.empty() || r.ec != std::errc() || r.ptr != end) return std::nullopt;
  return v;
}

std::optional<double> parse_double(std::string_view s) {
  double v = 0.0;
  const auto* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, v);
  if (s.empty() || r.ec != std::errc() || r.ptr != end || !std::isfinite(v)) return std::nullopt;
  return v;
}

std::optional<double> parse_probability(std::string_view s) {
  const auto v = parse_double(s);
  if (!v || *v < 0.0 || *v > 1.0) return std::nullopt;
  return v;
}

bool is_off(std::string_view v) { return v == "off" || v == "false" || v == "no"; }
bool is_on(std::string_view v) { return v == "on" || v == "true" || v == "yes"; }

std::string format_double(double v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  return std::string(buf, r.ptr);
}

Error bad(std::string_view name, std::optional<std::string_view> value, std::string_view why) {
  std::string spec(name);
  if (value) {
    spec += '=';
    spec += *value;
  }
  return Error{Errc::kInvalidArgument, "fault '" + spec + "': " + std::string(why)};
}

/// A probability or a "word:N" form, as oom and crash take.
struct RateOrCount {
  double probability = 0.0;
  std::optional<std::uint64_t> count{};
};

std::optional<RateOrCount> parse_rate_or_count(std::string_view value, std::string_view word) {
  RateOrCount out;
  if (value.starts_with(word) && value.size() > word.size() && value[word.size()] == ':') {
    out.count = parse_uint(value.substr(word.size() + 1));
    if (!out.count) return std::nullopt;
    return out;
  }
  if (is_off(value)) return out;
  const auto p = parse_probability(value);
  if (!p) return std::nullopt;
  out.probability = *p;
  return out;
}

}  // namespace

Result<FaultSpec> parse_fault_spec(std::string_view text) {
  FaultSpec spec;
  std::string_view rest = text;
  if (rest.starts_with('@')) {
    const auto colon = rest.find(':');
    if (colon == std::string_view::npos) {
      return fail(Errc::kInvalidArgument,
                  "fault '" + std::string(text) + "': expected @INDEX:NAME[=VALUE]");
    }
    const auto index = parse_uint(rest.substr(1, colon - 1));
    if (!index) {
      return fail(Errc::kInvalidArgument, "fault '" + std::string(text) +
                                              "': the server index after '@' must be a "
                                              "non-negative integer");
    }
    spec.target = static_cast<std::size_t>(*index);
    rest = rest.substr(colon + 1);
  }
  const auto eq = rest.find('=');
  spec.name = std::string(rest.substr(0, eq));
  if (eq != std::string_view::npos) spec.value = std::string(rest.substr(eq + 1));
  if (spec.name.empty()) {
    return fail(Errc::kInvalidArgument, "fault '" + std::string(text) + "': no fault name");
  }
  return spec;
}

Result<void> FaultSet::apply(std::string_view name, std::optional<std::string_view> value,
                             bool* drop_now) {
  if (!known_name(name)) {
    return bad(name, value,
               "unknown fault (known: oom, crash, stall, ws-silence, ws-drop, http-latency, "
               "http-error, slow-object-info, node-error)");
  }
  if (name == "oom") {
    if (!value) {
      oom_probability = 0.0;
      oom_every = 1;
      return {};
    }
    const auto r = parse_rate_or_count(*value, "every");
    if (!r || (r->count && *r->count == 0)) {
      return bad(name, value, "expected a probability in [0, 1] or every:N with N >= 1");
    }
    oom_probability = r->probability;
    oom_every = r->count.value_or(0);
    return {};
  }
  if (name == "crash") {
    if (!value) {
      crash_probability = 0.0;
      crash_after = 0;
      return {};
    }
    const auto r = parse_rate_or_count(*value, "after");
    if (!r) return bad(name, value, "expected a probability in [0, 1] or after:N");
    crash_probability = r->probability;
    crash_after = r->count;
    return {};
  }
  if (name == "stall") {
    if (!value || is_on(*value) || *value == "1") {
      stall = true;
    } else if (is_off(*value) || *value == "0") {
      stall = false;
    } else {
      return bad(name, value, "expected on or off");
    }
    return {};
  }
  if (name == "ws-silence" || name == "ws-drop") {
    double& target = name == "ws-silence" ? ws_silence : ws_drop;
    if (!value || is_on(*value)) {
      target = 1.0;
      return {};
    }
    if (name == "ws-drop" && *value == "now") {
      if (drop_now != nullptr) *drop_now = true;
      return {};
    }
    if (is_off(*value)) {
      target = 0.0;
      return {};
    }
    const auto p = parse_probability(*value);
    if (!p) {
      return bad(name, value,
                 name == "ws-drop" ? "expected a probability in [0, 1] or now"
                                   : "expected a probability in [0, 1]");
    }
    target = *p;
    return {};
  }
  if (name == "http-latency" || name == "slow-object-info") {
    std::uint64_t& target = name == "http-latency" ? http_latency_ms : slow_object_info_ms;
    if (value && is_off(*value)) {
      target = 0;
      return {};
    }
    const auto ms = value ? parse_uint(*value) : std::nullopt;
    if (!ms || *ms > 3'600'000) return bad(name, value, "expected milliseconds (0 to 3600000)");
    target = *ms;
    return {};
  }
  if (name == "http-error") {
    if (value && is_off(*value)) {
      http_error_rate = 0.0;
      return {};
    }
    const auto p = value ? parse_probability(*value) : std::nullopt;
    if (!p) return bad(name, value, "expected a rate in [0, 1]");
    http_error_rate = *p;
    return {};
  }
  // node-error
  if (!value || value->empty()) return bad(name, value, "expected a node class name");
  if (is_off(*value)) {
    node_error_classes.clear();
    return {};
  }
  std::vector<std::string> classes;
  std::string_view rest = *value;
  while (!rest.empty()) {
    const auto comma = rest.find(',');
    const auto item = rest.substr(0, comma);
    if (item.empty()) return bad(name, value, "empty class name in the list");
    classes.emplace_back(item);
    if (comma == std::string_view::npos) break;
    rest = rest.substr(comma + 1);
  }
  for (auto& c : classes) {
    if (std::find(node_error_classes.begin(), node_error_classes.end(), c) ==
        node_error_classes.end()) {
      node_error_classes.push_back(std::move(c));
    }
  }
  return {};
}

bool FaultSet::empty() const noexcept { return *this == FaultSet{}; }

std::vector<std::string> FaultSet::specs() const {
  std::vector<std::string> out;
  if (oom_every > 0) out.push_back("oom=every:" + std::to_string(oom_every));
  if (oom_every == 0 && oom_probability > 0.0)
    out.push_back("oom=" + format_double(oom_probability));
  if (crash_after) out.push_back("crash=after:" + std::to_string(*crash_after));
  if (!crash_after && crash_probability > 0.0) {
    out.push_back("crash=" + format_double(crash_probability));
  }
  if (stall) out.emplace_back("stall");
  if (ws_silence > 0.0) out.push_back("ws-silence=" + format_double(ws_silence));
  if (ws_drop > 0.0) out.push_back("ws-drop=" + format_double(ws_drop));
  if (http_latency_ms > 0) out.push_back("http-latency=" + std::to_string(http_latency_ms));
  if (http_error_rate > 0.0) out.push_back("http-error=" + format_double(http_error_rate));
  if (slow_object_info_ms > 0) {
    out.push_back("slow-object-info=" + std::to_string(slow_object_info_ms));
  }
  if (!node_error_classes.empty()) {
    std::string s = "node-error=";
    for (std::size_t i = 0; i < node_error_classes.size(); ++i) {
      if (i > 0) s += ',';
      s += node_error_classes[i];
    }
    out.push_back(std::move(s));
  }
  return out;
}

json::object FaultSet::to_json() const {
  json::object out;
  if (oom_every > 0) {
    out["oom"] = "every:" + std::to_string(oom_every);
  } else if (oom_probability > 0.0) {
    out["oom"] = oom_probability;
  }
  if (crash_after) {
    out["crash"] = "after:" + std::to_string(*crash_after);
  } else if (crash_probability > 0.0) {
    out["crash"] = crash_probability;
  }
  if (stall) out["stall"] = true;
  if (ws_silence > 0.0) out["ws-silence"] = ws_silence;
  if (ws_drop > 0.0) out["ws-drop"] = ws_drop;
  if (http_latency_ms > 0) out["http-latency"] = http_latency_ms;
  if (http_error_rate > 0.0) out["http-error"] = http_error_rate;
  if (slow_object_info_ms > 0) out["slow-object-info"] = slow_object_info_ms;
  if (!node_error_classes.empty()) {
    json::array classes;
    for (const auto& c : node_error_classes) classes.emplace_back(c);
    out["node-error"] = std::move(classes);
  }
  return out;
}

Result<void> FaultSet::apply_json(const json::object& body, bool* drop_now) {
  FaultSet next = *this;
  bool drop = false;
  if (const auto* mode = body.if_contains("mode")) {
    if (!mode->is_string() || (mode->get_string() != "merge" && mode->get_string() != "replace")) {
      return fail(Errc::kInvalidArgument, "\"mode\" must be \"merge\" or \"replace\"");
    }
    if (mode->get_string() == "replace") next = FaultSet{};
  }
  for (const auto& kv : body) {
    const std::string_view key = kv.key();
    const json::value& v = kv.value();
    if (key == "mode") continue;
    if (key == "specs") {
      if (!v.is_array()) return fail(Errc::kInvalidArgument, "\"specs\" must be an array");
      for (const auto& item : v.get_array()) {
        if (!item.is_string()) {
          return fail(Errc::kInvalidArgument, "\"specs\" must hold strings like \"oom=0.5\"");
        }
        auto spec = parse_fault_spec(item.get_string());
        if (!spec) return spec.error();
        if (spec->target) {
          return fail(Errc::kInvalidArgument,
                      "\"specs\": a server's own /sim/faults takes no @INDEX: prefix");
        }
        std::optional<std::string_view> value;
        if (spec->value) value = *spec->value;
        if (auto r = next.apply(spec->name, value, &drop); !r) return r.error();
      }
      continue;
    }
    if (!known_name(key)) {
      return fail(Errc::kInvalidArgument, "unknown fault \"" + std::string(key) + "\"");
    }
    Result<void> r;
    if (v.is_null() || (v.is_bool() && !v.get_bool())) {
      r = next.apply(key, "off", &drop);
    } else if (v.is_bool()) {
      r = next.apply(key, std::nullopt, &drop);
    } else if (v.is_string()) {
      r = next.apply(key, std::string_view(v.get_string()), &drop);
    } else if (v.is_number()) {
      r = next.apply(key, format_double(v.to_number<double>()), &drop);
    } else if (v.is_array() && key == "node-error") {
      next.node_error_classes.clear();
      for (const auto& c : v.get_array()) {
        if (!c.is_string() || c.get_string().empty()) {
          return fail(Errc::kInvalidArgument, "\"node-error\" must list class names");
        }
        r = next.apply(key, std::string_view(c.get_string()), &drop);
        if (!r) break;
      }
    } else {
      return fail(Errc::kInvalidArgument,
                  "fault \"" + std::string(key) + "\": unsupported value " + json::serialize(v));
    }
    if (!r) return r.error();
  }
  *this = std::move(next);
  if (drop_now != nullptr) *drop_now = drop;
  return {};
}

}  // namespace comfyfarm::sim
