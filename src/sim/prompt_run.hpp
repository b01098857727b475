// PromptRun: the simulated execution of one prompt, as ComfyUI's executor would run it, turned
// into the ordered steps a server plays: each step is the model time to wait, then one WebSocket
// message (or nothing) with its routing, the files to write and the state changes it made.
#pragma once

#include "comfy/bodies.hpp"
#include "comfy/messages.hpp"
#include "core/error.hpp"
#include "sim/file_namer.hpp"
#include "sim/png.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace comfyfarm::sim {

struct SimData;
class SimState;

/// Who receives a step's message (ComfyUI's send_sync routing, protocol reference §6.3).
enum class Route {
  kClient,     ///< only the sockets of the prompt's client_id
  kBroadcast,  ///< every socket
  kNone,       ///< nobody: ComfyUI sends nothing here (a prompt without client_id), but the
               ///< step still takes its time and may carry files
};

/// What a step sends: nothing, a text frame, or a binary frame.
using Payload = std::variant<std::monostate, comfy::Event, comfy::BinaryEvent>;

/// An image the server must write before sending the step (SaveImage into the output folder,
/// PreviewImage into temp). The simulator does not render: write `colour` at the given size,
/// or a scaled-down image with the size in its metadata (encode_png writes solid colours).
struct OutputFile {
  std::string node_id{};
  ImageRef ref{};  ///< filename, subfolder, type ("output" or "temp")
  std::int64_t width = 0;
  std::int64_t height = 0;
  std::size_t batch_index = 0;
  Rgb colour{};
  friend bool operator==(const OutputFile&, const OutputFile&) = default;
};

/// A change the step made to the server's state, for logs, metrics and tests. The run has
/// already applied it to SimState.
struct StateChange {
  enum class Kind {
    kModelLoaded,          ///< subject: model key ("checkpoints/x.safetensors"), bytes in VRAM
    kModelEvicted,         ///< evicted to make room (LRU)
    kModelsUnloaded,       ///< every model unloaded after an out-of-memory error
    kActivationAllocated,  ///< subject: node id; the node holds `bytes` while it runs
    kActivationReleased,
    kCacheStored,  ///< subject: node id; its output is cached for the next prompt
  };
  Kind kind = Kind::kModelLoaded;
  std::string subject{};
  std::uint64_t bytes = 0;
  friend bool operator==(const StateChange&, const StateChange&) = default;
};

/// One step of a run.
struct Step {
  double delay_ms = 0.0;  ///< simulated time between the previous step and this one
  Payload payload{};
  Route route = Route::kNone;
  std::vector<OutputFile> files{};     ///< write these before sending the payload
  std::vector<StateChange> changes{};  ///< already applied
  bool terminal = false;  ///< execution_success / _error / _interrupted: the run is done
};

enum class Outcome { kRunning, kSuccess, kError, kInterrupted };

/// A failure injected into one node (the sim's node-error and oom faults).
struct NodeFault {
  enum class Kind {
    kNodeError,    ///< the node raises exception_type(exception_message)
    kOutOfMemory,  ///< torch.OutOfMemoryError, as when VRAM runs out (models are unloaded)
  };
  Kind kind = Kind::kNodeError;
  std::string exception_type = "RuntimeError";
  /// Without the trailing newline ComfyUI adds; empty: a message naming the node.
  std::string exception_message{};
};

/// Asked once per node that is about to run (not for cached nodes), after its "executing".
using FaultHook =
    std::function<std::optional<NodeFault>(std::string_view node_id, std::string_view class_type)>;

/// A FaultHook raising a node error in every node of one of these classes.
[[nodiscard]] FaultHook node_error_for_classes(std::vector<std::string> classes);

/// Size of an uploaded input image.
struct ImageSize {
  std::int64_t width = 0;
  std::int64_t height = 0;
};

/// A prompt taken from the queue, with what the server knows about its client.
struct PlanRequest {
  /// number, prompt_id, prompt (an API-format graph that passed validation), extra_data
  /// ({"client_id": ...} or {}), outputs_to_execute (in the order validation produced them).
  comfy::QueueItem item{};
  /// The prompt's client negotiated supports_preview_metadata (type-4 preview frames).
  bool preview_metadata = false;
  FaultHook fault{};
  /// LoadImage: the size of a file in the input folder (default size when empty or nullopt).
  std::function<std::optional<ImageSize>(std::string_view filename)> input_image_size{};
  /// LoadImage's IS_CHANGED: a fingerprint of the file's bytes (a changed upload re-runs it).
  std::function<std::string(std::string_view filename)> input_fingerprint{};
};

/// One prompt's execution as a state machine. Pure: it never reads a clock; the server passes
/// the time for the executor's timestamps.
///
///   start ──> execution_start, execution_cached
///         ──> per node in ExecutionList order:
///               cached output node: executed (replay), progress_state finished 1/1
///               other node: progress_state running, executing, [interrupt check]
///                           [progress_state + progress (+ preview) per ProgressBar update,
///                            interrupt check before each], [executed], progress_state finished
///         ──> execution_success | execution_error | execution_interrupted (terminal) ──> done
///
/// Driving it (on the server's strand):
///   while (!run.done()) { wait(run.delay_before_next_ms()); play(run.next_step(now_ms)); }
///   store run.history_entry(); then play closing_steps(...) (status, executing null).
/// request_interrupt() may be called at any time between those calls: the node that is running
/// finishes unless it has a ProgressBar (then it stops at its next update); the next node gets
/// its running snapshot and executing, then execution_interrupted names it.
///
/// VRAM, the output cache and file counters in SimState change as steps are produced; a run
/// must be driven to its end (or dropped, which leaves the state as far as it got). The run
/// keeps references to `data` and `state`, which must outlive it. Movable, not copyable.
class PromptRun {
 public:
  /// Cleans the output cache for this prompt (classic cache: only entries the prompt also has
  /// survive), computes which nodes are cached and the execution order. Errc::kInvalidArgument
  /// when the graph is not a valid API-format workflow, names a class the catalog lacks, or an
  /// output that is not in it.
  [[nodiscard]] static Result<PromptRun> start(const SimData& data, SimState& state,
                                               PlanRequest request);

  PromptRun(PromptRun&&) noexcept;
  PromptRun& operator=(PromptRun&&) noexcept;
  ~PromptRun();

  [[nodiscard]] bool done() const noexcept;
  /// Model time to wait before calling next_step() (0 when done). Reflects an interrupt
  /// requested since the previous step.
  [[nodiscard]] double delay_before_next_ms();
  /// The next step; timestamps of execution_* messages are now_ms (ms since the epoch).
  /// Precondition: !done().
  [[nodiscard]] Step next_step(std::int64_t now_ms);
  /// POST /interrupt for this prompt (idempotent; ignored once done).
  void request_interrupt() noexcept;

  [[nodiscard]] Outcome outcome() const noexcept;
  [[nodiscard]] const std::string& prompt_id() const noexcept;
  [[nodiscard]] const std::optional<std::string>& client_id() const noexcept;
  /// The display id of the last "executing" node (what a reconnecting client is sent).
  [[nodiscard]] const std::optional<std::string>& last_executing_node() const noexcept;
  /// The history entry (prompt, outputs, status with messages, meta). Complete once done().
  [[nodiscard]] comfy::HistoryEntry history_entry() const;

 private:
  struct Impl;
  explicit PromptRun(std::unique_ptr<Impl> impl) noexcept;
  std::unique_ptr<Impl> impl_;
};

/// What ComfyUI's worker sends after writing the history, whatever the outcome: the `status`
/// broadcast with the queue's remaining count, then `executing {node: null}` to the client (only
/// when the prompt has a client_id). The server emits these (it owns the queue); the planner
/// does not, because the count is the queue's.
[[nodiscard]] std::vector<Step> closing_steps(std::string_view prompt_id, bool has_client,
                                              std::int64_t queue_remaining);

/// Runs a prompt to its end on a simulated clock starting at start_ms (each step's timestamp
/// is start_ms plus the delays so far). For tests and for servers that do not pace in real time.
[[nodiscard]] std::vector<Step> run_to_end(PromptRun& run, std::int64_t start_ms);

}  // namespace comfyfarm::sim
