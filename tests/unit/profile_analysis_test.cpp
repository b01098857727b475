// Analysis of profiles (critical path, speedup, parallelizability, bottlenecks, shares,
// recommendations), aggregation across runs and comparison with a baseline.
#include "profile/profile_analysis.hpp"

#include "profile/profile_aggregate.hpp"
#include "profile/profile_comparison.hpp"
#include "profile_test_util.hpp"

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

namespace comfyfarm::profile {
namespace {

using namespace comfyfarm::profile::testing;
using Ids = std::vector<std::string>;

// txt2img-like DAG with known durations (ms):
//   1 CheckpointLoaderSimple 2500 -> 2 CLIPTextEncode 100, 3 CLIPTextEncode 300
//   2, 3, 7 EmptyLatentImage 10 -> 4 KSampler 5000 -> 5 VAEDecode 600 -> 6 SaveImage 50
constexpr std::string_view kDag = R"({
  "1": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "m.safetensors"}},
  "2": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "a"}},
  "3": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["1", 1], "text": "b"}},
  "7": {"class_type": "EmptyLatentImage", "inputs": {"width": 512}},
  "4": {"class_type": "KSampler", "inputs": {"model": ["1", 0], "positive": ["2", 0],
                                             "negative": ["3", 0], "latent_image": ["7", 0]},
        "_meta": {"title": "Sampler"}},
  "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
  "6": {"class_type": "SaveImage", "inputs": {"images": ["5", 0]}}})";

// Runs the DAG's nodes one after another (in this order) with the given durations, on a new
// server; `scale` multiplies node 4's time, `cached` nodes are served from cache.
JobProfile dag_run(std::map<std::string, double> ms, const Ids& cached = {},
                   std::string prompt = "p-dag", double queue_ms = 0) {
  Script s(prompt);
  s.at(queue_ms).execution_start().cached(cached);
  double t = queue_ms + 1;
  for (const char* id : {"1", "7", "3", "2", "4", "5", "6"}) {
    if (std::find(cached.begin(), cached.end(), id) != cached.end()) continue;
    s.run(id, t, t + ms.at(id));
    t += ms.at(id) + 1;
  }
  s.at(t).success();
  JobProfiler profiler(ProfilerOptions{.prompt_id = prompt}, parse_workflow(kDag));
  profiler.on_submitted(s.time(0));
  feed(profiler, s.events());
  return profiler.profile();
}

const std::map<std::string, double> kDagMs = {{"1", 2500}, {"2", 100}, {"3", 300}, {"7", 10},
                                              {"4", 5000}, {"5", 600}, {"6", 50}};

TEST(ProfileAnalysis, HandBuiltDagCriticalPathAndSpeedup) {
  const JobProfile p = dag_run(kDagMs);
  const ProfileAnalysis a = analyze(p);
  EXPECT_TRUE(a.graph_known);
  // Longest chain: 1 -> 3 -> 4 -> 5 -> 6 = 2500 + 300 + 5000 + 600 + 50.
  EXPECT_EQ(a.critical_path.nodes, (Ids{"1", "3", "4", "5", "6"}));
  EXPECT_EQ(a.critical_path.length, from_ms(8450));
  EXPECT_EQ(a.node_time, from_ms(8560));
  EXPECT_DOUBLE_EQ(a.speedup_bound, 8560.0 / 8450.0);
  EXPECT_NEAR(a.parallelizability, 100.0 * (1.0 - 8450.0 / 8560.0), 1e-9);
  EXPECT_EQ(a.ran_nodes, 7u);
  EXPECT_EQ(a.average_node_time, from_ms(8560.0 / 7.0));
  EXPECT_EQ(a.median_node_time, from_ms(300));
  // 7 ms between nodes (1 ms gaps) and the 1 ms before the first node.
  EXPECT_EQ(a.unaccounted, from_ms(8));
}

TEST(ProfileAnalysis, BottlenecksSharesAndRecommendations) {
  const JobProfile p = dag_run(kDagMs);
  const ProfileAnalysis a = analyze(p);
  // Average 1222.86 ms: KSampler (5000) and the loader (2500) are >= 2x.
  ASSERT_EQ(a.bottlenecks.size(), 2u);
  EXPECT_EQ(a.bottlenecks[0].node_id, "4");
  EXPECT_EQ(a.bottlenecks[0].kind, BottleneckKind::kSlow);
  EXPECT_EQ(a.bottlenecks[0].severity, Severity::kCritical);  // 58% of node time
  EXPECT_TRUE(a.bottlenecks[0].on_critical_path);
  EXPECT_NE(a.bottlenecks[0].reason.find("4.1x the average"), std::string::npos)
      << a.bottlenecks[0].reason;
  EXPECT_EQ(a.bottlenecks[1].node_id, "1");
  EXPECT_EQ(a.bottlenecks[1].severity, Severity::kHigh);
  EXPECT_NEAR(a.model_loading.share, 2500.0 / 8560.0, 1e-9);
  EXPECT_EQ(a.model_loading.nodes, Ids{"1"});
  EXPECT_NEAR(a.sampling.share, 5000.0 / 8560.0, 1e-9);
  EXPECT_NEAR(a.vae_decode.share, 600.0 / 8560.0, 1e-9);
  ASSERT_FALSE(a.by_class.empty());
  EXPECT_EQ(a.by_class[0].class_type, "KSampler");
  const ClassStats* clip = nullptr;
  for (const auto& c : a.by_class) {
    if (c.class_type == "CLIPTextEncode") clip = &c;
  }
  ASSERT_NE(clip, nullptr);
  EXPECT_EQ(clip->executed, 2u);
  EXPECT_EQ(clip->total, from_ms(400));
  EXPECT_EQ(clip->average, from_ms(200));
  EXPECT_EQ(a.cache_hit_ratio, 0.0);
  std::vector<std::string> codes;
  for (const auto& r : a.recommendations) codes.push_back(r.code);
  EXPECT_EQ(codes, (Ids{"model_loading", "bottleneck"}));
  EXPECT_NE(a.recommendations[0].text.find("CheckpointLoaderSimple [1]) is 29%"), std::string::npos)
      << a.recommendations[0].text;
}

TEST(ProfileAnalysis, BranchTwoOutputsCriticalPath) {
  const JobProfile p = profile_run(load_run("branch_two_outputs/run1"));
  const ProfileAnalysis a = analyze(p);
  // Measured (µs): 2: 23, 4: 2898, 7: 754, 8: 1346, 1: 610, 3: 411, 5: 947, 6: 1412.
  // Chains: 2-4-5-6 = 5280, 2-4-7-8 = 5021, 1-3-5-6 = 3380.
  EXPECT_EQ(a.critical_path.nodes, (Ids{"2", "4", "5", "6"}));
  EXPECT_EQ(a.critical_path.length, Duration(5'280));
  EXPECT_EQ(a.node_time, Duration(8'401));
  EXPECT_DOUBLE_EQ(a.speedup_bound, 8401.0 / 5280.0);
  EXPECT_NEAR(a.parallelizability, 100.0 * (1.0 - 5280.0 / 8401.0), 1e-9);
  bool parallel_hint = false;
  for (const auto& r : a.recommendations) parallel_hint |= r.code == "parallel_branches";
  EXPECT_TRUE(parallel_hint);
}

TEST(ProfileAnalysis, ChainHasNoParallelism) {
  const ProfileAnalysis a = analyze(profile_run(load_run("slow_blur/run1")));
  EXPECT_EQ(a.critical_path.nodes, (Ids{"1", "2", "3", "4"}));
  EXPECT_EQ(a.critical_path.length, a.node_time);
  EXPECT_DOUBLE_EQ(a.speedup_bound, 1.0);
  EXPECT_DOUBLE_EQ(a.parallelizability, 0.0);
  bool jitter = false;
  for (const auto& r : a.recommendations) jitter |= r.code == "timing_jitter";
  EXPECT_TRUE(jitter);  // 130 ms delivery delay in this recording
}

TEST(ProfileAnalysis, CachedRunIsFlaggedAndWeighsNothing) {
  const ProfileAnalysis a = analyze(profile_run(load_run("slow_blur/run2")));
  EXPECT_EQ(a.cache_hit_ratio, 1.0);
  EXPECT_TRUE(a.critical_path.nodes.empty());
  EXPECT_EQ(a.critical_path.length, Duration::zero());
  EXPECT_DOUBLE_EQ(a.speedup_bound, 1.0);
  ASSERT_FALSE(a.recommendations.empty());
  EXPECT_EQ(a.recommendations[0].code, "mostly_cached");
}

TEST(ProfileAnalysis, PartiallyCachedPathStartsAtTheFirstNodeThatRan) {
  const JobProfile p = dag_run(kDagMs, {"1", "2", "3", "7"});
  const ProfileAnalysis a = analyze(p);
  EXPECT_EQ(a.critical_path.nodes, (Ids{"4", "5", "6"}));
  EXPECT_EQ(a.critical_path.length, from_ms(5650));
  EXPECT_DOUBLE_EQ(a.cache_hit_ratio, 4.0 / 7.0);
  EXPECT_EQ(a.model_loading.total, Duration::zero());
}

TEST(ProfileAnalysis, FailedNodeIsABottleneckWithItsBlockedDownstream) {
  const ProfileAnalysis a = analyze(profile_run(load_run("runtime_error/run1")));
  ASSERT_FALSE(a.bottlenecks.empty());
  const Bottleneck& b = a.bottlenecks[0];
  EXPECT_EQ(b.node_id, "2");
  EXPECT_EQ(b.kind, BottleneckKind::kFailed);
  EXPECT_EQ(b.reason, "Failed with IndexError: index 3 is out of bounds for dimension 3 with size 3");
  EXPECT_EQ(b.impact, "Stopped the run: 2 downstream node(s) did not run");
  ASSERT_FALSE(a.recommendations.empty());
  EXPECT_EQ(a.recommendations[0].code, "failed");
}

TEST(ProfileAnalysis, WithoutAGraphThePathIsUnknown) {
  Script s;
  s.at(0).execution_start().cached({});
  s.run("1", 1, 11);
  s.run("2", 12, 42);
  s.at(43).success();
  const ProfileAnalysis a = analyze(profile_trace(s.events()));
  EXPECT_FALSE(a.graph_known);
  EXPECT_TRUE(a.critical_path.nodes.empty());
  EXPECT_EQ(a.critical_path.length, from_ms(40));
  EXPECT_DOUBLE_EQ(a.speedup_bound, 1.0);
}

TEST(ProfileAnalysis, ConfigurableLoaderClasses) {
  EXPECT_TRUE(is_loader_class("CheckpointLoaderSimple"));
  EXPECT_TRUE(is_loader_class("VAELoader"));
  EXPECT_TRUE(is_loader_class("LoraLoaderModelOnly"));
  EXPECT_FALSE(is_loader_class("LoadImage"));
  EXPECT_TRUE(is_sampler_class("KSamplerAdvanced"));
  EXPECT_TRUE(is_sampler_class("SamplerCustomAdvanced"));
  AnalysisOptions options;
  options.loader_classes = {"EmptyImage"};
  const ProfileAnalysis a = analyze(profile_run(load_run("slow_blur/run1")), options);
  EXPECT_EQ(a.model_loading.nodes, Ids{"1"});
  EXPECT_EQ(a.model_loading.total, Duration(1'218));
}

TEST(ProfileAnalysis, StepRateFromProgressSamples) {
  Script s;
  s.at(0).execution_start().cached({});
  s.at(1).running("3");
  s.at(1.005).executing("3");
  for (int i = 1; i <= 5; ++i) s.at(1 + 100 * i).state("3", "running", i, 5);
  s.at(600).finished("3");
  s.at(601).success();
  const ProfileAnalysis a = analyze(profile_trace(s.events()));
  ASSERT_EQ(a.step_rates.size(), 1u);
  EXPECT_EQ(a.step_rates[0].samples, 5u);
  EXPECT_DOUBLE_EQ(a.step_rates[0].steps_per_second, 10.0);  // 4 steps in 400 ms
}

TEST(ProfileAggregate, PercentilesInterpolateBetweenRanks) {
  const DurationStats s = duration_stats({Duration(400), Duration(100), Duration(200)});
  EXPECT_EQ(s.count, 3u);
  EXPECT_EQ(s.min, Duration(100));
  EXPECT_EQ(s.p50, Duration(200));
  EXPECT_EQ(s.p95, Duration(380));  // rank 1.9: 200 + 0.9 * 200
  EXPECT_EQ(s.max, Duration(400));
  EXPECT_EQ(s.mean, Duration(233));
  EXPECT_EQ(duration_stats({}).count, 0u);
}

TEST(ProfileAggregate, ColdAndWarmRunsOfOneWorkflow) {
  auto warm1 = kDagMs;
  warm1["4"] = 4000;
  auto warm2 = kDagMs;
  warm2["4"] = 4400;
  const std::vector<JobProfile> runs = {dag_run(kDagMs, {}, "a", 5),
                                        dag_run(warm1, {"1", "2", "3", "7"}, "b", 5),
                                        dag_run(warm2, {"1", "2", "3", "7"}, "c", 5)};
  const ProfileAggregate agg = aggregate(runs);
  EXPECT_EQ(agg.runs, 3u);
  EXPECT_EQ(agg.succeeded, 3u);
  EXPECT_EQ(agg.queue_time.p50, from_ms(5));
  const NodeAggregate* n4 = nullptr;
  const NodeAggregate* n1 = nullptr;
  for (const auto& n : agg.nodes) {
    if (n.node_id == "4") n4 = &n;
    if (n.node_id == "1") n1 = &n;
  }
  ASSERT_TRUE(n4 && n1);
  EXPECT_EQ(n4->runs_executed, 3u);
  EXPECT_EQ(n4->duration.p50, from_ms(4400));
  EXPECT_EQ(n4->duration.p95, from_ms(4400 + 0.9 * 600));
  EXPECT_EQ(n4->duration.max, from_ms(5000));
  EXPECT_EQ(n4->cold, from_ms(5000));
  EXPECT_EQ(n4->warm_p50, from_ms(4200));
  EXPECT_EQ(n1->runs_executed, 1u);
  EXPECT_EQ(n1->runs_cached, 2u);
  EXPECT_EQ(n1->cold, from_ms(2500));
  EXPECT_FALSE(n1->warm_p50.has_value());
  ASSERT_TRUE(agg.cold_execution_time && agg.warm_execution_p50);
  EXPECT_GT(*agg.cold_execution_time, *agg.warm_execution_p50);
  EXPECT_DOUBLE_EQ(agg.cache_hit_ratio, 8.0 / 21.0);
}

TEST(ProfileAggregate, RecordedColdAndCachedRuns) {
  const std::vector<JobProfile> runs = {profile_run(load_run("slow_blur/run1")),
                                        profile_run(load_run("slow_blur/run2"))};
  const ProfileAggregate agg = aggregate(runs);
  ASSERT_EQ(agg.nodes.size(), 4u);
  const NodeAggregate& n2 = agg.nodes[1];
  EXPECT_EQ(n2.node_id, "2");
  EXPECT_EQ(n2.runs_executed, 1u);
  EXPECT_EQ(n2.runs_cached, 1u);
  EXPECT_EQ(n2.cold, Duration(3'682'816));
  EXPECT_EQ(n2.duration.p95, Duration(3'682'816));
}

TEST(ProfileComparison, FlagsRegressionsBeyondBothThresholds) {
  auto slower = kDagMs;
  slower["4"] = 6000;  // +1000 ms, +20%
  slower["2"] = 130;   // +30 ms, +30%: below the 50 ms floor
  slower["5"] = 560;   // -40 ms: noise
  const JobProfile base = dag_run(kDagMs, {}, "base");
  const JobProfile cur = dag_run(slower, {}, "cur");
  const ProfileComparison c = compare(base, cur);
  EXPECT_TRUE(c.has_regression());
  EXPECT_EQ(c.regressions, 1u);
  EXPECT_EQ(c.improvements, 0u);
  EXPECT_EQ(c.execution_verdict, Verdict::kRegression);
  EXPECT_EQ(c.execution_delta, from_ms(990));
  std::map<std::string, NodeDelta> by_id;
  for (const auto& d : c.nodes) by_id[d.node_id] = d;
  EXPECT_EQ(by_id["4"].verdict, Verdict::kRegression);
  EXPECT_EQ(by_id["4"].delta, from_ms(1000));
  EXPECT_DOUBLE_EQ(by_id["4"].delta_percent, 20.0);
  EXPECT_EQ(by_id["2"].verdict, Verdict::kUnchanged);
  EXPECT_EQ(by_id["5"].verdict, Verdict::kUnchanged);
  EXPECT_EQ(c.baseline_prompt_id, "base");
  EXPECT_EQ(c.current_prompt_id, "cur");
}

TEST(ProfileComparison, ImprovementsCacheChangesAndStricterThresholds) {
  auto faster = kDagMs;
  faster["4"] = 2500;
  const JobProfile base = dag_run(kDagMs, {}, "base");
  const JobProfile cur = dag_run(faster, {"1"}, "cur");
  CompareOptions strict;
  strict.threshold_percent = 5;
  strict.min_delta = from_ms(1);
  const ProfileComparison c = compare(base, cur, strict);
  EXPECT_FALSE(c.has_regression());
  std::map<std::string, NodeDelta> by_id;
  for (const auto& d : c.nodes) by_id[d.node_id] = d;
  EXPECT_EQ(by_id["4"].verdict, Verdict::kImprovement);
  EXPECT_EQ(by_id["1"].verdict, Verdict::kCacheChanged);
  EXPECT_EQ(c.execution_verdict, Verdict::kImprovement);
}

TEST(ProfileComparison, AddedRemovedAndStatusChangedNodes) {
  const JobProfile ok = profile_run(load_run("slow_blur/run1"));
  const JobProfile failed = profile_run(load_run("runtime_error/run1"));
  const ProfileComparison c = compare(ok, failed);
  std::map<std::string, Verdict> v;
  for (const auto& d : c.nodes) v[d.node_id] = d.verdict;
  // Same ids, different graphs: node 2 completed in the baseline and failed now.
  EXPECT_EQ(v["2"], Verdict::kStatusChanged);
  EXPECT_EQ(v["3"], Verdict::kStatusChanged);  // completed -> pending
  const ProfileComparison branch = compare(ok, profile_run(load_run("branch_two_outputs/run1")));
  std::map<std::string, Verdict> vb;
  for (const auto& d : branch.nodes) vb[d.node_id] = d.verdict;
  EXPECT_EQ(vb["8"], Verdict::kAdded);
}

}  // namespace
}  // namespace comfyfarm::profile
