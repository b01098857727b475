#include "scheduler/scheduler.hpp"

#include "scheduler/job_queue.hpp"
#include "scheduler/retry_policy.hpp"
#include "scheduler/virtual_farm.hpp"

#include <gtest/gtest.h>

#include <random>

namespace cs = comfyfarm::scheduler;
using comfyfarm::Errc;

namespace {
cs::JobSpec job(cs::JobId id, std::string ckpt = "a.safetensors", double cost = 1000, int prio = 0) {
  cs::JobSpec j;
  j.id = id;
  j.priority = prio;
  j.class_types = {"KSampler"};
  j.model_files = {ckpt};
  j.affinity_key = ckpt;
  j.structural_hash = "h";
  j.cost_ms = cost;
  return j;
}
cs::BackendSpec backend(cs::BackendId id, double speed = 1.0) {
  return cs::BackendSpec{id, 2, {"KSampler"}, {"a.safetensors", "b.safetensors"}, speed};
}
}  // namespace

TEST(JobQueue, PriorityThenFifoThenFront) {
  cs::JobQueue q(10);
  ASSERT_TRUE(q.push({1, 0, false, {}, 0}, 0));
  ASSERT_TRUE(q.push({2, 5, false, {}, 0}, 0));
  ASSERT_TRUE(q.push({3, 0, false, {}, 0}, 0));
  ASSERT_TRUE(q.push({4, 0, true, {}, 0}, 0));
  ASSERT_TRUE(q.push({5, 0, true, {}, 0}, 0));
  EXPECT_EQ(q.ready(10), (std::vector<cs::JobId>{2, 5, 4, 1, 3}));
}

TEST(JobQueue, RejectsWhenFullAndDuplicates) {
  cs::JobQueue q(2);
  ASSERT_TRUE(q.push({1, 0, false, {}, 0}, 0));
  EXPECT_EQ(q.push({1, 0, false, {}, 0}, 0).error().code, Errc::kAlreadyExists);
  ASSERT_TRUE(q.push({2, 0, false, {}, 0}, 0));
  EXPECT_EQ(q.push({3, 0, false, {}, 0}, 0).error().code, Errc::kResourceExhausted);
}

TEST(JobQueue, DelayedNotEligibleBeforeReadyAt) {
  cs::JobQueue q(10);
  ASSERT_TRUE(q.push({1, 0, false, {}, 500}, 0));
  ASSERT_TRUE(q.push({2, 0, false, {}, 0}, 0));
  q.promote(499);
  EXPECT_EQ(q.ready(10), (std::vector<cs::JobId>{2}));
  EXPECT_EQ(q.next_ready_at(), 500);
  q.promote(500);
  EXPECT_EQ(q.ready(10), (std::vector<cs::JobId>{1, 2}));
}

TEST(JobQueue, RemoveAndBatch) {
  cs::JobQueue q(10);
  ASSERT_TRUE(q.push({1, 0, false, "book", 0}, 0));
  ASSERT_TRUE(q.push({2, 0, false, "other", 0}, 0));
  EXPECT_EQ(q.batch_items("book"), (std::vector<cs::JobId>{1}));
  ASSERT_TRUE(q.remove(1));
  EXPECT_EQ(q.remove(1).error().code, Errc::kNotFound);
  EXPECT_EQ(q.size(), 1u);
}

TEST(Scheduler, FiltersDownDrainingMissingModelAndBlocked) {
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(backend(1)));
  ASSERT_TRUE(s.add_backend(cs::BackendSpec{2, 2, {"KSampler"}, {"a.safetensors"}, 1.0}));
  ASSERT_TRUE(s.submit(job(10, "b.safetensors"), 0));
  ASSERT_TRUE(s.set_up(1, false));
  EXPECT_TRUE(s.decide(0).empty());  // 2 lacks the model, 1 is down
  ASSERT_TRUE(s.set_up(1, true));
  ASSERT_TRUE(s.set_draining(1, true));
  EXPECT_TRUE(s.decide(0).empty());
  ASSERT_TRUE(s.set_draining(1, false));
  auto a = s.decide(0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].backend, 1u);
  // backend_incompatible blocks backend 1 for the structural hash.
  auto f = s.fail(10, 1, cs::FailureClass::kBackendIncompatible, 0);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->decision.retry);
  EXPECT_TRUE(s.decide(0).empty());
  EXPECT_TRUE(s.backend(1)->blocked.size() == 1);
}

TEST(Scheduler, MissingClassTypeFilters) {
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(cs::BackendSpec{1, 2, {"Other"}, {"a.safetensors"}, 1.0}));
  ASSERT_TRUE(s.submit(job(1), 0));
  EXPECT_TRUE(s.decide(0).empty());
}

TEST(Scheduler, DepthRespected) {
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(backend(1)));
  for (cs::JobId i = 1; i <= 5; ++i) ASSERT_TRUE(s.submit(job(i), 0));
  EXPECT_EQ(s.decide(0).size(), 2u);
  EXPECT_TRUE(s.decide(0).empty());
  ASSERT_TRUE(s.complete(1, 1, 1000, 1000));
  auto a = s.decide(1000);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job, 3u);
}

TEST(Scheduler, AffinityBeatsLoad) {
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(backend(1)));
  ASSERT_TRUE(s.add_backend(backend(2)));
  ASSERT_TRUE(s.submit(job(1, "a.safetensors"), 0));
  ASSERT_TRUE(s.submit(job(2, "b.safetensors"), 0));
  auto first = s.decide(0);
  ASSERT_EQ(first.size(), 2u);
  const cs::BackendId on_b = first[1].backend;
  ASSERT_TRUE(s.submit(job(3, "b.safetensors"), 0));
  ASSERT_TRUE(s.complete(1, first[0].backend, 1000, 10));  // the other backend is now emptier
  auto a = s.decide(10);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].backend, on_b);
}

TEST(Scheduler, FastBackendGetsMoreJobs) {
  auto r = cs::run_virtual_farm({{4.0, 0}, {1.0, 0}}, [] {
    std::vector<cs::SimJob> jobs;
    for (cs::JobId i = 0; i < 50; ++i) jobs.push_back({i, 0, 0, 1000});
    return jobs;
  }());
  EXPECT_EQ(r.completed, 50u);
  EXPECT_GT(r.jobs_per_backend[0], 3 * r.jobs_per_backend[1]);
}

TEST(RetryPolicy, ClassesAndCaps) {
  cs::RetryPolicy p;
  auto inv = p.decide(cs::FailureClass::kWorkflowInvalid, 1);
  EXPECT_FALSE(inv.retry);
  EXPECT_TRUE(inv.needs_regeneration);
  auto inc = p.decide(cs::FailureClass::kBackendIncompatible, 1);
  EXPECT_TRUE(inc.retry && inc.block_backend && inc.avoid_backend);
  auto oom = p.decide(cs::FailureClass::kOom, 1);
  EXPECT_TRUE(oom.retry && oom.free_backend);
  EXPECT_LE(oom.delay_ms, 15'000);
  auto lost = p.decide(cs::FailureClass::kBackendLost, 2);
  EXPECT_TRUE(lost.retry && lost.avoid_backend);
  EXPECT_FALSE(p.decide(cs::FailureClass::kTransient, 3).retry);
  EXPECT_EQ(p.backoff_cap(1), 15'000);
  EXPECT_EQ(p.backoff_cap(2), 45'000);
  EXPECT_EQ(p.backoff_cap(9), 90'000);
  for (int i = 0; i < 1000; ++i) {
    auto d = p.decide(cs::FailureClass::kTransient, 2);
    EXPECT_GE(d.delay_ms, 0);
    EXPECT_LE(d.delay_ms, 45'000);
  }
}

TEST(RetryPolicy, DeterministicWithSeed) {
  cs::RetryPolicy a(cs::RetryConfig{3, {15'000}, 42});
  cs::RetryPolicy b(cs::RetryConfig{3, {15'000}, 42});
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(a.decide(cs::FailureClass::kTransient, 1).delay_ms,
              b.decide(cs::FailureClass::kTransient, 1).delay_ms);
  }
}

TEST(RetryPolicy, ParsesEnvironmentValues) {
  EXPECT_EQ(cs::parse_max_retries("2").value(), 3);
  EXPECT_EQ(cs::parse_max_retries("x").error().code, Errc::kInvalidArgument);
  EXPECT_EQ(cs::parse_max_attempts("0").error().code, Errc::kInvalidArgument);
  EXPECT_EQ(cs::parse_backoff_seconds("15,45,90").value(),
            (std::vector<cs::TimeMs>{15'000, 45'000, 90'000}));
  auto single = cs::parse_backoff_seconds("1.5").value();
  EXPECT_EQ(single[0], 1500);
  EXPECT_EQ(single[1], 3000);
  EXPECT_FALSE(cs::parse_backoff_seconds("15,,90"));
  EXPECT_FALSE(cs::parse_backoff_seconds("-1"));
}

TEST(Scheduler, RetryRequeuesWithDelayAndCaps) {
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(backend(1)));
  ASSERT_TRUE(s.submit(job(1), 0));
  for (int attempt = 1; attempt <= 3; ++attempt) {
    auto a = s.decide(1'000'000 * attempt);
    ASSERT_EQ(a.size(), 1u);
    auto f = s.fail(1, 1, cs::FailureClass::kTransient, 1'000'000 * attempt);
    ASSERT_TRUE(f);
    EXPECT_EQ(f->attempt, attempt);
    EXPECT_EQ(f->decision.retry, attempt < 3);
  }
  EXPECT_EQ(s.jobs(), 0u);
}

TEST(Scheduler, BackendLostRequeuesElsewhere) {
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(backend(1)));
  ASSERT_TRUE(s.add_backend(backend(2)));
  ASSERT_TRUE(s.submit(job(1), 0));
  auto a = s.decide(0);
  ASSERT_EQ(a.size(), 1u);
  auto lost = s.backend_lost(a[0].backend, 5);
  ASSERT_TRUE(lost);
  ASSERT_EQ(lost->size(), 1u);
  auto b = s.decide(5);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_NE(b[0].backend, a[0].backend);
}

TEST(VirtualFarm, SixteenBackendsFourCheckpoints) {
  std::vector<cs::SimBackend> backends;
  for (int i = 0; i < 16; ++i) backends.push_back({i < 8 ? 2.0 : 1.0, 3000});
  std::mt19937_64 rng(7);
  std::vector<cs::SimJob> jobs;
  for (cs::JobId i = 0; i < 400; ++i) {
    jobs.push_back({i, 0, static_cast<int>(rng() % 4), 4000.0 + static_cast<double>(rng() % 4000)});
  }
  auto r = cs::run_virtual_farm(backends, jobs);
  auto rr = cs::run_virtual_farm(backends, jobs, cs::PlacementPolicy::kRoundRobin);
  auto lq = cs::run_virtual_farm(backends, jobs, cs::PlacementPolicy::kLeastQueue);
  EXPECT_EQ(r.completed, 400u);
  EXPECT_EQ(r.completed_twice, 0u);
  EXPECT_LE(static_cast<double>(r.makespan_ms), 1.2 * r.lower_bound_ms);
  EXPECT_LT(r.model_loads, rr.model_loads);
  std::printf("affinity: makespan %lld ms (lower bound %.0f, ratio %.3f), loads %zu\n",
              static_cast<long long>(r.makespan_ms), r.lower_bound_ms,
              static_cast<double>(r.makespan_ms) / r.lower_bound_ms, r.model_loads);
  std::printf("round-robin: makespan %lld ms, loads %zu; least-queue: makespan %lld ms, loads %zu\n",
              static_cast<long long>(rr.makespan_ms), rr.model_loads,
              static_cast<long long>(lq.makespan_ms), lq.model_loads);
  std::printf("utilisation fast0 %.3f slow15 %.3f\n", r.utilisation[0], r.utilisation[15]);
}

TEST(VirtualFarm, Deterministic) {
  std::vector<cs::SimBackend> backends{{2.0, 100}, {1.0, 100}, {1.0, 100}};
  std::vector<cs::SimJob> jobs;
  for (cs::JobId i = 0; i < 60; ++i) jobs.push_back({i, static_cast<int>(i % 3), static_cast<int>(i % 2), 1000});
  auto a = cs::run_virtual_farm(backends, jobs);
  auto b = cs::run_virtual_farm(backends, jobs);
  EXPECT_EQ(a.makespan_ms, b.makespan_ms);
  EXPECT_EQ(a.jobs_per_backend, b.jobs_per_backend);
}
