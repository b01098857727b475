#include "scheduler/virtual_farm.hpp"

#include <algorithm>
#include <cmath>
#include <deque>
#include <functional>
#include <limits>
#include <queue>
#include <set>
#include <string>
#include <tuple>
#include <unordered_map>

namespace comfyfarm::scheduler {

double makespan_lower_bound(const std::vector<SimBackend>& backends, const std::vector<SimJob>& jobs) {
  if (jobs.empty()) return 0;
  std::vector<const SimBackend*> by_load;
  for (const auto& b : backends) {
    if (b.speed > 0) by_load.push_back(&b);
  }
  if (by_load.empty()) return 0;
  std::sort(by_load.begin(), by_load.end(), [](const SimBackend* a, const SimBackend* b) {
    return std::tie(a->load_ms, a->speed) < std::tie(b->load_ms, b->speed);
  });
  double work = 0;
  double longest = 0;  // the longest job on the backend where it ends first, its load included
  std::set<int> checkpoints;
  for (const auto& j : jobs) {
    work += j.work_ms;
    checkpoints.insert(j.checkpoint);
    double best = std::numeric_limits<double>::infinity();
    for (const auto* b : by_load) best = std::min(best, static_cast<double>(b->load_ms) + j.work_ms / b->speed);
    longest = std::max(longest, best);
  }
  // Loads beyond one per backend: every checkpoint is loaded at least once somewhere, each at
  // least the cheapest load (in work a backend could have done meanwhile).
  if (checkpoints.size() > by_load.size()) {
    double cheapest = std::numeric_limits<double>::infinity();
    for (const auto* b : by_load) cheapest = std::min(cheapest, b->speed * static_cast<double>(b->load_ms));
    work += static_cast<double>(checkpoints.size() - by_load.size()) * cheapest;
  }
  // Smallest T with sum_i speed_i * max(0, T - load_i) >= work: backends in order of load time,
  // the first m of them working.
  double speed_sum = 0;
  double loaded_sum = 0;  // sum of speed_i * load_i over the first m
  double capacity_bound = 0;
  for (std::size_t m = 0; m < by_load.size(); ++m) {
    speed_sum += by_load[m]->speed;
    loaded_sum += by_load[m]->speed * static_cast<double>(by_load[m]->load_ms);
    capacity_bound = (work + loaded_sum) / speed_sum;
    if (m + 1 == by_load.size() || capacity_bound <= static_cast<double>(by_load[m + 1]->load_ms)) break;
  }
  return std::max(capacity_bound, longest);
}

SimReport run_virtual_farm(const std::vector<SimBackend>& backends, const std::vector<SimJob>& jobs,
                           PlacementPolicy policy) {
  SchedulerConfig config;
  config.policy = policy;
  return run_virtual_farm(backends, jobs, std::move(config));
}

SimReport run_virtual_farm(const std::vector<SimBackend>& backends, const std::vector<SimJob>& jobs,
                           SchedulerConfig config) {
  config.queue_capacity = std::max(config.queue_capacity, jobs.size() + 1);
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
  for (const auto& j : jobs) {
    by_id.emplace(j.id, &j);
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
  report.lower_bound_ms = makespan_lower_bound(backends, jobs);
  for (auto& u : report.utilisation) {
    u = report.makespan_ms > 0 ? u / static_cast<double>(report.makespan_ms) : 0;
  }
  return report;
}

}  // namespace comfyfarm::scheduler
