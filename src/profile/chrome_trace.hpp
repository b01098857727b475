// Chrome trace event format export (the JSON object form), which Perfetto (ui.perfetto.dev) and
// chrome://tracing open: one process per run/backend, nodes as slices, progress as counters.
#pragma once

#include "profile/job_profile.hpp"

#include <boost/json/value.hpp>

#include <span>

namespace comfyfarm::profile {

/// {"traceEvents": [...], "displayTimeUnit": "ms", "otherData": {...}}. Per run (pid = its
/// 1-based position): "M" metadata naming the process (label and backend) and its threads; on
/// thread 0 ("job") an "X" slice for the queue wait and one for the prompt, and "i" instants for
/// cached nodes and the interrupted node; on thread 1 ("executor") an "X" slice per node interval,
/// with overlapping intervals (async nodes) moved to threads 2.. ("overlap N") so that slices on
/// one thread never cross; "C" counter events for progress samples. ts and dur are integer
/// microseconds from the earliest time of all runs (otherData.origin_epoch_ms), so runs keep
/// their real relative placement.
[[nodiscard]] boost::json::value render_chrome_trace(std::span<const JobProfile> runs);

}  // namespace comfyfarm::profile
