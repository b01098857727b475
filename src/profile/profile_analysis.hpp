// ProfileAnalysis: what a JobProfile means: critical path over the workflow DAG, speedup bound,
// parallelizability, bottlenecks, time by class type, loader/sampler shares, recommendations.
#pragma once

#include "profile/job_profile.hpp"
#include "profile/time.hpp"

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::profile {

struct AnalysisOptions {
  /// Class types counted as model loading besides the default rule (a class name ending in
  /// "Loader" or "LoaderSimple", or containing "Loader" followed by "ModelOnly").
  std::vector<std::string> loader_classes{};
  /// Class types counted as sampling besides the default rule (names starting with "KSampler"
  /// or "SamplerCustom").
  std::vector<std::string> sampler_classes{};
  double bottleneck_factor = 2.0;  ///< a node is a bottleneck at >= factor x the average
  double loader_share_hint = 0.25;    ///< recommend routing by model at this share of node time
  double sampler_share_hint = 0.60;
  double vae_share_hint = 0.30;
  double mostly_cached_ratio = 0.80;
  double parallel_speedup_hint = 1.5;
  Duration jitter_hint = Duration(50'000);  ///< warn about timing precision above this spread
};

/// The longest dependency chain, weighted by measured busy time (cached and unrun nodes weigh 0).
struct CriticalPath {
  std::vector<std::string> nodes{};  ///< from a source to a sink of the DAG
  Duration length{};
  friend bool operator==(const CriticalPath&, const CriticalPath&) = default;
};

enum class BottleneckKind { kSlow, kFailed };
enum class Severity { kCritical, kHigh, kMedium };
[[nodiscard]] std::string_view to_string(BottleneckKind k) noexcept;
[[nodiscard]] std::string_view to_string(Severity s) noexcept;

struct Bottleneck {
  std::string node_id{};
  std::string class_type{};
  std::string title{};
  BottleneckKind kind = BottleneckKind::kSlow;
  Severity severity = Severity::kMedium;
  std::string reason{};  ///< "Execution time (3682.82 ms) is 2.1x the average (1756.67 ms)"
  std::string impact{};  ///< what it costs the run
  Duration duration{};
  double share = 0;  ///< of the total node time, 0..1
  bool on_critical_path = false;
  friend bool operator==(const Bottleneck&, const Bottleneck&) = default;
};

/// Time spent in one class type.
struct ClassStats {
  std::string class_type{};
  std::size_t executed = 0;  ///< nodes of the class that ran (completed, failed or interrupted)
  std::size_t cached = 0;
  Duration total{};
  Duration average{};  ///< total / executed
  double share = 0;    ///< of the total node time, 0..1
  friend bool operator==(const ClassStats&, const ClassStats&) = default;
};

/// Time in one category of nodes (model loading, sampling, VAE decoding).
struct CategoryTime {
  Duration total{};
  double share = 0;  ///< of the total node time, 0..1
  std::vector<std::string> nodes{};  ///< the nodes of the category that ran, slowest first
  friend bool operator==(const CategoryTime&, const CategoryTime&) = default;
};

/// Steps per second of a node that reported progress (from its first to its last sample).
struct StepRate {
  std::string node_id{};
  double steps_per_second = 0;
  std::size_t samples = 0;
  friend bool operator==(const StepRate&, const StepRate&) = default;
};

struct Recommendation {
  std::string code{};  ///< stable id: "model_loading", "mostly_cached", ...
  std::string text{};
  friend bool operator==(const Recommendation&, const Recommendation&) = default;
};

struct ProfileAnalysis {
  bool graph_known = false;
  std::size_t ran_nodes = 0;  ///< nodes with measured time (completed, failed, interrupted)
  Duration node_time{};       ///< sum of the ran nodes' busy times
  /// execution_time minus the union of all node intervals: the executor's own time between
  /// nodes plus message delivery (0 when unknown).
  Duration unaccounted{};
  CriticalPath critical_path{};
  double speedup_bound = 1.0;       ///< node_time / critical_path.length (1 without a graph)
  double parallelizability = 0.0;   ///< percent: 100 * (1 - critical_path.length / node_time)
  Duration average_node_time{};     ///< over ran nodes
  Duration median_node_time{};      ///< over ran nodes
  std::vector<Bottleneck> bottlenecks{};  ///< failed first, then slow ones, slowest first
  std::vector<ClassStats> by_class{};     ///< by total time, descending
  CategoryTime model_loading{};
  CategoryTime sampling{};
  CategoryTime vae_decode{};
  double cache_hit_ratio = 0;  ///< cached / (cached + ran), 0..1
  std::vector<StepRate> step_rates{};
  std::vector<Recommendation> recommendations{};
  friend bool operator==(const ProfileAnalysis&, const ProfileAnalysis&) = default;
};

/// Analyses a profile. Uses only the profile (its nodes' inputs_from give the graph), so it
/// works on a profile read back from JSON. Pure and deterministic.
[[nodiscard]] ProfileAnalysis analyze(const JobProfile& profile, const AnalysisOptions& options = {});

/// The critical path alone: the longest path through the profile's graph (nodes' inputs_from)
/// where each node weighs its busy time if it ran (completed, failed, interrupted with time) and
/// 0 otherwise (cached, pending). Ties go to the node earlier in `profile.nodes`. Without a graph
/// (graph_known false) the path is empty and its length is the sum of the node times.
[[nodiscard]] CriticalPath critical_path(const JobProfile& profile);

/// The default loader / sampler rules (before AnalysisOptions' extra names).
[[nodiscard]] bool is_loader_class(std::string_view class_type) noexcept;
[[nodiscard]] bool is_sampler_class(std::string_view class_type) noexcept;
[[nodiscard]] bool is_vae_decode_class(std::string_view class_type) noexcept;

}  // namespace comfyfarm::profile
