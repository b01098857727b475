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
  // A backend that holds the loaders gets the job although the other one is emptier. This is
  // the rule while the queue is long; with a handful of jobs left (the tail list-scheduling, on
  // by default) the job goes where it is expected to finish first, which here is the idle
  // backend even after its load: see TailSendsJobWhereItFinishesFirst.
  cs::SchedulerConfig config;
  config.tail_jobs = 0;
  cs::Scheduler s(config);
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
  // Issue 5's target for this farm: within 10% of the lower bound, which here is total work /
  // total speed plus each backend's first load.
  double work = 0;
  for (const auto& j : jobs) work += j.work_ms;
  EXPECT_DOUBLE_EQ(r.lower_bound_ms, work / 24 + 3000);
  EXPECT_LE(static_cast<double>(r.makespan_ms), 1.10 * r.lower_bound_ms);
  EXPECT_LT(r.model_loads, rr.model_loads);
  EXPECT_LT(r.makespan_ms, rr.makespan_ms);
  EXPECT_LT(r.makespan_ms, lq.makespan_ms);
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

TEST(JobQueue, GroupIndexKeepsQueueOrder) {
  cs::JobQueue q(10);
  ASSERT_TRUE(q.push({1, 0, false, {}, 0, 7}, 0));
  ASSERT_TRUE(q.push({2, 0, false, {}, 0, 8}, 0));
  ASSERT_TRUE(q.push({3, 5, false, {}, 0, 7}, 0));
  ASSERT_TRUE(q.push({4, 0, false, {}, 100, 7}, 0));  // delayed: not ready yet
  ASSERT_TRUE(q.push({5, 0, true, {}, 0, 7}, 0));
  EXPECT_EQ(q.front(), 3u);
  EXPECT_EQ(q.ready_in_group(7, 10), (std::vector<cs::JobId>{3, 5, 1}));
  EXPECT_EQ(q.ready_in_group(7, 2), (std::vector<cs::JobId>{3, 5}));
  EXPECT_EQ(q.front_in_group(8), 2u);
  EXPECT_FALSE(q.front_in_group(9));
  EXPECT_TRUE(q.before(5, 2));
  EXPECT_FALSE(q.before(2, 1));
  q.promote(100);
  EXPECT_EQ(q.ready_in_group(7, 10), (std::vector<cs::JobId>{3, 5, 1, 4}));
  ASSERT_TRUE(q.remove(2));
  EXPECT_FALSE(q.front_in_group(8));
  ASSERT_TRUE(q.requeue(3, 500, 100));
  EXPECT_EQ(q.front_in_group(7), 5u);
  EXPECT_EQ(q.ready_in_group(7, 10), (std::vector<cs::JobId>{5, 1, 4}));
}

TEST(Scheduler, ExpectedFreeTimeAndLearnedLoad) {
  cs::SchedulerConfig config;
  config.model_load_ms = 5000;
  cs::Scheduler s(config);
  ASSERT_TRUE(s.add_backend(backend(1, 2.0)));
  ASSERT_TRUE(s.submit(job(1, "a.safetensors", 4000), 0));
  ASSERT_EQ(s.decide(0).size(), 1u);
  EXPECT_DOUBLE_EQ(s.backend(1)->expected_free_ms, 5000 + 2000);  // assumed load + 4000 / 2.0
  // It ran in 2000 ms and ended at 3500: the load took 1500 ms.
  ASSERT_TRUE(s.complete(1, 1, 2000, 3500));
  EXPECT_TRUE(s.backend(1)->load_measured);
  EXPECT_DOUBLE_EQ(s.backend(1)->load_ms, 1500);
  ASSERT_TRUE(s.submit(job(2, "a.safetensors", 4000), 3500));
  ASSERT_TRUE(s.submit(job(3, "b.safetensors", 4000), 3500));
  ASSERT_EQ(s.decide(3500).size(), 2u);
  // Job 2 keeps the loaded checkpoint, job 3 needs a load.
  EXPECT_DOUBLE_EQ(s.backend(1)->expected_free_ms, 3500 + 2000 + 1500 + 2000);
}

TEST(Scheduler, EmptyGroupSwitchesToTheLaggingGroupNotTheHead) {
  cs::SchedulerConfig config;
  config.tail_jobs = 0;
  cs::Scheduler s(config);
  for (cs::BackendId b = 1; b <= 3; ++b) {
    ASSERT_TRUE(s.add_backend(cs::BackendSpec{b, 1, {"KSampler"}, {"a", "b", "c"}, 1.0}));
  }
  ASSERT_TRUE(s.submit(job(1, "a"), 0));
  ASSERT_TRUE(s.submit(job(2, "b"), 0));
  ASSERT_TRUE(s.submit(job(3, "c"), 0));
  auto first = s.decide(0);
  ASSERT_EQ(first.size(), 3u);  // one checkpoint per backend
  const cs::BackendId on_a = first[0].backend;
  ASSERT_TRUE(s.submit(job(4, "b"), 0));  // the head of the queue
  for (cs::JobId id = 5; id <= 7; ++id) ASSERT_TRUE(s.submit(job(id, "c"), 0));
  // Checkpoint a has nothing left: its backend joins c, which has three jobs per backend
  // against one for b, rather than taking the head job.
  ASSERT_TRUE(s.complete(1, on_a, 1000, 6000));
  auto a = s.decide(6000);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job, 5u);
  EXPECT_EQ(a[0].backend, on_a);
}

// Backends 1 and 3 hold a, backend 2 holds b; then b gets far more work than a.
void two_groups_then_b_backlog(cs::Scheduler& s) {
  for (cs::BackendId b = 1; b <= 3; ++b) ASSERT_TRUE(s.add_backend(cs::BackendSpec{b, 1, {"KSampler"}, {"a", "b"}, 1.0}));
  ASSERT_TRUE(s.submit(job(1, "a"), 0));
  ASSERT_TRUE(s.submit(job(2, "a"), 0));
  ASSERT_TRUE(s.submit(job(3, "b"), 0));
  auto first = s.decide(0);
  ASSERT_EQ(first.size(), 3u);
  ASSERT_EQ(s.backend(1)->in_flight, (std::vector<cs::JobId>{1}));
  ASSERT_EQ(s.backend(2)->in_flight, (std::vector<cs::JobId>{3}));
  ASSERT_EQ(s.backend(3)->in_flight, (std::vector<cs::JobId>{2}));
  ASSERT_TRUE(s.submit(job(10, "a"), 0));
  ASSERT_TRUE(s.submit(job(11, "a"), 0));
  for (cs::JobId id = 20; id < 30; ++id) ASSERT_TRUE(s.submit(job(id, "b"), 0));
  ASSERT_TRUE(s.complete(1, 1, 1000, 6000));
}

TEST(Scheduler, RebalancesABackendToALaggingGroup) {
  cs::SchedulerConfig config;
  config.tail_jobs = 0;
  cs::Scheduler s(config);
  two_groups_then_b_backlog(s);
  // a: 2,000 ms of work for backend 3 alone once 1 leaves; b: 10,000 ms for two backends plus
  // one load of 5,000 ms. b still lags by more than a load after the move, so backend 1 moves.
  auto a = s.decide(6000);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job, 20u);

  cs::SchedulerConfig off = config;
  off.rebalance = false;
  cs::Scheduler t(off);
  two_groups_then_b_backlog(t);
  auto b = t.decide(6000);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].job, 10u);
}

TEST(Scheduler, HeadIsOvertakenAtMostLookaheadTimes) {
  cs::SchedulerConfig config;
  config.tail_jobs = 0;
  config.lookahead = 3;
  cs::Scheduler s(config);
  ASSERT_TRUE(s.add_backend(cs::BackendSpec{1, 1, {"KSampler"}, {"a", "b"}, 1.0}));
  ASSERT_TRUE(s.submit(job(1, "a"), 0));
  ASSERT_EQ(s.decide(0).size(), 1u);
  ASSERT_TRUE(s.submit(job(2, "b"), 0));  // the head from now on
  for (cs::JobId id = 3; id <= 9; ++id) ASSERT_TRUE(s.submit(job(id, "a"), 0));
  std::vector<cs::JobId> order;
  cs::JobId running = 1;
  for (int step = 1; step <= 5; ++step) {
    ASSERT_TRUE(s.complete(running, 1, 1000, 1000 * step));
    auto a = s.decide(1000 * step);
    ASSERT_EQ(a.size(), 1u);
    running = a[0].job;
    order.push_back(running);
  }
  // Three cache hits overtake job 2, then it runs (and its checkpoint is kept).
  EXPECT_EQ(order, (std::vector<cs::JobId>{3, 4, 5, 2, 6}));
}

TEST(Scheduler, TailSendsJobWhereItFinishesFirst) {
  // The AffinityBeatsLoad farm with the default configuration: backend on_b is busy until about
  // 6,000 ms (its own load and run), so job 3 ends at 7,000 there but at 6,010 on the idle
  // backend, load included.
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(backend(1)));
  ASSERT_TRUE(s.add_backend(backend(2)));
  ASSERT_TRUE(s.submit(job(1, "a.safetensors"), 0));
  ASSERT_TRUE(s.submit(job(2, "b.safetensors"), 0));
  auto first = s.decide(0);
  ASSERT_EQ(first.size(), 2u);
  ASSERT_TRUE(s.submit(job(3, "b.safetensors"), 0));
  ASSERT_TRUE(s.complete(1, first[0].backend, 1000, 10));
  auto a = s.decide(10);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].backend, first[0].backend);
}

TEST(Scheduler, TailLeavesASlowBackendIdleWhenAFastOneEndsSooner) {
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(cs::BackendSpec{1, 1, {"KSampler"}, {"a.safetensors"}, 4.0}));
  ASSERT_TRUE(s.add_backend(cs::BackendSpec{2, 1, {"KSampler"}, {"a.safetensors"}, 1.0}));
  ASSERT_TRUE(s.submit(job(1, "a.safetensors", 4000), 0));
  ASSERT_TRUE(s.submit(job(2, "a.safetensors", 1000), 0));
  auto first = s.decide(0);
  ASSERT_EQ(first.size(), 2u);
  // Longest first: job 1 on the fast backend (ends at 6,000), job 2 on the slow one (6,000).
  EXPECT_EQ(first[0], (cs::Assignment{1, 1}));
  EXPECT_EQ(first[1], (cs::Assignment{2, 2}));
  ASSERT_TRUE(s.complete(2, 2, 1000, 6000));
  ASSERT_TRUE(s.submit(job(3, "a.safetensors", 8000), 6000));
  // 8,000 ms on the idle slow backend, or 2,000 ms on the fast one once it is done: wait.
  EXPECT_TRUE(s.decide(6000).empty());
  ASSERT_TRUE(s.complete(1, 1, 1000, 6000));
  auto a = s.decide(6000);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0], (cs::Assignment{3, 1}));
}

TEST(Scheduler, TailRespectsPriorityBeforeLength) {
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(cs::BackendSpec{1, 1, {"KSampler"}, {"a.safetensors"}, 1.0}));
  ASSERT_TRUE(s.submit(job(1, "a.safetensors", 9000, 0), 0));
  ASSERT_TRUE(s.submit(job(2, "a.safetensors", 1000, 1), 0));
  auto a = s.decide(0);
  ASSERT_EQ(a.size(), 1u);
  EXPECT_EQ(a[0].job, 2u);
}

TEST(Scheduler, CancelAndRetryKeepGroupAccounting) {
  cs::Scheduler s;
  ASSERT_TRUE(s.add_backend(backend(1)));
  ASSERT_TRUE(s.submit(job(1), 0));
  ASSERT_TRUE(s.submit(job(2), 0));
  ASSERT_TRUE(s.cancel(2));
  auto a = s.decide(0);
  ASSERT_EQ(a.size(), 1u);
  auto f = s.fail(1, 1, cs::FailureClass::kOom, 0);
  ASSERT_TRUE(f);
  ASSERT_TRUE(f->decision.retry);
  EXPECT_EQ(s.backend(1)->previous_affinity, 0u);  // /free emptied its cache
  auto b = s.decide(f->decision.delay_ms);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].job, 1u);
  ASSERT_TRUE(s.complete(1, 1, 1000, f->decision.delay_ms + 6000));
  EXPECT_EQ(s.jobs(), 0u);
  EXPECT_TRUE(s.decide(f->decision.delay_ms + 6000).empty());
}

TEST(VirtualFarm, LowerBoundCountsLoadsAndTheLongestJob) {
  // Capacity: speeds 2 and 1, loads 1 s and 3 s, 10,000 ms of work: the smallest T with
  // 2 (T - 1000) + (T - 3000) >= 10,000 is 5,000.
  std::vector<cs::SimBackend> backends{{2.0, 1000}, {1.0, 3000}};
  EXPECT_DOUBLE_EQ(cs::makespan_lower_bound(backends, {{0, 0, 0, 5000}, {1, 0, 0, 5000}}), 5000);
  // One 10,000 ms job: it cannot end before 1,000 + 10,000 / 2 on the fast backend.
  EXPECT_DOUBLE_EQ(cs::makespan_lower_bound(backends, {{0, 0, 0, 10000}}), 6000);
  // Three checkpoints on two backends: one more load, at least 2.0 x 1,000 ms of work.
  EXPECT_NEAR(cs::makespan_lower_bound(backends, {{0, 0, 0, 4000}, {1, 0, 1, 3000}, {2, 0, 2, 3000}}),
              (10000.0 + 2000 + 2000 + 3000) / 3, 1e-9);
  // A slow backend whose load alone ends after the bound does not count.
  std::vector<cs::SimBackend> one_slow{{2.0, 0}, {1.0, 100'000}};
  EXPECT_DOUBLE_EQ(cs::makespan_lower_bound(one_slow, {{0, 0, 0, 1000}, {1, 0, 0, 1000}}), 1000);
  EXPECT_EQ(cs::makespan_lower_bound(backends, {}), 0);
}

TEST(VirtualFarm, MixedWorkflowsAndSkewedCheckpointsStayWithinTenPercent) {
  std::vector<cs::SimBackend> backends;
  for (int i = 0; i < 16; ++i) backends.push_back({i < 8 ? 2.0 : 1.0, 3000});
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<cs::SimJob> jobs;
    for (cs::JobId i = 0; i < 400; ++i) {
      const auto c = rng() % 100;
      const auto w = rng() % 100;
      jobs.push_back({i, 0, c < 50 ? 0 : c < 75 ? 1 : c < 90 ? 2 : 3,
                      w < 45 ? 3000.0 : w < 70 ? 6000.0 : w < 90 ? 12000.0 : 20000.0});
    }
    auto r = cs::run_virtual_farm(backends, jobs);
    EXPECT_EQ(r.completed, 400u);
    EXPECT_LE(static_cast<double>(r.makespan_ms), 1.10 * r.lower_bound_ms) << "seed " << seed;
  }
}

TEST(Scheduler, AvoidingTheFailedBackendIsOnlyAPreference) {
  cs::SchedulerConfig cfg;
  cfg.retry.backoff_ms = {0};
  cs::Scheduler s(cfg);
  ASSERT_TRUE(s.add_backend(backend(1)));
  ASSERT_TRUE(s.submit(job(7), 0));
  ASSERT_EQ(s.decide(0), (std::vector<cs::Assignment>{{7, 1}}));
  auto f = s.fail(7, 1, cs::FailureClass::kBackendLost, 10);
  ASSERT_TRUE(f);
  ASSERT_TRUE(f->decision.retry);
  EXPECT_TRUE(f->decision.avoid_backend);
  // The only backend takes it again instead of the job waiting forever.
  EXPECT_EQ(s.decide(10), (std::vector<cs::Assignment>{{7, 1}}));

  // With a second backend, the retry goes there.
  ASSERT_TRUE(s.add_backend(backend(2)));
  auto g = s.fail(7, 1, cs::FailureClass::kOom, 20);
  ASSERT_TRUE(g && g->decision.retry);
  EXPECT_EQ(s.decide(20), (std::vector<cs::Assignment>{{7, 2}}));
}

TEST(Scheduler, NotPlaceableOnceEveryBackendIsBlocked) {
  cs::SchedulerConfig cfg;
  cfg.retry.backoff_ms = {0};
  cs::Scheduler s(cfg);
  ASSERT_TRUE(s.add_backend(backend(1)));
  ASSERT_TRUE(s.submit(job(7), 0));
  EXPECT_TRUE(s.placeable(7));
  ASSERT_EQ(s.decide(0).size(), 1u);
  auto f = s.fail(7, 1, cs::FailureClass::kBackendIncompatible, 10);
  ASSERT_TRUE(f && f->decision.retry);
  // The only backend is blocked for this structure: the job can never run here.
  EXPECT_FALSE(s.placeable(7));
  EXPECT_TRUE(s.decide(10).empty());
  EXPECT_FALSE(s.placeable(99));  // unknown job
}
