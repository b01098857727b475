// What placement needs to know about a workflow and a backend, and how a failed attempt is
// classified. Pure functions over the ComfyUI bodies: no I/O, no clock.
#pragma once

#include "backend/backend_error.hpp"
#include "comfy/bodies.hpp"
#include "comfy/messages.hpp"
#include "scheduler/types.hpp"

#include <boost/json/object.hpp>

#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::farm {

/// A workflow's requirements: the node classes it uses, the model files it names, the
/// signature of its loaders (a backend whose previous prompt had the same one keeps those
/// models loaded) and its structural hash (backends that failed it as incompatible are
/// blocked for it).
struct WorkflowNeeds {
  std::vector<std::string> class_types;  ///< sorted, distinct
  std::vector<std::string> model_files;  ///< sorted, distinct
  std::string affinity_key;              ///< "" when the workflow loads no model
  std::string structural_hash;
};

/// Computes the needs of an API-format prompt. The prompt must have passed Workflow validation
/// (kInvalidArgument otherwise, with the first issue).
[[nodiscard]] Result<WorkflowNeeds> workflow_needs(const boost::json::object& prompt);

/// What a backend offers: its classes and the model files its combo inputs list.
struct BackendOffer {
  std::vector<std::string> class_types;
  std::vector<std::string> model_files;
};
[[nodiscard]] BackendOffer backend_offer(const comfy::ObjectInfo& info);

/// The union of several backends' catalogs, to validate prompts against the whole farm: every
/// class any backend has, with the choices of combo inputs merged (a checkpoint one backend has
/// is valid for the farm). Classes keep the first backend's order and definition otherwise.
[[nodiscard]] comfy::ObjectInfo merge_object_info(std::span<const comfy::ObjectInfo* const> infos);

/// The class of a failure a backend reported while running the prompt.
[[nodiscard]] scheduler::FailureClass classify_execution_error(const comfy::ExecutionError& error);
/// The class of a failure to talk to the backend, or of its refusal of the prompt.
[[nodiscard]] scheduler::FailureClass classify_backend_error(const backend::BackendError& error);
/// "workflow_invalid", "backend_incompatible", "oom", "backend_lost", "transient".
[[nodiscard]] std::string_view to_string(scheduler::FailureClass failure) noexcept;

}  // namespace comfyfarm::farm
