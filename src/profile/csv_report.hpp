// CSV export of profiles: one row per node per run (RFC 4180 quoting), for spreadsheets.
#pragma once

#include "profile/job_profile.hpp"

#include <span>
#include <string>

namespace comfyfarm::profile {

/// Header, then one row per node of each run, in the runs' order. Columns: run, prompt_id,
/// backend, node_id, class_type, title, status, cached, sequence, start_offset_ms,
/// end_offset_ms (from the run's started_at), duration_ms, executions, progress_samples,
/// previews, on_critical_path, error. Empty cells for unknown values. Lines end with "\r\n".
[[nodiscard]] std::string render_csv(std::span<const JobProfile> runs);

}  // namespace comfyfarm::profile
