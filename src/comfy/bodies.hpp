// ComfyUI HTTP bodies as typed values: POST /prompt (request, 200 reply, 400 reply), GET /queue,
// GET /prompt, GET /history, GET /system_stats, GET /features and GET /object_info.
#pragma once

#include "comfy/messages.hpp"
#include "core/error.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace comfyfarm::comfy {

// Every body type has the same three functions:
//   static Result<T> from_json(const json::value&);  // the parsed body
//   static Result<T> parse(std::string_view text);    // JSON text (NaN/Infinity read as null)
//   json::value to_json() const;                      // ComfyUI's key order, then `extra`
// Keys this code does not know are kept in `extra` and written back after the known ones, so
// decoding and re-encoding loses nothing (only the position of unknown keys may change).
// Errors name the body and the field path ("system_stats: devices[0].index: expected an
// integer or null, found string"). PromptRequest, which comes from our own clients, fails with
// Errc::kInvalidArgument; the replies, which come from a backend, fail with Errc::kProtocol.

/// A field that older servers leave out and newer ones may send as null: nullopt = absent,
/// an engaged nullopt = null.
using OptionalNullableString = std::optional<std::optional<std::string>>;

/// POST /prompt request body.
struct PromptRequest {
  json::object prompt{};  ///< the API-format graph, verbatim (key order kept)
  std::optional<std::string> client_id{};
  std::optional<std::string> prompt_id{};  ///< client-chosen id (servers >= 0.3.45)
  std::optional<Number> number{};  ///< explicit priority (ComfyUI turns it into a float)
  std::optional<bool> front{};  ///< jump the queue when number is absent
  std::optional<json::object> extra_data{};  ///< verbatim (extra_pnginfo, credentials, ...)
  std::optional<std::vector<std::string>> partial_execution_targets{};  ///< >= 0.3.48
  json::object extra{};

  [[nodiscard]] static Result<PromptRequest> from_json(const json::value& body);
  [[nodiscard]] static Result<PromptRequest> parse(std::string_view text);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const PromptRequest&, const PromptRequest&) = default;
};

/// One {type, message, details, extra_info} error, top-level or per node.
struct ErrorInfo {
  std::string type{};  ///< e.g. "prompt_outputs_failed_validation", "value_not_in_list"
  std::string message{};
  std::string details{};
  json::value extra_info{};  ///< free-form (input_name, input_config, received_value, ...)
  json::object extra{};

  [[nodiscard]] static Result<ErrorInfo> from_json(const json::value& body);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const ErrorInfo&, const ErrorInfo&) = default;
};

/// The validation errors of one node: an entry of "node_errors".
struct NodeError {
  std::string node_id{};  ///< the key in node_errors
  std::vector<ErrorInfo> errors{};
  std::vector<std::string> dependent_outputs{};
  std::string class_type{};
  json::object extra{};
  friend bool operator==(const NodeError&, const NodeError&) = default;
};

/// POST /prompt 200 reply. node_errors is non-empty when some outputs failed validation but at
/// least one passed (those are dropped and the rest runs).
struct PromptResponse {
  std::string prompt_id{};
  Number number{};  ///< the server's counter (integer), or the client's number as a float
  std::vector<NodeError> node_errors{};
  json::object extra{};

  [[nodiscard]] static Result<PromptResponse> from_json(const json::value& body);
  [[nodiscard]] static Result<PromptResponse> parse(std::string_view text);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const PromptResponse&, const PromptResponse&) = default;
};

/// POST /prompt 400 reply: {error: {type, message, details, extra_info}, node_errors: {...}}.
struct PromptErrorResponse {
  ErrorInfo error{};
  std::vector<NodeError> node_errors{};
  json::object extra{};

  [[nodiscard]] static Result<PromptErrorResponse> from_json(const json::value& body);
  [[nodiscard]] static Result<PromptErrorResponse> parse(std::string_view text);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const PromptErrorResponse&, const PromptErrorResponse&) = default;
};

/// The queue tuple [number, prompt_id, prompt, extra_data, outputs_to_execute] of GET /queue and
/// of history entries.
struct QueueItem {
  Number number{};
  std::string prompt_id{};
  json::object prompt{};
  json::object extra_data{};  ///< {"client_id": ...} or {}
  std::vector<std::string> outputs_to_execute{};  ///< in no particular order
  json::array extra_elements{};  ///< elements after the fifth, if a server adds any

  [[nodiscard]] static Result<QueueItem> from_json(const json::value& body);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const QueueItem&, const QueueItem&) = default;
};

/// GET /queue. queue_pending is ComfyUI's raw heap, not sorted.
struct QueueSnapshot {
  std::vector<QueueItem> running{};  ///< "queue_running": at most one item
  std::vector<QueueItem> pending{};  ///< "queue_pending"
  json::object extra{};

  [[nodiscard]] static Result<QueueSnapshot> from_json(const json::value& body);
  [[nodiscard]] static Result<QueueSnapshot> parse(std::string_view text);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const QueueSnapshot&, const QueueSnapshot&) = default;
};

/// GET /prompt: {"exec_info": {"queue_remaining": N}} (pending plus running).
struct ExecInfo {
  std::int64_t queue_remaining = 0;
  json::object extra{};  ///< other keys of exec_info

  [[nodiscard]] static Result<ExecInfo> from_json(const json::value& body);
  [[nodiscard]] static Result<ExecInfo> parse(std::string_view text);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const ExecInfo&, const ExecInfo&) = default;
};

/// The "status" of a history entry. messages holds the executor's own events for the prompt
/// ([event_name, data] pairs on the wire): execution_start, execution_cached, then the terminal
/// execution_success / execution_error / execution_interrupted.
struct HistoryStatus {
  std::string status_str{};  ///< "success" or "error"
  bool completed = false;
  std::vector<Event> messages{};
  json::object extra{};
  friend bool operator==(const HistoryStatus&, const HistoryStatus&) = default;
};

/// One entry of GET /history or GET /history/{prompt_id}.
struct HistoryEntry {
  std::string prompt_id{};  ///< the key in the history map
  QueueItem prompt{};
  json::object outputs{};  ///< node id -> ui dict ({"images": [...]}, {"text": [...]})
  std::optional<HistoryStatus> status{};  ///< absent on servers before 2024
  /// node id -> {node_id, display_node, parent_node, real_node_id}; absent before Aug 2024.
  std::optional<json::object> meta{};
  json::object extra{};
  friend bool operator==(const HistoryEntry&, const HistoryEntry&) = default;
};

/// GET /history (completion order, oldest first) or GET /history/{id}; `{}` means not finished.
struct History {
  std::vector<HistoryEntry> entries{};

  [[nodiscard]] const HistoryEntry* find(std::string_view prompt_id) const noexcept;
  [[nodiscard]] static Result<History> from_json(const json::value& body);
  [[nodiscard]] static Result<History> parse(std::string_view text);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const History&, const History&) = default;
};

/// "system" of GET /system_stats.
struct SystemInfo {
  std::string os{};  ///< Python's os.name: "posix" or "nt"
  std::int64_t ram_total = 0;  ///< bytes
  std::int64_t ram_free = 0;   ///< bytes
  std::optional<std::string> comfyui_version{};  ///< absent before Aug 2024
  OptionalNullableString required_frontend_version{};  ///< >= 0.3.46
  OptionalNullableString installed_templates_version{};  ///< >= 0.3.61
  OptionalNullableString required_templates_version{};  ///< >= 0.3.61
  std::string python_version{};  ///< the full sys.version
  std::string pytorch_version{};
  bool embedded_python = false;
  std::optional<std::vector<std::string>> argv{};  ///< absent before Aug 2024
  json::object extra{};
  friend bool operator==(const SystemInfo&, const SystemInfo&) = default;
};

/// One entry of "devices" (ComfyUI lists exactly one: the torch device in use).
struct DeviceInfo {
  std::string name{};  ///< "cpu", or "cuda:0 <gpu name> : <allocator>"
  std::string type{};  ///< "cpu", "cuda", ...
  std::optional<std::int64_t> index{};  ///< null on CPU
  std::int64_t vram_total = 0;  ///< bytes
  std::int64_t vram_free = 0;
  std::int64_t torch_vram_total = 0;
  std::int64_t torch_vram_free = 0;
  json::object extra{};
  friend bool operator==(const DeviceInfo&, const DeviceInfo&) = default;
};

/// GET /system_stats.
struct SystemStats {
  SystemInfo system{};
  std::vector<DeviceInfo> devices{};
  json::object extra{};

  [[nodiscard]] static Result<SystemStats> from_json(const json::value& body);
  [[nodiscard]] static Result<SystemStats> parse(std::string_view text);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const SystemStats&, const SystemStats&) = default;
};

/// GET /features (also the server's feature_flags WebSocket reply).
struct Features {
  std::optional<bool> supports_preview_metadata{};
  /// Bytes: an integer by default, a float when set on the server's command line.
  std::optional<Number> max_upload_size{};
  json::object extra{};

  [[nodiscard]] static Result<Features> from_json(const json::value& body);
  [[nodiscard]] static Result<Features> parse(std::string_view text);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const Features&, const Features&) = default;
};

/// A type slot of object_info: a type name ("INT", "IMAGE,MASK", "*", "COMBO") or, for a classic
/// combo, the list of allowed values.
using TypeSlot = std::variant<std::string, json::array>;

/// One input of a node class: [type, options?] on the wire, or a bare string for hidden inputs
/// ("PROMPT", "UNIQUE_ID").
struct InputSpec {
  std::string name{};
  TypeSlot type{};
  std::optional<json::object> options{};  ///< absent when the spec has a single element
  bool bare = false;                    ///< written as a bare string, not a list
  json::array extra_elements{};  ///< list elements after the options, if any

  /// True for a classic combo (a list of values) and for a V3 ["COMBO", {"options": [...]}].
  [[nodiscard]] bool is_combo() const noexcept;
  /// The allowed values of a combo; nullptr when this is not a combo or has no options list.
  [[nodiscard]] const json::array* combo_choices() const noexcept;
  /// The accepted type names: "IMAGE,MASK" gives {"IMAGE", "MASK"}; a classic combo {"COMBO"}.
  [[nodiscard]] std::vector<std::string_view> types() const;
  friend bool operator==(const InputSpec&, const InputSpec&) = default;
};

/// "input_order": input names per group, in the order the node declares them.
struct InputOrder {
  std::optional<std::vector<std::string>> required{};
  std::optional<std::vector<std::string>> optional{};
  std::optional<std::vector<std::string>> hidden{};
  json::object extra{};
  friend bool operator==(const InputOrder&, const InputOrder&) = default;
};

/// One node class of GET /object_info (classic nodes and V3 "NodeInfoV1" nodes).
struct NodeClassInfo {
  std::string class_type{};  ///< the key in the object_info map
  std::optional<std::vector<InputSpec>> required{};  ///< "input"."required", in wire order
  std::optional<std::vector<InputSpec>> optional{};  ///< "input"."optional"
  std::optional<std::vector<InputSpec>> hidden{};  ///< "input"."hidden"
  json::object input_extra{};  ///< other groups under "input"
  std::optional<InputOrder> input_order{};
  std::vector<TypeSlot> output{};  ///< output types (a list for a combo-typed output)
  std::vector<bool> output_is_list{};
  std::vector<std::string> output_name{};
  std::string name{};
  std::optional<std::string> display_name{};  ///< null on some V3 nodes
  std::optional<std::string> description{};
  std::string python_module{};  ///< "nodes", "comfy_extras.<file>", "custom_nodes.<pack>"
  std::string category{};
  bool output_node = false;
  json::object extra{};  ///< output_tooltips, deprecated, experimental, api_node, ...

  [[nodiscard]] std::span<const InputSpec> required_inputs() const noexcept;
  /// Looks an input up in required, then optional, then hidden.
  [[nodiscard]] const InputSpec* find_input(std::string_view input) const noexcept;
  /// The allowed values of a combo input; nullptr when there is no such combo input.
  [[nodiscard]] const json::array* combo_choices(std::string_view input) const noexcept;
  [[nodiscard]] std::size_t output_count() const noexcept { return output.size(); }
  [[nodiscard]] bool is_output_node() const noexcept { return output_node; }

  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const NodeClassInfo&, const NodeClassInfo&) = default;
};

/// GET /object_info or GET /object_info/{class}: class name -> info, in wire order.
struct ObjectInfo {
  std::vector<NodeClassInfo> classes{};

  [[nodiscard]] const NodeClassInfo* find(std::string_view class_type) const noexcept;
  [[nodiscard]] static Result<ObjectInfo> from_json(const json::value& body);
  [[nodiscard]] static Result<ObjectInfo> parse(std::string_view text);
  [[nodiscard]] json::value to_json() const;
  friend bool operator==(const ObjectInfo&, const ObjectInfo&) = default;
};

}  // namespace comfyfarm::comfy
