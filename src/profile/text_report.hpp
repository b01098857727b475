// Terminal reports of profiles, aggregates and comparisons: aligned tables, optional colour and
// box-drawing characters (the caller decides, e.g. from isatty; this module never asks).
#pragma once

#include "profile/job_profile.hpp"
#include "profile/profile_aggregate.hpp"
#include "profile/profile_analysis.hpp"
#include "profile/profile_comparison.hpp"

#include <cstddef>
#include <string>

namespace comfyfarm::profile {

struct TextOptions {
  bool color = false;    ///< ANSI colours (status, severity, headings)
  bool unicode = false;  ///< box-drawing rules, arrows and bullets instead of ASCII
  std::size_t width = 80;  ///< width of the rules
  bool all_nodes = true;   ///< the per-node table (off: summary sections only)
  std::size_t max_progress_values = 6;  ///< progress samples listed per node before "..."
};

/// One run: timeline, counts, critical path and speedup, slowest nodes, bottlenecks, time by
/// class, progress, every node, recommendations.
[[nodiscard]] std::string render_text(const JobProfile& profile, const ProfileAnalysis& analysis,
                                      const TextOptions& options = {});
/// Several runs: per-node p50/p95/max and cold vs warm.
[[nodiscard]] std::string render_text(const ProfileAggregate& aggregate,
                                      const TextOptions& options = {});
/// A run against its baseline: total and per-node changes, regressions flagged.
[[nodiscard]] std::string render_text(const ProfileComparison& comparison,
                                      const TextOptions& options = {});

}  // namespace comfyfarm::profile
