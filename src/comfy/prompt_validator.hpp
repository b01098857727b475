// validate_prompt: ComfyUI 0.3.64's prompt validation (execution.py validate_prompt and
// validate_inputs) as a pure function, so that the simulator and the ComfyUI-compatible front
// reject bad prompts with ComfyUI's own status codes and error bodies.
#pragma once

#include "comfy/bodies.hpp"

#include <boost/json/object.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::comfy {

class NodeCatalog;

namespace detail {
struct NodeCatalogImpl;
const NodeCatalogImpl& catalog_impl(const NodeCatalog& catalog) noexcept;
}  // namespace detail

/// An /object_info catalog indexed for validation: class lookups by hash, plus what validation
/// needs per class precomputed. Build it once per catalog (e.g. when a backend's /object_info
/// is fetched) and reuse it for every prompt. Immutable; copies share one index, so copying is
/// cheap and const use from several threads is safe. A moved-from NodeCatalog may only be
/// assigned to or destroyed.
class NodeCatalog {
 public:
  explicit NodeCatalog(ObjectInfo info);

  /// The class called class_type, or nullptr.
  [[nodiscard]] const NodeClassInfo* find(std::string_view class_type) const noexcept;
  [[nodiscard]] const ObjectInfo& info() const noexcept;

 private:
  friend const detail::NodeCatalogImpl& detail::catalog_impl(const NodeCatalog& catalog) noexcept;
  std::shared_ptr<const detail::NodeCatalogImpl> impl_;
};

/// Answers whether an input file exists, for the classes whose VALIDATE_INPUTS checks a file
/// (LoadImage, LoadImageMask, LoadImageOutput: "image"; LoadLatent: "latent"; LoadAudio: "audio";
/// LoadVideo: "file"). folder_type is "input", "output" or "temp", taken from a trailing
/// " [output]" / " [input]" / " [temp]" annotation of the value and "input" without one;
/// filename is the value without the annotation and may contain subfolders ("sub/a.png"). It is
/// not asked for an empty name (ComfyUI then tests the folder itself, which exists).
using FileExistsFn = std::function<bool(std::string_view folder_type, std::string_view filename)>;

struct ValidateOptions {
  /// POST /prompt's partial_execution_targets: only the output nodes listed run. Ids that are
  /// not output nodes are ignored; an empty list leaves no outputs (prompt_no_outputs).
  std::optional<std::vector<std::string>> partial_execution_targets{};
  /// Consulted for file-backed inputs instead of their combo list. Empty: every file exists.
  FileExistsFn file_exists{};
};

/// What ComfyUI does with a prompt.
///
/// http_status is 200 (accepted: ok, outputs_to_execute non-empty, node_errors lists the nodes
/// behind outputs that were dropped), 400 (rejected: error holds ComfyUI's exact body) or 500
/// (real ComfyUI raises an uncaught exception and answers aiohttp's plain-text 500, e.g. for a
/// node that is a JSON number; error then holds a comfyfarm-worded invalid_prompt body, which
/// the farm's front sends with 400 and the simulator may replace by the plain 500).
struct ValidationOutcome {
  bool ok = false;
  int http_status = 0;
  /// Output node ids that will run, in document order (ComfyUI's own order is a set's).
  std::vector<std::string> outputs_to_execute{};
  /// Nodes with reasons of their own (never a node that failed only because of its upstream),
  /// in the order ComfyUI records them. Also error->node_errors when rejected.
  std::vector<NodeError> node_errors{};
  /// The prompt as ComfyUI queues and stores it: literals of the nodes that validation reached
  /// converted in place (INT "20" -> 20, FLOAT 1 -> 1.0, STRING 5 -> "5", BOOLEAN "false" ->
  /// true) and {"__value__": [...]} unwrapped. Only meaningful when ok.
  json::object normalized_prompt{};
  /// The error body (node_errors copied in) when not ok.
  std::optional<PromptErrorResponse> error{};
};

/// Validates an API-format prompt against a catalog, exactly like ComfyUI 0.3.64's
/// validate_prompt:
///
/// 1. Every node, in document order: no class_type, or a class the catalog lacks, stops with
///    400 invalid_prompt ("Node ID '#<id>'").
/// 2. Output nodes (output_node), filtered by partial_execution_targets; none: 400
///    prompt_no_outputs.
/// 3. Each output is validated recursively upstream with memoization. A node's reasons are
///    required_input_missing, bad_linked_input, return_type_mismatch, invalid_input_type,
///    value_smaller_than_min, value_bigger_than_max, value_not_in_list (classic list combos
///    only; V3 "COMBO" inputs are not checked), custom_validation_failed (missing input file),
///    and exception_during_inner_validation / exception_during_validation where ComfyUI raises
///    a Python exception (a link to a missing node is a KeyError filed under the node that
///    links to it, described by the downstream input; the traceback is a plausible list of
///    Python-formatted frames, not a recording). Inputs are checked in schema order (required,
///    then optional); unknown input names are ignored; nodes no output depends on are not
///    validated.
/// 4. No valid output: 400 prompt_outputs_failed_validation, details joining only the output
///    nodes' own reasons. Otherwise 200 with the valid outputs.
///
/// Where ComfyUI's result depends on Python set order (several outputs failing), outputs are
/// taken in document order; dependent_outputs then follows ComfyUI's own rule: every failing
/// output is appended to each node already recorded with reasons when that output is processed,
/// so a node can list a later failing output that does not depend on it, as on a real server.
/// Deviations, where ComfyUI would loop or crash: a link cycle, or a chain deeper than 1000
/// nodes, gives a RecursionError reason on the node entered again (ComfyUI overflows its stack
/// and usually loses the report); integers beyond 64 bits stay floating point.
///
/// Takes the prompt by value: move the request's prompt in to spare a copy. Pure and
/// thread-safe; recursion uses at most about 0.3 MB of stack (1000 levels).
[[nodiscard]] ValidationOutcome validate_prompt(json::object prompt, const NodeCatalog& catalog,
                                                const ValidateOptions& options = {});

/// Same, looking classes up in info directly (a linear scan per distinct class): fine for tests
/// and one-off checks; a server should build a NodeCatalog once.
[[nodiscard]] ValidationOutcome validate_prompt(json::object prompt, const ObjectInfo& info,
                                                const ValidateOptions& options = {});

/// ComfyUI's 400 body for a POST /prompt without "prompt":
/// {"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt
/// provided", "extra_info": {}}, "node_errors": {}}.
[[nodiscard]] PromptErrorResponse no_prompt_error();

/// comfyfarm extension (ComfyUI itself answers a UI-format workflow with a misleading
/// invalid_prompt or a 500): when prompt is the editor's UI format (Workflow's detection: a
/// "nodes" or "links" array, or a "last_node_id"), a 400 body of type "invalid_prompt" whose
/// message tells the user to export with "Save (API Format)", with extra_info
/// {"comfyfarm_error": "ui_format"}; nullopt for anything else. Cheap for API-format prompts.
[[nodiscard]] std::optional<PromptErrorResponse> ui_format_error(const json::object& prompt);

}  // namespace comfyfarm::comfy
