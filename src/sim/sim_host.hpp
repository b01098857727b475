// SimHost: the N simulated ComfyUI servers of one `comfyfarm sim` process, their ports, folders,
// faults and the file pool they share.
#pragma once

#include "core/error.hpp"
#include "net/listen_address.hpp"
#include "sim/fault_set.hpp"
#include "sim/sim_data.hpp"
#include "sim/sim_server.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace comfyfarm::sim {

/// Where SimData comes from: the built-in data plus the flags' files.
struct SimDataSources {
  std::vector<std::filesystem::path> catalog_files{};  ///< --catalog: node classes to add
  std::vector<std::filesystem::path> timing_files{};   ///< --timing: class behaviours to add
  /// --models: a models file (JSON, merged into the built-in list), or a comma-separated list
  /// of "folder/name" (a bare name is a checkpoint) that replaces the built-in files.
  std::optional<std::string> models{};
};

/// Reads the files and builds the data (kInvalidArgument names the file and the problem).
[[nodiscard]] Result<SimData> load_sim_data(const SimDataSources& sources);

struct SimHostOptions {
  // A declared constructor keeps this a non-aggregate (GCC 12 and `{}` temporaries).
  SimHostOptions() = default;

  /// The first server's address; with a non-zero port the others take the next ports.
  net::ListenAddress listen{"127.0.0.1", 8188};
  std::size_t count = 1;
  /// Index of the first server (logs, /sim/faults "server"); `@I:` fault targets stay relative
  /// to this host. A farm with one host per simulated backend numbers them across hosts.
  std::size_t first_index = 0;
  std::string gpu_name = "NVIDIA GeForce RTX 4090";
  std::uint64_t vram_bytes = 24ULL << 30;
  std::optional<double> speed{};       ///< unset: the timing data's default
  std::optional<double> time_scale{};  ///< unset: the timing data's default
  std::uint64_t seed = 0;              ///< server i uses seed + i
  bool sampler_previews = false;       ///< --preview-method other than none
  std::vector<FaultSpec> faults{};     ///< in flag order; a spec with a target hits one server
  /// Holds each server's input/, output/, temp/ (in server-<i>/ when count > 1). Empty: a fresh
  /// temporary directory that the host removes when destroyed.
  std::filesystem::path output_dir{};
};

/// Owns the servers and the file pool. Create and destroy on a thread that does not run the
/// io_context; destroy only after stop() completed and the io_context stopped.
class SimHost {
 public:
  /// Checks the options (faults, ports), makes the folders and binds every server.
  /// kInvalidArgument for bad options, kUnavailable when a port cannot be bound.
  [[nodiscard]] static Result<std::unique_ptr<SimHost>> create(
      boost::asio::io_context& context, std::shared_ptr<const SimShared> shared,
      SimHostOptions options);

  ~SimHost();
  SimHost(const SimHost&) = delete;
  SimHost& operator=(const SimHost&) = delete;

  void start();
  /// Stops every server; on_stopped runs once, on the io_context, when all have stopped.
  void stop(std::chrono::milliseconds grace, std::function<void()> on_stopped);

  /// "HOST:PORT" of each server, in index order.
  [[nodiscard]] std::vector<std::string> addresses() const;
  /// The ready file's extra fields: {"servers": [{"http": "HOST:PORT"}, ...]}.
  [[nodiscard]] boost::json::object ready_fields() const;
  [[nodiscard]] const std::filesystem::path& output_root() const noexcept { return root_; }

 private:
  SimHost() = default;

  std::unique_ptr<boost::asio::thread_pool> file_pool_;
  std::vector<std::unique_ptr<SimServer>> servers_;
  std::filesystem::path root_;
  bool remove_root_ = false;
};

}  // namespace comfyfarm::sim
