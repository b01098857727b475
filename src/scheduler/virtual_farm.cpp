#include "scheduler/virtual_farm.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <queue>
#include <string>
#include <unordered_map>

namespace comfyfarm::scheduler {

SimReport run_virtual_farm(const std::vector<SimBackend>& backends, const std::vector<SimJob>& jobs,
                           PlacementPolicy policy) {
  SchedulerConfig config;
  config.policy = policy;
  config.queue_capacity = jobs.size() + 1;
  Scheduler s(config);
  SimReport report;
  const std::size_t n = backends.size();
  report.utilisation.assign(n, 0.0);
  report.jobs_per_backend.assign(n, 0);

  int max_ckpt = 0;
  for (const auto& j : jobs) max_ckpt = std::max(max_ckpt, j.checkpoint);
  std::vector<std::string> models;
  for (int c = 0; c <= max_ckpt; ++c) models.push_back("ckpt" + std::to_string(c) + ".safetensors");

  for (std::size_t i = 0; i < n; ++i) {
    auto r = s.add_backend(BackendSpec{static_cast<BackendId>(i), 2, {"CheckpointLoaderSimple", "KSampler"}, models, 1.0});
    (void)r;
  }
  std::unordered_map<JobId, const SimJob*> by_id;
  double total_work = 0;
  for (const auto& j : jobs) {
    by_id.emplace(j.id, &j);
    total_work += j.work_ms;
    JobSpec spec;
    spec.id = j.id;
    spec.priority = j.priority;
    spec.class_types = {"CheckpointLoaderSimple", "KSampler"};
    spec.model_files = {models[static_cast<std::size_t>(j.checkpoint)]};
    spec.affinity_key = models[static_cast<std::size_t>(j.checkpoint)];
    spec.structural_hash = "sim";
    spec.cost_ms = j.work_ms;
    auto r = s.submit(spec, 0);
    (void)r;
  }

  struct Running {
    std::deque<JobId> waiting;
    bool busy = false;
    int loaded = -1;
    double run_ms = 0;
  };
  std::vector<Running> state(n);
  using Event = std::pair<TimeMs, BackendId>;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  std::unordered_map<JobId, int> done;

  auto start_next = [&](BackendId b, TimeMs now) {
    auto& st = state[b];
    if (st.busy || st.waiting.empty()) return;
    const SimJob& j = *by_id.at(st.waiting.front());
    TimeMs load = 0;
    if (st.loaded != j.checkpoint) {
      load = backends[b].load_ms;
      st.loaded = j.checkpoint;
      ++report.model_loads;
    }
    st.run_ms = j.work_ms / backends[b].speed;
    const auto total = load + static_cast<TimeMs>(std::llround(st.run_ms));
    report.utilisation[b] += static_cast<double>(total);
    st.busy = true;
    events.emplace(now + total, b);
  };

  TimeMs now = 0;
  while (true) {
    for (const auto& a : s.decide(now)) {
      state[a.backend].waiting.push_back(a.job);
      start_next(a.backend, now);
    }
    if (events.empty()) break;
    auto [t, b] = events.top();
    events.pop();
    now = t;
    auto& st = state[b];
    const JobId id = st.waiting.front();
    st.waiting.pop_front();
    st.busy = false;
    auto r = s.complete(id, b, st.run_ms, now);
    (void)r;
    if (++done[id] > 1) ++report.completed_twice;
    ++report.completed;
    ++report.jobs_per_backend[b];
    report.makespan_ms = now;
    start_next(b, now);
  }
  double total_speed = 0;
  TimeMs min_load = n ? backends[0].load_ms : 0;
  for (const auto& b : backends) {
    total_speed += b.speed;
    min_load = std::min(min_load, b.load_ms);
  }
  report.lower_bound_ms = total_speed > 0 ? total_work / total_speed + static_cast<double>(min_load) : 0;
  for (auto& u : report.utilisation) {
    u = report.makespan_ms > 0 ? u / static_cast<double>(report.makespan_ms) : 0;
  }
  return report;
}

}  // namespace comfyfarm::scheduler
