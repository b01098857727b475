// Helpers for the profile tests: the recorded runs of shared/fixtures/comfyui-real, and a
// script builder for synthetic event streams (old servers, lazy, async and expanded nodes).
#pragma once

#include "comfy/messages.hpp"
#include "comfy/workflow.hpp"
#include "comfy/json_util.hpp"
#include "profile/job_profiler.hpp"
#include "profile/trace_reader.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace comfyfarm::profile::testing {

namespace fs = std::filesystem;

/// "scenario/run" for every recorded run folder that has a ws.jsonl, sorted.
inline std::vector<std::string> recorded_runs() {
  std::vector<std::string> out;
  for (const auto& scenario : fs::directory_iterator(test::fixtures_dir())) {
    if (!scenario.is_directory()) continue;
    for (const auto& run : fs::directory_iterator(scenario.path())) {
      if (run.is_directory() && fs::exists(run.path() / "ws.jsonl")) {
        out.push_back(scenario.path().filename().string() + "/" + run.path().filename().string());
      }
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

struct RecordedRun {
  std::string name;
  fs::path dir;
  std::vector<TimedEvent> events;
  std::optional<comfy::Workflow> workflow;
  std::optional<TimePoint> posted;  ///< meta.json posts[0].t_post
};

inline RecordedRun load_run(const std::string& name) {
  RecordedRun r;
  r.name = name;
  r.dir = test::fixtures_dir() / name;
  auto events = read_ws_jsonl(test::read_file(r.dir / "ws.jsonl"));
  EXPECT_TRUE(events) << name << ": " << (events ? "" : events.error().message);
  if (events) r.events = std::move(*events);
  const fs::path wf_path = r.dir.parent_path() / "workflow.json";
  if (fs::exists(wf_path)) {
    auto wf = comfy::Workflow::parse(test::read_file(wf_path));
    if (wf) r.workflow = std::move(*wf);
  }
  if (fs::exists(r.dir / "meta.json")) {
    auto meta = comfy::parse_json(test::read_file(r.dir / "meta.json"));
    if (meta && meta->is_object()) {
      const auto* posts = meta->get_object().if_contains("posts");
      if (posts && posts->is_array() && !posts->get_array().empty()) {
        const auto& first = posts->get_array().front();
        if (const auto* t = first.get_object().if_contains("t_post"); t && t->is_number()) {
          r.posted = from_epoch_seconds(t->to_number<double>());
        }
      }
    }
  }
  return r;
}

inline JobProfile profile_run(const RecordedRun& r) {
  ProfilerOptions options;
  options.label = r.name;
  options.backend = "comfyui-0.3.64";
  options.workflow = r.name.substr(0, r.name.find('/')) + "/workflow.json";
  return profile_trace(r.events, options, r.workflow, r.posted);
}

/// Microseconds from epoch seconds written as in the recordings ("1795349659.076559").
inline TimePoint at_s(double seconds) { return from_epoch_seconds(seconds); }

/// Builds a synthetic event stream. Times are milliseconds after t0.
class Script {
 public:
  explicit Script(std::string prompt_id = "p-1", TimePoint t0 = from_epoch_ms(1'800'000'000'000))
      : prompt_(std::move(prompt_id)), t0_(t0) {}

  Script& at(double ms) {
    now_ = t0_ + from_ms(ms);
    return *this;
  }
  TimePoint time(double ms) const { return t0_ + from_ms(ms); }
  const std::string& prompt_id() const { return prompt_; }

  Script& execution_start() {
    return push(comfy::ExecutionStart{prompt_, server_ms(), {}});
  }
  Script& cached(std::vector<std::string> ids) {
    return push(comfy::ExecutionCached{std::move(ids), prompt_, server_ms(), {}});
  }
  Script& executing(const std::string& node, std::optional<std::string> display = std::nullopt) {
    return push(comfy::Executing{node, display.value_or(node), prompt_, {}});
  }
  Script& executing_end() { return push(comfy::Executing{std::nullopt, std::nullopt, prompt_, {}}); }
  /// A progress_state snapshot in which `node` changes to `state` with value/max.
  Script& state(const std::string& node, std::string state, comfy::Number value,
                comfy::Number max, std::string real = {}, std::string display = {}) {
    auto it = std::find_if(entries_.begin(), entries_.end(),
                           [&](const comfy::NodeProgress& e) { return e.node_id == node; });
    if (it == entries_.end()) {
      comfy::NodeProgress e;
      e.node_id = node;
      e.prompt_id = prompt_;
      e.display_node_id = display.empty() ? node : display;
      e.real_node_id = real.empty() ? node : real;
      if (e.real_node_id != node) e.parent_node_id = e.real_node_id;
      entries_.push_back(e);
      it = entries_.end() - 1;
    }
    it->state = std::move(state);
    it->value = value;
    it->max = max;
    return push(comfy::ProgressState{prompt_, entries_, {}});
  }
  Script& running(const std::string& node, std::string real = {}, std::string display = {}) {
    return state(node, "running", 0.0, 1.0, std::move(real), std::move(display));
  }
  Script& finished(const std::string& node) { return state(node, "finished", 1.0, 1.0); }
  Script& progress(std::optional<std::string> node, std::int64_t value, std::int64_t max) {
    comfy::Progress p;
    p.value = value;
    p.max = max;
    p.node = std::move(node);
    if (p.node) p.prompt_id = prompt_;
    return push(std::move(p));
  }
  Script& executed(const std::string& node) {
    comfy::Executed e;
    e.node = node;
    e.display_node = node;
    e.output = boost::json::object{{"images", boost::json::array{}}};
    e.prompt_id = prompt_;
    return push(std::move(e));
  }
  Script& success() { return push(comfy::ExecutionSuccess{prompt_, server_ms(), {}}); }
  Script& error(const std::string& node, std::string type, std::string message,
                std::vector<std::string> executed) {
    comfy::ExecutionError e;
    e.prompt_id = prompt_;
    e.node_id = node;
    e.node_type = "Unknown";
    e.executed = std::move(executed);
    e.exception_type = std::move(type);
    e.exception_message = std::move(message);
    e.timestamp = server_ms();
    return push(std::move(e));
  }
  Script& interrupted(const std::string& node, std::vector<std::string> executed) {
    return push(comfy::ExecutionInterrupted{prompt_, node, "Unknown", std::move(executed),
                                            server_ms(), {}});
  }
  /// A new-server node run: running snapshot at `start`, executing 5 µs later, finished at `end`.
  Script& run(const std::string& node, double start, double end) {
    at(start).running(node);
    at(start + 0.005).executing(node);
    return at(end).finished(node);
  }
  Script& push(comfy::Event e) {
    events_.push_back(TimedEvent{now_, std::move(e)});
    return *this;
  }
  const std::vector<TimedEvent>& events() const { return events_; }

 private:
  std::int64_t server_ms() const { return now_.time_since_epoch().count() / 1000; }

  std::string prompt_;
  TimePoint t0_;
  TimePoint now_ = t0_;
  std::vector<comfy::NodeProgress> entries_;
  std::vector<TimedEvent> events_;
};

inline comfy::Workflow parse_workflow(std::string_view text) {
  auto wf = comfy::Workflow::parse(text);
  EXPECT_TRUE(wf) << (wf ? "" : wf.error().to_error().message);
  return std::move(*wf);
}

/// Node ids of a profile with the given status, in profile order.
inline std::vector<std::string> ids_with(const JobProfile& p, NodeStatus status) {
  std::vector<std::string> out;
  for (const auto& n : p.nodes) {
    if (n.status == status) out.push_back(n.id);
  }
  return out;
}

inline std::vector<std::string> sorted(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace comfyfarm::profile::testing
