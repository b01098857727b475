// `comfyfarm serve`: the farm. ComfyUI's API in front of many ComfyUI servers, with a durable
// queue, placement, retries and crash recovery (src/farm/, docs/api.md).
#include "command.hpp"
#include "run_until_signalled.hpp"

#include "comfy/json_util.hpp"
#include "farm/farm.hpp"
#include "net/io_runtime.hpp"
#include "net/listen_address.hpp"
#include "net/ready_file.hpp"
#include "net/shutdown_signals.hpp"
#include "scheduler/retry_policy.hpp"
#include "sim/sim_host.hpp"
#include "sim/sim_server.hpp"

#include <CLI/CLI.hpp>
#include <boost/json/object.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace comfyfarm::app {

namespace {

namespace json = boost::json;

struct ServeFlags {
  std::string config;
  std::optional<std::string> listen;
  std::string ready_file;
  std::optional<std::string> data;
  std::vector<std::string> backends;
  std::optional<std::size_t> sim;
  std::optional<double> sim_time_scale;
  std::optional<std::string> sim_speeds;
  std::optional<std::string> sim_fault;
  std::optional<int> max_attempts;
  std::optional<std::string> retry_backoff;
  std::optional<std::size_t> depth;
  std::optional<double> start_timeout;
  std::optional<double> silence_timeout;
  std::optional<double> probe_interval;
  std::optional<std::size_t> queue_capacity;
  std::optional<double> max_body_mb;
  std::optional<double> catalog_refresh;
  std::optional<double> grace;
  std::optional<std::string> durability;
  std::optional<std::string> log_level;
  std::optional<unsigned> threads;
};

/// Everything `serve` runs with, after defaults < config file < environment < flags.
struct ServeSettings {
  farm::FarmOptions farm;
  std::size_t sim = 0;
  double sim_time_scale = 1.0;
  std::vector<double> sim_speeds{1.0};
  std::vector<std::string> sim_faults;
  std::string log_level = "info";
  unsigned threads = 2;
};

std::string one_line(std::string s) {
  for (auto& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

int usage_error(const std::string& message) {
  std::cerr << "comfyfarm: error: " << one_line(message) << " (see 'comfyfarm serve --help')\n";
  return 2;
}

std::chrono::milliseconds seconds_to_ms(double s) {
  return std::chrono::milliseconds(static_cast<std::int64_t>(std::llround(s * 1000.0)));
}

Result<std::vector<double>> parse_speeds(std::string_view text) {
  std::vector<double> out;
  std::size_t start = 0;
  while (start <= text.size()) {
    const auto comma = text.find(',', start);
    const std::string part(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    try {
      std::size_t used = 0;
      const double v = std::stod(part, &used);
      if (used != part.size() || !(v > 0) || !std::isfinite(v)) throw std::invalid_argument(part);
      out.push_back(v);
    } catch (...) {
      return fail(Errc::kInvalidArgument, "sim speeds: '" + part + "' is not a positive number");
    }
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

Result<farm::BackendConfig> parse_backend(std::string_view text) {
  farm::BackendConfig b;
  std::string_view url = text;
  if (const auto eq = text.find('='); eq != std::string_view::npos && text.find("://") > eq) {
    b.id = std::string(text.substr(0, eq));
    url = text.substr(eq + 1);
  }
  if (!url.starts_with("http://")) {
    return fail(Errc::kInvalidArgument, "backend '" + std::string(text) +
                                            "': expected [ID=]http://HOST:PORT");
  }
  if (b.id.find('/') != std::string::npos || b.id.find("..") != std::string::npos) {
    return fail(Errc::kInvalidArgument, "backend id '" + b.id + "' may not contain '/' or '..'");
  }
  b.url = std::string(url);
  return b;
}

/// Applies one setting by name (config file keys and flags share these names).
Result<void> apply_setting(ServeSettings& s, std::string_view key, const json::value& v) {
  auto number = [&]() -> Result<double> {
    if (v.is_int64()) return static_cast<double>(v.get_int64());
    if (v.is_uint64()) return static_cast<double>(v.get_uint64());
    if (v.is_double()) return v.get_double();
    return fail(Errc::kInvalidArgument, std::string(key) + ": expected a number");
  };
  auto text = [&]() -> Result<std::string> {
    if (v.is_string()) return std::string(v.get_string());
    return fail(Errc::kInvalidArgument, std::string(key) + ": expected a string");
  };
  auto positive = [&](double min) -> Result<double> {
    auto n = number();
    if (!n) return n;
    if (*n < min) {
      std::ostringstream limit;
      limit << min;
      return fail(Errc::kInvalidArgument, std::string(key) + ": must be at least " + limit.str());
    }
    return n;
  };
  if (key == "listen") {
    auto t = text();
    if (!t) return t.error();
    auto a = net::parse_listen_address(*t);
    if (!a) return fail(Errc::kInvalidArgument, "listen: " + a.error().message);
    s.farm.listen = *a;
  } else if (key == "data") {
    auto t = text();
    if (!t) return t.error();
    s.farm.data_dir = *t;
  } else if (key == "backends" || key == "backend") {
    std::vector<std::string> items;
    if (v.is_string()) {
      items.emplace_back(v.get_string());
    } else if (v.is_array()) {
      for (const auto& e : v.get_array()) {
        if (!e.is_string()) return fail(Errc::kInvalidArgument, "backends: expected a list of URLs");
        items.emplace_back(e.get_string());
      }
    } else {
      return fail(Errc::kInvalidArgument, "backends: expected a list of URLs");
    }
    for (const auto& i : items) {
      auto b = parse_backend(i);
      if (!b) return b.error();
      s.farm.backends.push_back(std::move(*b));
    }
  } else if (key == "sim") {
    auto n = positive(0);
    if (!n) return n.error();
    if (*n > 256) return fail(Errc::kInvalidArgument, "sim: at most 256 in-process backends");
    s.sim = static_cast<std::size_t>(*n);
  } else if (key == "sim_time_scale") {
    auto n = positive(0);
    if (!n) return n.error();
    s.sim_time_scale = *n;
  } else if (key == "sim_speeds") {
    auto t = v.is_string() ? Result<std::string>(std::string(v.get_string()))
                           : Result<std::string>(comfy::dumps(v));
    if (v.is_array()) {
      std::string joined;
      for (const auto& e : v.get_array()) joined += (joined.empty() ? "" : ",") + comfy::dumps(e);
      t = joined;
    }
    auto sp = parse_speeds(*t);
    if (!sp) return sp.error();
    s.sim_speeds = *sp;
  } else if (key == "sim_fault") {
    auto t = text();
    if (!t) return t.error();
    s.sim_faults.push_back(*t);
  } else if (key == "max_attempts") {
    auto n = positive(1);
    if (!n) return n.error();
    auto a = scheduler::parse_max_attempts(std::to_string(static_cast<long long>(*n)));
    if (!a) return fail(Errc::kInvalidArgument, "max attempts: " + a.error().message);
    s.farm.max_attempts = *a;
  } else if (key == "retry_backoff") {
    auto t = v.is_string() ? std::string(v.get_string()) : std::string();
    if (v.is_array()) {
      for (const auto& e : v.get_array()) t += (t.empty() ? "" : ",") + comfy::dumps(e);
    } else if (v.is_number()) {
      t = comfy::dumps(v);
    }
    auto b = scheduler::parse_backoff_seconds(t);
    if (!b) return fail(Errc::kInvalidArgument, "retry backoff: " + b.error().message);
    s.farm.retry_backoff_ms = *b;
  } else if (key == "depth") {
    auto n = positive(1);
    if (!n) return n.error();
    s.farm.depth = static_cast<std::size_t>(*n);
  } else if (key == "start_timeout") {
    auto n = positive(0.05);
    if (!n) return n.error();
    s.farm.start_timeout = seconds_to_ms(*n);
  } else if (key == "silence_timeout") {
    auto n = positive(0.05);
    if (!n) return n.error();
    s.farm.silence_timeout = seconds_to_ms(*n);
  } else if (key == "probe_interval") {
    auto n = positive(0.05);
    if (!n) return n.error();
    s.farm.probe_interval = seconds_to_ms(*n);
  } else if (key == "queue_capacity") {
    auto n = positive(1);
    if (!n) return n.error();
    s.farm.queue_capacity = static_cast<std::size_t>(*n);
  } else if (key == "catalog_refresh") {
    auto n = positive(0);
    if (!n) return n.error();
    s.farm.catalog_refresh = seconds_to_ms(*n);
  } else if (key == "max_body_mb") {
    auto n = positive(0.001);
    if (!n) return n.error();
    s.farm.max_body_bytes = static_cast<std::uint64_t>(std::llround(*n * 1024.0 * 1024.0));
  } else if (key == "grace") {
    auto n = positive(0);
    if (!n) return n.error();
    s.farm.grace = seconds_to_ms(*n);
  } else if (key == "durability") {
    auto t = text();
    if (!t) return t.error();
    if (*t == "normal") {
      s.farm.synchronous = store::Synchronous::kNormal;
    } else if (*t == "full") {
      s.farm.synchronous = store::Synchronous::kFull;
    } else {
      return fail(Errc::kInvalidArgument, "durability: 'normal' or 'full'");
    }
  } else if (key == "copy_outputs") {
    if (!v.is_bool()) return fail(Errc::kInvalidArgument, "copy_outputs: expected true or false");
    s.farm.copy_outputs = v.get_bool();
  } else if (key == "log_level") {
    auto t = text();
    if (!t) return t.error();
    static const std::set<std::string> levels{"trace", "debug", "info", "warn", "error", "critical", "off"};
    if (!levels.contains(*t)) return fail(Errc::kInvalidArgument, "log_level: trace, debug, info, warn, error or off");
    s.log_level = *t;
  } else if (key == "threads") {
    auto n = positive(1);
    if (!n) return n.error();
    s.threads = static_cast<unsigned>(std::min(16.0, *n));
  } else {
    return fail(Errc::kInvalidArgument, "unknown setting '" + std::string(key) + "'");
  }
  return {};
}

Result<ServeSettings> resolve(const ServeFlags& f) {
  ServeSettings s;
  if (!f.config.empty()) {
    std::ifstream in(f.config);
    if (!in) return fail(Errc::kInvalidArgument, "--config: cannot read " + f.config);
    const std::string text((std::istreambuf_iterator<char>(in)), {});
    auto doc = comfy::parse_json(text);
    if (!doc || !doc->is_object()) {
      return fail(Errc::kInvalidArgument,
                  "--config " + f.config + ": not a JSON object" +
                      (doc ? std::string() : ": " + doc.error().message));
    }
    for (const auto& [key, value] : doc->get_object()) {
      std::string k(key);
      std::replace(k.begin(), k.end(), '-', '_');
      if (auto r = apply_setting(s, k, value); !r) {
        return fail(Errc::kInvalidArgument, "--config " + f.config + ": " + r.error().message);
      }
    }
  }
  // The seed's environment variables: retries after the first attempt, and the backoff.
  if (const char* e = std::getenv("COMFY_MAX_RETRIES"); e != nullptr && *e != '\0') {
    auto r = scheduler::parse_max_retries(e);
    if (!r) return fail(Errc::kInvalidArgument, "COMFY_MAX_RETRIES: " + r.error().message);
    s.farm.max_attempts = *r;
  }
  if (const char* e = std::getenv("COMFY_RETRY_BACKOFF_SEC"); e != nullptr && *e != '\0') {
    auto r = scheduler::parse_backoff_seconds(e);
    if (!r) return fail(Errc::kInvalidArgument, "COMFY_RETRY_BACKOFF_SEC: " + r.error().message);
    s.farm.retry_backoff_ms = *r;
  }
  auto set = [&](std::string_view key, const json::value& v) -> Result<void> {
    auto r = apply_setting(s, key, v);
    if (!r) {
      std::string flag(key);
      std::replace(flag.begin(), flag.end(), '_', '-');
      std::string message = r.error().message;
      // "max_attempts: must be ..." reads "--max-attempts: must be ..." on the command line.
      const std::string own = std::string(key) + ": ";
      if (message.rfind(own, 0) == 0) message.erase(0, own.size());
      return fail(Errc::kInvalidArgument, "--" + flag + ": " + message);
    }
    return r;
  };
  // Flags last: they override the file and the environment. The first bad one is reported.
  auto flag = [&](std::string_view key, const auto& value) -> Result<void> {
    return value ? set(key, json::value(*value)) : Result<void>();
  };
  for (const auto& b : f.backends) {
    if (auto r = set("backend", json::value(b)); !r) return r.error();
  }
  const Result<void> applied[] = {
      flag("listen", f.listen),
      flag("data", f.data),
      flag("sim", f.sim),
      flag("sim_time_scale", f.sim_time_scale),
      flag("sim_speeds", f.sim_speeds),
      flag("sim_fault", f.sim_fault),
      flag("max_attempts", f.max_attempts),
      flag("retry_backoff", f.retry_backoff),
      flag("depth", f.depth),
      flag("start_timeout", f.start_timeout),
      flag("silence_timeout", f.silence_timeout),
      flag("probe_interval", f.probe_interval),
      flag("queue_capacity", f.queue_capacity),
      flag("grace", f.grace),
      flag("max_body_mb", f.max_body_mb),
      flag("catalog_refresh", f.catalog_refresh),
      flag("durability", f.durability),
      flag("log_level", f.log_level),
      flag("threads", f.threads),
  };
  for (const auto& r : applied) {
    if (!r) return r.error();
  }
  std::set<std::string> ids;
  for (const auto& b : s.farm.backends) {
    const auto id = b.id.empty() ? farm::backend_id_from_url(b.url) : b.id;
    if (!ids.insert(id).second) return fail(Errc::kInvalidArgument, "backend '" + id + "' is given twice");
  }
  return s;
}

int run_serve(const ServeFlags& flags) {
  auto settings = resolve(flags);
  if (!settings) return usage_error(settings.error().message);
  auto& s = *settings;
  auto logger = spdlog::stderr_color_mt("comfyfarm");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(s.log_level));

  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  net::IoRuntime io(std::max(1u, std::min(s.threads, hw)));

  // In-process simulated backends (--sim N): one simulated server per speed slot.
  std::vector<std::unique_ptr<sim::SimHost>> sims;
  if (s.sim > 0) {
    auto data = sim::load_sim_data({});
    if (!data) {
      std::cerr << "comfyfarm: error: " << one_line(data.error().message) << "\n";
      return 1;
    }
    auto shared = sim::SimShared::create(std::move(*data));
    std::vector<sim::FaultSpec> faults;
    for (const auto& f : s.sim_faults) {
      auto spec = sim::parse_fault_spec(f);
      if (!spec) return usage_error("--sim-fault: " + spec.error().message);
      faults.push_back(std::move(*spec));
    }
    for (std::size_t i = 0; i < s.sim; ++i) {
      sim::SimHostOptions so;
      so.listen = net::ListenAddress{"127.0.0.1", 0};
      so.count = 1;
      so.first_index = i;
      so.speed = s.sim_speeds[i % s.sim_speeds.size()];
      so.time_scale = s.sim_time_scale;
      so.seed = i;
      so.output_dir = s.farm.data_dir / "sim" / ("sim-" + std::to_string(i));
      for (const auto& f : faults) {
        if (!f.target || *f.target == i) {
          auto copy = f;
          copy.target.reset();
          so.faults.push_back(std::move(copy));
        }
      }
      auto host = sim::SimHost::create(io.context(), shared, so);
      if (!host) {
        std::cerr << "comfyfarm: error: simulated backend " << i << ": " << one_line(host.error().message) << "\n";
        return 1;
      }
      (*host)->start();
      s.farm.backends.push_back({"sim-" + std::to_string(i), "http://" + (*host)->addresses().front()});
      sims.push_back(std::move(*host));
    }
  }

  auto created = farm::Farm::create(io.context(), s.farm);
  if (!created) {
    std::cerr << "comfyfarm: error: " << one_line(created.error().message) << "\n";
    return created.error().code == Errc::kInvalidArgument ? 2 : 1;
  }
  std::unique_ptr<farm::Farm> service = std::move(*created);

  ServerHooks hooks;
  hooks.name = "farm";
  hooks.stopping_message =
      "no new work; running jobs get " + std::to_string(s.farm.grace.count()) + " ms to finish";
  hooks.start = [&] { service->start(); };
  hooks.address = [&] { return service->local_address(); };
  hooks.ready_fields = [&] { return service->ready_fields(); };
  hooks.stop = [&](std::function<void()> done) { service->stop(s.farm.grace, std::move(done)); };
  hooks.announce = [&] {
    const auto address = service->local_address();
    std::cout << "comfyfarm serve: a farm of " << s.farm.backends.size() << " backend"
              << (s.farm.backends.size() == 1 ? "" : "s") << (s.sim > 0 ? " (simulated)" : "")
              << ", data in " << s.farm.data_dir.string() << "\n"
              << "Point a ComfyUI client at:  http://" << address << "   (ws://" << address << "/ws)\n"
              << "Farm API:                   http://" << address << "/api/farm/jobs, /api/farm/backends\n"
              << "Ctrl-C stops (running jobs get " << s.farm.grace.count() / 1000 << " s to finish)."
              << std::endl;
  };
  const int exit_code = run_until_signalled(io, flags.ready_file, hooks);
  if (!sims.empty()) {
    std::promise<void> sims_stopped;
    auto left = std::make_shared<std::atomic<std::size_t>>(sims.size());
    for (auto& h : sims) {
      h->stop(std::chrono::milliseconds(500), [left, &sims_stopped] {
        if (left->fetch_sub(1) == 1) sims_stopped.set_value();
      });
    }
    sims_stopped.get_future().wait_for(std::chrono::seconds(3));
  }
  io.stop();
  io.join();
  service.reset();
  sims.clear();
  spdlog::info("farm: stopped");
  return exit_code;
}

}  // namespace

CommandMain register_serve(CLI::App& root) {
  auto flags = std::make_shared<ServeFlags>();
  auto* cmd = root.add_subcommand(
      "serve",
      "Run the farm: one ComfyUI-compatible server in front of many ComfyUI backends, with a\n"
      "durable queue, model-aware placement, retries and crash recovery (docs/api.md).");
  cmd->footer(
      "Settings apply in this order: defaults, --config FILE (a JSON object whose keys are the\n"
      "flag names: {\"listen\": \"0.0.0.0:8288\", \"backends\": [\"http://gpu1:8188\"], ...}),\n"
      "the environment (COMFY_MAX_RETRIES: retries after the first attempt;\n"
      "COMFY_RETRY_BACKOFF_SEC: \"15,45,90\" or a base \"15\" doubled per retry), then flags.\n"
      "Examples:\n"
      "  comfyfarm serve --sim 4                        a farm of 4 simulated GPUs\n"
      "  comfyfarm serve --backend http://gpu1:8188 --backend big=http://gpu2:8188\n"
      "Backends can be added, drained and removed at run time: /api/farm/backends.");
  cmd->add_option("--config", flags->config, "A JSON file with any of these settings")
      ->check(CLI::ExistingFile);
  cmd->add_option("--listen", flags->listen, "HOST:PORT to serve on [default: 127.0.0.1:8288]");
  cmd->add_option("--ready-file", flags->ready_file,
                  "Once listening, write {\"http\": \"HOST:PORT\", \"pid\": N, ...} here (atomically)");
  cmd->add_option("--data", flags->data,
                  "Directory of the SQLite database, uploaded inputs and output copies "
                  "[default: ./comfyfarm-data]");
  cmd->add_option("--backend", flags->backends,
                  "A ComfyUI server, [ID=]http://HOST:PORT (repeatable); the id names it in "
                  "logs, the API and output subfolders [default id: HOST-PORT]");
  cmd->add_option("--sim", flags->sim,
                  "Start N simulated ComfyUI backends in this process (ids sim-0..sim-N-1)");
  cmd->add_option("--sim-time-scale", flags->sim_time_scale,
                  "Simulated backends: multiply every modelled duration (0.01 for quick demos) "
                  "[default: 1]");
  cmd->add_option("--sim-speeds", flags->sim_speeds,
                  "Simulated backends: relative GPU speeds, cycled over the backends "
                  "(\"1,0.5\": every second one is twice as slow) [default: 1]");
  cmd->add_option("--sim-fault", flags->sim_fault,
                  "Simulated backends: a fault as in 'comfyfarm sim --fault' (@I: hits sim-I only)");
  cmd->add_option("--max-attempts", flags->max_attempts,
                  "Attempts per job, the first included [default: 3]");
  cmd->add_option("--retry-backoff", flags->retry_backoff,
                  "Seconds: caps of the delay before each retry, \"15,45,90\" (last repeats), "
                  "or a base \"15\" doubled per retry; full jitter [default: 15,45,90]");
  cmd->add_option("--depth", flags->depth,
                  "Prompts each backend holds at once: one running, the rest waiting [default: 2]");
  cmd->add_option("--start-timeout", flags->start_timeout,
                  "Seconds a prompt may wait on an idle backend without starting before the "
                  "backend counts as lost (T1) [default: 120]");
  cmd->add_option("--silence-timeout", flags->silence_timeout,
                  "Seconds a running prompt may send nothing before its backend counts as lost "
                  "(T2) [default: 600]");
  cmd->add_option("--probe-interval", flags->probe_interval,
                  "Seconds between health probes of each backend [default: 2]");
  cmd->add_option("--queue-capacity", flags->queue_capacity,
                  "Unfinished jobs the farm holds; more are refused with 429 [default: 100000]");
  cmd->add_option("--catalog-refresh", flags->catalog_refresh,
                  "Seconds between re-reads of each backend's /object_info (new models, input "
                  "images, custom nodes); 0: only when it comes up [default: 60]");
  cmd->add_option("--max-body-mb", flags->max_body_mb,
                  "Largest request body in MiB (prompts, uploads); larger ones get 413 "
                  "[default: 100, ComfyUI's --max-upload-size]");
  cmd->add_option("--grace", flags->grace,
                  "Seconds running jobs get to finish on SIGTERM before they are handed back to "
                  "the next start [default: 30]");
  cmd->add_option("--durability", flags->durability,
                  "normal: a commit survives a crash of the process; full: also a power loss "
                  "(an fsync per commit) [default: normal]");
  cmd->add_option("--log-level", flags->log_level, "trace, debug, info, warn, error or off [default: info]");
  cmd->add_option("--threads", flags->threads, "I/O threads [default: 2]");
  return [flags] { return run_serve(*flags); };
}

}  // namespace comfyfarm::app
