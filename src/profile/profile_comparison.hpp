// ProfileComparison: one run against a baseline run of the same workflow, per node and in total.
#pragma once

#include "profile/job_profile.hpp"
#include "profile/time.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::profile {

struct CompareOptions {
  /// A change counts when it is beyond both thresholds: percent of the baseline AND absolute
  /// (so a 1 ms node that doubles is noise, and so is 40 ms on a 60 s sampler).
  double threshold_percent = 10.0;
  Duration min_delta = Duration(50'000);
};

enum class Verdict {
  kUnchanged,
  kRegression,     ///< slower beyond both thresholds
  kImprovement,    ///< faster beyond both thresholds
  kCacheChanged,   ///< cached in one run and not in the other: times are not comparable
  kStatusChanged,  ///< e.g. completed in the baseline, failed now
  kAdded,          ///< only in the current run
  kRemoved,        ///< only in the baseline
};
[[nodiscard]] std::string_view to_string(Verdict v) noexcept;

struct NodeDelta {
  std::string node_id{};
  std::string class_type{};
  std::string title{};
  std::optional<NodeStatus> baseline_status{};
  std::optional<NodeStatus> current_status{};
  std::optional<Duration> baseline{};
  std::optional<Duration> current{};
  Duration delta{};       ///< current - baseline (0 when either is missing)
  double delta_percent = 0;  ///< 100 * delta / baseline (0 when baseline is 0 or missing)
  Verdict verdict = Verdict::kUnchanged;
  friend bool operator==(const NodeDelta&, const NodeDelta&) = default;
};

struct ProfileComparison {
  std::string baseline_prompt_id{};
  std::string current_prompt_id{};
  CompareOptions options{};
  std::optional<Duration> baseline_execution{};
  std::optional<Duration> current_execution{};
  Duration execution_delta{};
  double execution_delta_percent = 0;
  Verdict execution_verdict = Verdict::kUnchanged;  ///< kUnchanged, kRegression or kImprovement
  std::vector<NodeDelta> nodes{};  ///< the baseline's order, then nodes new in the current run
  std::size_t regressions = 0;     ///< nodes with kRegression
  std::size_t improvements = 0;

  /// A node or the total regressed.
  [[nodiscard]] bool has_regression() const noexcept {
    return regressions > 0 || execution_verdict == Verdict::kRegression;
  }
};

[[nodiscard]] ProfileComparison compare(const JobProfile& baseline, const JobProfile& current,
                                        const CompareOptions& options = {});

}  // namespace comfyfarm::profile
