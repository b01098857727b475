// SimServer: one simulated ComfyUI server (`comfyfarm sim`): ComfyUI's HTTP routes and WebSocket
// on its own port, a queue and a worker that plays PromptRun steps in real time, and faults.
#pragma once

#include "comfy/prompt_validator.hpp"
#include "core/error.hpp"
#include "net/http_server.hpp"
#include "net/listen_address.hpp"
#include "sim/fault_set.hpp"
#include "sim/sim_data.hpp"
#include "sim/sim_state.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace comfyfarm::sim {

/// What every simulated server of a process shares, immutable once built: the model data, and
/// the catalog prompts are validated against (model combos filled from the model library;
/// LoadImage is checked against each server's own input folder instead).
struct SimShared {
  SimData data;
  comfy::NodeCatalog validation_catalog;

  [[nodiscard]] static std::shared_ptr<const SimShared> create(SimData data);
};

/// One server's settings.
struct SimServerConfig {
  // A declared constructor keeps this a non-aggregate (GCC 12 and `{}` temporaries).
  SimServerConfig() = default;

  std::size_t index = 0;  ///< position in the process (`@INDEX:` faults, logs, seeds)
  net::ListenAddress listen{"127.0.0.1", 0};
  std::string gpu_name = "NVIDIA GeForce RTX 4090";
  SimSettings settings{};  ///< speed, time scale, VRAM, seed (file names), sampler previews
  FaultSet faults{};
  std::uint64_t fault_seed = 0;      ///< seeds the server's fault RNG (--seed + index)
  std::filesystem::path root_dir{};  ///< holds input/, output/ and temp/
  std::vector<std::string> argv{};   ///< /system_stats "argv"
};

/// A ComfyUI 0.3.64 look-alike on one port.
///
/// Threads: all state (queue, history, sockets, SimState, faults) lives on the server's strand
/// of the shared io_context; HTTP handlers and WebSocket callbacks hop onto it. File I/O runs on
/// `file_pool` (one thread for the process). The worker is a coroutine on the strand that runs
/// one prompt at a time and paces the steps on a steady_timer.
///
/// Life cycle: create (binds) --start()--> serving --stop()--> the worker ends, the HTTP server
/// closes its connections, then on_stopped runs. Destroy after on_stopped, before the
/// io_context and the pool.
class SimServer {
 public:
  /// Binds config.listen and prepares the folders (temp/ emptied, input/ scanned).
  /// kUnavailable when the port cannot be bound or the folders cannot be made.
  [[nodiscard]] static Result<std::unique_ptr<SimServer>> create(
      boost::asio::io_context& context, boost::asio::thread_pool& file_pool,
      std::shared_ptr<const SimShared> shared, SimServerConfig config);

  ~SimServer();
  SimServer(const SimServer&) = delete;
  SimServer& operator=(const SimServer&) = delete;

  /// Starts accepting and the worker. Call once.
  void start();
  /// Stops the worker (a running prompt is abandoned) and the HTTP server (grace for in-flight
  /// requests); `on_stopped` runs once on the io_context when both are done. Any thread.
  void stop(std::chrono::milliseconds grace, std::function<void()> on_stopped);

  /// "HOST:PORT" as bound.
  [[nodiscard]] std::string local_address() const;
  [[nodiscard]] std::uint16_t port() const;
  [[nodiscard]] std::size_t index() const noexcept;

  struct State;

 private:
  SimServer() = default;
  std::shared_ptr<State> state_;
  std::unique_ptr<net::HttpServer> http_;
};

}  // namespace comfyfarm::sim
