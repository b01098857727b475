// ComfyUI WebSocket messages as typed values: the JSON text frames ({"type", "data"}) as the
// Event variant, the binary frames (previews, progress text) as BinaryEvent, and their codecs.
#pragma once

#include "core/error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <concepts>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace comfyfarm::comfy {

namespace json = boost::json;

/// A JSON number that remembers how it was written: as an integer (`2`) or a float (`2.0`).
/// ComfyUI sends both for progress values (floats 0.0/1.0 for nodes without a progress bar,
/// integers after ProgressBar updates), and re-encoding must write back what was received.
/// Integers are int64 (decoding rejects larger ones; progress values are small).
class Number {
 public:
  constexpr Number() = default;
  template <std::integral I>
    requires(!std::same_as<I, bool>)
  constexpr Number(I i)
      : integral_(true), int_(static_cast<std::int64_t>(i)), real_(static_cast<double>(i)) {}
  template <std::floating_point F>
  constexpr Number(F f) : integral_(false), real_(static_cast<double>(f)) {}

  /// True when written without fraction or exponent.
  constexpr bool is_integer() const noexcept { return integral_; }
  /// The integer value; for a float, the value truncated toward zero.
  constexpr std::int64_t as_int64() const noexcept {
    return integral_ ? int_ : static_cast<std::int64_t>(real_);
  }
  constexpr double as_double() const noexcept { return real_; }

  /// Same kind and same value (so 1 != 1.0, as in Boost.JSON).
  friend constexpr bool operator==(const Number& a, const Number& b) noexcept {
    return a.integral_ == b.integral_ && (a.integral_ ? a.int_ == b.int_ : a.real_ == b.real_);
  }

 private:
  bool integral_ = true;
  std::int64_t int_ = 0;
  double real_ = 0.0;
};

// ---------------------------------------------------------------------------------------------
// Text messages. Each struct holds the "data" object of one message type. Fields that a version
// of ComfyUI may leave out are std::optional and are written back only when set; `extra` keeps
// data keys this code does not know (newer servers), re-encoded after the known keys, so
// forwarding a message loses nothing.

/// "status": queue changes; the first status on a socket also carries the socket's sid.
/// Wire: {"status": {"exec_info": {"queue_remaining": N}}, "sid"?: S}. `extra` keeps unknown
/// keys of data; unknown keys inside "status" and "exec_info" (none in any known version) are
/// dropped.
struct Status {
  std::int64_t queue_remaining = 0;
  std::optional<std::string> sid{};  ///< only in the first status after connecting
  json::object extra{};
  friend bool operator==(const Status&, const Status&) = default;
};

/// "execution_start": the worker began the prompt.
struct ExecutionStart {
  std::string prompt_id{};
  std::optional<std::int64_t> timestamp{};  ///< ms since the epoch; absent before mid-2024
  json::object extra{};
  friend bool operator==(const ExecutionStart&, const ExecutionStart&) = default;
};

/// "execution_cached": node ids whose outputs come from cache, in graph key order.
struct ExecutionCached {
  std::vector<std::string> nodes{};
  std::string prompt_id{};
  std::optional<std::int64_t> timestamp{};  ///< ms since the epoch
  json::object extra{};
  friend bool operator==(const ExecutionCached&, const ExecutionCached&) = default;
};

/// "executing": a node is about to run. Three forms are on the wire:
/// {node, display_node, prompt_id} while running; {node: null, prompt_id} once the prompt ended
/// (after history is written, whatever the outcome); {node} alone right after a reconnect.
struct Executing {
  std::optional<std::string> node{};  ///< nullopt: written as null, the prompt has ended
  std::optional<std::string> display_node{};  ///< absent in the end and reconnect forms
  std::optional<std::string> prompt_id{};  ///< absent in the reconnect form
  json::object extra{};

  bool is_end_of_prompt() const noexcept { return !node.has_value(); }
  friend bool operator==(const Executing&, const Executing&) = default;
};

/// "progress": a ProgressBar update. value is whatever the node reports (not necessarily
/// reaching max).
struct Progress {
  Number value{};
  Number max{};
  std::optional<std::string> prompt_id{};  ///< absent on servers before 2024
  std::optional<std::string> node{};  ///< absent on servers before 2024
  json::object extra{};
  friend bool operator==(const Progress&, const Progress&) = default;
};

/// One entry of a progress_state snapshot.
struct NodeProgress {
  Number value{};
  Number max{};
  std::string state{};  ///< "running" or "finished" ("pending"/"error" exist but are not sent)
  std::string node_id{};
  std::string prompt_id{};
  std::string display_node_id{};
  std::optional<std::string> parent_node_id{};  ///< null for nodes of the submitted graph
  std::string real_node_id{};
  json::object extra{};
  friend bool operator==(const NodeProgress&, const NodeProgress&) = default;
};

/// "progress_state": the cumulative snapshot of every non-pending node of the prompt. On the
/// wire `nodes` is an object keyed by node_id; here it is a list in wire order.
struct ProgressState {
  std::string prompt_id{};
  std::vector<NodeProgress> nodes{};
  json::object extra{};
  friend bool operator==(const ProgressState&, const ProgressState&) = default;
};

/// "executed": a node produced UI output (also replayed for cached output nodes).
struct Executed {
  std::string node{};
  std::optional<std::string> display_node{};  ///< absent on servers before Aug 2024
  json::value output{};  ///< the node's ui dict (an object), or null for a cached node without one
  std::string prompt_id{};
  json::object extra{};
  friend bool operator==(const Executed&, const Executed&) = default;
};

/// "execution_success": the prompt finished without error.
struct ExecutionSuccess {
  std::string prompt_id{};
  std::optional<std::int64_t> timestamp{};
  json::object extra{};
  friend bool operator==(const ExecutionSuccess&, const ExecutionSuccess&) = default;
};

/// "execution_error": a node raised (ends the prompt), or an ExecutionBlocker fired
/// (exception_type "ExecutionBlocked", no timestamp, does not end the prompt).
struct ExecutionError {
  std::string prompt_id{};
  std::string node_id{};
  std::string node_type{};
  std::vector<std::string> executed{};  ///< ids that ran successfully in this prompt
  std::string exception_message{};
  std::string exception_type{};
  std::vector<std::string> traceback{};
  /// Input name -> list of values (non-primitive ones as their str()); `[]` for runtime cycle
  /// errors and ExecutionBlocked. May hold NaN/Infinity, which are kept as doubles.
  json::value current_inputs{};
  std::vector<std::string> current_outputs{};  ///< node ids known to the cache for this prompt
  std::optional<std::int64_t> timestamp{};  ///< absent for ExecutionBlocked
  json::object extra{};
  friend bool operator==(const ExecutionError&, const ExecutionError&) = default;
};

/// "execution_interrupted": the prompt stopped at a node boundary after POST /interrupt.
struct ExecutionInterrupted {
  std::string prompt_id{};
  std::string node_id{};  ///< the node that was about to run (or was stopped)
  std::string node_type{};
  std::vector<std::string> executed{};
  std::optional<std::int64_t> timestamp{};
  json::object extra{};
  friend bool operator==(const ExecutionInterrupted&, const ExecutionInterrupted&) = default;
};

/// "feature_flags": sent by the client as its first frame, answered by the server with its own
/// flags (the body of GET /features).
struct FeatureFlags {
  json::object flags{};
  friend bool operator==(const FeatureFlags&, const FeatureFlags&) = default;
};

/// Any other message type (logs, display_component, custom nodes' types), kept as received so
/// that it can be forwarded.
struct Unknown {
  std::string type{};
  json::value data{};
  friend bool operator==(const Unknown&, const Unknown&) = default;
};

using Event = std::variant<Status, ExecutionStart, ExecutionCached, Executing, Progress,
                           ProgressState, Executed, ExecutionSuccess, ExecutionError,
                           ExecutionInterrupted, FeatureFlags, Unknown>;

/// The wire "type" of an event ("status", "progress_state", ...; Unknown's own type).
[[nodiscard]] std::string_view type_name(const Event& event) noexcept;

/// The prompt an event belongs to, for routing: nullopt for status and feature_flags, for the
/// reconnect form of executing and for old-style progress. For Unknown, data.prompt_id when it
/// is a string. The view points into `event`.
[[nodiscard]] std::optional<std::string_view> prompt_id_of(const Event& event) noexcept;

/// Decodes one text frame. Errors are Errc::kProtocol and name the message type and the field
/// ("progress: value: expected a number, found string at byte 28"). Unknown types decode to
/// Unknown; a known type with a malformed body is an error, not Unknown. NaN/Infinity tokens
/// are accepted as doubles. Thread-safe (no shared state).
[[nodiscard]] Result<Event> decode_event(std::string_view text);

/// Decodes the "data" of a message whose type is already known (history status.messages holds
/// [type, data] pairs).
[[nodiscard]] Result<Event> decode_event_data(std::string_view type, std::string_view data_text);
[[nodiscard]] Result<Event> event_from_json(std::string_view type, const json::value& data);

/// Encodes a text frame as ComfyUI writes it: Python json.dumps separators and escaping, keys in
/// ComfyUI's order (then `extra`). Re-encoding a decoded frame gives the received bytes back.
[[nodiscard]] std::string encode_event(const Event& event);
/// Appends the same text to `out` (no intermediate string).
void encode_event_to(std::string& out, const Event& event);
/// The "data" part only, as a DOM (for history bodies); NaN stays a double.
[[nodiscard]] json::value event_data_to_json(const Event& event);

// ---------------------------------------------------------------------------------------------
// Binary frames: a big-endian u32 event type, then a type-specific layout (big-endian u32s).

enum class BinaryEventType : std::uint32_t {
  kPreviewImage = 1,             ///< u32 format, image bytes
  kUnencodedPreviewImage = 2,    ///< internal to ComfyUI, never on the wire
  kText = 3,                     ///< u32 N, N bytes node id, UTF-8 text to the end
  kPreviewImageWithMetadata = 4, ///< u32 M, M bytes JSON metadata, image bytes
};

/// What a client's first text frame that is a JSON object says (ComfyUI reads only that one):
/// whether it was a feature_flags message, and the supports_preview_metadata flag it carried.
struct ClientHello {
  bool feature_flags = false;
  bool preview_metadata = false;
};
/// nullopt when `text` is not a JSON object: the server keeps waiting for one.
[[nodiscard]] std::optional<ClientHello> parse_client_hello(std::string_view text);

/// Image format of a type-1 frame. Other values are kept as they are.
enum class ImageFormat : std::uint32_t { kJpeg = 1, kPng = 2 };

/// Type 1: a preview for a client that did not negotiate supports_preview_metadata.
struct PreviewImage {
  ImageFormat format = ImageFormat::kPng;
  std::vector<std::uint8_t> image{};
  friend bool operator==(const PreviewImage&, const PreviewImage&) = default;
};

/// Type 3: progress text of a node (broadcast to every socket).
struct ProgressText {
  std::string node_id{};
  std::string text{};
  friend bool operator==(const ProgressText&, const ProgressText&) = default;
};

/// Type 4: a preview with its metadata {node_id, prompt_id, display_node_id, parent_node_id,
/// real_node_id, image_type}. The object keeps its key order, so re-encoding is byte-identical.
struct PreviewImageWithMetadata {
  json::object metadata{};
  std::vector<std::uint8_t> image{};
  friend bool operator==(const PreviewImageWithMetadata&,
                         const PreviewImageWithMetadata&) = default;
};

/// Any other event type, with the bytes after the 4-byte type.
struct UnknownBinary {
  std::uint32_t type = 0;
  std::vector<std::uint8_t> payload{};
  friend bool operator==(const UnknownBinary&, const UnknownBinary&) = default;
};

using BinaryEvent =
    std::variant<PreviewImage, ProgressText, PreviewImageWithMetadata, UnknownBinary>;

/// Decodes a binary frame. Truncated frames and bad metadata are Errc::kProtocol errors that
/// name the frame type, the length found and the length needed.
[[nodiscard]] Result<BinaryEvent> decode_binary(std::span<const std::uint8_t> frame);
[[nodiscard]] Result<BinaryEvent> decode_binary(std::string_view frame);

/// Encodes a binary frame as ComfyUI does (type-4 metadata with Python json.dumps separators).
[[nodiscard]] std::vector<std::uint8_t> encode_binary(const BinaryEvent& event);

/// Type-4 metadata in ComfyUI's key order. image_type is "image/png" or "image/jpeg".
[[nodiscard]] json::object make_preview_metadata(std::string_view node_id,
                                                 std::string_view prompt_id,
                                                 std::string_view display_node_id,
                                                 std::optional<std::string_view> parent_node_id,
                                                 std::string_view real_node_id,
                                                 std::string_view image_type);

/// The prompt of a type-4 preview (metadata.prompt_id); nullopt for the other types.
[[nodiscard]] std::optional<std::string_view> prompt_id_of(const BinaryEvent& event) noexcept;

}  // namespace comfyfarm::comfy
