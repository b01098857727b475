// Fault scenarios of `comfyfarm loadtest --scenario`: each starts simulated backends
// (`comfyfarm sim`) and a farm (`comfyfarm serve`) on loopback ports it picks, runs load,
// injects its fault and checks the behaviour seed 002 expects, one verdict per expectation.
#pragma once

#include "core/error.hpp"
#include "loadtest/results.hpp"
#include "loadtest/runner.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace comfyfarm::loadtest {

struct ScenarioOptions {
  // A declared constructor keeps this a non-aggregate (GCC 12 and `{}` temporaries).
  ScenarioOptions() = default;

  std::filesystem::path binary;  ///< the comfyfarm executable to start (this one: /proc/self/exe)
  std::uint64_t jobs = 24;       ///< measured jobs per scenario
  std::uint64_t concurrency = 4;
  std::chrono::milliseconds timeout{std::chrono::seconds(120)};  ///< per job
  /// The workflow to load with; empty: a built-in txt2img workflow the simulator knows.
  boost::json::object workflow{};
  std::string workflow_name{};
  /// Where the processes keep their data and logs; empty: a temporary directory removed after.
  std::filesystem::path work_dir{};
  /// Progress and what the scenario does, one line each (stderr in the CLI).
  std::function<void(const std::string&)> log{};
  SlaTargets sla{};  ///< evaluated on each scenario's load (the latency scenario expects a breach)
};

/// One expected behaviour and whether it held.
struct Expectation {
  std::string name;    ///< "rejected with ComfyUI's error", "no job lost", ...
  bool pass = false;
  std::string detail;  ///< what was measured
};

struct ScenarioReport {
  std::string name;
  std::vector<Expectation> expectations;
  std::optional<LoadRun> run;            ///< the main load, when there was one
  std::optional<double> recovery_s;      ///< crash: kill -> every affected job running again
  std::optional<SlaVerdict> sla;
  [[nodiscard]] bool pass() const;
};

/// "validation", "oom", "network-blip", "crash", "latency" (the order `all` runs them in).
[[nodiscard]] const std::vector<std::string>& scenario_names();

/// Runs one scenario. Errors are for the harness (a process would not start): kUnavailable;
/// an unknown name: kInvalidArgument. Expectations that fail are in the report.
[[nodiscard]] Result<ScenarioReport> run_scenario(const std::string& name, const ScenarioOptions& options);

/// {name, pass, expectations: [{name, pass, detail}], recovery_s, summary, sla}
[[nodiscard]] boost::json::value to_json(const ScenarioReport& report);

/// The built-in workflow the scenarios use (API format, classes and models the simulator has).
[[nodiscard]] boost::json::object default_workflow();

}  // namespace comfyfarm::loadtest
