#include "farm/requirements.hpp"

#include "comfy/workflow.hpp"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <unordered_map>
#include <unordered_set>

namespace comfyfarm::farm {

namespace json = boost::json;

namespace {

bool icontains(std::string_view hay, std::string_view needle) {
  if (needle.size() > hay.size()) return false;
  for (std::size_t i = 0; i + needle.size() <= hay.size(); ++i) {
    bool ok = true;
    for (std::size_t k = 0; k < needle.size() && ok; ++k) {
      ok = std::tolower(static_cast<unsigned char>(hay[i + k])) ==
           std::tolower(static_cast<unsigned char>(needle[k]));
    }
    if (ok) return true;
  }
  return false;
}

void merge_choices(std::vector<comfy::InputSpec>& into, const std::vector<comfy::InputSpec>& from) {
  for (const auto& spec : from) {
    const auto* choices = spec.combo_choices();
    if (choices == nullptr) continue;
    auto it = std::find_if(into.begin(), into.end(),
                           [&](const comfy::InputSpec& s) { return s.name == spec.name; });
    if (it == into.end()) continue;
    auto* target = std::get_if<json::array>(&it->type);
    if (target == nullptr) continue;  // V3 combos are not checked by validation
    for (const auto& c : *choices) {
      if (std::find(target->begin(), target->end(), c) == target->end()) target->push_back(c);
    }
  }
}

}  // namespace

Result<WorkflowNeeds> workflow_needs(const json::object& prompt) {
  auto wf = comfy::Workflow::from_json(json::value(prompt));
  if (!wf) return wf.error().to_error();
  WorkflowNeeds needs;
  std::set<std::string> classes;
  for (const auto& node : wf->nodes()) classes.emplace(node.class_type);
  needs.class_types.assign(classes.begin(), classes.end());
  std::set<std::string> models;
  for (const auto& ref : wf->model_references()) models.emplace(ref.file);
  needs.model_files.assign(models.begin(), models.end());
  for (const auto& m : needs.model_files) {
    if (!needs.affinity_key.empty()) needs.affinity_key += '|';
    needs.affinity_key += m;
  }
  needs.structural_hash = wf->structural_hash();
  return needs;
}

BackendOffer backend_offer(const comfy::ObjectInfo& info) {
  BackendOffer offer;
  std::set<std::string> models;
  for (const auto& cls : info.classes) {
    offer.class_types.push_back(cls.class_type);
    for (const auto* group : {&cls.required, &cls.optional}) {
      if (!*group) continue;
      for (const auto& spec : **group) {
        const auto* choices = spec.combo_choices();
        if (choices == nullptr) continue;
        for (const auto& c : *choices) {
          if (c.is_string() && comfy::is_model_reference(spec.name, c.get_string())) {
            models.emplace(c.get_string());
          }
        }
      }
    }
  }
  std::sort(offer.class_types.begin(), offer.class_types.end());
  offer.model_files.assign(models.begin(), models.end());
  return offer;
}

comfy::ObjectInfo merge_object_info(std::span<const comfy::ObjectInfo* const> infos) {
  comfy::ObjectInfo out;
  std::unordered_map<std::string, std::size_t> index;
  for (const auto* info : infos) {
    if (info == nullptr) continue;
    for (const auto& cls : info->classes) {
      const auto it = index.find(cls.class_type);
      if (it == index.end()) {
        index.emplace(cls.class_type, out.classes.size());
        out.classes.push_back(cls);
        continue;
      }
      auto& into = out.classes[it->second];
      if (into.required && cls.required) merge_choices(*into.required, *cls.required);
      if (into.optional && cls.optional) merge_choices(*into.optional, *cls.optional);
    }
  }
  return out;
}

scheduler::FailureClass classify_execution_error(const comfy::ExecutionError& error) {
  using FC = scheduler::FailureClass;
  const std::string_view type = error.exception_type;
  const std::string_view message = error.exception_message;
  if (icontains(type, "OutOfMemory") || icontains(message, "out of memory") ||
      icontains(message, "CUDA error: out of memory") || icontains(message, "allocation on device")) {
    return FC::kOom;
  }
  // A model or input file the backend lacks: another backend may have it.
  if (icontains(type, "FileNotFoundError") || icontains(message, "No such file or directory")) {
    return FC::kBackendIncompatible;
  }
  // Network trouble inside a node (API nodes, downloads): worth another try.
  if (icontains(type, "ConnectionError") || icontains(type, "TimeoutError") ||
      icontains(type, "ConnectionResetError") || icontains(type, "ClientConnectorError")) {
    return FC::kTransient;
  }
  // Anything else a node raises is deterministic for the same inputs: the workflow must change.
  return FC::kWorkflowInvalid;
}

scheduler::FailureClass classify_backend_error(const backend::BackendError& error) {
  using FC = scheduler::FailureClass;
  using backend::BackendErrc;
  switch (error.code) {
    case BackendErrc::kRefused:
    case BackendErrc::kReset:
      return FC::kBackendLost;
    case BackendErrc::kTimeout:
    case BackendErrc::kServerError:
    case BackendErrc::kProtocol:
    case BackendErrc::kCancelled:
      return FC::kTransient;
    case BackendErrc::kValidation: {
      // The farm validated the prompt against the union of its backends' catalogs, so a
      // refusal for a missing class or a value not in this backend's list (a model file it
      // lacks) means this backend cannot run it; anything else is the workflow's fault.
      if (!error.validation) return FC::kWorkflowInvalid;
      const auto& v = *error.validation;
      if (v.error.type == "invalid_prompt" && icontains(v.error.message, "does not exist")) {
        return FC::kBackendIncompatible;
      }
      bool any = false;
      bool all_missing = true;
      for (const auto& node : v.node_errors) {
        for (const auto& e : node.errors) {
          any = true;
          if (e.type != "value_not_in_list" && e.type != "custom_validation_failed") {
            all_missing = false;
          }
        }
      }
      return any && all_missing ? FC::kBackendIncompatible : FC::kWorkflowInvalid;
    }
    case BackendErrc::kBadRequest:
    case BackendErrc::kInvalidArgument:
      return FC::kWorkflowInvalid;
  }
  return FC::kTransient;
}

std::string_view to_string(scheduler::FailureClass failure) noexcept {
  using FC = scheduler::FailureClass;
  switch (failure) {
    case FC::kWorkflowInvalid: return "workflow_invalid";
    case FC::kBackendIncompatible: return "backend_incompatible";
    case FC::kOom: return "oom";
    case FC::kBackendLost: return "backend_lost";
    case FC::kTransient: return "transient";
  }
  return "transient";
}

}  // namespace comfyfarm::farm
