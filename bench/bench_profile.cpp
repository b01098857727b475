// Cost of profiling: JobProfiler per event and per job, on recorded runs of a real ComfyUI
// (shared/fixtures/comfyui-real) and on a synthetic txt2img run (7 nodes, a 20-step sampler
// reporting through progress_state + progress: the busiest stream a job normally produces).
// Target: < 1% of one core for 1,000 backends x 50 events/s, i.e. < 200 ns per event.
#include "profile/job_profiler.hpp"

#include "comfy/json_util.hpp"
#include "comfy/messages.hpp"
#include "comfy/workflow.hpp"
#include "profile/chrome_trace.hpp"
#include "profile/profile_analysis.hpp"
#include "profile/profile_json.hpp"
#include "profile/text_report.hpp"
#include "profile/trace_reader.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using namespace comfyfarm;
using namespace comfyfarm::profile;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Job {
  std::string prompt_id;
  std::vector<TimedEvent> events;
  std::optional<comfy::Workflow> workflow;
  std::vector<std::string> frames;  // the text frames as sent, for decode + profile
};

Job recorded(const std::string& name) {
  const fs::path dir = fs::path(COMFYFARM_SHARED_DIR) / "fixtures" / "comfyui-real" / name;
  Job job;
  auto events = read_ws_jsonl(read_file(dir / "ws.jsonl"));
  if (events) job.events = std::move(*events);
  auto wf = comfy::Workflow::parse(read_file(dir.parent_path() / "workflow.json"));
  if (wf) job.workflow = std::move(*wf);
  auto ids = prompt_ids_in(job.events);
  if (!ids.empty()) job.prompt_id = ids.front();
  for (const auto& e : job.events) {
    if (const auto* ev = std::get_if<comfy::Event>(&e.event)) {
      job.frames.push_back(comfy::encode_event(*ev));
    }
  }
  return job;
}

// txt2img_sd15.json as ComfyUI 0.3.64 would report it: nodes 4 5 7 6 3 8 9, node 3 with
// 20 sampler steps, each a progress_state then a progress message.
Job txt2img() {
  Job job;
  job.prompt_id = "5d0e3c1a-7f0b-4e9a-8a41-31c2f09e6a10";
  auto wf = comfy::Workflow::parse(
      read_file(fs::path(COMFYFARM_SHARED_DIR) / "workflows" / "txt2img_sd15.json"));
  if (wf) job.workflow = std::move(*wf);
  TimePoint t = from_epoch_ms(1'760'250'000'000);
  std::vector<comfy::NodeProgress> entries;
  auto push = [&](comfy::Event e) {
    t += Duration(1000);
    job.frames.push_back(comfy::encode_event(e));
    job.events.push_back(TimedEvent{t, std::move(e)});
  };
  auto snapshot = [&](const std::string& node, std::string state, comfy::Number v,
                      comfy::Number m) {
    auto it = std::find_if(entries.begin(), entries.end(),
                           [&](const auto& e) { return e.node_id == node; });
    if (it == entries.end()) {
      comfy::NodeProgress e;
      e.node_id = e.display_node_id = e.real_node_id = node;
      e.prompt_id = job.prompt_id;
      entries.push_back(e);
      it = entries.end() - 1;
    }
    it->state = std::move(state);
    it->value = v;
    it->max = m;
    push(comfy::ProgressState{job.prompt_id, entries, {}});
  };
  push(comfy::ExecutionStart{job.prompt_id, 1'760'250'000'123, {}});
  push(comfy::ExecutionCached{{}, job.prompt_id, 1'760'250'000'124, {}});
  for (const char* id : {"4", "5", "7", "6", "3", "8", "9"}) {
    snapshot(id, "running", 0.0, 1.0);
    push(comfy::Executing{std::string(id), std::string(id), job.prompt_id, {}});
    if (std::string(id) == "3") {
      for (int i = 1; i <= 20; ++i) {
        snapshot(id, "running", i, 20);
        comfy::Progress p;
        p.value = i;
        p.max = 20;
        p.prompt_id = job.prompt_id;
        p.node = id;
        push(std::move(p));
      }
      snapshot(id, "finished", 20, 20);
      continue;
    }
    if (std::string(id) == "9") {
      comfy::Executed e;
      e.node = id;
      e.display_node = id;
      e.output = boost::json::object{{"images", boost::json::array{}}};
      e.prompt_id = job.prompt_id;
      push(std::move(e));
    }
    snapshot(id, "finished", 1.0, 1.0);
  }
  push(comfy::ExecutionSuccess{job.prompt_id, 1'760'250'004'870, {}});
  push(comfy::Executing{std::nullopt, std::nullopt, job.prompt_id, {}});
  return job;
}

const std::map<std::string, Job>& jobs() {
  static const std::map<std::string, Job> all = [] {
    std::map<std::string, Job> m;
    m["txt2img_20_steps"] = txt2img();
    m["slow_blur"] = recorded("slow_blur/run1");
    m["branch_two_outputs"] = recorded("branch_two_outputs/run1");
    m["ws_image_progress"] = recorded("ws_image_legacy_binary/run1");
    return m;
  }();
  return all;
}

ProfilerOptions options_for(const Job& job) {
  ProfilerOptions o;
  o.prompt_id = job.prompt_id;
  return o;
}

// Every event of one job into a profiler: the cost the farm pays per received event (the
// profiler's construction, ~ once per job, is included and amortised over the job's events).
void BM_ProfilerPerEvent(benchmark::State& state, const std::string& name) {
  const Job& job = jobs().at(name);
  for (auto _ : state) {
    JobProfiler profiler(options_for(job), job.workflow);
    feed(profiler, job.events);
    benchmark::DoNotOptimize(profiler.done());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(job.events.size()));
  state.counters["events_per_job"] = static_cast<double>(job.events.size());
}

// The same plus building the JobProfile at the end: the cost per job.
void BM_ProfilerPerJob(benchmark::State& state, const std::string& name) {
  const Job& job = jobs().at(name);
  for (auto _ : state) {
    JobProfiler profiler(options_for(job), job.workflow);
    feed(profiler, job.events);
    JobProfile p = profiler.profile();
    benchmark::DoNotOptimize(p.nodes.data());
  }
  state.SetItemsProcessed(state.iterations());
}

// Decoding the text frames and profiling them: what a link that did not decode anyway would pay.
void BM_DecodeAndProfilePerEvent(benchmark::State& state, const std::string& name) {
  const Job& job = jobs().at(name);
  const TimePoint t = from_epoch_ms(1'760'250'000'000);
  for (auto _ : state) {
    JobProfiler profiler(options_for(job), job.workflow);
    for (const auto& f : job.frames) {
      auto ev = comfy::decode_event(f);
      if (ev) profiler.on_event(*ev, t);
    }
    benchmark::DoNotOptimize(profiler.done());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(job.frames.size()));
}

// After the job: analysis and the renderers (once per job, off the event path).
void BM_AnalyzeAndRender(benchmark::State& state, const std::string& name) {
  const Job& job = jobs().at(name);
  JobProfiler profiler(options_for(job), job.workflow);
  feed(profiler, job.events);
  const JobProfile p = profiler.profile();
  const std::vector<JobProfile> runs = {p};
  for (auto _ : state) {
    const ProfileAnalysis a = analyze(p);
    std::string text = render_text(p, a);
    std::string json = comfy::dumps(to_json(p, &a));
    std::string trace = comfy::dumps(render_chrome_trace(runs));
    benchmark::DoNotOptimize(text.data());
    benchmark::DoNotOptimize(json.data());
    benchmark::DoNotOptimize(trace.data());
  }
  state.SetItemsProcessed(state.iterations());
}

void register_all() {
  for (const auto& [name, job] : jobs()) {
    benchmark::RegisterBenchmark(("Profiler/PerEvent/" + name).c_str(), BM_ProfilerPerEvent, name);
    benchmark::RegisterBenchmark(("Profiler/PerJob/" + name).c_str(), BM_ProfilerPerJob, name);
    benchmark::RegisterBenchmark(("Profiler/DecodeAndProfilePerEvent/" + name).c_str(),
                                 BM_DecodeAndProfilePerEvent, name);
    benchmark::RegisterBenchmark(("Profiler/AnalyzeAndRender/" + name).c_str(),
                                 BM_AnalyzeAndRender, name);
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
