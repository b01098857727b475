// The versioned JSON forms of profiles, analyses, aggregates and comparisons
// ("comfyfarm.profile/1", "comfyfarm.profile-set/1"); every field is listed in
// docs/profile-schema.md. Times are epoch milliseconds, durations milliseconds (µs resolution).
#pragma once

#include "core/error.hpp"
#include "profile/job_profile.hpp"
#include "profile/profile_aggregate.hpp"
#include "profile/profile_analysis.hpp"
#include "profile/profile_comparison.hpp"

#include <boost/json/value.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::profile {

namespace json = boost::json;

inline constexpr std::string_view kProfileSchema = "comfyfarm.profile/1";
inline constexpr std::string_view kProfileSetSchema = "comfyfarm.profile-set/1";

/// One run: {"schema": "comfyfarm.profile/1", ...}; with "analysis" when one is given.
[[nodiscard]] json::value to_json(const JobProfile& profile,
                                  const ProfileAnalysis* analysis = nullptr);
[[nodiscard]] json::value to_json(const ProfileAnalysis& analysis);
[[nodiscard]] json::value to_json(const ProfileAggregate& aggregate);
[[nodiscard]] json::value to_json(const ProfileComparison& comparison);

/// Several runs of one workflow: {"schema": "comfyfarm.profile-set/1", "runs": [profile/1 with
/// analysis...], "aggregate": {...}, "comparison": {...} or null}.
[[nodiscard]] json::value profile_set_to_json(std::span<const JobProfile> runs,
                                              const AnalysisOptions& options = {},
                                              const ProfileComparison* comparison = nullptr);

/// Reads back a "comfyfarm.profile/1" object (the analysis, if any, is ignored: recompute it).
/// Errors are Errc::kInvalidArgument naming the field ("nodes[2].status: unknown value \"x\"").
[[nodiscard]] Result<JobProfile> profile_from_json(const json::value& doc);

/// Reads "comfyfarm.profile/1" (one run) or "comfyfarm.profile-set/1" (its runs).
[[nodiscard]] Result<std::vector<JobProfile>> profiles_from_json(const json::value& doc);

/// Indented JSON text (2 spaces) for files humans read; numbers and strings as comfy::dumps
/// writes them (UTF-8 kept).
[[nodiscard]] std::string pretty_json(const json::value& v);

}  // namespace comfyfarm::profile
