// validate_prompt against the six rejections and every acceptance recorded from a real ComfyUI
// 0.3.64, then each reason type, conversion and selection rule on a small hand-written catalog.
#include "comfy/prompt_validator.hpp"

#include "comfy/bodies.hpp"
#include "comfy/json_util.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace comfyfarm::comfy {
namespace {

namespace fs = std::filesystem;

json::value parse(std::string_view text) {
  auto v = parse_json(text);
  EXPECT_TRUE(v) << v.error().message << "\n" << text;
  return v ? v.value() : json::value();
}

json::object parse_object(std::string_view text) {
  json::value v = parse(text);
  EXPECT_TRUE(v.is_object()) << text;
  return v.is_object() ? std::move(v.get_object()) : json::object();
}

// ---------------------------------------------------------------------------------------------
// The recordings.

const ObjectInfo& recorded_catalog() {
  static const ObjectInfo info = [] {
    auto r = ObjectInfo::parse(test::read_file(test::fixtures_dir() / "object_info_used.json"));
    EXPECT_TRUE(r) << r.error().message;
    return r ? r.value() : ObjectInfo{};
  }();
  return info;
}

json::object recorded_prompt(const fs::path& run_dir) {
  const json::value request = parse(test::read_file(run_dir / "request.json"));
  return request.at("prompt").as_object();
}

// Tracebacks are Python's own formatting of its stack (only their shape is ours to match), and
// object_info_used.json was recorded with node descriptions and tooltips removed, while the
// error bodies echo the server's full input_config: both are blanked before comparing.
void normalize_for_comparison(json::value& v) {
  if (auto* o = v.if_object()) {
    for (auto& kv : *o) {
      if (kv.key() == "traceback") {
        const auto* frames = kv.value().if_array();
        EXPECT_TRUE(frames != nullptr && !frames->empty()) << "traceback: " << kv.value();
        if (frames != nullptr) {
          for (const auto& f : *frames) EXPECT_TRUE(f.is_string()) << f;
        }
        kv.value() = "<traceback>";
      } else if (kv.key() == "tooltip" && kv.value().is_string()) {
        kv.value() = "";
      } else {
        normalize_for_comparison(kv.value());
      }
    }
  } else if (auto* a = v.if_array()) {
    for (auto& e : *a) normalize_for_comparison(e);
  }
}

void expect_matches_recording(std::string_view scenario) {
  SCOPED_TRACE(std::string(scenario));
  const fs::path run = test::fixtures_dir() / std::string(scenario) / "run1";
  const json::value recorded = parse(test::read_file(run / "prompt_response.json"));

  const ValidationOutcome out = validate_prompt(recorded_prompt(run), recorded_catalog());
  ASSERT_FALSE(out.ok);
  EXPECT_EQ(out.http_status, recorded.at("http_status").to_number<int>());
  EXPECT_EQ(out.http_status, 400);
  EXPECT_TRUE(out.outputs_to_execute.empty());
  ASSERT_TRUE(out.error.has_value());

  json::value produced = out.error->to_json();
  json::value expected = recorded.at("body");
  normalize_for_comparison(produced);
  normalize_for_comparison(expected);
  EXPECT_EQ(produced, expected) << "produced: " << dumps(produced)
                                << "\nrecorded: " << dumps(expected);
  EXPECT_EQ(out.node_errors, out.error->node_errors);
}

TEST(PromptValidator, MatchesRecordedMissingInput) {
  expect_matches_recording("validation_missing_input");
}

TEST(PromptValidator, MatchesRecordedUnknownClassType) {
  expect_matches_recording("validation_unknown_class_type");
}

TEST(PromptValidator, MatchesRecordedValueOutOfRange) {
  expect_matches_recording("validation_value_out_of_range");
}

TEST(PromptValidator, MatchesRecordedBadComboValue) {
  expect_matches_recording("validation_bad_combo_value");
}

TEST(PromptValidator, MatchesRecordedNoOutputNode) {
  expect_matches_recording("validation_no_output_node");
}

TEST(PromptValidator, MatchesRecordedLinkToMissingNode) {
  expect_matches_recording("validation_link_to_missing_node");
}

TEST(PromptValidator, MatchesRecordedLinkToMissingNodeTracebackFrames) {
  // Not required by the protocol, but the frames are modelled on the recording: same strings.
  const fs::path run = test::fixtures_dir() / "validation_link_to_missing_node" / "run1";
  const json::value recorded = parse(test::read_file(run / "prompt_response.json"));
  const ValidationOutcome out = validate_prompt(recorded_prompt(run), recorded_catalog());
  ASSERT_TRUE(out.error.has_value());
  const json::value produced = out.error->to_json();
  const auto path = [](const json::value& body) {
    return body.at("node_errors").at("2").at("errors").at(0).at("extra_info").at("traceback");
  };
  EXPECT_EQ(path(produced), path(recorded.at("body")));
}

TEST(PromptValidator, AcceptsEveryRecordedAcceptedPrompt) {
  int runs = 0;
  for (const auto& scenario : fs::directory_iterator(test::fixtures_dir())) {
    const std::string name = scenario.path().filename().string();
    if (!scenario.is_directory() || name.starts_with("validation_")) continue;
    for (const auto& run : fs::directory_iterator(scenario.path())) {
      if (!fs::exists(run.path() / "request.json") || !fs::exists(run.path() / "history.json")) {
        continue;
      }
      SCOPED_TRACE(run.path().string());
      ++runs;
      const json::value response = parse(test::read_file(run.path() / "prompt_response.json"));
      ASSERT_EQ(response.at("http_status").to_number<int>(), 200);
      const json::value history = parse(test::read_file(run.path() / "history.json"));
      ASSERT_EQ(history.as_object().size(), 1U);
      const json::array& item = history.as_object().begin()->value().at("prompt").as_array();

      const ValidationOutcome out =
          validate_prompt(recorded_prompt(run.path()), recorded_catalog());
      ASSERT_TRUE(out.ok) << (out.error ? dumps(out.error->to_json()) : "");
      EXPECT_EQ(out.http_status, 200);
      EXPECT_FALSE(out.error.has_value());
      EXPECT_TRUE(out.node_errors.empty());
      EXPECT_EQ(response.at("body").at("node_errors"), json::value(json::object()));

      std::set<std::string> expected_outputs;
      for (const auto& o : item.at(4).as_array()) expected_outputs.emplace(o.as_string());
      const std::set<std::string> produced_outputs(out.outputs_to_execute.begin(),
                                                   out.outputs_to_execute.end());
      EXPECT_EQ(produced_outputs, expected_outputs);
      EXPECT_EQ(produced_outputs.size(), out.outputs_to_execute.size());
      // The queued copy holds the normalized graph; every recorded literal was already typed.
      EXPECT_EQ(json::value(out.normalized_prompt), item.at(2));
    }
  }
  EXPECT_EQ(runs, 14);
}

// ---------------------------------------------------------------------------------------------
// A small catalog for the unit tests.

// One /object_info entry: the given "input" and "output", the boilerplate fields filled in.
std::string node_class(std::string_view name, std::string_view input, std::string_view output,
                       bool output_node) {
  const json::value outputs = parse(output);
  json::array is_list;
  json::array names;
  for (std::size_t i = 0; i < outputs.as_array().size(); ++i) {
    is_list.emplace_back(false);
    names.emplace_back("out" + std::to_string(i));
  }
  std::string s = "\"" + std::string(name) + "\": {\"input\": " + std::string(input) +
                  ", \"output\": " + std::string(output) + ", \"output_is_list\": " +
                  dumps(is_list) + ", \"output_name\": " + dumps(names) +
                  ", \"name\": \"" + std::string(name) +
                  "\", \"display_name\": null, \"description\": \"\", \"python_module\": "
                  "\"nodes\", \"category\": \"test\", \"output_node\": " +
                  (output_node ? "true" : "false") + "}";
  return s;
}

constexpr std::string_view kCheckpoints =
    R"([["m01.safetensors", "m02.safetensors", "m03.safetensors", "m04.safetensors",
         "m05.safetensors", "m06.safetensors", "m07.safetensors", "m08.safetensors",
         "m09.safetensors", "m10.safetensors", "m11.safetensors", "m12.safetensors",
         "m13.safetensors", "m14.safetensors", "m15.safetensors", "m16.safetensors",
         "m17.safetensors", "m18.safetensors", "m19.safetensors", "m20.safetensors",
         "m21.safetensors", "m22.safetensors", "m23.safetensors", "m24.safetensors",
         "m25.safetensors"]])";

const ObjectInfo& unit_catalog() {
  static const ObjectInfo info = [] {
    std::string text = "{";
    text += node_class("Loader",
                       std::string(R"({"required": {"ckpt_name": )") + std::string(kCheckpoints) +
                           "}}",
                       R"(["MODEL", "CLIP", "VAE"])", false);
    text += ", " + node_class("Sampler", R"({
        "required": {
          "model": ["MODEL"],
          "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615}],
          "steps": ["INT", {"default": 20, "min": 1, "max": 100}],
          "cfg": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 30.0}],
          "denoise": ["FLOAT", {"default": 1.0, "min": 0.1, "max": 1.0}],
          "sampler_name": [["euler", "euler_ancestral", "heun", "dpm_2", "lms"], {"tooltip": "t"}],
          "add_noise": ["BOOLEAN", {"default": true}],
          "label": ["STRING", {}]
        },
        "optional": {"mode": [["fast", "slow"]], "points": ["POINTS", {}]}
      })",
                              R"(["LATENT"])", false);
    text += ", " + node_class("Decode",
                              R"({"required": {"samples": ["LATENT"], "vae": ["VAE"]}})",
                              R"(["IMAGE"])", false);
    text += ", " + node_class("Save", R"({
        "required": {"images": ["IMAGE"], "filename_prefix": ["STRING", {"default": "ComfyUI"}]},
        "hidden": {"prompt": "PROMPT"}})",
                              "[]", true);
    text += ", " + node_class("Preview", R"({"required": {"images": ["IMAGE"]}})", "[]", true);
    text += ", " + node_class("AnyPreview", R"({"required": {"source": ["*", {}]}})", "[]", true);
    text += ", " + node_class("MaskPreview", R"({"required": {"mask": ["IMAGE,MASK"]}})", "[]",
                              true);
    text += ", " + node_class("Channel", R"({"required": {"image": ["IMAGE"]}})", R"(["MASK"])",
                              false);
    text += ", " + node_class("Pick", R"({"required": {}})", R"([["a", "b"]])", false);
    text += ", " + node_class("PickOther", R"({"required": {}})", R"([["a", "c"]])", false);
    text += ", " + node_class("Choose", R"({"required": {"choice": [["a", "b"]]}})", "[]", true);
    text += ", " + node_class("ChooseSteps", R"({"required": {"steps": [[10, 20]]}})", "[]", true);
    text += ", " + node_class("ChooseText", R"j({"required": {"text": [["café", "tab\there",
        "nb\u00a0sp", "quote's", "both'\"", "emoji😀", "zw\u200bj", "ctl\u0001"]]}})j",
                              "[]", true);
    text += ", " + node_class("ModeNode", R"({"required": {"blend_mode":
        ["COMBO", {"multiselect": false, "options": ["normal", "multiply"]}]}})",
                              "[]", true);
    text += ", " + node_class("Relay", R"({"required": {"x": ["*"]}})", R"(["*"])", false);
    text += ", " + node_class("LoadImage", R"({"required": {"image":
        [["a.png", "b.png"], {"image_upload": true}]}})",
                              R"(["IMAGE", "MASK"])", false);
    text += "}";
    auto r = ObjectInfo::parse(text);
    EXPECT_TRUE(r) << r.error().message;
    return r ? r.value() : ObjectInfo{};
  }();
  return info;
}

// Loader -> Sampler -> Decode -> Save, every literal already of its type.
json::object base_prompt() {
  return parse_object(R"({
    "1": {"class_type": "Loader", "inputs": {"ckpt_name": "m01.safetensors"}},
    "3": {"class_type": "Sampler", "inputs": {"model": ["1", 0], "seed": 1, "steps": 20,
          "cfg": 7.5, "denoise": 1.0, "sampler_name": "euler", "add_noise": true, "label": "x"}},
    "4": {"class_type": "Decode", "inputs": {"samples": ["3", 0], "vae": ["1", 2]}},
    "5": {"class_type": "Save", "inputs": {"images": ["4", 0], "filename_prefix": "out"},
          "_meta": {"title": "Save Image"}}
  })");
}

json::object& inputs_of(json::object& prompt, std::string_view id) {
  return prompt.at(id).as_object().at("inputs").as_object();
}

const json::value& input_of(const json::object& prompt, std::string_view id,
                            std::string_view name) {
  return prompt.at(id).as_object().at("inputs").as_object().at(name);
}

ValidateOptions with_targets(std::vector<std::string> ids) {
  ValidateOptions options;
  options.partial_execution_targets.emplace(std::move(ids));
  return options;
}

ValidationOutcome validate(json::object prompt, const ValidateOptions& options = {}) {
  return validate_prompt(std::move(prompt), unit_catalog(), options);
}

// The single reason of the single failing node, and that node's entry.
const NodeError* node_error(const ValidationOutcome& out, std::string_view id) {
  for (const auto& e : out.node_errors) {
    if (e.node_id == id) return &e;
  }
  return nullptr;
}

ErrorInfo only_reason(const ValidationOutcome& out, std::string_view id) {
  const NodeError* e = node_error(out, id);
  EXPECT_NE(e, nullptr) << "no node_errors entry for " << id;
  if (e == nullptr) return {};
  EXPECT_EQ(e->errors.size(), 1U);
  return e->errors.empty() ? ErrorInfo{} : e->errors.front();
}

void expect_rejected_upstream(const ValidationOutcome& out) {
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.http_status, 400);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->error.type, "prompt_outputs_failed_validation");
  EXPECT_EQ(out.error->error.message, "Prompt outputs failed validation");
  EXPECT_EQ(out.error->error.details, "");
  EXPECT_EQ(out.error->error.extra_info, json::value(json::object()));
}

// ---------------------------------------------------------------------------------------------
// Steps 1 and 2: classes and outputs.

TEST(PromptValidator, AcceptsAValidPrompt) {
  const json::object prompt = base_prompt();
  const ValidationOutcome out = validate(prompt);
  EXPECT_TRUE(out.ok);
  EXPECT_EQ(out.http_status, 200);
  EXPECT_EQ(out.outputs_to_execute, std::vector<std::string>{"5"});
  EXPECT_TRUE(out.node_errors.empty());
  EXPECT_FALSE(out.error.has_value());
  EXPECT_EQ(out.normalized_prompt, prompt);
}

TEST(PromptValidator, RejectsANodeWithoutClassType) {
  json::object prompt = base_prompt();
  prompt["3"].as_object().erase("class_type");
  const ValidationOutcome out = validate(std::move(prompt));
  EXPECT_EQ(out.http_status, 400);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->to_json(), parse(R"({"error": {"type": "invalid_prompt",
      "message": "Cannot execute because a node is missing the class_type property.",
      "details": "Node ID '#3'", "extra_info": {}}, "node_errors": {}})"));
}

TEST(PromptValidator, RejectsAnUnknownClassNamedLikePythonPrintsIt) {
  json::object prompt = base_prompt();
  prompt["4"].as_object()["class_type"] = "NoSuchNode";
  ValidationOutcome out = validate(prompt);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->to_json(), parse(R"({"error": {"type": "invalid_prompt",
      "message": "Cannot execute because node NoSuchNode does not exist.",
      "details": "Node ID '#4'", "extra_info": {}}, "node_errors": {}})"));

  prompt["4"].as_object()["class_type"] = 5;
  out = validate(prompt);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.http_status, 400);
  EXPECT_EQ(out.error->error.message, "Cannot execute because node 5 does not exist.");
  prompt["4"].as_object()["class_type"] = nullptr;
  out = validate(prompt);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->error.message, "Cannot execute because node None does not exist.");
}

TEST(PromptValidator, ANodeThatIsNotAnObjectIsWhereComfyUICrashes) {
  json::object prompt = base_prompt();
  prompt["9"] = 42;  // ComfyUI: TypeError in validate_prompt, aiohttp's plain 500
  ValidationOutcome out = validate(prompt);
  EXPECT_FALSE(out.ok);
  EXPECT_EQ(out.http_status, 500);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->error.type, "invalid_prompt");
  EXPECT_EQ(out.error->error.details, "Node ID '#9'");

  prompt["9"] = "no class here";  // `'class_type' not in "..."` is a substring test: a clean 400
  out = validate(prompt);
  EXPECT_EQ(out.http_status, 400);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->error.message,
            "Cannot execute because a node is missing the class_type property.");
}

TEST(PromptValidator, RejectsAPromptWithoutOutputs) {
  json::object prompt = base_prompt();
  prompt.erase("5");
  const ValidationOutcome out = validate(std::move(prompt));
  EXPECT_EQ(out.http_status, 400);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->to_json(), parse(R"({"error": {"type": "prompt_no_outputs",
      "message": "Prompt has no outputs", "details": "", "extra_info": {}}, "node_errors": {}})"));
}

TEST(PromptValidator, EmptyPartialExecutionTargetsLeaveNoOutputs) {
  const ValidateOptions options = with_targets({});
  const ValidationOutcome out = validate(base_prompt(), options);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->error.type, "prompt_no_outputs");
}

TEST(PromptValidator, PartialExecutionTargetsSelectOutputs) {
  json::object prompt = base_prompt();
  prompt["6"] = parse(R"({"class_type": "Preview", "inputs": {"images": ["4", 0]}})");
  prompt["7"] = parse(R"({"class_type": "Save", "inputs": {"images": ["99", 0],
                          "filename_prefix": "broken"}})");

  ValidateOptions options = with_targets({"6", "3", "nope"});
  ValidationOutcome out = validate(prompt, options);
  EXPECT_TRUE(out.ok);  // "7" is broken but not targeted, so never validated
  EXPECT_EQ(out.outputs_to_execute, std::vector<std::string>{"6"});
  EXPECT_TRUE(out.node_errors.empty());

  options = with_targets({"5", "6"});
  out = validate(prompt, options);
  EXPECT_EQ(out.outputs_to_execute, (std::vector<std::string>{"5", "6"}));

  options = with_targets({"3"});  // not an output node
  out = validate(prompt, options);
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->error.type, "prompt_no_outputs");
}

TEST(PromptValidator, OutputsToExecuteFollowDocumentOrder) {
  json::object prompt = parse_object(R"({
    "b": {"class_type": "Preview", "inputs": {"images": ["img", 0]}},
    "img": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
    "a": {"class_type": "MaskPreview", "inputs": {"mask": ["img", 1]}}
  })");
  const ValidationOutcome out = validate(std::move(prompt));
  EXPECT_EQ(out.outputs_to_execute, (std::vector<std::string>{"b", "a"}));
}

// ---------------------------------------------------------------------------------------------
// Step 3: reasons.

TEST(PromptValidator, ReportsRequiredInputMissing) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3").erase("steps");
  const ValidationOutcome out = validate(std::move(prompt));
  expect_rejected_upstream(out);
  ASSERT_EQ(out.node_errors.size(), 1U);
  EXPECT_EQ(out.node_errors[0].node_id, "3");
  EXPECT_EQ(out.node_errors[0].class_type, "Sampler");
  EXPECT_EQ(out.node_errors[0].dependent_outputs, std::vector<std::string>{"5"});
  EXPECT_EQ(only_reason(out, "3").to_json(), parse(R"({"type": "required_input_missing",
      "message": "Required input is missing", "details": "steps",
      "extra_info": {"input_name": "steps"}})"));
}

TEST(PromptValidator, OutputNodesOwnReasonsFormTheDetails) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "5").erase("images");
  inputs_of(prompt, "5").erase("filename_prefix");
  const ValidationOutcome out = validate(std::move(prompt));
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->error.details,
            "Required input is missing: images\nRequired input is missing: filename_prefix");
  ASSERT_EQ(out.node_errors.size(), 1U);
  EXPECT_EQ(out.node_errors[0].node_id, "5");
  EXPECT_EQ(out.node_errors[0].errors.size(), 2U);
  EXPECT_EQ(out.node_errors[0].dependent_outputs, std::vector<std::string>{"5"});
}

TEST(PromptValidator, ReportsBadLinkedInput) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3")["model"] = parse(R"(["1", 0, 5])");
  const ValidationOutcome out = validate(std::move(prompt));
  expect_rejected_upstream(out);
  EXPECT_EQ(only_reason(out, "3").to_json(), parse(R"({"type": "bad_linked_input",
      "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
      "details": "model", "extra_info": {"input_name": "model", "input_config": ["MODEL", {}],
      "received_value": ["1", 0, 5]}})"));
}

TEST(PromptValidator, ReportsReturnTypeMismatch) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3")["model"] = parse(R"(["1", 1])");
  const ValidationOutcome out = validate(std::move(prompt));
  expect_rejected_upstream(out);
  EXPECT_EQ(only_reason(out, "3").to_json(), parse(R"j({"type": "return_type_mismatch",
      "message": "Return type mismatch between linked nodes",
      "details": "model, received_type(CLIP) mismatch input_type(MODEL)",
      "extra_info": {"input_name": "model", "input_config": ["MODEL", {}],
      "received_type": "CLIP", "linked_node": ["1", 1]}})j"));
}

TEST(PromptValidator, TypeSetsOverlapAndStarMatchesAnything) {
  json::object prompt = parse_object(R"({
    "1": {"class_type": "LoadImage", "inputs": {"image": "a.png"}},
    "2": {"class_type": "Channel", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "MaskPreview", "inputs": {"mask": ["2", 0]}},
    "4": {"class_type": "MaskPreview", "inputs": {"mask": ["1", 0]}},
    "5": {"class_type": "AnyPreview", "inputs": {"source": ["2", 0]}},
    "6": {"class_type": "Relay", "inputs": {"x": ["2", 0]}},
    "7": {"class_type": "Preview", "inputs": {"images": ["6", 0]}},
    "8": {"class_type": "Preview", "inputs": {"images": ["2", 0]}}
  })");
  const ValidationOutcome out = validate(std::move(prompt));
  EXPECT_TRUE(out.ok);
  EXPECT_EQ(out.outputs_to_execute, (std::vector<std::string>{"3", "4", "5", "7"}));
  ASSERT_EQ(out.node_errors.size(), 1U);
  EXPECT_EQ(out.node_errors[0].node_id, "8");
  EXPECT_EQ(only_reason(out, "8").details,
            "images, received_type(MASK) mismatch input_type(IMAGE)");
}

TEST(PromptValidator, ComboTypedOutputsMatchOnlyTheSameList) {
  json::object prompt = parse_object(R"({
    "1": {"class_type": "Pick", "inputs": {}},
    "2": {"class_type": "PickOther", "inputs": {}},
    "3": {"class_type": "Choose", "inputs": {"choice": ["1", 0]}},
    "4": {"class_type": "Choose", "inputs": {"choice": ["2", 0]}}
  })");
  const ValidationOutcome out = validate(std::move(prompt));
  EXPECT_TRUE(out.ok);
  EXPECT_EQ(out.outputs_to_execute, std::vector<std::string>{"3"});
  EXPECT_EQ(only_reason(out, "4").to_json(), parse(R"j({"type": "return_type_mismatch",
      "message": "Return type mismatch between linked nodes",
      "details": "choice, received_type(['a', 'c']) mismatch input_type(['a', 'b'])",
      "extra_info": {"input_name": "choice", "input_config": [["a", "b"], {}],
      "received_type": ["a", "c"], "linked_node": ["2", 0]}})j"));
}

TEST(PromptValidator, LinkToAMissingNodeIsAKeyErrorFiledUnderTheLinkingNode) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "4")["samples"] = parse(R"(["99", 0])");
  const ValidationOutcome out = validate(std::move(prompt));
  expect_rejected_upstream(out);
  ErrorInfo reason = only_reason(out, "4");
  EXPECT_EQ(reason.type, "exception_during_inner_validation");
  EXPECT_EQ(reason.message, "Exception when validating inner node");
  EXPECT_EQ(reason.details, "'99'");
  json::object& extra = reason.extra_info.as_object();
  const json::value traceback = extra.at("traceback");
  ASSERT_TRUE(traceback.is_array());
  EXPECT_EQ(traceback.as_array().size(), 2U);
  extra.erase("traceback");
  // The downstream input (Save.images) that links to the node whose validation raised.
  EXPECT_EQ(reason.extra_info, parse(R"({"input_name": "images", "input_config": ["IMAGE", {}],
      "exception_message": "'99'", "exception_type": "KeyError", "linked_node": ["4", 0]})"));
}

TEST(PromptValidator, AnOutputLinkingToAMissingNodeFailsItsOwnValidation) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "5")["images"] = parse(R"([4, 0])");  // an integer id is not a key either
  const ValidationOutcome out = validate(std::move(prompt));
  ASSERT_TRUE(out.error.has_value());
  EXPECT_EQ(out.error->error.details, "Exception when validating node: 4");
  const ErrorInfo reason = only_reason(out, "5");
  EXPECT_EQ(reason.type, "exception_during_validation");
  EXPECT_EQ(reason.message, "Exception when validating node");
  EXPECT_EQ(reason.details, "4");
  EXPECT_EQ(reason.extra_info.at("exception_type"), "KeyError");
  const auto& frames = reason.extra_info.at("traceback").as_array();
  ASSERT_EQ(frames.size(), 2U);
  EXPECT_NE(frames[0].as_string().find("in validate_prompt"), std::string::npos);
}

TEST(PromptValidator, OutputIndexesFollowPythonTupleIndexing) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "4")["vae"] = parse(R"(["1", -1])");  // RETURN_TYPES[-1] is VAE
  EXPECT_TRUE(validate(prompt).ok);

  inputs_of(prompt, "4")["vae"] = parse(R"(["1", 3])");
  ValidationOutcome out = validate(prompt);
  ErrorInfo reason = only_reason(out, "4");
  EXPECT_EQ(reason.type, "exception_during_inner_validation");
  EXPECT_EQ(reason.details, "tuple index out of range");
  EXPECT_EQ(reason.extra_info.at("exception_type"), "IndexError");

  inputs_of(prompt, "4")["vae"] = parse(R"(["1", 2.0])");
  out = validate(prompt);
  reason = only_reason(out, "4");
  EXPECT_EQ(reason.details, "tuple indices must be integers or slices, not float");
  EXPECT_EQ(reason.extra_info.at("exception_type"), "TypeError");
}

TEST(PromptValidator, ConvertsIntLiteralsLikePythonInt) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3")["steps"] = 7.9;
  inputs_of(prompt, "3")["seed"] = " 1_000\n";
  ValidationOutcome out = validate(prompt);
  ASSERT_TRUE(out.ok);
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["steps"], json::value(std::int64_t{7}));
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["seed"], json::value(std::int64_t{1000}));

  inputs_of(prompt, "3")["steps"] = "12";
  inputs_of(prompt, "3")["seed"] = true;
  out = validate(prompt);
  ASSERT_TRUE(out.ok);
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["steps"], json::value(std::int64_t{12}));
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["seed"], json::value(std::int64_t{1}));

  inputs_of(prompt, "3")["seed"] = parse("18446744073709551615");  // seeds reach 2^64-1
  out = validate(prompt);
  ASSERT_TRUE(out.ok);
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["seed"],
            json::value(std::uint64_t{18446744073709551615ULL}));

  inputs_of(prompt, "3")["steps"] = "7.9";
  out = validate(prompt);
  expect_rejected_upstream(out);
  EXPECT_EQ(only_reason(out, "3").to_json(), parse(R"({"type": "invalid_input_type",
      "message": "Failed to convert an input value to a INT value",
      "details": "steps, 7.9, invalid literal for int() with base 10: '7.9'",
      "extra_info": {"input_name": "steps",
      "input_config": ["INT", {"default": 20, "min": 1, "max": 100}], "received_value": "7.9",
      "exception_message": "invalid literal for int() with base 10: '7.9'"}})"));

  inputs_of(prompt, "3")["steps"] = nullptr;
  out = validate(prompt);
  EXPECT_EQ(only_reason(out, "3").details,
            "steps, None, int() argument must be a string, a bytes-like object or a real number, "
            "not 'NoneType'");
}

TEST(PromptValidator, ConvertsFloatLiteralsLikePythonFloat) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3")["cfg"] = 7;
  inputs_of(prompt, "3")["denoise"] = " 5e-1 ";
  ValidationOutcome out = validate(prompt);
  ASSERT_TRUE(out.ok);
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["cfg"], json::value(7.0));
  EXPECT_TRUE(inputs_of(out.normalized_prompt, "3")["cfg"].is_double());
  EXPECT_EQ(dumps(inputs_of(out.normalized_prompt, "3")["cfg"]), "7.0");
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["denoise"], json::value(0.5));

  inputs_of(prompt, "3")["cfg"] = "abc";
  out = validate(prompt);
  EXPECT_EQ(only_reason(out, "3").to_json(), parse(R"({"type": "invalid_input_type",
      "message": "Failed to convert an input value to a FLOAT value",
      "details": "cfg, abc, could not convert string to float: 'abc'",
      "extra_info": {"input_name": "cfg",
      "input_config": ["FLOAT", {"default": 8.0, "min": 0.0, "max": 30.0}],
      "received_value": "abc",
      "exception_message": "could not convert string to float: 'abc'"}})"));
}

TEST(PromptValidator, ConvertsStringAndBooleanLiteralsLikePython) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3")["label"] = 1.5;
  inputs_of(prompt, "3")["add_noise"] = "false";  // bool("false") is True
  ValidationOutcome out = validate(prompt);
  ASSERT_TRUE(out.ok);
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["label"], "1.5");
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["add_noise"], json::value(true));

  inputs_of(prompt, "3")["label"] = false;
  inputs_of(prompt, "3")["add_noise"] = 0;
  out = validate(prompt);
  ASSERT_TRUE(out.ok);
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["label"], "False");
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["add_noise"], json::value(false));

  inputs_of(prompt, "3")["label"] = parse(R"({"k": [1, 2.0, null, "it's"]})");
  out = validate(prompt);
  ASSERT_TRUE(out.ok);
  EXPECT_EQ(inputs_of(out.normalized_prompt, "3")["label"], R"({'k': [1, 2.0, None, "it's"]})");
}

TEST(PromptValidator, UnwrapsValueWrappersInTheNormalizedPrompt) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3")["points"] = parse(R"({"__value__": [[1, 2], [3, 4]]})");
  inputs_of(prompt, "3")["steps"] = parse(R"({"__value__": "30"})");
  const ValidationOutcome out = validate(prompt);
  ASSERT_TRUE(out.ok);
  EXPECT_EQ(input_of(out.normalized_prompt, "3", "points"),
            parse("[[1, 2], [3, 4]]"));
  EXPECT_EQ(input_of(out.normalized_prompt, "3", "steps"),
            json::value(std::int64_t{30}));
  // Only reached nodes are normalized, and the caller's prompt is left alone.
  EXPECT_EQ(inputs_of(prompt, "3")["steps"], parse(R"({"__value__": "30"})"));
}

TEST(PromptValidator, ReportsValuesOutsideMinAndMax) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3")["steps"] = 0;
  ValidationOutcome out = validate(prompt);
  expect_rejected_upstream(out);
  EXPECT_EQ(only_reason(out, "3").to_json(), parse(R"({"type": "value_smaller_than_min",
      "message": "Value 0 smaller than min of 1", "details": "steps",
      "extra_info": {"input_name": "steps",
      "input_config": ["INT", {"default": 20, "min": 1, "max": 100}], "received_value": 0}})"));

  inputs_of(prompt, "3")["steps"] = "150";  // converted first, so received_value is 150
  out = validate(prompt);
  EXPECT_EQ(only_reason(out, "3").to_json(), parse(R"({"type": "value_bigger_than_max",
      "message": "Value 150 bigger than max of 100", "details": "steps",
      "extra_info": {"input_name": "steps",
      "input_config": ["INT", {"default": 20, "min": 1, "max": 100}], "received_value": 150}})"));

  inputs_of(prompt, "3")["steps"] = 20;
  inputs_of(prompt, "3")["denoise"] = 0.05;
  inputs_of(prompt, "3")["cfg"] = 100;
  out = validate(prompt);
  const NodeError* e = node_error(out, "3");
  ASSERT_NE(e, nullptr);
  ASSERT_EQ(e->errors.size(), 2U);
  EXPECT_EQ(e->errors[0].message, "Value 100.0 bigger than max of 30.0");
  EXPECT_EQ(e->errors[1].message, "Value 0.05 smaller than min of 0.1");

  // Floats print as Python's repr: fixed notation for exponents -4..15, else d.de+XX.
  const std::vector<std::pair<double, std::string>> cases = {
      {1e15, "Value 1000000000000000.0 bigger than max of 30.0"},
      {1e16, "Value 1e+16 bigger than max of 30.0"},
      {1.7976931348623157e308, "Value 1.7976931348623157e+308 bigger than max of 30.0"},
      {-0.0001, "Value -0.0001 smaller than min of 0.0"},
      {-1e-05, "Value -1e-05 smaller than min of 0.0"},
      {-123456.789, "Value -123456.789 smaller than min of 0.0"},
  };
  inputs_of(prompt, "3")["denoise"] = 1.0;
  for (const auto& [value, message] : cases) {
    inputs_of(prompt, "3")["cfg"] = value;
    out = validate(prompt);
    EXPECT_EQ(only_reason(out, "3").message, message);
  }
}

TEST(PromptValidator, ReportsValueNotInShortListWithPythonRepr) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3")["sampler_name"] = "it's";
  const ValidationOutcome out = validate(std::move(prompt));
  expect_rejected_upstream(out);
  EXPECT_EQ(only_reason(out, "3").to_json(), parse(R"({"type": "value_not_in_list",
      "message": "Value not in list",
      "details": "sampler_name: 'it's' not in ['euler', 'euler_ancestral', 'heun', 'dpm_2', 'lms']",
      "extra_info": {"input_name": "sampler_name",
      "input_config": [["euler", "euler_ancestral", "heun", "dpm_2", "lms"], {"tooltip": "t"}],
      "received_value": "it's"}})"));
}

TEST(PromptValidator, SummarizesListsLongerThanTwenty) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "1")["ckpt_name"] = "missing.safetensors";
  const ValidationOutcome out = validate(std::move(prompt));
  expect_rejected_upstream(out);
  ASSERT_EQ(out.node_errors.size(), 1U);
  // Both Sampler (model) and Decode (vae) depend on the loader; it is listed once.
  EXPECT_EQ(out.node_errors[0].dependent_outputs, std::vector<std::string>{"5"});
  EXPECT_EQ(only_reason(out, "1").to_json(), parse(R"j({"type": "value_not_in_list",
      "message": "Value not in list",
      "details": "ckpt_name: 'missing.safetensors' not in (list of length 25)",
      "extra_info": {"input_name": "ckpt_name", "input_config": null,
      "received_value": "missing.safetensors"}})j"));
}

TEST(PromptValidator, PrintsOptionListsWithPythonStringRepr) {
  const ValidationOutcome out = validate(
      parse_object(R"({"1": {"class_type": "ChooseText", "inputs": {"text": "it's"}}})"));
  EXPECT_EQ(only_reason(out, "1").details,
            "text: 'it's' not in ['café', 'tab\\there', 'nb\\xa0sp', \"quote's\", "
            "'both\\'\"', 'emoji😀', 'zw\\u200bj', 'ctl\\x01']");
  EXPECT_EQ(out.error->error.details, "Value not in list: " + only_reason(out, "1").details);
}

TEST(PromptValidator, ComboMembershipUsesPythonEquality) {
  json::object prompt = parse_object(R"({"1": {"class_type": "Choose", "inputs": {"choice": 1}}})");
  ValidationOutcome out = validate(prompt);
  ASSERT_FALSE(out.ok);
  EXPECT_EQ(only_reason(out, "1").details, "choice: '1' not in ['a', 'b']");

  // 20.0 == 20 and True == 1 in Python; the value is kept as sent.
  out = validate(
      parse_object(R"({"1": {"class_type": "ChooseSteps", "inputs": {"steps": 20.0}}})"));
  EXPECT_TRUE(out.ok);
  EXPECT_TRUE(input_of(out.normalized_prompt, "1", "steps").is_double());
  out = validate(
      parse_object(R"({"1": {"class_type": "ChooseSteps", "inputs": {"steps": true}}})"));
  EXPECT_EQ(only_reason(out, "1").details, "steps: 'True' not in [10, 20]");
}

TEST(PromptValidator, DoesNotCheckV3ComboOptions) {
  const ValidationOutcome out = validate(parse_object(
      R"({"1": {"class_type": "ModeNode", "inputs": {"blend_mode": "not-an-option"}}})"));
  EXPECT_TRUE(out.ok);
}

TEST(PromptValidator, IgnoresUnknownInputNames) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3")["bogus"] = "x";
  inputs_of(prompt, "3")["bogus_link"] = parse(R"(["99", 0])");
  EXPECT_TRUE(validate(std::move(prompt)).ok);
}

TEST(PromptValidator, DoesNotValidateUnreachableNodes) {
  json::object prompt = base_prompt();
  prompt["7"] = parse(R"({"class_type": "Sampler", "inputs": {"steps": -5, "model": ["99", 0]}})");
  const ValidationOutcome out = validate(std::move(prompt));
  EXPECT_TRUE(out.ok);
  EXPECT_TRUE(out.node_errors.empty());
  EXPECT_EQ(input_of(out.normalized_prompt, "7", "steps"),
            json::value(std::int64_t{-5}));
}

// ---------------------------------------------------------------------------------------------
// Step 4: several outputs.

TEST(PromptValidator, AcceptsWhenOneOutputIsValidAndListsTheOthersErrors) {
  json::object prompt = base_prompt();
  prompt["6"] = parse(R"({"class_type": "Preview", "inputs": {"images": ["8", 0]}})");
  prompt["8"] = parse(R"({"class_type": "Decode", "inputs": {"samples": ["3", 0]}})");
  const ValidationOutcome out = validate(std::move(prompt));
  EXPECT_TRUE(out.ok);
  EXPECT_EQ(out.http_status, 200);
  EXPECT_FALSE(out.error.has_value());
  EXPECT_EQ(out.outputs_to_execute, std::vector<std::string>{"5"});
  ASSERT_EQ(out.node_errors.size(), 1U);
  EXPECT_EQ(out.node_errors[0].node_id, "8");
  EXPECT_EQ(out.node_errors[0].class_type, "Decode");
  EXPECT_EQ(out.node_errors[0].dependent_outputs, std::vector<std::string>{"6"});
  EXPECT_EQ(only_reason(out, "8").details, "vae");
}

TEST(PromptValidator, DependentOutputsFollowComfyUIsAccumulatingRule) {
  json::object prompt = base_prompt();
  inputs_of(prompt, "3").erase("steps");  // "5" fails through "3"
  prompt["6"] = parse(R"({"class_type": "Preview", "inputs": {"images": ["8", 0]}})");
  prompt["8"] = parse(R"({"class_type": "Decode", "inputs": {"vae": ["1", 2]}})");
  const ValidationOutcome out = validate(std::move(prompt));
  expect_rejected_upstream(out);
  ASSERT_EQ(out.node_errors.size(), 2U);
  // ComfyUI appends each failing output to every node recorded with reasons so far: "3" gets
  // "6" as well, although "6" does not depend on it.
  EXPECT_EQ(out.node_errors[0].node_id, "3");
  EXPECT_EQ(out.node_errors[0].dependent_outputs, (std::vector<std::string>{"5", "6"}));
  EXPECT_EQ(out.node_errors[1].node_id, "8");
  EXPECT_EQ(out.node_errors[1].dependent_outputs, std::vector<std::string>{"6"});
  EXPECT_EQ(out.error->node_errors, out.node_errors);
}

// ---------------------------------------------------------------------------------------------
// File-backed inputs (LoadImage's VALIDATE_INPUTS).

json::object load_image_prompt(std::string_view image) {
  json::object prompt = parse_object(R"({
    "1": {"class_type": "LoadImage", "inputs": {}},
    "2": {"class_type": "Preview", "inputs": {"images": ["1", 0]}}
  })");
  inputs_of(prompt, "1")["image"] = image;
  return prompt;
}

TEST(PromptValidator, AsksTheCallbackWhetherAnInputImageExists) {
  std::vector<std::pair<std::string, std::string>> asked;
  ValidateOptions options;
  options.file_exists = [&](std::string_view folder, std::string_view file) {
    asked.emplace_back(folder, file);
    return file == "uploaded.png";
  };
  // Not in the combo list, but the file exists: the list is not what decides.
  EXPECT_TRUE(validate(load_image_prompt("uploaded.png"), options).ok);

  const ValidationOutcome out = validate(load_image_prompt("foo.png"), options);
  expect_rejected_upstream(out);
  EXPECT_EQ(only_reason(out, "1").to_json(), parse(R"({"type": "custom_validation_failed",
      "message": "Custom validation failed for node",
      "details": "image - Invalid image file: foo.png", "extra_info": {"input_name": "image"}})"));

  EXPECT_FALSE(validate(load_image_prompt("sub/x.png [output]"), options).ok);
  EXPECT_EQ(asked, (std::vector<std::pair<std::string, std::string>>{
                       {"input", "uploaded.png"}, {"input", "foo.png"}, {"output", "sub/x.png"}}));

  // Without a callback every file exists.
  EXPECT_TRUE(validate(load_image_prompt("foo.png")).ok);
}

TEST(PromptValidator, ALoadImageWithoutImageRaisesLikeComfyUI) {
  json::object prompt = load_image_prompt("a.png");
  inputs_of(prompt, "1").erase("image");
  const ValidationOutcome out = validate(std::move(prompt));
  const ErrorInfo reason = only_reason(out, "1");
  EXPECT_EQ(reason.type, "exception_during_inner_validation");
  EXPECT_EQ(reason.details,
            "LoadImage.VALIDATE_INPUTS() missing 1 required positional argument: 'image'");
  EXPECT_EQ(reason.extra_info.at("input_name"), "images");
}

// ---------------------------------------------------------------------------------------------
// Where ComfyUI would overflow its stack.

TEST(PromptValidator, ReportsACycleInsteadOfLooping) {
  const ValidationOutcome out = validate(parse_object(R"({
    "20": {"class_type": "Relay", "inputs": {"x": ["21", 0]}},
    "21": {"class_type": "Relay", "inputs": {"x": ["20", 0]}},
    "22": {"class_type": "AnyPreview", "inputs": {"source": ["20", 0]}}
  })"));
  expect_rejected_upstream(out);
  const ErrorInfo reason = only_reason(out, "20");
  EXPECT_EQ(reason.type, "exception_during_inner_validation");
  EXPECT_EQ(reason.extra_info.at("exception_type"), "RecursionError");
  EXPECT_EQ(reason.extra_info.at("linked_node"), parse(R"(["20", 0])"));
  EXPECT_EQ(out.node_errors[0].dependent_outputs, std::vector<std::string>{"22"});
}

TEST(PromptValidator, SurvivesAVeryDeepChain) {
  json::object prompt;
  constexpr int kDepth = 20000;
  for (int i = 0; i < kDepth; ++i) {
    json::object node;
    node["class_type"] = "Relay";
    json::object inputs;
    if (i > 0) inputs["x"] = json::array{json::value(std::to_string(i - 1)), 0};
    if (i == 0) inputs["x"] = 1;
    node["inputs"] = std::move(inputs);
    prompt[std::to_string(i)] = std::move(node);
  }
  prompt["out"] = parse(R"({"class_type": "AnyPreview", "inputs": {"source": ["19999", 0]}})");
  const ValidationOutcome out = validate(std::move(prompt));
  expect_rejected_upstream(out);
  ASSERT_EQ(out.node_errors.size(), 1U);
  EXPECT_EQ(out.node_errors[0].errors.at(0).extra_info.at("exception_type"), "RecursionError");
}

// ---------------------------------------------------------------------------------------------
// Helpers and the catalog.

TEST(PromptValidator, NoPromptBodyIsComfyUIs) {
  EXPECT_EQ(no_prompt_error().to_json(), parse(R"({"error": {"type": "no_prompt",
      "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}},
      "node_errors": {}})"));
}

TEST(PromptValidator, RejectsUiFormatWithAnApiFormatHint) {
  const auto err = ui_format_error(parse_object(
      R"({"last_node_id": 9, "last_link_id": 9, "nodes": [{"id": 9, "type": "SaveImage"}],
          "links": [], "groups": [], "config": {}, "extra": {}, "version": 0.4})"));
  ASSERT_TRUE(err.has_value());
  EXPECT_EQ(err->error.type, "invalid_prompt");
  EXPECT_NE(err->error.message.find("Save (API Format)"), std::string::npos) << err->error.message;
  EXPECT_EQ(err->error.extra_info, parse(R"({"comfyfarm_error": "ui_format"})"));
  EXPECT_TRUE(err->node_errors.empty());

  EXPECT_FALSE(ui_format_error(base_prompt()).has_value());
  // A node that happens to be called "nodes" is still API format.
  json::object prompt = base_prompt();
  prompt["nodes"] = parse(R"({"class_type": "Preview", "inputs": {"images": ["4", 0]}})");
  EXPECT_FALSE(ui_format_error(prompt).has_value());
}

TEST(PromptValidator, CatalogAndObjectInfoGiveTheSameOutcome) {
  const NodeCatalog catalog(unit_catalog());
  const NodeCatalog copy = catalog;
  EXPECT_EQ(copy.find("Sampler"), catalog.find("Sampler"));
  ASSERT_NE(catalog.find("Sampler"), nullptr);
  EXPECT_EQ(catalog.find("Sampler")->class_type, "Sampler");
  EXPECT_EQ(catalog.find("Nope"), nullptr);
  EXPECT_EQ(catalog.info(), unit_catalog());

  std::vector<json::object> prompts;
  prompts.push_back(base_prompt());
  json::object broken = base_prompt();
  inputs_of(broken, "3")["steps"] = "999";
  inputs_of(broken, "4")["samples"] = parse(R"(["99", 0])");
  prompts.push_back(broken);
  for (const auto& p : prompts) {
    const ValidationOutcome a = validate_prompt(p, catalog);
    const ValidationOutcome b = validate_prompt(p, unit_catalog());
    EXPECT_EQ(a.ok, b.ok);
    EXPECT_EQ(a.http_status, b.http_status);
    EXPECT_EQ(a.outputs_to_execute, b.outputs_to_execute);
    EXPECT_EQ(a.node_errors, b.node_errors);
    EXPECT_EQ(a.normalized_prompt, b.normalized_prompt);
    EXPECT_EQ(a.error, b.error);
  }
}

}  // namespace
}  // namespace comfyfarm::comfy
