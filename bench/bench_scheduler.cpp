// Scheduler benchmarks (issue 5): farm efficiency on a simulated heterogeneous farm against the
// makespan lower bound and the ComfyPool policies, the cost of one decide() with 1,000 backends
// and 100,000 queued jobs, the memory per queued job, and 1,000 backends x 1,000,000 jobs on the
// virtual clock. Everything runs on virtual time: only decide() timings and wall times are real.
#include "scheduler/scheduler.hpp"
#include "scheduler/virtual_farm.hpp"

#include <benchmark/benchmark.h>
#include <malloc.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <functional>
#include <new>
#include <queue>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

// Heap accounting for the memory benchmark: every operator new/delete of this program counts the
// usable size of its block (what the allocator really hands out, header excluded).
namespace {
std::atomic<std::int64_t> g_heap_bytes{0};
std::atomic<std::int64_t> g_heap_blocks{0};

void* counted_alloc(std::size_t n) {
  void* p = std::malloc(n == 0 ? 1 : n);
  if (p == nullptr) throw std::bad_alloc();
  g_heap_bytes.fetch_add(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  g_heap_blocks.fetch_add(1, std::memory_order_relaxed);
  return p;
}
void counted_free(void* p) noexcept {
  if (p == nullptr) return;
  g_heap_bytes.fetch_sub(static_cast<std::int64_t>(malloc_usable_size(p)), std::memory_order_relaxed);
  g_heap_blocks.fetch_sub(1, std::memory_order_relaxed);
  std::free(p);
}
}  // namespace

void* operator new(std::size_t n) { return counted_alloc(n); }
void* operator new[](std::size_t n) { return counted_alloc(n); }
void operator delete(void* p) noexcept { counted_free(p); }
void operator delete[](void* p) noexcept { counted_free(p); }
void operator delete(void* p, std::size_t) noexcept { counted_free(p); }
void operator delete[](void* p, std::size_t) noexcept { counted_free(p); }

namespace {

namespace cs = comfyfarm::scheduler;

// ---- Benchmark 1: farm efficiency ----------------------------------------------------------

enum Scenario : int { kUniform = 0, kMixedWorkflows = 1, kSkewedCheckpoints = 2 };
const char* const kScenarioNames[] = {"uniform 4-8 s", "mixed workflows", "skewed checkpoints"};
const cs::PlacementPolicy kPolicies[] = {cs::PlacementPolicy::kAffinity, cs::PlacementPolicy::kRoundRobin,
                                         cs::PlacementPolicy::kLeastQueue};
const char* const kPolicyNames[] = {"affinity", "round-robin", "least-queue"};

// 16 backends: 8 at speed 2.0 (a 4090-class card) and 8 at 1.0, each loading a checkpoint in 3 s.
std::vector<cs::SimBackend> farm16() {
  std::vector<cs::SimBackend> b;
  for (int i = 0; i < 16; ++i) b.push_back({i < 8 ? 2.0 : 1.0, 3000});
  return b;
}

// Run time at speed 1.0 of the mixed workflows: txt2img 20 steps, img2img, hires fix, 4x upscale.
double mixed_work(std::mt19937_64& rng) {
  const auto r = rng() % 100;
  return r < 45 ? 3000.0 : r < 70 ? 6000.0 : r < 90 ? 12000.0 : 20000.0;
}

// 400 jobs over four checkpoints. kUniform is the unit test's farm (seed 7 there).
std::vector<cs::SimJob> farm_jobs(Scenario scenario, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<cs::SimJob> jobs;
  for (cs::JobId i = 0; i < 400; ++i) {
    if (scenario == kUniform) {
      const int ckpt = static_cast<int>(rng() % 4);
      jobs.push_back({i, 0, ckpt, 4000.0 + static_cast<double>(rng() % 4000)});
      continue;
    }
    int ckpt = static_cast<int>(rng() % 4);
    if (scenario == kSkewedCheckpoints) {
      const auto r = rng() % 100;  // 50 / 25 / 15 / 10 %
      ckpt = r < 50 ? 0 : r < 75 ? 1 : r < 90 ? 2 : 3;
    }
    jobs.push_back({i, 0, ckpt, mixed_work(rng)});
  }
  return jobs;
}

double ratio(const cs::SimReport& r) { return static_cast<double>(r.makespan_ms) / r.lower_bound_ms; }

// Arg 0: scenario, arg 1: policy. Headline numbers for seed 7, plus the mean and worst ratio over
// seeds 1..20 of the same scenario.
void BM_FarmEfficiency(benchmark::State& state) {
  const auto scenario = static_cast<Scenario>(state.range(0));
  const auto policy = kPolicies[state.range(1)];
  const auto backends = farm16();
  cs::SimReport headline;
  double sum = 0;
  double worst = 0;
  constexpr int kSeeds = 20;
  for (auto _ : state) {
    headline = cs::run_virtual_farm(backends, farm_jobs(scenario, 7), policy);
    sum = 0;
    worst = 0;
    for (int seed = 1; seed <= kSeeds; ++seed) {
      const auto r = cs::run_virtual_farm(backends, farm_jobs(scenario, static_cast<std::uint64_t>(seed)), policy);
      if (r.completed != 400 || r.completed_twice != 0) state.SkipWithError("a job was lost or run twice");
      sum += ratio(r);
      worst = std::max(worst, ratio(r));
    }
  }
  const double makespan_s = static_cast<double>(headline.makespan_ms) / 1000.0;
  state.counters["ratio"] = ratio(headline);
  state.counters["ratio_mean20"] = sum / kSeeds;
  state.counters["ratio_max20"] = worst;
  state.counters["makespan_s"] = makespan_s;
  state.counters["bound_s"] = headline.lower_bound_ms / 1000.0;
  state.counters["loads"] = static_cast<double>(headline.model_loads);
  state.counters["jobs_per_s"] = static_cast<double>(headline.completed) / makespan_s;
  state.counters["util_min"] = *std::min_element(headline.utilisation.begin(), headline.utilisation.end());
  state.SetLabel(std::string(kScenarioNames[scenario]) + ", " + kPolicyNames[state.range(1)]);
}

// ---- Benchmark 4: decide() with 1,000 backends and 100,000 queued jobs ---------------------

constexpr std::size_t kBackends = 1000;
constexpr std::size_t kQueued = 100'000;
const std::vector<std::string> kClassTypes{"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage",
                                           "KSampler", "VAEDecode", "SaveImage"};

std::vector<std::string> checkpoint_names(std::size_t n) {
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back("checkpoint_" + std::to_string(i) + ".safetensors");
  return out;
}

// The same workflow content for every job of a checkpoint: only the id (and the cost) differ.
cs::JobSpec job_spec(cs::JobId id, const std::string& ckpt, double cost_ms) {
  cs::JobSpec j;
  j.id = id;
  j.class_types = kClassTypes;
  j.model_files = {ckpt};
  j.affinity_key = ckpt;
  j.structural_hash = "9f3c2a7be01d4c55";
  j.cost_ms = cost_ms;
  return j;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

// Arg: checkpoints. 1,000 backends (half at speed 2.0), every slot full, 100,000 jobs queued.
// Each iteration completes the job that ends first on the virtual clock (not timed), submits one
// more job so 100,000 stay queued (not timed), then times the decide() that refills the slot.
void BM_DecideOneSlot(benchmark::State& state) {
  const auto n_ckpt = static_cast<std::size_t>(state.range(0));
  const auto ckpts = checkpoint_names(n_ckpt);
  cs::SchedulerConfig config;
  config.queue_capacity = 2 * kQueued;
  cs::Scheduler s(config);
  auto speed = [](cs::BackendId b) { return b % 2 == 0 ? 2.0 : 1.0; };
  for (std::size_t i = 0; i < kBackends; ++i) {
    const auto id = static_cast<cs::BackendId>(i);
    auto r = s.add_backend(cs::BackendSpec{id, 2, kClassTypes, ckpts, speed(id)});
    if (!r) state.SkipWithError(r.error().message.c_str());
  }
  struct JobInfo {
    std::size_t ckpt;
    double cost;
  };
  std::unordered_map<cs::JobId, JobInfo> info;
  std::mt19937_64 rng(1);
  cs::JobId next_id = 0;
  auto submit_one = [&](cs::TimeMs now) {
    const JobInfo j{static_cast<std::size_t>(rng() % n_ckpt), 4000.0 + static_cast<double>(rng() % 4000)};
    info.emplace(next_id, j);
    auto r = s.submit(job_spec(next_id++, ckpts[j.ckpt], j.cost), now);
    if (!r) state.SkipWithError(r.error().message.c_str());
  };
  for (std::size_t i = 0; i < kQueued + 2 * kBackends; ++i) submit_one(0);

  // The simulated backends: prompts run in the order sent, a checkpoint load costs 3 s.
  struct Sim {
    std::deque<cs::JobId> waiting;
    bool busy = false;
    std::size_t loaded = SIZE_MAX;
    double run_ms = 0;
  };
  std::vector<Sim> sim(kBackends);
  using Event = std::pair<cs::TimeMs, cs::BackendId>;
  std::priority_queue<Event, std::vector<Event>, std::greater<>> events;
  auto start_next = [&](cs::BackendId b, cs::TimeMs now) {
    auto& st = sim[b];
    if (st.busy || st.waiting.empty()) return;
    const JobInfo& j = info.at(st.waiting.front());
    cs::TimeMs load = 0;
    if (st.loaded != j.ckpt) {
      load = 3000;
      st.loaded = j.ckpt;
    }
    st.run_ms = j.cost / speed(b);
    st.busy = true;
    events.emplace(now + load + static_cast<cs::TimeMs>(st.run_ms), b);
  };
  auto accept = [&](const std::vector<cs::Assignment>& placed, cs::TimeMs now) {
    for (const auto& a : placed) {
      sim[a.backend].waiting.push_back(a.job);
      start_next(a.backend, now);
    }
  };

  const auto t_first = std::chrono::steady_clock::now();
  const auto first = s.decide(0);
  const double first_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t_first).count();
  accept(first, 0);

  std::vector<double> samples;
  samples.reserve(static_cast<std::size_t>(state.max_iterations));
  std::size_t placed_total = 0;
  for (auto _ : state) {
    // Not timed: the next completion, and one new submission.
    const auto [now, b] = events.top();
    events.pop();
    auto& st = sim[b];
    const cs::JobId done = st.waiting.front();
    st.waiting.pop_front();
    st.busy = false;
    auto r = s.complete(done, b, st.run_ms, now);
    if (!r) state.SkipWithError(r.error().message.c_str());
    info.erase(done);
    start_next(b, now);
    submit_one(now);

    const auto t0 = std::chrono::steady_clock::now();
    auto placed = s.decide(now);
    const auto t1 = std::chrono::steady_clock::now();
    const double secs = std::chrono::duration<double>(t1 - t0).count();
    state.SetIterationTime(secs);
    samples.push_back(secs * 1e6);
    placed_total += placed.size();
    accept(placed, now);
  }
  state.counters["median_us"] = percentile(samples, 0.5);
  state.counters["p99_us"] = percentile(samples, 0.99);
  state.counters["max_us"] = samples.empty() ? 0 : *std::max_element(samples.begin(), samples.end());
  state.counters["placed_per_call"] =
      samples.empty() ? 0 : static_cast<double>(placed_total) / static_cast<double>(samples.size());
  state.counters["queued"] = static_cast<double>(s.queue().size());
  state.counters["first_decide_ms"] = first_ms;
}

// ---- Benchmark 4: memory per queued job ----------------------------------------------------

// Heap held by the Scheduler (queue included) per queued job, for 100,000 jobs of identical
// content (strings interned). The scheduler keeps no workflow: these bytes are all of it.
void BM_MemoryPerQueuedJob(benchmark::State& state) {
  const auto ckpts = checkpoint_names(4);
  for (auto _ : state) {
    cs::SchedulerConfig config;
    config.queue_capacity = 2 * kQueued;
    cs::Scheduler s(config);
    for (std::size_t i = 0; i < kBackends; ++i) {
      auto r = s.add_backend(cs::BackendSpec{static_cast<cs::BackendId>(i), 2, kClassTypes, ckpts, 1.0});
      (void)r;
    }
    cs::JobSpec spec = job_spec(0, ckpts[0], 6000);
    const std::int64_t bytes_before = g_heap_bytes.load();
    const std::int64_t blocks_before = g_heap_blocks.load();
    const auto mi_before = mallinfo2();
    for (cs::JobId id = 0; id < kQueued; ++id) {
      spec.id = id;
      spec.affinity_key = spec.model_files[0] = ckpts[id % 4];
      auto r = s.submit(spec, 0);
      if (!r) state.SkipWithError(r.error().message.c_str());
    }
    const auto mi_after = mallinfo2();
    const double n = static_cast<double>(kQueued);
    state.counters["bytes_per_job"] = static_cast<double>(g_heap_bytes.load() - bytes_before) / n;
    state.counters["blocks_per_job"] = static_cast<double>(g_heap_blocks.load() - blocks_before) / n;
    state.counters["malloc_bytes_per_job"] =
        (static_cast<double>(mi_after.uordblks) - static_cast<double>(mi_before.uordblks)) / n;
    benchmark::DoNotOptimize(s.queue().size());
  }
}

// ---- Benchmark 4: 1,000 backends x 1,000,000 jobs on the virtual clock ------------------------

// Args: backends, jobs. Half the backends at speed 2.0, 3 s loads, 16 checkpoints, 4-8 s jobs.
void BM_VirtualFarmLarge(benchmark::State& state) {
  const auto n_backends = static_cast<std::size_t>(state.range(0));
  const auto n_jobs = static_cast<std::size_t>(state.range(1));
  std::vector<cs::SimBackend> backends;
  for (std::size_t i = 0; i < n_backends; ++i) backends.push_back({i % 2 == 0 ? 2.0 : 1.0, 3000});
  std::mt19937_64 rng(1);
  std::vector<cs::SimJob> jobs;
  jobs.reserve(n_jobs);
  for (cs::JobId i = 0; i < n_jobs; ++i) {
    const int ckpt = static_cast<int>(rng() % 16);
    jobs.push_back({i, 0, ckpt, 4000.0 + static_cast<double>(rng() % 4000)});
  }
  cs::SimReport r;
  for (auto _ : state) r = cs::run_virtual_farm(backends, jobs);
  if (r.completed != n_jobs || r.completed_twice != 0) state.SkipWithError("a job was lost or run twice");
  const double makespan_s = static_cast<double>(r.makespan_ms) / 1000.0;
  state.counters["ratio"] = ratio(r);
  state.counters["makespan_s"] = makespan_s;
  state.counters["bound_s"] = r.lower_bound_ms / 1000.0;
  state.counters["loads"] = static_cast<double>(r.model_loads);
  state.counters["jobs_per_s"] = static_cast<double>(r.completed) / makespan_s;
}

BENCHMARK(BM_FarmEfficiency)
    ->ArgsProduct({{kUniform, kMixedWorkflows, kSkewedCheckpoints}, {0, 1, 2}})
    ->ArgNames({"scenario", "policy"})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_DecideOneSlot)
    ->Arg(4)
    ->Arg(64)
    ->Arg(1000)
    ->ArgName("checkpoints")
    ->Iterations(200'000)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_MemoryPerQueuedJob)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_VirtualFarmLarge)
    ->Args({1000, 1'000'000})
    ->ArgNames({"backends", "jobs"})
    ->Iterations(1)
    ->Unit(benchmark::kSecond);

}  // namespace

BENCHMARK_MAIN();
