// Farm: `comfyfarm serve`. Many ComfyUI servers behind one ComfyUI-compatible front door, with a
// durable queue (the Store), placement (the Scheduler), retries and crash recovery.
#pragma once

#include "core/error.hpp"
#include "net/listen_address.hpp"
#include "scheduler/types.hpp"
#include "store/store.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace comfyfarm::farm {

/// A backend given on the command line or in the config file.
struct BackendConfig {
  std::string id;   ///< stable name (jobs, logs, output subfolders); derived from the URL if empty
  std::string url;  ///< http://host:port
};

struct FarmOptions {
  // A declared constructor keeps this a non-aggregate (GCC 12 and `{}` temporaries).
  FarmOptions() = default;

  net::ListenAddress listen{"127.0.0.1", 8288};
  std::filesystem::path data_dir{"comfyfarm-data"};
  std::vector<BackendConfig> backends{};
  /// Prompts each backend holds at once (one running, the rest waiting in its queue).
  std::size_t depth = 2;
  /// Attempts per job, first included (a job's own max_attempts may lower or raise it).
  int max_attempts = 3;
  /// Caps of the delay before retry n (full jitter: uniform in [0, cap]); the last one repeats.
  std::vector<scheduler::TimeMs> retry_backoff_ms{15'000, 45'000, 90'000};
  /// T1: a prompt the backend accepted must start within this once nothing runs ahead of it.
  std::chrono::milliseconds start_timeout{std::chrono::seconds(120)};
  /// T2: a running prompt must send an event (or finish) within this.
  std::chrono::milliseconds silence_timeout{std::chrono::seconds(600)};
  /// How often backends are probed, and how often a silent prompt is looked up on its backend.
  std::chrono::milliseconds probe_interval{std::chrono::seconds(2)};
  /// How often each backend's /object_info is read again (new models, input images, custom
  /// nodes); 0: only when it comes up.
  std::chrono::milliseconds catalog_refresh{std::chrono::seconds(60)};
  /// Jobs waiting at once; more gets 429.
  std::size_t queue_capacity = 100'000;
  std::uint64_t max_body_bytes = 100ull * 1024 * 1024;
  /// SIGTERM: how long running jobs may take to finish before they are handed back (left for
  /// the next start to re-attach).
  std::chrono::milliseconds grace{std::chrono::seconds(30)};
  store::Synchronous synchronous = store::Synchronous::kNormal;
  /// Copy every output into data_dir/outputs once its job succeeded.
  bool copy_outputs = true;
  std::uint64_t seed = 0;  ///< retry jitter
};

/// Derives a backend id from its URL: "http://127.0.0.1:8188" -> "127.0.0.1-8188".
[[nodiscard]] std::string backend_id_from_url(std::string_view url);

/// The running farm. Threads: its state lives on one strand of the io_context; HTTP handlers,
/// WebSocket callbacks and backend links hop onto it. Store calls run on a small blocking pool.
///
/// Life cycle: create (opens the store, binds the port) --start()--> recovering unfinished
/// jobs, connecting backends, serving --stop()--> no new work accepted, running jobs finish
/// within the grace period or are handed back, then on_stopped runs.
class Farm {
 public:
  /// kInvalidArgument for bad options; the store's error for a database it refuses (corrupt,
  /// newer schema); kUnavailable when the port cannot be bound.
  [[nodiscard]] static Result<std::unique_ptr<Farm>> create(boost::asio::io_context& context,
                                                            FarmOptions options);
  ~Farm();
  Farm(const Farm&) = delete;
  Farm& operator=(const Farm&) = delete;

  void start();
  /// Starts a graceful stop (any thread); on_stopped runs once on the io_context.
  void stop(std::chrono::milliseconds grace, std::function<void()> on_stopped);

  /// "HOST:PORT" as bound.
  [[nodiscard]] std::string local_address() const;
  /// The ready file's extra fields: {"data_dir", "backends": [{id, url}]}.
  [[nodiscard]] boost::json::object ready_fields() const;

  struct State;

 private:
  Farm() = default;
  std::shared_ptr<State> state_;
};

}  // namespace comfyfarm::farm
