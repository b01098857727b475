// Workflow: a validated, immutable API-format ComfyUI workflow (the graph `POST /prompt` takes),
// with its DAG queries, model file references, and content and structural hashes.
#pragma once

#include "comfy/json_util.hpp"
#include "core/error.hpp"

#include <boost/assert.hpp>
#include <boost/assert/source_location.hpp>
#include <boost/json/value.hpp>
#include <boost/system/result.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace comfyfarm::comfy {

/// What is structurally wrong with a workflow, fine enough for a client to branch on.
enum class WorkflowErrc {
  kNotJson,             ///< the text is not JSON (the message names the byte offset)
  kNotAnObject,         ///< the top level is not a JSON object (e.g. an array)
  kEmpty,               ///< the top-level object has no nodes
  kUiFormat,            ///< the editor's UI format ("nodes"/"links" arrays), not the API format
  kNodeNotObject,       ///< a node's value is not an object
  kMissingClassType,    ///< a node has no (or an empty) "class_type"
  kClassTypeNotString,  ///< a node's "class_type" is not a string
  kInputsNotObject,     ///< a node has no "inputs", or it is not an object
  kLinkToMissingNode,   ///< a link names a node id that is not in the workflow
  kBadOutputIndex,      ///< a link's index is not a non-negative integer (or out of range for
                        ///< its class), or its node id is not a string
  kCycle,               ///< links form a cycle
};

/// Stable snake_case name of a code ("link_to_missing_node"), for logs and JSON bodies.
[[nodiscard]] std::string_view to_string(WorkflowErrc code) noexcept;

/// One problem found in a workflow.
struct WorkflowIssue {
  WorkflowErrc code = WorkflowErrc::kNotJson;
  std::string node_id;     ///< the node at fault; empty when the problem is the whole document
  std::string input_name;  ///< the input at fault; empty when the problem is not one input
  std::string message;     ///< complete sentence for humans, names node, class and input
  /// For kCycle: the nodes of one cycle in data-flow order, starting at node_id (each feeds
  /// the next, the last feeds node_id through input_name). Empty for other codes.
  std::vector<std::string> cycle;

  [[nodiscard]] Error to_error() const;
  operator Error() const { return to_error(); }  // NOLINT(google-explicit-constructor)

  friend bool operator==(const WorkflowIssue&, const WorkflowIssue&) = default;
};

/// Every problem found while parsing a workflow, in document order (cycles last). Never empty.
/// Note that Boost 1.81's result::error() returns a copy: bind it (`const auto err = r.error();`)
/// before keeping references into it; first() on that temporary returns a copy for safety.
struct WorkflowError {
  std::vector<WorkflowIssue> issues;

  [[nodiscard]] const WorkflowIssue& first() const& {
    BOOST_ASSERT(!issues.empty());
    return issues.front();
  }
  [[nodiscard]] WorkflowIssue first() && {
    BOOST_ASSERT(!issues.empty());
    return std::move(issues.front());
  }
  [[nodiscard]] WorkflowErrc code() const {
    BOOST_ASSERT(!issues.empty());
    return issues.front().code;
  }
  /// Errc::kInvalidArgument with the issues' messages joined by "; " (the first 10, then a count).
  [[nodiscard]] Error to_error() const;
  operator Error() const { return to_error(); }  // NOLINT(google-explicit-constructor)

  friend bool operator==(const WorkflowError&, const WorkflowError&) = default;
};

/// Lets WorkflowResult<T>::value() throw ErrorException like Result<T> does.
[[noreturn]] void throw_exception_from_error(const WorkflowError& e,
                                             const boost::source_location& loc);

namespace detail {
struct WorkflowImpl;
}  // namespace detail

template <class T>
using WorkflowResult = boost::system::result<T, WorkflowError>;

/// Where a link input takes its value from: output `output_index` of node `node_id`.
struct Link {
  std::string_view node_id;
  std::uint64_t output_index = 0;
  std::size_t source = 0;  ///< index of node_id in Workflow::nodes()

  friend bool operator==(const Link&, const Link&) = default;
};

/// One entry of a node's "inputs" object.
struct NodeInput {
  std::string_view name;
  const json::value* value = nullptr;  ///< the JSON as written (never null; a link stays a 2-array)
  std::optional<Link> link;            ///< set when the value is a link

  [[nodiscard]] bool is_link() const noexcept { return link.has_value(); }
};

/// One node of a Workflow.
struct Node {
  std::string_view id;
  std::string_view class_type;
  std::optional<std::string_view> title;  ///< "_meta"."title" when it is a string
  std::span<const NodeInput> inputs;      ///< in document order
  const json::object* object = nullptr;   ///< the node's object as written (never null)

  /// The input called name, or nullptr.
  [[nodiscard]] const NodeInput* input(std::string_view name) const noexcept;
};

/// A literal input that names a model file (checkpoint, LoRA, VAE, ...); see is_model_reference.
struct ModelReference {
  std::string_view node_id;
  std::string_view input_name;
  std::string_view file;

  friend bool operator==(const ModelReference&, const ModelReference&) = default;
};

/// Whether a literal string input names a model file: any value ending in a model extension
/// (.safetensors .ckpt .pt .pth .bin .gguf .onnx .sft, case-insensitive), or a value that looks
/// like a file (has an extension that is not an image/video/audio/text/config one) given to an
/// input whose name ends in "_name" (ckpt_name, lora_name, clip_name1, ...) or is a known model
/// input (upscale_model, ...). "euler" in sampler_name is not a file; "example.png" in image is
/// an input image, not a model.
[[nodiscard]] bool is_model_reference(std::string_view input_name, std::string_view value) noexcept;

/// A validated API-format workflow: node id -> {"class_type", "inputs", "_meta"}. Immutable; copies
/// share one document, so copying is cheap. Every string_view, span and pointer it hands out
/// points into that shared document and stays valid while any copy of the Workflow lives.
/// Const member functions are safe to call from several threads. A moved-from Workflow may only
/// be assigned to or destroyed.
///
/// Invariants after parse/from_json: every node is an object with a non-empty string class_type
/// and an object "inputs"; every 2-element array input is a link ["<existing node id>", n >= 0];
/// the links form a DAG. An array of any other length is a literal (ComfyUI's own validation
/// rejects it for declared inputs as bad_linked_input; the schema check belongs there).
class Workflow {
 public:
  /// Parses JSON text (Python's NaN/Infinity accepted, seeds exact up to 2^64-1) and validates it.
  /// Collects every structural problem rather than stopping at the first.
  [[nodiscard]] static WorkflowResult<Workflow> parse(std::string_view text);
  [[nodiscard]] static WorkflowResult<Workflow> from_json(const json::value& doc);
  [[nodiscard]] static WorkflowResult<Workflow> from_json(json::value&& doc);

  /// The document as given: equal to the input, keys in their original order.
  [[nodiscard]] const json::value& to_json() const noexcept;

  [[nodiscard]] std::size_t size() const noexcept;
  /// All nodes in document order.
  [[nodiscard]] std::span<const Node> nodes() const noexcept;
  /// The node with this id, or nullptr.
  [[nodiscard]] const Node* find(std::string_view id) const noexcept;
  /// Position of the node in nodes(), or nullopt.
  [[nodiscard]] std::optional<std::size_t> index_of(std::string_view id) const noexcept;

  /// Node ids in an order where every node comes after the nodes it links to. Deterministic:
  /// Kahn's algorithm taking, among the ready nodes, the one first in the document.
  [[nodiscard]] std::vector<std::string_view> topological_order() const;
  /// The distinct nodes that id links to, in document order; kNotFound for an unknown id.
  [[nodiscard]] Result<std::vector<std::string_view>> predecessors(std::string_view id) const;
  /// The distinct nodes that link to id, in document order; kNotFound for an unknown id.
  [[nodiscard]] Result<std::vector<std::string_view>> successors(std::string_view id) const;
  /// Nodes whose class is an output class (from /object_info's output_node), in document order.
  [[nodiscard]] std::vector<std::string_view> output_nodes(
      const std::function<bool(std::string_view class_type)>& is_output_class) const;
  /// Schema-free stand-in for output_nodes: nodes no other node links to, in document order.
  [[nodiscard]] std::vector<std::string_view> sink_nodes() const;

  /// Schema-aware link check: links whose output_index is not below the source class's number
  /// of outputs, as kBadOutputIndex issues (document order). Classes for which output_count
  /// returns nullopt (unknown to the caller) are skipped.
  [[nodiscard]] std::vector<WorkflowIssue> check_output_indices(
      const std::function<std::optional<std::size_t>(std::string_view class_type)>& output_count)
      const;

  /// Model files the workflow names (see is_model_reference), in document order.
  [[nodiscard]] std::vector<ModelReference> model_references() const;

  /// XXH3-128 of canonical_json(to_json()), as 32 lowercase hex digits of the big-endian
  /// (XXH128_canonical_t) form. The same for documents that differ only in key order and
  /// whitespace, different when any value differs.
  [[nodiscard]] std::string content_hash() const;

  /// XXH3-128 over the graph's shape, 32 lowercase hex digits: class types, input names of
  /// links, output indices and model references, but no other literal (seeds, prompts, sizes)
  /// and no node id or key order. Each node gets an upstream Merkle signature (class type,
  /// model references, and per link the input name, output index and source signature), then a
  /// downstream one (its upstream signature plus, per consumer link, the input name, index and
  /// consumer's downstream signature); the hash is taken of the sorted multiset of those.
  [[nodiscard]] std::string structural_hash() const;

 private:
  explicit Workflow(std::shared_ptr<const detail::WorkflowImpl> impl) noexcept
      : impl_(std::move(impl)) {}

  std::shared_ptr<const detail::WorkflowImpl> impl_;
};

}  // namespace comfyfarm::comfy
