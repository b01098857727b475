#include "profile/chrome_trace.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

namespace comfyfarm::profile {

namespace json = boost::json;

namespace {

std::string node_name(const NodeProfile& n) {
  std::string s = n.class_type.empty() ? std::string("node") : n.class_type;
  s += " [" + n.id + "]";
  if (!n.title.empty() && n.title != n.class_type) s += " " + n.title;
  return s;
}

std::optional<TimePoint> earliest(const JobProfile& p) {
  std::optional<TimePoint> t = p.queued_at;
  auto take = [&](std::optional<TimePoint> v) {
    if (v && (!t || *v < *t)) t = v;
  };
  take(p.started_at);
  for (const auto& n : p.nodes) take(n.started_at);
  return t;
}

json::object meta(std::string_view name, std::int64_t pid, std::int64_t tid, json::object args) {
  return json::object{{"name", name}, {"ph", "M"}, {"pid", pid}, {"tid", tid},
                      {"args", std::move(args)}};
}

}  // namespace

json::value render_chrome_trace(std::span<const JobProfile> runs) {
  std::optional<TimePoint> origin;
  for (const auto& p : runs) {
    auto t = earliest(p);
    if (t && (!origin || *t < *origin)) origin = t;
  }
  const TimePoint base = origin.value_or(TimePoint{});
  auto ts = [&](TimePoint t) -> std::int64_t { return (t - base).count(); };

  json::array events;
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const JobProfile& p = runs[r];
    const auto pid = static_cast<std::int64_t>(r + 1);
    std::string pname = p.label.empty() ? "run " + std::to_string(r + 1) : p.label;
    if (!p.backend.empty()) pname += " @ " + p.backend;
    if (!p.prompt_id.empty()) pname += " (" + p.prompt_id + ")";
    events.push_back(meta("process_name", pid, 0, json::object{{"name", pname}}));
    events.push_back(meta("process_sort_index", pid, 0, json::object{{"sort_index", pid}}));
    events.push_back(meta("thread_name", pid, 0, json::object{{"name", "job"}}));
    events.push_back(meta("thread_name", pid, 1, json::object{{"name", "executor"}}));

    // The job track: queue wait, then the prompt.
    if (p.queued_at && p.started_at && *p.started_at > *p.queued_at) {
      events.push_back(json::object{{"name", "queue"}, {"cat", "job"}, {"ph", "X"},
                                    {"ts", ts(*p.queued_at)},
                                    {"dur", (*p.started_at - *p.queued_at).count()},
                                    {"pid", pid}, {"tid", 0},
                                    {"args", json::object{{"prompt_id", p.prompt_id}}}});
    }
    if (p.started_at && p.completed_at) {
      events.push_back(json::object{
          {"name", "prompt " + std::string(to_string(p.outcome))}, {"cat", "job"}, {"ph", "X"},
          {"ts", ts(*p.started_at)},
          {"dur", std::max(Duration::zero(), *p.completed_at - *p.started_at).count()},
          {"pid", pid}, {"tid", 0},
          {"args", json::object{{"prompt_id", p.prompt_id},
                                {"outcome", to_string(p.outcome)},
                                {"workflow", p.workflow}}}});
    }

    // Node intervals on lanes: a slice goes to the first lane whose last slice has ended.
    struct Slice {
      const NodeProfile* node;
      const NodeInterval* iv;
    };
    std::vector<Slice> slices;
    for (const auto& n : p.nodes) {
      for (const auto& iv : n.intervals) slices.push_back(Slice{&n, &iv});
    }
    std::stable_sort(slices.begin(), slices.end(), [](const Slice& a, const Slice& b) {
      if (a.iv->start != b.iv->start) return a.iv->start < b.iv->start;
      return a.iv->end > b.iv->end;
    });
    std::vector<TimePoint> lane_end;
    for (const auto& s : slices) {
      std::size_t lane = 0;
      while (lane < lane_end.size() && lane_end[lane] > s.iv->start) ++lane;
      if (lane == lane_end.size()) {
        lane_end.push_back(s.iv->end);
        if (lane > 0) {
          events.push_back(meta("thread_name", pid, static_cast<std::int64_t>(lane + 1),
                                json::object{{"name", "overlap " + std::to_string(lane)}}));
        }
      } else {
        lane_end[lane] = s.iv->end;
      }
      json::object args{{"node_id", s.node->id},
                        {"class_type", s.node->class_type},
                        {"title", s.node->title},
                        {"status", to_string(s.node->status)},
                        {"unit", s.iv->unit},
                        {"start_source", to_string(s.iv->start_source)},
                        {"end_source", to_string(s.iv->end_source)}};
      if (s.node->error) {
        args["error"] = s.node->error->exception_type + ": " + s.node->error->exception_message;
      }
      events.push_back(json::object{{"name", node_name(*s.node)}, {"cat", "node"}, {"ph", "X"},
                                    {"ts", ts(s.iv->start)}, {"dur", s.iv->duration().count()},
                                    {"pid", pid}, {"tid", static_cast<std::int64_t>(lane + 1)},
                                    {"args", std::move(args)}});
    }

    for (const auto& n : p.nodes) {
      if (n.cached && p.started_at) {
        events.push_back(json::object{{"name", "cached " + node_name(n)}, {"cat", "cache"},
                                      {"ph", "i"}, {"s", "t"}, {"ts", ts(*p.started_at)},
                                      {"pid", pid}, {"tid", 0},
                                      {"args", json::object{{"node_id", n.id}}}});
      }
      if (n.status == NodeStatus::kInterrupted && !n.started_at && p.completed_at) {
        events.push_back(json::object{{"name", "interrupted before " + node_name(n)},
                                      {"cat", "job"}, {"ph", "i"}, {"s", "t"},
                                      {"ts", ts(*p.completed_at)}, {"pid", pid}, {"tid", 0},
                                      {"args", json::object{{"node_id", n.id}}}});
      }
      if (n.progress.empty()) continue;
      const std::string counter = "progress " + node_name(n);
      for (const auto& s : n.progress) {
        events.push_back(json::object{{"name", counter}, {"cat", "progress"}, {"ph", "C"},
                                      {"ts", ts(s.at)}, {"pid", pid},
                                      {"args", json::object{{"value", s.value}}}});
      }
      if (n.completed_at && n.status == NodeStatus::kCompleted) {
        events.push_back(json::object{{"name", counter}, {"cat", "progress"}, {"ph", "C"},
                                      {"ts", ts(*n.completed_at)}, {"pid", pid},
                                      {"args", json::object{{"value", n.progress.back().max}}}});
      }
    }
  }
  return json::object{
      {"traceEvents", std::move(events)},
      {"displayTimeUnit", "ms"},
      {"otherData",
       json::object{{"schema", "comfyfarm.profile-trace/1"},
                    {"origin_epoch_ms", origin ? json::value(to_epoch_ms(*origin))
                                               : json::value(nullptr)},
                    {"runs", runs.size()}}}};
}

}  // namespace comfyfarm::profile
