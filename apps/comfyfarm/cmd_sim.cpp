// `comfyfarm sim`: simulated ComfyUI servers (a GPU farm on a laptop) with fault injection.
#include "command.hpp"
#include "run_until_signalled.hpp"

#include "net/io_runtime.hpp"
#include "net/listen_address.hpp"
#include "net/ready_file.hpp"
#include "net/shutdown_signals.hpp"
#include "sim/fault_set.hpp"
#include "sim/sim_host.hpp"
#include "sim/sim_server.hpp"

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <future>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace comfyfarm::app {

namespace {

struct SimFlags {
  std::string listen = "127.0.0.1:8188";
  std::string ready_file;
  std::size_t count = 1;
  std::string gpu_name = "NVIDIA GeForce RTX 4090";
  double vram_gb = 24.0;
  std::optional<double> speed;
  std::optional<double> time_scale;
  std::string models;
  std::vector<std::string> catalogs;
  std::vector<std::string> timings;
  std::vector<std::string> faults;
  std::uint64_t seed = 0;
  std::string output_dir;
  std::string preview_method = "none";
  std::string log_level = "info";
  unsigned threads = 2;
};

std::string one_line(std::string s) {
  for (auto& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

int config_error(const std::string& message) {
  std::cerr << "comfyfarm: error: " << one_line(message) << " (see 'comfyfarm sim --help')\n";
  return 2;
}

int run_sim(const SimFlags& flags) {
  auto logger = spdlog::stderr_color_mt("comfyfarm-sim");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::from_str(flags.log_level));

  auto listen = net::parse_listen_address(flags.listen);
  if (!listen) return config_error("--listen: " + listen.error().message);

  sim::SimDataSources sources;
  for (const auto& c : flags.catalogs) sources.catalog_files.emplace_back(c);
  for (const auto& t : flags.timings) sources.timing_files.emplace_back(t);
  if (!flags.models.empty()) sources.models = flags.models;
  auto data = sim::load_sim_data(sources);
  if (!data) return config_error(data.error().message);
  auto shared = sim::SimShared::create(std::move(*data));

  sim::SimHostOptions options;
  options.listen = *listen;
  options.count = flags.count;
  options.gpu_name = flags.gpu_name;
  options.vram_bytes = static_cast<std::uint64_t>(std::llround(flags.vram_gb * 1024.0 * 1024.0 * 1024.0));
  options.speed = flags.speed;
  options.time_scale = flags.time_scale;
  options.seed = flags.seed;
  options.sampler_previews = flags.preview_method != "none";
  options.output_dir = flags.output_dir;
  for (const auto& f : flags.faults) {
    auto spec = sim::parse_fault_spec(f);
    if (!spec) return config_error(spec.error().message);
    options.faults.push_back(std::move(*spec));
  }

  const unsigned threads = std::max(1u, std::min(flags.threads, std::thread::hardware_concurrency() == 0
                                                                     ? 1u
                                                                     : std::thread::hardware_concurrency()));
  net::IoRuntime io(threads);
  auto created = sim::SimHost::create(io.context(), shared, options);
  if (!created) {
    const bool usage = created.error().code == Errc::kInvalidArgument;
    if (usage) return config_error(created.error().message);
    std::cerr << "comfyfarm: error: " << one_line(created.error().message) << "\n";
    return 1;
  }
  std::unique_ptr<sim::SimHost> host = std::move(*created);

  ServerHooks hooks;
  hooks.name = "sim";
  hooks.start = [&] { host->start(); };
  hooks.address = [&] { return host->addresses().front(); };
  hooks.ready_fields = [&] { return host->ready_fields(); };
  hooks.stop = [&](std::function<void()> done) { host->stop(std::chrono::seconds(2), std::move(done)); };
  hooks.announce = [&] {
    const auto addresses = host->addresses();
    std::cout << "comfyfarm sim: " << addresses.size() << " simulated ComfyUI server"
              << (addresses.size() == 1 ? "" : "s") << " ready. Point a ComfyUI client at:\n";
    for (const auto& a : addresses) std::cout << "  http://" << a << "   (ws://" << a << "/ws)\n";
    std::cout << "Ctrl-C stops." << std::endl;
  };
  const int exit_code = run_until_signalled(io, flags.ready_file, hooks);
  io.stop();
  io.join();
  host.reset();
  spdlog::info("sim: stopped");
  return exit_code;
}

}  // namespace

CommandMain register_sim(CLI::App& root) {
  auto flags = std::make_shared<SimFlags>();
  auto* cmd = root.add_subcommand(
      "sim",
      "Run simulated ComfyUI servers: ComfyUI's HTTP and WebSocket API with a timing and VRAM\n"
      "model instead of a GPU, real PNG outputs, and faults on demand (docs/sim.md).");
  cmd->footer(
      "Fault specs (--fault, repeatable; prefix @I: to hit only server I of --count):\n"
      "  oom[=P|every:N]        torch.OutOfMemoryError in sampler nodes (probability or every Nth)\n"
      "  crash[=P|after:N]      the process dies (SIGKILL) mid-prompt (probability or after N prompts)\n"
      "  stall                  accept prompts but never start them\n"
      "  ws-silence[=P]         a prompt's WebSocket messages stop after execution_start\n"
      "  ws-drop[=P]            close every WebSocket when a prompt starts\n"
      "  http-latency=MS        delay every HTTP reply\n"
      "  http-error=RATE        answer that fraction of HTTP requests with 503\n"
      "  slow-object-info=MS    delay /object_info\n"
      "  node-error=CLASS[,..]  nodes of these classes raise RuntimeError\n"
      "At run time: GET/POST/DELETE /sim/faults on a server's port.\n"
      "Example: comfyfarm sim --count 8 --time-scale 0.1 --fault @3:oom=0.5");

  cmd->add_option("--listen", flags->listen,
                  "HOST:PORT of the first server; port 0 lets the OS pick every port, otherwise "
                  "server i listens on PORT+i")
      ->capture_default_str()
      ->check([](const std::string& v) -> std::string {
        auto r = net::parse_listen_address(v);
        return r ? std::string() : r.error().message;
      });
  cmd->add_option("--ready-file", flags->ready_file,
                  "Once every server listens, write {\"http\": first, \"servers\": [{\"http\": "
                  "...}], \"pid\": N} here (atomically)");
  cmd->add_option("--count", flags->count, "Independent simulated servers in this process")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{4096}));
  cmd->add_option("--gpu-name", flags->gpu_name, "GPU name /system_stats reports")
      ->capture_default_str();
  cmd->add_option("--vram-gb", flags->vram_gb, "Simulated VRAM in GiB")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  cmd->add_option("--speed", flags->speed,
                  "Relative GPU speed (1.0 = RTX 4090 class; 0.4 is 2.5x slower) [default: 1.0]")
      ->check(CLI::PositiveNumber);
  cmd->add_option("--time-scale", flags->time_scale,
                  "Multiplies every modeled duration: 0.01 for fast tests, 100 to slow runs down, "
                  "0 for no waiting [default: 1.0]")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--models", flags->models,
                  "A models JSON file (merged into the built-in list), or a comma-separated list "
                  "of folder/name (a bare name is a checkpoint) replacing the built-in files")
      ->check([](const std::string& v) -> std::string {
        return v.empty() ? std::string("must name a file or list models") : std::string();
      });
  cmd->add_option("--catalog", flags->catalogs,
                  "A node catalog file in /object_info's shape whose classes are added "
                  "(repeatable)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--timing", flags->timings,
                  "A timing file with class behaviours and costs to add (repeatable)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--fault", flags->faults, "A fault to inject (repeatable; grammar below)")
      ->check([](const std::string& v) -> std::string {
        auto spec = sim::parse_fault_spec(v);
        if (!spec) return spec.error().message;
        sim::FaultSet scratch;
        std::optional<std::string_view> value;
        if (spec->value) value = *spec->value;
        auto r = scratch.apply(spec->name, value);
        return r ? std::string() : r.error().message;
      });
  cmd->add_option("--seed", flags->seed,
                  "Seed of the fault RNGs and temp file names (server i uses seed+i)")
      ->capture_default_str();
  cmd->add_option("--output-dir", flags->output_dir,
                  "Keep input/, output/, temp/ here (server-<i>/ each with --count > 1); default: "
                  "a temporary directory removed at exit");
  cmd->add_option("--preview-method", flags->preview_method,
                  "none: no sampler previews (ComfyUI's default); auto: a preview frame per "
                  "sampler step")
      ->capture_default_str()
      ->check(CLI::IsMember({"none", "auto", "latent2rgb", "taesd"}));
  cmd->add_option("--log-level", flags->log_level, "trace, debug, info, warn, error or off")
      ->capture_default_str()
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "critical", "off"}));
  cmd->add_option("--threads", flags->threads, "I/O threads running every server")
      ->capture_default_str()
      ->check(CLI::Range(1u, 16u));

  return [flags] { return run_sim(*flags); };
}

}  // namespace comfyfarm::app
