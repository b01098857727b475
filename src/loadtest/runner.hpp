// The load runner of `comfyfarm loadtest`: replays one API-format workflow against any
// ComfyUI-compatible server (a ComfyUI, the farm, a simulator) in a closed or open loop and
// measures every job from its events.
#pragma once

#include "core/error.hpp"
#include "loadtest/results.hpp"

#include <boost/json/object.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace comfyfarm::loadtest {

/// Live numbers for the progress line.
struct Progress {
  std::uint64_t done = 0;       ///< measured jobs that succeeded
  std::uint64_t failed = 0;     ///< measured jobs that did not
  std::uint64_t in_flight = 0;  ///< sent, not ended
  double elapsed_s = 0;
  double throughput_jobs_s = 0;  ///< succeeded / elapsed
  double p95_s = 0;              ///< end-to-end p95 so far
};

struct LoadOptions {
  // A declared constructor keeps this a non-aggregate (GCC 12 and `{}` temporaries).
  LoadOptions() = default;

  std::string server;              ///< "http://host:port"
  boost::json::object workflow;    ///< API format
  std::string workflow_name;       ///< for the report
  std::uint64_t jobs = 12;         ///< measured jobs (warm-up jobs come on top)
  std::uint64_t concurrency = 4;   ///< closed loop: jobs in flight at once
  std::optional<double> rate;      ///< open loop: jobs started per second (concurrency unbounded)
  std::optional<double> duration_s;  ///< stop starting jobs after this (then `jobs` is a cap only if set)
  bool jobs_given = true;          ///< false: with duration_s, jobs is not a cap
  std::uint64_t warmup = 0;        ///< jobs run first and left out of the summary
  bool vary_seed = true;           ///< a fresh seed per job for every sampler ("seed", "noise_seed")
  std::uint64_t seed = 0;          ///< base of the varied seeds; 0 picks one
  std::chrono::milliseconds timeout{std::chrono::seconds(420)};  ///< per job, from its send
  /// Jobs share a WebSocket per client id; one client id per this many concurrent jobs.
  std::uint64_t jobs_per_socket = 256;
  std::string client_prefix = "comfyfarm-loadtest";
  /// Called on the runner's thread as each job ends (ndjson writer).
  std::function<void(const JobResult&)> on_job;
  /// Called about once a second (progress line).
  std::function<void(const Progress&)> on_progress;
  std::string scenario;  ///< copied into RunInfo
};

struct LoadRun {
  std::vector<JobResult> jobs;  ///< warm-up first, then measured, in start order
  RunInfo info;
  bool farm = false;            ///< the server answered /api/farm/backends
  std::vector<std::string> farm_backends;
};

/// Runs the load and returns every job. Blocking (its own I/O thread). Errors are for the
/// harness itself: the server cannot be reached at all (kUnavailable), the workflow is not an
/// object of nodes (kInvalidArgument). Jobs that fail are results, not errors.
[[nodiscard]] Result<LoadRun> run_load(const LoadOptions& options);

/// Sets every "seed"/"noise_seed" literal input to `seed` (what --vary seed does per job).
void reseed_workflow(boost::json::object& workflow, std::uint64_t seed);

}  // namespace comfyfarm::loadtest
