// Helpers of the farm's process tests (farm_test, farm_api_test): the sims' and the farm's
// flags, the txt2img workflow, JSON lookups, submitting prompts and waiting for jobs, the sims'
// own records (their /history, the PNGs they wrote), WebSocket messages of one prompt, and the
// start of most tests: one sim behind a farm.
#pragma once

#include "net/io_runtime.hpp"
#include "support/farm_process.hpp"
#include "support/sim_process.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace comfyfarm::test {

using namespace std::chrono_literals;

// ---- workflows and flags -------------------------------------------------------------------------

/// The four checkpoints the sims offer: farm-a..farm-d.safetensors.
const std::vector<std::string>& checkpoints();

/// `--models` for the sims: exactly the four checkpoints (plus nothing else).
std::string models_flag();

/// A sim's flags: the four checkpoints, a time scale, and more.
std::vector<std::string> sim_args(const std::string& time_scale, std::vector<std::string> more = {});

/// txt2img_sd15 with checkpoint i % 4, `seed` and the output prefix `prefix`.
boost::json::object txt2img_sd15(int i, std::int64_t seed, const std::string& prefix);

struct Backend {
  std::string id;
  std::string url;
};

/// Flags of `serve` with their values, in order.
using ServeFlags = std::vector<std::pair<std::string, std::string>>;

/// `serve` flags: `defaults`, the backends, and more (a flag in `more` replaces the default of
/// the same name: serve takes each flag once).
std::vector<std::string> farm_args(const ServeFlags& defaults, const std::vector<Backend>& backends,
                                   std::vector<std::string> more = {});

// ---- JSON ------------------------------------------------------------------------------------------

/// `text` as JSON (a failure and null when it is not).
boost::json::value parse(const std::string& text);
/// The string `v[key]`, or "" when there is none.
std::string str(const boost::json::value& v, std::string_view key);
/// The number `v[key]`, or -1 when there is none.
std::int64_t num(const boost::json::value& v, std::string_view key);

// ---- prompts and jobs ------------------------------------------------------------------------------

/// The body of POST /prompt.
std::string prompt_body(const boost::json::object& graph, const std::string& client_id);

/// POSTs a prompt that must be accepted; its prompt id ("" on failure).
std::string submit(SimHttp& http, const boost::json::object& graph, const std::string& client_id = "");

/// Whether a job in `state` has ended.
bool terminal(const std::string& state);

/// Polls /api/farm/jobs/{id} (every `poll`) until every job ended; the last document of each.
std::map<std::string, boost::json::value> wait_jobs_ended(SimHttp& farm, const std::vector<std::string>& ids,
                                                          std::chrono::milliseconds deadline = 60s,
                                                          std::chrono::milliseconds poll = 50ms);

/// Waits until a server's (a sim's or the farm's) /queue runs and holds nothing.
bool wait_queue_empty(SimHttp& server, std::chrono::milliseconds deadline = 20s);

/// The outcomes of a job's attempts, in order.
std::vector<std::string> outcomes(const boost::json::value& job);
/// "[backend: outcome] ..." of a job's attempts (the whole document when it has none).
std::string describe_attempts(const boost::json::value& job);

// ---- the sims' own records -------------------------------------------------------------------------

/// Prompt id -> how many of the servers' /history have it, and how many of those succeeded.
struct Rendered {
  std::map<std::string, int> entries;
  std::map<std::string, int> successes;
  int of(const std::string& id) const { return successes.contains(id) ? successes.at(id) : 0; }
  int seen(const std::string& id) const { return entries.contains(id) ? entries.at(id) : 0; }
};

Rendered rendered(net::IoRuntime& io, const std::vector<std::string>& urls);

/// How many files named PREFIX_* lie under `dirs`.
int files_with_prefix(const std::vector<std::filesystem::path>& dirs, const std::string& prefix);

// ---- WebSocket messages ----------------------------------------------------------------------------

/// The messages of one prompt a WebSocket client received until `executing {node: null}` for
/// it came (or the deadline), then whatever else arrives within `linger`.
std::vector<boost::json::value> prompt_messages(SimWs& ws, const std::string& prompt_id,
                                                std::chrono::milliseconds deadline = 60s,
                                                std::chrono::milliseconds linger = 300ms);

/// How many of `msgs` are of `type`.
int count_type(const std::vector<boost::json::value>& msgs, const std::string& type);
/// The types of `msgs` ("executing" with its node), for failure messages.
std::string types_of(const std::vector<boost::json::value>& msgs);

// ---- one sim behind a farm -------------------------------------------------------------------------

/// The start of most tests: a `comfyfarm sim` as the only backend of a `comfyfarm serve`, and an
/// HTTP client of the farm. Call start() under ASSERT_NO_FATAL_FAILURE, then take the parts:
///   FarmOnOneSim rig;
///   ASSERT_NO_FATAL_FAILURE(rig.start(defaults, sim_args("0.01")));
///   auto [sim, farm, io, http] = rig.parts();
class FarmOnOneSim {
 public:
  /// Starts the sim with `sim_flags`, then (a fatal failure unless it is ready) the farm with
  /// farm_args(defaults, {{backend, sim url}}, farm_more) (a fatal failure unless it is ready),
  /// and a client of the farm.
  void start(const ServeFlags& defaults, const std::vector<std::string>& sim_flags,
             const std::string& backend = "gpu", std::vector<std::string> farm_more = {});
  /// The sim, the farm, the I/O runtime and the client of the farm, once start() passed.
  std::tuple<SimProcess&, FarmProcess&, net::IoRuntime&, SimHttp&> parts();

 private:
  // Destroyed as the tests used to: the client, the I/O runtime, the farm, then the sim.
  std::optional<SimProcess> sim_;
  std::optional<FarmProcess> farm_;
  net::IoRuntime io_{1};
  std::optional<SimHttp> http_;
};

}  // namespace comfyfarm::test
