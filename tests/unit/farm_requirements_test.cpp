// The farm's pure helpers: what a workflow needs, what a backend offers, the union catalog and
// the failure classes.
#include "farm/requirements.hpp"

#include "farm/farm.hpp"

#include "comfy/json_util.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "support/test_support.hpp"

namespace comfyfarm::farm {
namespace {

namespace json = boost::json;
using scheduler::FailureClass;

json::object txt2img() {
  auto text = test::read_file(std::filesystem::path(COMFYFARM_SHARED_DIR) / "workflows" / "txt2img_sd15.json");
  return comfy::parse_json(text).value().as_object();
}

// The simulator's built-in catalog (33 classes in /object_info's shape, with checkpoints).
comfy::ObjectInfo object_info() {
  auto text = test::read_file(std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "data" /
                              "sim" / "nodes.json");
  return comfy::ObjectInfo::parse(text).value();
}

TEST(WorkflowNeeds, ListsClassesModelsAndAffinity) {
  auto needs = workflow_needs(txt2img());
  ASSERT_TRUE(needs) << needs.error().message;
  EXPECT_TRUE(std::is_sorted(needs->class_types.begin(), needs->class_types.end()));
  EXPECT_NE(std::find(needs->class_types.begin(), needs->class_types.end(), "KSampler"),
            needs->class_types.end());
  ASSERT_EQ(needs->model_files, std::vector<std::string>{"v1-5-pruned-emaonly.safetensors"});
  EXPECT_EQ(needs->affinity_key, "v1-5-pruned-emaonly.safetensors");
  EXPECT_EQ(needs->structural_hash.size(), 32u);
}

TEST(WorkflowNeeds, SeedsDoNotChangeTheStructureButCheckpointsDo) {
  auto a = txt2img();
  auto b = a;
  b["3"].as_object()["inputs"].as_object()["seed"] = 12345;
  auto c = a;
  c["4"].as_object()["inputs"].as_object()["ckpt_name"] = "other.safetensors";
  const auto na = workflow_needs(a).value();
  const auto nb = workflow_needs(b).value();
  const auto nc = workflow_needs(c).value();
  EXPECT_EQ(na.structural_hash, nb.structural_hash);
  EXPECT_EQ(na.affinity_key, nb.affinity_key);
  EXPECT_NE(na.affinity_key, nc.affinity_key);
}

TEST(WorkflowNeeds, BrokenGraphIsInvalidArgument) {
  json::object bad;
  bad["1"] = json::object{{"class_type", "KSampler"}, {"inputs", json::object{{"model", json::array{"9", 0}}}}};
  auto needs = workflow_needs(bad);
  ASSERT_FALSE(needs);
  EXPECT_EQ(needs.error().code, Errc::kInvalidArgument);
  EXPECT_NE(needs.error().message.find("9"), std::string::npos) << needs.error().message;
}

TEST(BackendOffer, ModelFilesComeFromComboChoices) {
  // A backend's catalog: the simulator's classes with the checkpoint combo filled in, as a
  // server fills it from its models folder (the built-in data leaves it empty).
  auto info = object_info();
  for (auto& cls : info.classes) {
    if (cls.class_type != "CheckpointLoaderSimple") continue;
    for (auto& in : *cls.required) {
      if (in.name == "ckpt_name") std::get<json::array>(in.type) = json::array{"a.safetensors", "b.ckpt"};
    }
  }
  const auto offer = backend_offer(info);
  EXPECT_EQ(offer.class_types.size(), info.classes.size());
  EXPECT_TRUE(std::is_sorted(offer.class_types.begin(), offer.class_types.end()));
  // The checkpoints are listed; other combos (sampler names, "euler") are not files.
  EXPECT_EQ(offer.model_files, (std::vector<std::string>{"a.safetensors", "b.ckpt"}));
}

TEST(MergeObjectInfo, UnionOfClassesAndComboChoices) {
  auto a = object_info();
  auto b = a;
  // b has one more checkpoint and one class a lacks; a has one class b lacks.
  comfy::NodeClassInfo* ckpt = nullptr;
  for (auto& c : b.classes) {
    if (c.class_type == "CheckpointLoaderSimple") ckpt = &c;
  }
  ASSERT_NE(ckpt, nullptr);
  for (auto& in : *ckpt->required) {
    if (in.name == "ckpt_name") std::get<json::array>(in.type).push_back("only-on-b.safetensors");
  }
  comfy::NodeClassInfo extra = b.classes.front();
  extra.class_type = "OnlyOnB";
  b.classes.push_back(extra);
  const std::string dropped = a.classes.back().class_type;
  std::erase_if(b.classes, [&](const comfy::NodeClassInfo& c) { return c.class_type == dropped; });

  const comfy::ObjectInfo* both[] = {&a, &b};
  const auto merged = merge_object_info(both);
  EXPECT_NE(merged.find("OnlyOnB"), nullptr);
  EXPECT_NE(merged.find(dropped), nullptr);
  const auto* choices = merged.find("CheckpointLoaderSimple")->combo_choices("ckpt_name");
  ASSERT_NE(choices, nullptr);
  EXPECT_NE(std::find(choices->begin(), choices->end(), json::value("only-on-b.safetensors")),
            choices->end());
  // Nothing is listed twice.
  const auto* a_choices = a.find("CheckpointLoaderSimple")->combo_choices("ckpt_name");
  EXPECT_EQ(choices->size(), a_choices->size() + 1);
}

comfy::ExecutionError node_error(std::string type, std::string message) {
  comfy::ExecutionError e;
  e.prompt_id = "p";
  e.node_id = "3";
  e.node_type = "KSampler";
  e.exception_type = std::move(type);
  e.exception_message = std::move(message);
  return e;
}

TEST(Classify, ExecutionErrors) {
  EXPECT_EQ(classify_execution_error(node_error("torch.OutOfMemoryError", "CUDA out of memory. Tried to allocate 2 GiB")),
            FailureClass::kOom);
  EXPECT_EQ(classify_execution_error(node_error("RuntimeError", "CUDA error: out of memory")),
            FailureClass::kOom);
  EXPECT_EQ(classify_execution_error(node_error("FileNotFoundError", "[Errno 2] No such file or directory: 'x.safetensors'")),
            FailureClass::kBackendIncompatible);
  EXPECT_EQ(classify_execution_error(node_error("requests.exceptions.ConnectionError", "boom")),
            FailureClass::kTransient);
  EXPECT_EQ(classify_execution_error(node_error("RuntimeError", "mat1 and mat2 shapes cannot be multiplied")),
            FailureClass::kWorkflowInvalid);
}

backend::BackendError backend_error(backend::BackendErrc code) {
  backend::BackendError e;
  e.code = code;
  e.message = "x";
  return e;
}

TEST(Classify, BackendErrors) {
  using backend::BackendErrc;
  EXPECT_EQ(classify_backend_error(backend_error(BackendErrc::kRefused)), FailureClass::kBackendLost);
  EXPECT_EQ(classify_backend_error(backend_error(BackendErrc::kReset)), FailureClass::kBackendLost);
  EXPECT_EQ(classify_backend_error(backend_error(BackendErrc::kTimeout)), FailureClass::kTransient);
  EXPECT_EQ(classify_backend_error(backend_error(BackendErrc::kServerError)), FailureClass::kTransient);
  EXPECT_EQ(classify_backend_error(backend_error(BackendErrc::kBadRequest)), FailureClass::kWorkflowInvalid);

  // A checkpoint this backend lacks (the farm's union catalog had it): incompatible.
  auto missing = backend_error(BackendErrc::kValidation);
  missing.validation = comfy::PromptErrorResponse::parse(
      R"({"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation", "details": "", "extra_info": {}},
          "node_errors": {"4": {"errors": [{"type": "value_not_in_list", "message": "Value not in list", "details": "ckpt_name: 'x' not in []", "extra_info": {}}],
                                "dependent_outputs": ["9"], "class_type": "CheckpointLoaderSimple"}}})").value();
  EXPECT_EQ(classify_backend_error(missing), FailureClass::kBackendIncompatible);
  // A missing node class on this backend: incompatible.
  auto no_class = backend_error(BackendErrc::kValidation);
  no_class.validation = comfy::PromptErrorResponse::parse(
      R"({"error": {"type": "invalid_prompt", "message": "Cannot execute because node Foo does not exist.", "details": "Node ID '#1'", "extra_info": {}}, "node_errors": {}})").value();
  EXPECT_EQ(classify_backend_error(no_class), FailureClass::kBackendIncompatible);
  // A value out of range is the workflow's fault wherever it runs.
  auto range = backend_error(BackendErrc::kValidation);
  range.validation = comfy::PromptErrorResponse::parse(
      R"({"error": {"type": "prompt_outputs_failed_validation", "message": "m", "details": "", "extra_info": {}},
          "node_errors": {"3": {"errors": [{"type": "value_bigger_than_max", "message": "Value bigger than max", "details": "steps", "extra_info": {}}],
                                "dependent_outputs": ["9"], "class_type": "KSampler"}}})").value();
  EXPECT_EQ(classify_backend_error(range), FailureClass::kWorkflowInvalid);
}

TEST(Classify, Names) {
  EXPECT_EQ(to_string(FailureClass::kWorkflowInvalid), "workflow_invalid");
  EXPECT_EQ(to_string(FailureClass::kBackendIncompatible), "backend_incompatible");
  EXPECT_EQ(to_string(FailureClass::kOom), "oom");
  EXPECT_EQ(to_string(FailureClass::kBackendLost), "backend_lost");
  EXPECT_EQ(to_string(FailureClass::kTransient), "transient");
}

TEST(BackendId, DerivedFromUrl) {
  EXPECT_EQ(backend_id_from_url("http://127.0.0.1:8188"), "127.0.0.1-8188");
  EXPECT_EQ(backend_id_from_url("http://gpu-box.local:8188/comfy"), "gpu-box.local-8188-comfy");
  EXPECT_EQ(backend_id_from_url("http://"), "backend");
}

}  // namespace
}  // namespace comfyfarm::farm
