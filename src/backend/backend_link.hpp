// BackendLink: the farm's long-lived link to one ComfyUI server. One WebSocket under the farm's
// own clientId (reconnected with capped backoff), a periodic liveness probe, the HTTP calls the
// farm needs, and the events of each prompt delivered by prompt_id.
#pragma once

#include "backend/backend_error.hpp"
#include "comfy/bodies.hpp"
#include "comfy/messages.hpp"
#include "net/http_types.hpp"

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/json/object.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace comfyfarm::backend {

struct BackendLinkOptions {
  /// "http://host:port" of the ComfyUI server (a base path is allowed: "http://h:8188/comfy").
  std::string base_url{};
  /// The clientId of the farm's socket on this backend; empty picks "comfyfarm-<random hex>".
  /// Every prompt is submitted with it, so all their events arrive on the link's socket.
  std::string client_id{};
  std::chrono::milliseconds connect_timeout{std::chrono::seconds(5)};
  std::chrono::milliseconds request_timeout{std::chrono::seconds(30)};
  /// ComfyUI sends nothing while idle, so liveness comes from a cheap GET /prompt this often.
  std::chrono::milliseconds probe_interval{std::chrono::seconds(5)};
  std::chrono::milliseconds probe_timeout{std::chrono::seconds(3)};
  /// Consecutive failed probes after which the backend counts as down.
  int probe_failures_down = 2;
  /// WebSocket reconnect backoff: min * 2^attempt, capped, with full jitter.
  std::chrono::milliseconds reconnect_min{std::chrono::milliseconds(200)};
  std::chrono::milliseconds reconnect_max{std::chrono::seconds(10)};
  /// Ask for type-4 previews (metadata names the prompt, so previews can be routed).
  bool preview_metadata = true;
  /// Events kept per prompt until read; beyond it the oldest progress-type events are dropped
  /// (never lifecycle events).
  std::size_t max_events_per_prompt = 4096;
  /// Prompts whose events arrived before anyone watched them (events can precede the reply to
  /// POST /prompt); beyond it the oldest such buffer is dropped.
  std::size_t max_unclaimed_prompts = 256;
};

/// The WebSocket went away or came back. Watchers get it because events sent while the socket
/// was down are lost for good (ComfyUI does not buffer): read /history to catch up.
struct LinkEvent {
  enum class Kind { kDisconnected, kReconnected };
  Kind kind = Kind::kDisconnected;
  std::string reason;
};

/// One event of a watched prompt, stamped when it was received.
struct PromptEvent {
  std::variant<comfy::Event, comfy::BinaryEvent, LinkEvent> event;
  std::chrono::system_clock::time_point received_at;
  /// The frame as received (text or binary), for forwarding without re-encoding; empty for
  /// LinkEvent.
  std::shared_ptr<const std::string> raw;
};

/// The events of one prompt, in arrival order. Obtained from BackendLink::watch(); reading is
/// for one coroutine at a time.
class PromptStream {
 public:
  virtual ~PromptStream() = default;
  /// The next event, waiting at most `timeout`: BackendErrc::kTimeout when none came,
  /// kCancelled when the link stopped or the stream was closed.
  virtual boost::asio::awaitable<BackendResult<PromptEvent>> next(
      std::chrono::milliseconds timeout) = 0;
  /// Events dropped because the reader fell behind (progress-type only).
  virtual std::uint64_t dropped() const = 0;
  virtual const std::string& prompt_id() const = 0;
};

/// What the link knows of the backend's health (a snapshot; thread-safe to take).
struct BackendHealth {
  enum class State { kUnknown, kUp, kDown };
  State state = State::kUnknown;
  bool websocket_connected = false;
  int consecutive_probe_failures = 0;
  std::int64_t queue_remaining = -1;  ///< from the last probe or status message; -1 unknown
  std::optional<std::chrono::system_clock::time_point> last_ok;
  std::string last_error;
  std::uint64_t reconnects = 0;
};

std::string_view to_string(BackendHealth::State state) noexcept;

/// What submit() sends besides the graph.
struct SubmitOptions {
  std::optional<boost::json::object> extra_data{};  ///< kept verbatim; client_id is set to the link's
  std::optional<std::vector<std::string>> partial_execution_targets{};
  std::optional<double> number;  ///< ComfyUI priority (lower first); the farm leaves it unset
  bool front = false;
};

struct UploadedFile {
  std::string name;  ///< the name the backend stored (may differ: "x (1).png")
  std::string subfolder;
  std::string type;
};

struct ViewedFile {
  std::string bytes;
  std::string content_type;
};

/// The link to one ComfyUI server.
///
/// Threads: every member may be called from any thread or coroutine; the link's state lives on
/// its own strand. Life cycle: created (idle) --start()--> running (socket connecting or
/// connected, probe running) --stop()--> stopped (socket closed, watchers get kCancelled).
/// HTTP calls work in every state; they never send an Origin header (ComfyUI answers 403 to a
/// mismatched Origin on loopback).
class BackendLink {
 public:
  /// kInvalidArgument for a base URL that is not http://host[:port][/path].
  [[nodiscard]] static Result<std::shared_ptr<BackendLink>> create(
      boost::asio::any_io_executor executor, BackendLinkOptions options);
  ~BackendLink();
  BackendLink(const BackendLink&) = delete;
  BackendLink& operator=(const BackendLink&) = delete;

  /// Starts the WebSocket and the probe loops. Call once.
  void start();
  /// Closes the socket, stops the loops, cancels watchers and HTTP calls in flight. Idempotent.
  void stop();

  const std::string& client_id() const;
  const std::string& base_url() const;
  BackendHealth health() const;

  /// Starts collecting the events of `prompt_id`, including any that arrived before this call.
  /// Watch before submitting (the id is the caller's choice). The stream ends being fed when
  /// dropped.
  boost::asio::awaitable<std::shared_ptr<PromptStream>> watch(std::string prompt_id);

  /// POST /prompt with the caller's prompt_id and the link's client_id.
  boost::asio::awaitable<BackendResult<comfy::PromptResponse>> submit(
      std::string prompt_id, boost::json::object prompt, SubmitOptions options = {});

  boost::asio::awaitable<BackendResult<comfy::SystemStats>> system_stats();
  boost::asio::awaitable<BackendResult<comfy::ObjectInfo>> object_info();
  boost::asio::awaitable<BackendResult<comfy::QueueSnapshot>> queue();
  /// GET /history/{id}: nullopt while the prompt is unknown, queued or running (ComfyUI's {}).
  boost::asio::awaitable<BackendResult<std::optional<comfy::HistoryEntry>>> history(
      std::string prompt_id);
  /// GET /prompt: the backend's queue_remaining (the liveness probe uses the same call).
  boost::asio::awaitable<BackendResult<comfy::ExecInfo>> exec_info();
  /// GET /models/{folder}: the files of one model folder (kBadRequest 404 for an unknown one).
  boost::asio::awaitable<BackendResult<std::vector<std::string>>> models(std::string folder);
  /// POST /free.
  boost::asio::awaitable<BackendResult<void>> free(bool unload_models, bool free_memory);
  /// POST /interrupt, with {"prompt_id"} when given (servers >= 0.3.57 then stop only that
  /// prompt; older ones stop whatever runs).
  boost::asio::awaitable<BackendResult<void>> interrupt(std::optional<std::string> prompt_id);
  /// Any request, answered as the backend answers it (every status is a result; only transport
  /// failures are errors): what the farm uses to pass on routes it does not serve itself, such
  /// as the web UI's files and settings. `target` is a path with its query.
  boost::asio::awaitable<BackendResult<net::Response>> forward(net::Method method, std::string target,
                                                               net::Headers headers, std::string body);
  /// POST /queue {"delete": ids}: removes prompts still waiting in the backend's queue (a
  /// running one is not affected; interrupt it).
  boost::asio::awaitable<BackendResult<void>> delete_queued(std::vector<std::string> prompt_ids);
  /// POST /upload/image (multipart). `type` is "input" (default), "temp" or "output".
  boost::asio::awaitable<BackendResult<UploadedFile>> upload_image(
      std::string filename, std::string bytes, std::string type = "input",
      std::string subfolder = {}, bool overwrite = false);
  /// GET /view.
  boost::asio::awaitable<BackendResult<ViewedFile>> view(std::string filename,
                                                         std::string subfolder = {},
                                                         std::string type = "output");

  struct Impl;

 private:
  explicit BackendLink(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace comfyfarm::backend
