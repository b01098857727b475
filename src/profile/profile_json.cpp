#include "profile/profile_json.hpp"

#include "comfy/json_util.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <optional>
#include <utility>

namespace comfyfarm::profile {

namespace {

json::value ms_or_null(const std::optional<Duration>& d) {
  return d ? json::value(to_ms(*d)) : json::value(nullptr);
}
json::value at_or_null(const std::optional<TimePoint>& t) {
  return t ? json::value(to_epoch_ms(*t)) : json::value(nullptr);
}
json::value str_or_null(const std::optional<std::string>& s) {
  return s ? json::value(*s) : json::value(nullptr);
}
json::array strings(const std::vector<std::string>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

json::object stats_json(const DurationStats& s) {
  return json::object{{"count", s.count},          {"min_ms", to_ms(s.min)},
                      {"p50_ms", to_ms(s.p50)},     {"p95_ms", to_ms(s.p95)},
                      {"max_ms", to_ms(s.max)},     {"mean_ms", to_ms(s.mean)}};
}

json::object category_json(const CategoryTime& c) {
  return json::object{{"total_ms", to_ms(c.total)},
                      {"share_percent", c.share * 100.0},
                      {"nodes", strings(c.nodes)}};
}

json::value node_json(const NodeProfile& n) {
  json::array intervals;
  for (const auto& iv : n.intervals) {
    intervals.push_back(json::object{{"start_ms", to_epoch_ms(iv.start)},
                                     {"end_ms", to_epoch_ms(iv.end)},
                                     {"duration_ms", to_ms(iv.duration())},
                                     {"unit", iv.unit},
                                     {"start_source", to_string(iv.start_source)},
                                     {"end_source", to_string(iv.end_source)}});
  }
  json::array progress;
  for (const auto& s : n.progress) {
    progress.push_back(json::object{{"t_ms", to_epoch_ms(s.at)}, {"value", s.value}, {"max", s.max}});
  }
  json::object o;
  o["node_id"] = n.id;
  o["class_type"] = n.class_type;
  o["title"] = n.title;
  o["status"] = to_string(n.status);
  o["cached"] = n.cached;
  o["has_output"] = n.has_output;
  o["started_at_ms"] = at_or_null(n.started_at);
  o["completed_at_ms"] = at_or_null(n.completed_at);
  o["duration_ms"] = ms_or_null(n.duration);
  o["executions"] = n.executions;
  o["sequence"] = n.sequence ? json::value(*n.sequence) : json::value(nullptr);
  o["inputs_from"] = strings(n.inputs_from);
  o["sub_nodes"] = strings(n.sub_nodes);
  o["intervals"] = std::move(intervals);
  o["progress"] = std::move(progress);
  o["previews"] = n.previews;
  o["progress_text"] = str_or_null(n.progress_text);
  o["error"] = n.error ? json::value(json::object{{"exception_type", n.error->exception_type},
                                                  {"exception_message", n.error->exception_message}})
                       : json::value(nullptr);
  return o;
}

json::value failure_json(const std::optional<PromptFailure>& f, bool with_exception) {
  if (!f) return nullptr;
  json::object o{{"node_id", f->node_id}, {"node_type", f->node_type}};
  if (with_exception) {
    o["exception_type"] = f->exception_type;
    o["exception_message"] = f->exception_message;
  }
  return o;
}

// ---------------------------------------------------------------------------------------------
// Reading: a field reader that keeps the first error and hands out defaults after it.

class Reader {
 public:
  const json::object* object(const json::value& v, const std::string& path) {
    if (v.is_object()) return &v.get_object();
    fail_at(path, "expected an object");
    return nullptr;
  }
  const json::value* field(const json::object& o, std::string_view key) {
    const auto* v = o.if_contains(key);
    return v && !v->is_null() ? v : nullptr;
  }
  std::string str(const json::object& o, std::string_view key, const std::string& path) {
    const auto* v = field(o, key);
    if (!v) return {};
    if (!v->is_string()) {
      fail_at(path + "." + std::string(key), "expected a string");
      return {};
    }
    return std::string(v->get_string());
  }
  std::optional<std::string> opt_str(const json::object& o, std::string_view key,
                                     const std::string& path) {
    if (!field(o, key)) return std::nullopt;
    return str(o, key, path);
  }
  bool boolean(const json::object& o, std::string_view key, const std::string& path) {
    const auto* v = field(o, key);
    if (!v) return false;
    if (!v->is_bool()) {
      fail_at(path + "." + std::string(key), "expected a boolean");
      return false;
    }
    return v->get_bool();
  }
  std::optional<double> number(const json::object& o, std::string_view key, const std::string& path) {
    const auto* v = field(o, key);
    if (!v) return std::nullopt;
    if (!v->is_number()) {
      fail_at(path + "." + std::string(key), "expected a number");
      return std::nullopt;
    }
    return v->to_number<double>();
  }
  std::size_t count(const json::object& o, std::string_view key, const std::string& path) {
    auto n = number(o, key, path);
    return n && *n > 0 ? static_cast<std::size_t>(*n) : 0;
  }
  std::optional<TimePoint> at(const json::object& o, std::string_view key, const std::string& path) {
    auto n = number(o, key, path);
    if (!n) return std::nullopt;
    return from_epoch_ms_double(*n);
  }
  std::optional<Duration> dur(const json::object& o, std::string_view key, const std::string& path) {
    auto n = number(o, key, path);
    if (!n) return std::nullopt;
    return from_ms(*n);
  }
  std::vector<std::string> str_list(const json::object& o, std::string_view key,
                                    const std::string& path) {
    std::vector<std::string> out;
    const auto* v = field(o, key);
    if (!v) return out;
    if (!v->is_array()) {
      fail_at(path + "." + std::string(key), "expected an array");
      return out;
    }
    for (const auto& e : v->get_array()) {
      if (!e.is_string()) {
        fail_at(path + "." + std::string(key), "expected an array of strings");
        return out;
      }
      out.emplace_back(e.get_string());
    }
    return out;
  }
  const json::array* array(const json::object& o, std::string_view key, const std::string& path) {
    const auto* v = field(o, key);
    if (!v) return nullptr;
    if (!v->is_array()) {
      fail_at(path + "." + std::string(key), "expected an array");
      return nullptr;
    }
    return &v->get_array();
  }
  template <class E>
  E enumeration(const json::object& o, std::string_view key, const std::string& path,
                std::optional<E> (*parse)(std::string_view) noexcept, E fallback) {
    const std::string s = str(o, key, path);
    if (s.empty()) return fallback;
    if (auto e = parse(s)) return *e;
    fail_at(path + "." + std::string(key), "unknown value \"" + s + "\"");
    return fallback;
  }
  void fail_at(const std::string& path, const std::string& what) {
    if (!error) error = fail(Errc::kInvalidArgument, "profile: " + path + ": " + what);
  }
  std::optional<Error> error;
};

NodeProfile read_node(Reader& r, const json::object& o, const std::string& path) {
  NodeProfile n;
  n.id = r.str(o, "node_id", path);
  if (n.id.empty()) r.fail_at(path + ".node_id", "missing");
  n.class_type = r.str(o, "class_type", path);
  n.title = r.str(o, "title", path);
  n.status = r.enumeration(o, "status", path, &node_status_from_string, NodeStatus::kPending);
  n.cached = r.boolean(o, "cached", path);
  n.has_output = r.boolean(o, "has_output", path);
  n.started_at = r.at(o, "started_at_ms", path);
  n.completed_at = r.at(o, "completed_at_ms", path);
  n.duration = r.dur(o, "duration_ms", path);
  n.executions = r.count(o, "executions", path);
  if (auto s = r.number(o, "sequence", path)) n.sequence = static_cast<std::size_t>(*s);
  n.inputs_from = r.str_list(o, "inputs_from", path);
  n.sub_nodes = r.str_list(o, "sub_nodes", path);
  if (const auto* a = r.array(o, "intervals", path)) {
    for (std::size_t i = 0; i < a->size(); ++i) {
      const std::string p = path + ".intervals[" + std::to_string(i) + "]";
      const auto* io = r.object((*a)[i], p);
      if (!io) break;
      NodeInterval iv;
      iv.start = r.at(*io, "start_ms", p).value_or(TimePoint{});
      iv.end = r.at(*io, "end_ms", p).value_or(iv.start);
      iv.unit = r.str(*io, "unit", p);
      iv.start_source = r.enumeration(*io, "start_source", p, &start_source_from_string,
                                      StartSource::kRunningSnapshot);
      iv.end_source =
          r.enumeration(*io, "end_source", p, &end_source_from_string, EndSource::kFinishedSnapshot);
      n.intervals.push_back(std::move(iv));
    }
  }
  if (const auto* a = r.array(o, "progress", path)) {
    for (std::size_t i = 0; i < a->size(); ++i) {
      const std::string p = path + ".progress[" + std::to_string(i) + "]";
      const auto* so = r.object((*a)[i], p);
      if (!so) break;
      n.progress.push_back(ProgressSample{r.at(*so, "t_ms", p).value_or(TimePoint{}),
                                          r.number(*so, "value", p).value_or(0),
                                          r.number(*so, "max", p).value_or(0)});
    }
  }
  n.previews = r.count(o, "previews", path);
  n.progress_text = r.opt_str(o, "progress_text", path);
  if (const auto* e = r.field(o, "error")) {
    if (const auto* eo = r.object(*e, path + ".error")) {
      n.error = NodeFailure{r.str(*eo, "exception_type", path + ".error"),
                            r.str(*eo, "exception_message", path + ".error")};
    }
  }
  return n;
}

std::optional<PromptFailure> read_failure(Reader& r, const json::object& o, std::string_view key) {
  const auto* v = r.field(o, key);
  if (!v) return std::nullopt;
  const std::string path(key);
  const auto* fo = r.object(*v, path);
  if (!fo) return std::nullopt;
  return PromptFailure{r.str(*fo, "node_id", path), r.str(*fo, "node_type", path),
                       r.str(*fo, "exception_type", path), r.str(*fo, "exception_message", path)};
}

void pretty_to(std::string& out, const json::value& v, int depth) {
  const std::string pad(static_cast<std::size_t>(depth + 1) * 2, ' ');
  const std::string close_pad(static_cast<std::size_t>(depth) * 2, ' ');
  const comfy::DumpOptions opts{.spaced = true, .sort_keys = false, .ensure_ascii = false};
  if (v.is_object()) {
    const auto& o = v.get_object();
    if (o.empty()) {
      out += "{}";
      return;
    }
    out += "{\n";
    bool first = true;
    for (const auto& kv : o) {
      if (!first) out += ",\n";
      first = false;
      out += pad;
      comfy::dump_to(out, json::value(kv.key()), opts);
      out += ": ";
      pretty_to(out, kv.value(), depth + 1);
    }
    out += "\n" + close_pad + "}";
  } else if (v.is_array()) {
    const auto& a = v.get_array();
    if (a.empty()) {
      out += "[]";
      return;
    }
    bool scalars = true;
    for (const auto& e : a) scalars = scalars && !e.is_object() && !e.is_array();
    if (scalars) {  // short lists of ids stay on one line
      comfy::dump_to(out, v, opts);
      return;
    }
    out += "[\n";
    bool first = true;
    for (const auto& e : a) {
      if (!first) out += ",\n";
      first = false;
      out += pad;
      pretty_to(out, e, depth + 1);
    }
    out += "\n" + close_pad + "]";
  } else {
    comfy::dump_to(out, v, opts);
  }
}

}  // namespace

json::value to_json(const JobProfile& p, const ProfileAnalysis* analysis) {
  json::object o;
  o["schema"] = kProfileSchema;
  o["prompt_id"] = p.prompt_id;
  o["label"] = p.label;
  o["backend"] = p.backend;
  o["workflow"] = p.workflow;
  o["outcome"] = to_string(p.outcome);
  std::optional<std::int64_t> server_exec;
  if (p.server_started_ms && p.server_completed_ms) {
    server_exec = *p.server_completed_ms - *p.server_started_ms;
  }
  auto int_or_null = [](const std::optional<std::int64_t>& v) {
    return v ? json::value(*v) : json::value(nullptr);
  };
  o["timing"] = json::object{
      {"queued_at_ms", at_or_null(p.queued_at)},
      {"started_at_ms", at_or_null(p.started_at)},
      {"completed_at_ms", at_or_null(p.completed_at)},
      {"closed_at_ms", at_or_null(p.closed_at)},
      {"start_inferred", p.start_inferred},
      {"completion_inferred", p.completion_inferred},
      {"total_duration_ms", ms_or_null(p.total_duration)},
      {"queue_time_ms", ms_or_null(p.queue_time)},
      {"execution_time_ms", ms_or_null(p.execution_time)},
      {"server_started_at_ms", int_or_null(p.server_started_ms)},
      {"server_completed_at_ms", int_or_null(p.server_completed_ms)},
      {"server_execution_time_ms", int_or_null(server_exec)},
      {"delivery_lag_spread_ms", ms_or_null(p.delivery_lag_spread)},
  };
  o["server"] = json::object{
      {"progress_state", p.saw_progress_state},
      {"execution_success", p.saw_execution_success},
      {"history_merged", p.used_history},
      {"executed", p.server_executed ? json::value(strings(*p.server_executed))
                                     : json::value(nullptr)},
  };
  o["graph_known"] = p.graph_known;
  o["error"] = failure_json(p.error, true);
  o["interrupted"] = failure_json(p.interrupted, false);
  json::array slowest;
  for (const auto& s : p.summary.slowest_nodes) {
    slowest.push_back(json::object{{"node_id", s.node_id},
                                   {"class_type", s.class_type},
                                   {"title", s.title},
                                   {"duration_ms", to_ms(s.duration)}});
  }
  o["summary"] = json::object{
      {"total_nodes", p.summary.total_nodes},
      {"executed_nodes", p.summary.executed_nodes},
      {"cached_nodes", p.summary.cached_nodes},
      {"failed_nodes", p.summary.failed_nodes},
      {"interrupted_nodes", p.summary.interrupted_nodes},
      {"executing_nodes", p.summary.executing_nodes},
      {"pending_nodes", p.summary.pending_nodes},
      {"slowest_nodes", std::move(slowest)},
      {"progress_nodes", strings(p.summary.progress_nodes)},
  };
  json::array nodes;
  nodes.reserve(p.nodes.size());
  for (const auto& n : p.nodes) nodes.push_back(node_json(n));
  o["nodes"] = std::move(nodes);
  o["events"] = json::object{
      {"applied", p.events}, {"ignored", p.ignored_events}, {"dropped", p.dropped_events}};
  if (analysis) o["analysis"] = to_json(*analysis);
  return o;
}

json::value to_json(const ProfileAnalysis& a) {
  json::array bottlenecks;
  for (const auto& b : a.bottlenecks) {
    bottlenecks.push_back(json::object{{"node_id", b.node_id},
                                       {"class_type", b.class_type},
                                       {"title", b.title},
                                       {"kind", to_string(b.kind)},
                                       {"severity", to_string(b.severity)},
                                       {"reason", b.reason},
                                       {"impact", b.impact},
                                       {"duration_ms", to_ms(b.duration)},
                                       {"share_percent", b.share * 100.0},
                                       {"on_critical_path", b.on_critical_path}});
  }
  json::array classes;
  for (const auto& c : a.by_class) {
    classes.push_back(json::object{{"class_type", c.class_type},
                                   {"executed", c.executed},
                                   {"cached", c.cached},
                                   {"total_ms", to_ms(c.total)},
                                   {"average_ms", to_ms(c.average)},
                                   {"share_percent", c.share * 100.0}});
  }
  json::array rates;
  for (const auto& s : a.step_rates) {
    rates.push_back(json::object{
        {"node_id", s.node_id}, {"steps_per_second", s.steps_per_second}, {"samples", s.samples}});
  }
  json::array recs;
  for (const auto& r : a.recommendations) {
    recs.push_back(json::object{{"code", r.code}, {"text", r.text}});
  }
  json::object o;
  o["graph_known"] = a.graph_known;
  o["ran_nodes"] = a.ran_nodes;
  o["node_time_ms"] = to_ms(a.node_time);
  o["unaccounted_ms"] = to_ms(a.unaccounted);
  o["critical_path"] = json::object{{"nodes", strings(a.critical_path.nodes)},
                                    {"length_ms", to_ms(a.critical_path.length)}};
  o["speedup_bound"] = a.speedup_bound;
  o["parallelizability_percent"] = a.parallelizability;
  o["average_node_ms"] = to_ms(a.average_node_time);
  o["median_node_ms"] = to_ms(a.median_node_time);
  o["bottlenecks"] = std::move(bottlenecks);
  o["by_class"] = std::move(classes);
  o["model_loading"] = category_json(a.model_loading);
  o["sampling"] = category_json(a.sampling);
  o["vae_decode"] = category_json(a.vae_decode);
  o["cache_hit_ratio"] = a.cache_hit_ratio;
  o["step_rates"] = std::move(rates);
  o["recommendations"] = std::move(recs);
  return o;
}

json::value to_json(const ProfileAggregate& a) {
  json::array nodes;
  for (const auto& n : a.nodes) {
    nodes.push_back(json::object{{"node_id", n.node_id},
                                 {"class_type", n.class_type},
                                 {"title", n.title},
                                 {"runs_executed", n.runs_executed},
                                 {"runs_cached", n.runs_cached},
                                 {"runs_failed", n.runs_failed},
                                 {"duration", stats_json(n.duration)},
                                 {"cold_ms", ms_or_null(n.cold)},
                                 {"warm_p50_ms", ms_or_null(n.warm_p50)}});
  }
  return json::object{{"runs", a.runs},
                      {"succeeded", a.succeeded},
                      {"failed", a.failed},
                      {"execution_time", stats_json(a.execution_time)},
                      {"total_duration", stats_json(a.total_duration)},
                      {"queue_time", stats_json(a.queue_time)},
                      {"cold_execution_ms", ms_or_null(a.cold_execution_time)},
                      {"warm_execution_p50_ms", ms_or_null(a.warm_execution_p50)},
                      {"cache_hit_ratio", a.cache_hit_ratio},
                      {"nodes", std::move(nodes)}};
}

json::value to_json(const ProfileComparison& c) {
  auto status = [](const std::optional<NodeStatus>& s) {
    return s ? json::value(to_string(*s)) : json::value(nullptr);
  };
  json::array nodes;
  for (const auto& d : c.nodes) {
    nodes.push_back(json::object{{"node_id", d.node_id},
                                 {"class_type", d.class_type},
                                 {"title", d.title},
                                 {"baseline_status", status(d.baseline_status)},
                                 {"current_status", status(d.current_status)},
                                 {"baseline_ms", ms_or_null(d.baseline)},
                                 {"current_ms", ms_or_null(d.current)},
                                 {"delta_ms", to_ms(d.delta)},
                                 {"delta_percent", d.delta_percent},
                                 {"verdict", to_string(d.verdict)}});
  }
  return json::object{
      {"baseline_prompt_id", c.baseline_prompt_id},
      {"current_prompt_id", c.current_prompt_id},
      {"threshold_percent", c.options.threshold_percent},
      {"min_delta_ms", to_ms(c.options.min_delta)},
      {"execution",
       json::object{{"baseline_ms", ms_or_null(c.baseline_execution)},
                    {"current_ms", ms_or_null(c.current_execution)},
                    {"delta_ms", to_ms(c.execution_delta)},
                    {"delta_percent", c.execution_delta_percent},
                    {"verdict", to_string(c.execution_verdict)}}},
      {"regressions", c.regressions},
      {"improvements", c.improvements},
      {"has_regression", c.has_regression()},
      {"nodes", std::move(nodes)}};
}

json::value profile_set_to_json(std::span<const JobProfile> runs, const AnalysisOptions& options,
                                const ProfileComparison* comparison) {
  json::array arr;
  for (const auto& p : runs) {
    const ProfileAnalysis a = analyze(p, options);
    arr.push_back(to_json(p, &a));
  }
  return json::object{{"schema", kProfileSetSchema},
                      {"runs", std::move(arr)},
                      {"aggregate", to_json(aggregate(runs))},
                      {"comparison", comparison ? to_json(*comparison) : json::value(nullptr)}};
}

Result<JobProfile> profile_from_json(const json::value& doc) {
  Reader r;
  const auto* o = r.object(doc, "(document)");
  if (!o) return *r.error;
  const std::string schema = r.str(*o, "schema", "");
  if (schema != kProfileSchema) {
    return fail(Errc::kInvalidArgument, "profile: schema is \"" + schema + "\", expected \"" +
                                            std::string(kProfileSchema) + "\"");
  }
  JobProfile p;
  p.prompt_id = r.str(*o, "prompt_id", "");
  p.label = r.str(*o, "label", "");
  p.backend = r.str(*o, "backend", "");
  p.workflow = r.str(*o, "workflow", "");
  p.outcome = r.enumeration(*o, "outcome", "", &outcome_from_string, Outcome::kNotStarted);
  if (const auto* tv = r.field(*o, "timing")) {
    if (const auto* t = r.object(*tv, "timing")) {
      p.queued_at = r.at(*t, "queued_at_ms", "timing");
      p.started_at = r.at(*t, "started_at_ms", "timing");
      p.completed_at = r.at(*t, "completed_at_ms", "timing");
      p.closed_at = r.at(*t, "closed_at_ms", "timing");
      p.start_inferred = r.boolean(*t, "start_inferred", "timing");
      p.completion_inferred = r.boolean(*t, "completion_inferred", "timing");
      p.total_duration = r.dur(*t, "total_duration_ms", "timing");
      p.queue_time = r.dur(*t, "queue_time_ms", "timing");
      p.execution_time = r.dur(*t, "execution_time_ms", "timing");
      if (auto v = r.number(*t, "server_started_at_ms", "timing")) {
        p.server_started_ms = static_cast<std::int64_t>(*v);
      }
      if (auto v = r.number(*t, "server_completed_at_ms", "timing")) {
        p.server_completed_ms = static_cast<std::int64_t>(*v);
      }
      p.delivery_lag_spread = r.dur(*t, "delivery_lag_spread_ms", "timing");
    }
  }
  if (const auto* sv = r.field(*o, "server")) {
    if (const auto* s = r.object(*sv, "server")) {
      p.saw_progress_state = r.boolean(*s, "progress_state", "server");
      p.saw_execution_success = r.boolean(*s, "execution_success", "server");
      p.used_history = r.boolean(*s, "history_merged", "server");
      if (r.field(*s, "executed")) p.server_executed = r.str_list(*s, "executed", "server");
    }
  }
  p.graph_known = r.boolean(*o, "graph_known", "");
  p.error = read_failure(r, *o, "error");
  p.interrupted = read_failure(r, *o, "interrupted");
  const auto* nodes = r.array(*o, "nodes", "");
  if (!nodes && !r.error) r.fail_at("nodes", "missing");
  if (nodes) {
    for (std::size_t i = 0; i < nodes->size() && !r.error; ++i) {
      const std::string path = "nodes[" + std::to_string(i) + "]";
      if (const auto* no = r.object((*nodes)[i], path)) p.nodes.push_back(read_node(r, *no, path));
    }
  }
  if (const auto* ev = r.field(*o, "events")) {
    if (const auto* e = r.object(*ev, "events")) {
      p.events = r.count(*e, "applied", "events");
      p.ignored_events = r.count(*e, "ignored", "events");
      p.dropped_events = r.count(*e, "dropped", "events");
    }
  }
  if (r.error) return *r.error;
  summarize(p);
  return p;
}

Result<std::vector<JobProfile>> profiles_from_json(const json::value& doc) {
  std::vector<JobProfile> out;
  if (doc.is_object()) {
    const auto* schema = doc.get_object().if_contains("schema");
    if (schema && schema->is_string() && schema->get_string() == kProfileSetSchema) {
      const auto* runs = doc.get_object().if_contains("runs");
      if (!runs || !runs->is_array()) {
        return fail(Errc::kInvalidArgument, "profile-set: runs: expected an array");
      }
      for (const auto& run : runs->get_array()) {
        auto p = profile_from_json(run);
        if (!p) return p.error();
        out.push_back(std::move(*p));
      }
      return out;
    }
  }
  auto p = profile_from_json(doc);
  if (!p) return p.error();
  out.push_back(std::move(*p));
  return out;
}

std::string pretty_json(const json::value& v) {
  std::string out;
  pretty_to(out, v, 0);
  out += '\n';
  return out;
}

}  // namespace comfyfarm::profile
