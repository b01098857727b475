#include "comfy/workflow.hpp"

#include "support/test_support.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <vector>

namespace comfyfarm::comfy {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

std::vector<std::filesystem::path> json_files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::filesystem::path> recorded_workflows() {
  std::vector<std::filesystem::path> out;
  for (const auto& entry : std::filesystem::directory_iterator(test::fixtures_dir())) {
    const auto path = entry.path() / "workflow.json";
    if (entry.is_directory() && std::filesystem::exists(path)) out.push_back(path);
  }
  std::sort(out.begin(), out.end());
  return out;
}

json::value load_json(const std::filesystem::path& path) {
  auto v = parse_json(test::read_file(path));
  EXPECT_TRUE(v) << path;
  return v ? *v : json::value();
}

Workflow load(const std::string& name) {
  auto wf = Workflow::parse(test::read_file(test::shared_dir() / "workflows" / name));
  EXPECT_TRUE(wf) << name << ": " << (wf ? "" : wf.error().to_error().message);
  return wf.value();
}

json::value txt2img() { return load_json(test::shared_dir() / "workflows" / "txt2img_sd15.json"); }

Workflow must_parse(const json::value& doc) {
  auto wf = Workflow::from_json(doc);
  EXPECT_TRUE(wf) << (wf ? "" : wf.error().to_error().message);
  return wf.value();
}

// The same graph with node ids replaced through `ids` (links rewritten too).
json::value renumbered(const json::value& doc, const std::map<std::string, std::string>& ids) {
  json::object out;
  for (const auto& [id, node] : doc.as_object()) {
    json::value copy = node;
    for (auto& [name, input] : copy.as_object()["inputs"].as_object()) {
      if (input.is_array() && input.as_array().size() == 2 && input.as_array()[0].is_string()) {
        input.as_array()[0] = ids.at(std::string(input.as_array()[0].as_string()));
      }
    }
    out[ids.at(std::string(id))] = std::move(copy);
  }
  return out;
}

// The same document with the keys of the top level, of every node and of every inputs object
// in reverse order.
json::value reversed_keys(const json::value& doc) {
  auto reverse_object = [](const json::object& o) {
    json::object out;
    for (auto it = o.end(); it != o.begin();) {
      --it;
      out[it->key()] = it->value();
    }
    return out;
  };
  json::object out;
  const auto& top = doc.as_object();
  for (auto it = top.end(); it != top.begin();) {
    --it;
    json::object node = reverse_object(it->value().as_object());
    node["inputs"] = reverse_object(node["inputs"].as_object());
    out[it->key()] = std::move(node);
  }
  return out;
}

json::value& input_of(json::value& doc, std::string_view node, std::string_view input) {
  return doc.as_object()[node].as_object()["inputs"].as_object()[input];
}

// ---------------------------------------------------------------------------------------------
// Parsing

TEST(Workflow, ParsesEverySharedWorkflowAndRoundTrips) {
  const auto files = json_files_in(test::shared_dir() / "workflows");
  ASSERT_EQ(files.size(), 4u);
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    const std::string text = test::read_file(path);
    auto wf = Workflow::parse(text);
    ASSERT_TRUE(wf) << wf.error().to_error().message;
    const json::value original = load_json(path);
    EXPECT_EQ(wf->to_json(), original);
    // Same keys in the same order, same number types.
    EXPECT_EQ(dumps(wf->to_json()), dumps(original));
    EXPECT_EQ(wf->size(), original.as_object().size());
    EXPECT_EQ(wf->topological_order().size(), wf->size());
  }
}

TEST(Workflow, ParsesEveryRecordedWorkflowExceptTheBrokenLink) {
  const auto files = recorded_workflows();
  ASSERT_GE(files.size(), 14u);
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    auto wf = Workflow::parse(test::read_file(path));
    if (path.parent_path().filename() == "validation_link_to_missing_node") {
      ASSERT_FALSE(wf);
      ASSERT_EQ(wf.error().issues.size(), 1u);
      const WorkflowIssue issue = wf.error().first();
      EXPECT_EQ(issue.code, WorkflowErrc::kLinkToMissingNode);
      EXPECT_EQ(issue.node_id, "2");
      EXPECT_EQ(issue.input_name, "image");
      EXPECT_EQ(issue.message,
                R"(node "2" (ImageInvert) input "image" links to node "99", which does not exist)");
      continue;
    }
    ASSERT_TRUE(wf) << wf.error().to_error().message;
    EXPECT_EQ(dumps(wf->to_json()), dumps(load_json(path)));
  }
}

TEST(Workflow, ReadsNodesInputsLinksAndTitles) {
  const Workflow wf = load("txt2img_sd15.json");
  ASSERT_EQ(wf.size(), 7u);
  std::vector<std::string_view> ids;
  for (const auto& node : wf.nodes()) ids.push_back(node.id);
  EXPECT_THAT(ids, ElementsAre("4", "5", "6", "7", "3", "8", "9"));

  const Node* sampler = wf.find("3");
  ASSERT_NE(sampler, nullptr);
  EXPECT_EQ(sampler->class_type, "KSampler");
  ASSERT_TRUE(sampler->title.has_value());
  EXPECT_EQ(*sampler->title, "KSampler");
  EXPECT_EQ(*wf.find("6")->title, "CLIP Text Encode (Positive)");
  ASSERT_EQ(sampler->inputs.size(), 10u);

  const NodeInput* model = sampler->input("model");
  ASSERT_NE(model, nullptr);
  ASSERT_TRUE(model->is_link());
  EXPECT_EQ(model->link->node_id, "4");
  EXPECT_EQ(model->link->output_index, 0u);
  EXPECT_EQ(model->link->source, 0u);
  EXPECT_EQ(*model->value, (json::array{"4", 0}));

  const NodeInput* cfg = sampler->input("cfg");
  ASSERT_NE(cfg, nullptr);
  EXPECT_FALSE(cfg->is_link());
  ASSERT_TRUE(cfg->value->is_double());  // 7.0 stays a float, not the integer 7
  EXPECT_EQ(cfg->value->get_double(), 7.0);
  ASSERT_TRUE(sampler->input("steps")->value->is_int64());
  EXPECT_EQ(sampler->input("steps")->value->get_int64(), 20);
  EXPECT_EQ(sampler->input("sampler_name")->value->as_string(), "euler");
  EXPECT_EQ(sampler->input("no_such_input"), nullptr);
  EXPECT_EQ(*wf.find("8")->input("vae")->link, (Link{"4", 2, 0}));

  EXPECT_EQ(wf.find("99"), nullptr);
  EXPECT_EQ(wf.index_of("9"), std::optional<std::size_t>(6));
  EXPECT_EQ(wf.index_of("99"), std::nullopt);
  ASSERT_NE(wf.find("9")->object, nullptr);
  EXPECT_TRUE(wf.find("9")->object->contains("_meta"));
}

TEST(Workflow, KeepsSeedUpToUint64MaxExact) {
  auto wf = Workflow::parse(
      R"({"3": {"class_type": "KSampler", "inputs": {"seed": 18446744073709551615}}})");
  ASSERT_TRUE(wf) << wf.error().to_error().message;
  const json::value* seed = wf->find("3")->input("seed")->value;
  ASSERT_TRUE(seed->is_uint64());
  EXPECT_EQ(seed->get_uint64(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(dumps(wf->to_json()),
            R"({"3": {"class_type": "KSampler", "inputs": {"seed": 18446744073709551615}}})");
}

TEST(Workflow, TitleIsOptional) {
  auto wf = Workflow::parse(R"({"1": {"class_type": "A", "inputs": {}},
                                "2": {"class_type": "B", "inputs": {}, "_meta": {}},
                                "3": {"class_type": "C", "inputs": {}, "_meta": {"title": 4}}})");
  ASSERT_TRUE(wf) << wf.error().to_error().message;
  for (const auto& node : wf->nodes()) EXPECT_FALSE(node.title.has_value()) << node.id;
}

TEST(Workflow, AcceptsAnyStringAsNodeId) {
  auto wf = Workflow::parse(R"({"loader": {"class_type": "A", "inputs": {}},
                                "": {"class_type": "B", "inputs": {"x": ["loader", 0]}},
                                "3:1.sub": {"class_type": "C", "inputs": {"y": ["", 1]}}})");
  ASSERT_TRUE(wf) << wf.error().to_error().message;
  EXPECT_THAT(wf->topological_order(), ElementsAre("loader", "", "3:1.sub"));
  EXPECT_THAT(*wf->predecessors("3:1.sub"), ElementsAre(""));
}

TEST(Workflow, OtherArraysAndWrappedListsAreLiterals) {
  auto wf = Workflow::parse(R"({"1": {"class_type": "A", "inputs": {
      "three": ["1", 0, 0], "one": ["x"], "empty": [], "wrapped": {"__value__": ["1", 0]}}}})");
  ASSERT_TRUE(wf) << wf.error().to_error().message;
  for (const auto& in : wf->find("1")->inputs) EXPECT_FALSE(in.is_link()) << in.name;
  EXPECT_THAT(wf->topological_order(), ElementsAre("1"));
}

TEST(Workflow, FromJsonMatchesParse) {
  const json::value doc = txt2img();
  auto a = Workflow::from_json(doc);
  auto b = Workflow::parse(test::read_file(test::shared_dir() / "workflows" / "txt2img_sd15.json"));
  ASSERT_TRUE(a && b);
  EXPECT_EQ(a->to_json(), b->to_json());
  EXPECT_EQ(a->content_hash(), b->content_hash());
  EXPECT_EQ(a->structural_hash(), b->structural_hash());
}

TEST(Workflow, CopiesShareTheDocumentAndOutliveTheOriginal) {
  std::optional<Workflow> original = load("txt2img_sd15.json");
  const Workflow copy = *original;
  const Node* node = copy.find("3");
  original.reset();
  ASSERT_NE(node, nullptr);
  EXPECT_EQ(node->class_type, "KSampler");
  EXPECT_EQ(node->input("model")->link->node_id, "4");
  EXPECT_THAT(copy.sink_nodes(), ElementsAre("9"));
}

// ---------------------------------------------------------------------------------------------
// Validation

struct InvalidCase {
  const char* name;
  const char* text;
  WorkflowErrc code;
  const char* node_id;
  const char* input_name;
  const char* fragment;
};

const InvalidCase kInvalidCases[] = {
    {"truncated", R"({"3": {"class_type": )", WorkflowErrc::kNotJson, "", "",
     "malformed JSON at byte 21"},
    {"garbage", "{'3': 1}", WorkflowErrc::kNotJson, "", "", "malformed JSON at byte 1"},
    {"array", R"([{"class_type": "KSampler", "inputs": {}}])", WorkflowErrc::kNotAnObject, "", "",
     "must be a JSON object mapping node ids to nodes, got array"},
    {"string", R"("workflow")", WorkflowErrc::kNotAnObject, "", "", "got string"},
    {"empty", "{}", WorkflowErrc::kEmpty, "", "", "workflow has no nodes"},
    {"ui_nodes",
     R"({"last_node_id": 9, "last_link_id": 9, "nodes": [{"id": 9, "type": "SaveImage"}],
         "links": [], "version": 0.4})",
     WorkflowErrc::kUiFormat, "", "", "Save (API Format)"},
    {"ui_nodes_export_hint", R"({"nodes": []})", WorkflowErrc::kUiFormat, "", "",
     "UI-format workflow (it has a \"nodes\" array)"},
    {"ui_links", R"({"links": [[1, 4, 0, 3, 0, "MODEL"]]})", WorkflowErrc::kUiFormat, "", "",
     "Workflow > Export (API)"},
    {"ui_last_node_id", R"({"last_node_id": 12})", WorkflowErrc::kUiFormat, "", "",
     "it has \"last_node_id\""},
    {"node_not_object", R"({"3": "KSampler"})", WorkflowErrc::kNodeNotObject, "3", "",
     R"(node "3" must be an object with "class_type" and "inputs", got string "KSampler")"},
    {"missing_class_type", R"({"3": {"inputs": {}}})", WorkflowErrc::kMissingClassType, "3", "",
     R"(node "3" has no "class_type")"},
    {"empty_class_type", R"({"3": {"class_type": "", "inputs": {}}})",
     WorkflowErrc::kMissingClassType, "3", "", R"(node "3" has an empty "class_type")"},
    {"prompt_body", R"({"prompt": {"3": {"class_type": "A", "inputs": {}}}})",
     WorkflowErrc::kMissingClassType, "prompt", "", "looks like a POST /prompt body"},
    {"class_type_not_string", R"({"3": {"class_type": 7, "inputs": {}}})",
     WorkflowErrc::kClassTypeNotString, "3", "",
     R"(node "3" "class_type" must be a string, got integer 7)"},
    {"missing_inputs", R"({"3": {"class_type": "KSampler"}})", WorkflowErrc::kInputsNotObject,
     "3", "", R"(node "3" (KSampler) has no "inputs" object)"},
    {"inputs_array", R"({"3": {"class_type": "KSampler", "inputs": [1]}})",
     WorkflowErrc::kInputsNotObject, "3", "",
     R"(node "3" (KSampler) "inputs" must be an object, got array [1])"},
    {"link_to_missing_node",
     R"({"4": {"class_type": "CheckpointLoaderSimple", "inputs": {}},
         "3": {"class_type": "KSampler", "inputs": {"seed": 1, "model": ["99", 0]}}})",
     WorkflowErrc::kLinkToMissingNode, "3", "model",
     R"(node "3" (KSampler) input "model" links to node "99", which does not exist)"},
    {"negative_index",
     R"({"4": {"class_type": "L", "inputs": {}},
         "3": {"class_type": "KSampler", "inputs": {"model": ["4", -1]}}})",
     WorkflowErrc::kBadOutputIndex, "3", "model",
     R"(node "3" (KSampler) input "model" links to node "4" with output index -1; )"
     R"(an output index must be a non-negative integer)"},
    {"fractional_index",
     R"({"4": {"class_type": "L", "inputs": {}},
         "3": {"class_type": "KSampler", "inputs": {"model": ["4", 0.5]}}})",
     WorkflowErrc::kBadOutputIndex, "3", "model", "with output index 0.5;"},
    {"float_index",
     R"({"4": {"class_type": "L", "inputs": {}},
         "3": {"class_type": "KSampler", "inputs": {"model": ["4", 1.0]}}})",
     WorkflowErrc::kBadOutputIndex, "3", "model", "with output index 1.0;"},
    {"string_index",
     R"({"4": {"class_type": "L", "inputs": {}},
         "3": {"class_type": "KSampler", "inputs": {"model": ["4", "0"]}}})",
     WorkflowErrc::kBadOutputIndex, "3", "model", R"(with output index "0";)"},
    {"integer_node_id",
     R"({"4": {"class_type": "L", "inputs": {}},
         "3": {"class_type": "KSampler", "inputs": {"model": [4, 0]}}})",
     WorkflowErrc::kBadOutputIndex, "3", "model",
     R"(node "3" (KSampler) input "model" is a link whose node id is integer 4, not a string; )"
     R"(write node ids in links as strings, e.g. ["4", 0])"},
    {"null_node_id",
     R"({"3": {"class_type": "KSampler", "inputs": {"model": [null, 0]}}})",
     WorkflowErrc::kBadOutputIndex, "3", "model", "whose node id is null, not a string"},
    {"self_loop",
     R"({"3": {"class_type": "KSampler", "inputs": {"seed": 5, "model": ["3", 0]}}})",
     WorkflowErrc::kCycle, "3", "model",
     R"(node "3" (KSampler) input "model" links to itself, which makes a cycle)"},
    {"two_cycle",
     R"({"3": {"class_type": "KSampler", "inputs": {"latent_image": ["8", 0]}},
         "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0]}}})",
     WorkflowErrc::kCycle, "3", "latent_image",
     R"(nodes "3" (KSampler) and "8" (VAEDecode) form a cycle: "3" -> "8" -> "3" )"
     R"((node "3" input "latent_image" links to node "8"))"},
};

TEST(Workflow, ReportsEachStructuralErrorWithNodeAndInput) {
  for (const auto& c : kInvalidCases) {
    SCOPED_TRACE(c.name);
    auto wf = Workflow::parse(c.text);
    ASSERT_FALSE(wf);
    ASSERT_EQ(wf.error().issues.size(), 1u) << wf.error().to_error().message;
    const WorkflowIssue issue = wf.error().first();
    EXPECT_EQ(issue.code, c.code) << to_string(issue.code);
    EXPECT_EQ(wf.error().code(), c.code);
    EXPECT_EQ(issue.node_id, c.node_id);
    EXPECT_EQ(issue.input_name, c.input_name);
    EXPECT_THAT(issue.message, HasSubstr(c.fragment));
    const Error error = wf.error();
    EXPECT_EQ(error.code, Errc::kInvalidArgument);
    EXPECT_EQ(error.message, issue.message);
  }
}

TEST(Workflow, ErrcNamesAreStable) {
  EXPECT_EQ(to_string(WorkflowErrc::kNotJson), "not_json");
  EXPECT_EQ(to_string(WorkflowErrc::kUiFormat), "ui_format");
  EXPECT_EQ(to_string(WorkflowErrc::kLinkToMissingNode), "link_to_missing_node");
  EXPECT_EQ(to_string(WorkflowErrc::kBadOutputIndex), "bad_output_index");
  EXPECT_EQ(to_string(WorkflowErrc::kCycle), "cycle");
}

TEST(Workflow, CollectsEveryIssueInDocumentOrder) {
  auto wf = Workflow::parse(R"({
      "1": {"class_type": "A", "inputs": {"x": ["9", 0], "y": ["2", -3]}},
      "2": {"inputs": {}},
      "3": {"class_type": "B", "inputs": {"z": ["2", 0]}},
      "4": 17,
      "5": {"class_type": "C", "inputs": {"a": ["6", 0]}},
      "6": {"class_type": "D", "inputs": {"b": ["5", 1]}}})");
  ASSERT_FALSE(wf);
  const std::vector<WorkflowIssue> issues = wf.error().issues;
  ASSERT_EQ(issues.size(), 5u) << wf.error().to_error().message;
  EXPECT_EQ(issues[0].code, WorkflowErrc::kLinkToMissingNode);
  EXPECT_EQ(issues[0].input_name, "x");
  EXPECT_EQ(issues[1].code, WorkflowErrc::kBadOutputIndex);
  EXPECT_EQ(issues[1].input_name, "y");
  EXPECT_EQ(issues[2].code, WorkflowErrc::kMissingClassType);
  EXPECT_EQ(issues[2].node_id, "2");
  // "3" links to the broken "2": not reported again.
  EXPECT_EQ(issues[3].code, WorkflowErrc::kNodeNotObject);
  EXPECT_EQ(issues[3].node_id, "4");
  EXPECT_EQ(issues[4].code, WorkflowErrc::kCycle);
  EXPECT_THAT(issues[4].cycle, ElementsAre("5", "6"));

  const Error error = wf.error().to_error();
  EXPECT_EQ(error.code, Errc::kInvalidArgument);
  EXPECT_THAT(error.message, HasSubstr(R"(input "x" links to node "9", which does not exist; )"));
  EXPECT_THAT(error.message, HasSubstr(R"(node "4" must be an object)"));
}

TEST(Workflow, ConvertsToCoreErrorAndThrowsFromValue) {
  auto convert = [](std::string_view text) -> Result<std::size_t> {
    auto wf = Workflow::parse(text);
    if (!wf) return wf.error();
    return wf->size();
  };
  auto bad = convert("[]");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
  EXPECT_THAT(bad.error().message, HasSubstr("got array"));
  EXPECT_EQ(convert(R"({"1": {"class_type": "A", "inputs": {}}})").value(), 1u);
  EXPECT_THROW((void)Workflow::parse("{}").value(), ErrorException);
}

TEST(Workflow, CycleNamesTheNodesOnTheCycleOnly) {
  // 1 -> 2 -> 3 -> 1 is a cycle; 0 feeds it and 4 hangs behind it: neither is on it.
  auto wf = Workflow::parse(R"({
      "0": {"class_type": "Src", "inputs": {}},
      "4": {"class_type": "Tail", "inputs": {"t": ["3", 0]}},
      "2": {"class_type": "B", "inputs": {"b": ["1", 0]}},
      "1": {"class_type": "A", "inputs": {"a0": ["0", 0], "a": ["3", 0]}},
      "3": {"class_type": "C", "inputs": {"c": ["2", 0]}}})");
  ASSERT_FALSE(wf);
  ASSERT_EQ(wf.error().issues.size(), 1u);
  const WorkflowIssue issue = wf.error().first();
  EXPECT_EQ(issue.code, WorkflowErrc::kCycle);
  EXPECT_EQ(issue.node_id, "2");  // first node of the cycle in the document
  EXPECT_EQ(issue.input_name, "b");
  EXPECT_THAT(issue.cycle, ElementsAre("2", "3", "1"));
  EXPECT_EQ(issue.message,
            R"(nodes "2" (B), "3" (C) and "1" (A) form a cycle: "2" -> "3" -> "1" -> "2" )"
            R"((node "2" input "b" links to node "1"))");
}

TEST(Workflow, SelfLoopAndTwoCycleNameTheirNodes) {
  auto self = Workflow::parse(R"({"a": {"class_type": "X", "inputs": {"in": ["a", 0]}}})");
  ASSERT_FALSE(self);
  EXPECT_THAT(self.error().first().cycle, ElementsAre("a"));
  EXPECT_EQ(self.error().first().input_name, "in");

  auto two = Workflow::parse(R"({"b": {"class_type": "Y", "inputs": {"in": ["a", 0]}},
                                 "a": {"class_type": "X", "inputs": {"in": ["b", 1]}}})");
  ASSERT_FALSE(two);
  ASSERT_EQ(two.error().issues.size(), 1u);
  EXPECT_EQ(two.error().first().node_id, "b");
  EXPECT_THAT(two.error().first().cycle, ElementsAre("b", "a"));
  EXPECT_THAT(two.error().first().message, HasSubstr(R"("b" -> "a" -> "b")"));
}

TEST(Workflow, CycleMentionsOtherNodesOfTheSameKnot) {
  // a <-> b <-> c: the shortest cycle through "a" is a -> b -> a; "c" is on another one.
  auto wf = Workflow::parse(R"({"a": {"class_type": "X", "inputs": {"in": ["b", 0]}},
                                "b": {"class_type": "Y", "inputs": {"x": ["a", 0], "y": ["c", 0]}},
                                "c": {"class_type": "Z", "inputs": {"in": ["b", 0]}}})");
  ASSERT_FALSE(wf);
  const WorkflowError error = wf.error();
  ASSERT_EQ(error.issues.size(), 1u);
  EXPECT_THAT(error.first().cycle, ElementsAre("a", "b"));
  EXPECT_EQ(error.first().message,
            R"(nodes "a" (X) and "b" (Y) form a cycle: "a" -> "b" -> "a" )"
            R"((node "a" input "in" links to node "b"); node "c" is on a cycle with them too)");
}

TEST(Workflow, ReportsTwoSeparateCycles) {
  auto wf = Workflow::parse(R"({"a": {"class_type": "X", "inputs": {"in": ["b", 0]}},
                                "b": {"class_type": "X", "inputs": {"in": ["a", 0]}},
                                "c": {"class_type": "X", "inputs": {"in": ["c", 0]}}})");
  ASSERT_FALSE(wf);
  ASSERT_EQ(wf.error().issues.size(), 2u);
  EXPECT_THAT(wf.error().issues[0].cycle, ElementsAre("a", "b"));
  EXPECT_THAT(wf.error().issues[1].cycle, ElementsAre("c"));
}

TEST(Workflow, SchemaAwareCheckFindsOutputIndexOutOfRange) {
  json::value doc = txt2img();
  input_of(doc, "8", "vae") = json::array{"4", 3};
  input_of(doc, "3", "latent_image") = json::array{"5", 1};
  const Workflow wf = must_parse(doc);
  const std::map<std::string, std::size_t, std::less<>> outputs = {
      {"CheckpointLoaderSimple", 3}, {"EmptyLatentImage", 1}, {"CLIPTextEncode", 1}};
  auto count = [&](std::string_view class_type) -> std::optional<std::size_t> {
    auto it = outputs.find(class_type);
    if (it == outputs.end()) return std::nullopt;
    return it->second;
  };
  const auto issues = wf.check_output_indices(count);
  ASSERT_EQ(issues.size(), 2u);
  EXPECT_EQ(issues[0].code, WorkflowErrc::kBadOutputIndex);
  EXPECT_EQ(issues[0].node_id, "3");
  EXPECT_EQ(issues[0].input_name, "latent_image");
  EXPECT_EQ(issues[0].message,
            R"(node "3" (KSampler) input "latent_image" links to output 1 of node "5" )"
            R"((EmptyLatentImage), which has only output 0)");
  EXPECT_EQ(issues[1].node_id, "8");
  EXPECT_EQ(issues[1].input_name, "vae");
  EXPECT_THAT(issues[1].message,
              HasSubstr("links to output 3 of node \"4\" (CheckpointLoaderSimple), "
                        "which has 3 outputs (0 to 2)"));

  EXPECT_THAT(load("txt2img_sd15.json").check_output_indices(count), IsEmpty());
}

TEST(Workflow, HandlesLongChainsWithoutRecursion) {
  constexpr int kNodes = 50000;
  json::object doc;
  for (int i = 0; i < kNodes; ++i) {
    json::object inputs;
    if (i > 0) inputs["in"] = json::array{std::to_string(i - 1), 0};
    doc[std::to_string(i)] = json::object{{"class_type", "Step"}, {"inputs", std::move(inputs)}};
  }
  auto chain = Workflow::from_json(json::value(doc));
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->topological_order().back(), std::to_string(kNodes - 1));
  EXPECT_THAT(chain->sink_nodes(), ElementsAre(std::to_string(kNodes - 1)));

  doc["0"].as_object()["inputs"].as_object()["in"] = json::array{std::to_string(kNodes - 1), 0};
  auto ring = Workflow::from_json(json::value(doc));
  ASSERT_FALSE(ring);
  const WorkflowError error = ring.error();
  ASSERT_EQ(error.issues.size(), 1u);
  EXPECT_EQ(error.first().code, WorkflowErrc::kCycle);
  EXPECT_EQ(error.first().node_id, "0");
  EXPECT_EQ(error.first().cycle.size(), static_cast<std::size_t>(kNodes));
  EXPECT_EQ(error.first().message,
            R"(50000 nodes form a cycle: "0" -> "1" -> "2" -> "3" -> ... -> "49996" -> "49997" )"
            R"(-> "49998" -> "49999" -> "0" (node "0" input "in" links to node "49999"))");
}

// ---------------------------------------------------------------------------------------------
// Graph queries

TEST(Workflow, TopologicalOrderRespectsEveryEdge) {
  std::vector<std::filesystem::path> files = json_files_in(test::shared_dir() / "workflows");
  for (const auto& path : recorded_workflows()) {
    if (path.parent_path().filename() != "validation_link_to_missing_node") files.push_back(path);
  }
  for (const auto& path : files) {
    SCOPED_TRACE(path.string());
    auto wf = Workflow::parse(test::read_file(path));
    ASSERT_TRUE(wf);
    const auto order = wf->topological_order();
    ASSERT_EQ(order.size(), wf->size());
    std::map<std::string_view, std::size_t> position;
    for (std::size_t i = 0; i < order.size(); ++i) position[order[i]] = i;
    ASSERT_EQ(position.size(), order.size());  // each node once
    std::size_t edges = 0;
    for (const auto& node : wf->nodes()) {
      for (const auto& in : node.inputs) {
        if (!in.link) continue;
        ++edges;
        EXPECT_LT(position.at(in.link->node_id), position.at(node.id))
            << node.id << "." << in.name;
      }
    }
    EXPECT_GT(edges, 0u);
  }
}

TEST(Workflow, TopologicalOrderBreaksTiesByDocumentOrder) {
  EXPECT_THAT(load("txt2img_sd15.json").topological_order(),
              ElementsAre("4", "5", "6", "7", "3", "8", "9"));
  auto wf = Workflow::parse(R"({"z": {"class_type": "A", "inputs": {"i": ["y", 0]}},
                                "b": {"class_type": "B", "inputs": {}},
                                "y": {"class_type": "C", "inputs": {}},
                                "a": {"class_type": "D", "inputs": {}}})");
  ASSERT_TRUE(wf);
  EXPECT_THAT(wf->topological_order(), ElementsAre("b", "y", "z", "a"));
}

TEST(Workflow, PredecessorsAndSuccessorsAreDistinctInDocumentOrder) {
  const Workflow wf = load("txt2img_sd15.json");
  EXPECT_THAT(*wf.predecessors("3"), ElementsAre("4", "5", "6", "7"));
  EXPECT_THAT(*wf.predecessors("8"), ElementsAre("4", "3"));
  EXPECT_THAT(*wf.predecessors("4"), IsEmpty());
  EXPECT_THAT(*wf.successors("4"), ElementsAre("6", "7", "3", "8"));  // "6" and "7" use output 1
  EXPECT_THAT(*wf.successors("3"), ElementsAre("8"));
  EXPECT_THAT(*wf.successors("9"), IsEmpty());

  auto missing = wf.successors("99");
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);
  EXPECT_THAT(missing.error().message, HasSubstr(R"(no node "99")"));
  EXPECT_FALSE(wf.predecessors("99"));
}

TEST(Workflow, OutputNodesFromPredicateAndSinks) {
  auto is_output = [](std::string_view c) {
    return c == "SaveImage" || c == "PreviewImage" || c == "SaveImageWebsocket" ||
           c == "PreviewAny";
  };
  const Workflow txt = load("txt2img_sd15.json");
  EXPECT_THAT(txt.output_nodes(is_output), ElementsAre("9"));
  EXPECT_THAT(txt.sink_nodes(), ElementsAre("9"));

  auto branch = Workflow::parse(
      test::read_file(test::fixtures_dir() / "branch_two_outputs" / "workflow.json"));
  ASSERT_TRUE(branch);
  EXPECT_THAT(branch->output_nodes(is_output), ElementsAre("6", "8"));
  EXPECT_THAT(branch->sink_nodes(), ElementsAre("6", "8"));

  auto no_output = Workflow::parse(
      test::read_file(test::fixtures_dir() / "validation_no_output_node" / "workflow.json"));
  ASSERT_TRUE(no_output);
  EXPECT_THAT(no_output->output_nodes(is_output), IsEmpty());
  EXPECT_THAT(no_output->sink_nodes(), ElementsAre("2"));
}

// ---------------------------------------------------------------------------------------------
// Model references

TEST(Workflow, ListsModelReferences) {
  const Workflow wf = load("txt2img_sd15.json");
  EXPECT_THAT(wf.model_references(),
              ElementsAre(ModelReference{"4", "ckpt_name", "v1-5-pruned-emaonly.safetensors"}));
  EXPECT_THAT(load("model_free_blur.json").model_references(), IsEmpty());
  EXPECT_THAT(load("img2img.json").model_references(),
              ElementsAre(ModelReference{"1", "ckpt_name", "v1-5-pruned-emaonly.safetensors"}));
}

TEST(Workflow, RecognisesModelFileInputs) {
  struct Case {
    const char* input;
    const char* value;
    bool expected;
  };
  const Case cases[] = {
      {"ckpt_name", "v1-5-pruned-emaonly.safetensors", true},
      {"lora_name", "styles/ink.SAFETENSORS", true},
      {"unet_name", "flux1-dev-Q4_K_S.gguf", true},
      {"clip_name2", "t5xxl_fp8.sft", true},
      {"model_name", "RealESRGAN_x4plus.pth", true},
      {"control_net_name", "control_v11p_sd15_canny.pth", true},
      {"vae_name", "taesd", false},
      {"upscale_model", "4x-UltraSharp.pt", true},
      {"engine_name", "unet.engine", true},      // "_name" + a file extension
      {"text", "portrait, shot on film.ckpt", true},  // any input: a model extension
      {"whatever", "model.bin", true},
      {"sampler_name", "euler", false},
      {"scheduler", "karras", false},
      {"image", "example.png", false},
      {"image_name", "example.png", false},  // input media, not a model
      {"config_name", "v1-inference.yaml", false},
      {"text", "a lighthouse at sunset.", false},
      {"version_name", "1.5", false},
      {"filename_prefix", "ComfyUI", false},
      {"ckpt_name", "", false},
  };
  for (const auto& c : cases) {
    EXPECT_EQ(is_model_reference(c.input, c.value), c.expected) << c.input << "=" << c.value;
  }
}

// ---------------------------------------------------------------------------------------------
// Hashes

TEST(Workflow, HashesAreLowercaseHex128) {
  const Workflow wf = load("txt2img_sd15.json");
  for (const std::string& h : {wf.content_hash(), wf.structural_hash()}) {
    ASSERT_EQ(h.size(), 32u);
    EXPECT_TRUE(std::all_of(h.begin(), h.end(), [](char c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    })) << h;
  }
  EXPECT_NE(wf.content_hash(), wf.structural_hash());
  // Deterministic, and different across the sample workflows.
  EXPECT_EQ(wf.structural_hash(), load("txt2img_sd15.json").structural_hash());
  std::vector<std::string> structural;
  for (const auto& path : json_files_in(test::shared_dir() / "workflows")) {
    structural.push_back(load(path.filename().string()).structural_hash());
  }
  std::sort(structural.begin(), structural.end());
  EXPECT_EQ(std::unique(structural.begin(), structural.end()), structural.end());
}

// Hashes are stored with jobs and compared across versions: a change to either definition
// must be deliberate. content_hash is XXH3-128 of canonical_json(doc), high 64 bits first.
TEST(Workflow, HashesArePinned) {
  struct Case {
    const char* file;
    const char* content;
    const char* structural;
  };
  const Case cases[] = {
      {"txt2img_sd15.json", "c1f14ea465d5c95417968aa8c9b7d445", "5b89404ad808885e230b7b5f67eeb6a1"},
      {"img2img.json", "97647bfe0e0491b303911099352a7329", "6f4dd49b96cab0d6bacadaf4fe440dcf"},
      {"hires_fix_upscale.json", "7f77e0b53d4e26876f961110e7ea1243",
       "cb8ba8cd05b10253d21d208757cb019c"},
      {"model_free_blur.json", "7d3dfbad23a1daf5f24b5bda989486bc",
       "79e6e0f1c7687b17e46490e5f2f6b0d3"},
  };
  for (const auto& c : cases) {
    const Workflow wf = load(c.file);
    EXPECT_EQ(wf.content_hash(), c.content) << c.file;
    EXPECT_EQ(wf.structural_hash(), c.structural) << c.file;
  }
}

TEST(Workflow, ContentHashIgnoresKeyOrderAndWhitespaceButNotValues) {
  const json::value doc = txt2img();
  const std::string base = must_parse(doc).content_hash();

  EXPECT_EQ(must_parse(reversed_keys(doc)).content_hash(), base);
  auto compact = Workflow::parse(dumps(doc, DumpOptions{.spaced = false}));
  ASSERT_TRUE(compact);
  EXPECT_EQ(compact->content_hash(), base);

  json::value seed = doc;
  input_of(seed, "3", "seed") = 123456790;
  EXPECT_NE(must_parse(seed).content_hash(), base);

  json::value cfg = doc;  // 7.0 -> 7: a different JSON value
  input_of(cfg, "3", "cfg") = 7;
  EXPECT_NE(must_parse(cfg).content_hash(), base);

  json::value title = doc;
  title.as_object()["9"].as_object()["_meta"].as_object()["title"] = "Keep";
  EXPECT_NE(must_parse(title).content_hash(), base);

  EXPECT_NE(must_parse(renumbered(doc, {{"4", "40"}, {"5", "5"}, {"6", "6"}, {"7", "7"},
                                        {"3", "3"}, {"8", "8"}, {"9", "9"}}))
                .content_hash(),
            base);
}

TEST(Workflow, StructuralHashIgnoresLiteralsIdsAndKeyOrder) {
  const json::value doc = txt2img();
  const std::string base = must_parse(doc).structural_hash();

  json::value seed = doc;
  input_of(seed, "3", "seed") = std::numeric_limits<std::uint64_t>::max();
  input_of(seed, "3", "cfg") = 4.5;
  input_of(seed, "3", "sampler_name") = "dpmpp_2m";
  EXPECT_EQ(must_parse(seed).structural_hash(), base);

  json::value text = doc;
  input_of(text, "6", "text") = "an oil painting of a harbour";
  input_of(text, "7", "text") = "";
  EXPECT_EQ(must_parse(text).structural_hash(), base);

  json::value size = doc;
  input_of(size, "5", "width") = 768;
  input_of(size, "5", "height") = 1024;
  input_of(size, "5", "batch_size") = 4;
  EXPECT_EQ(must_parse(size).structural_hash(), base);

  json::value title = doc;
  title.as_object()["9"].as_object()["_meta"].as_object()["title"] = "Keep";
  EXPECT_EQ(must_parse(title).structural_hash(), base);

  const json::value renamed = renumbered(doc, {{"4", "ckpt"}, {"5", "1"}, {"6", "pos"},
                                               {"7", "neg"}, {"3", "100"}, {"8", "2"},
                                               {"9", "save"}});
  EXPECT_EQ(must_parse(renamed).structural_hash(), base);
  EXPECT_EQ(must_parse(reversed_keys(doc)).structural_hash(), base);
  EXPECT_EQ(must_parse(reversed_keys(renamed)).structural_hash(), base);
}

TEST(Workflow, StructuralHashChangesWithModelsClassesAndLinks) {
  const json::value doc = txt2img();
  const std::string base = must_parse(doc).structural_hash();

  json::value ckpt = doc;
  input_of(ckpt, "4", "ckpt_name") = "sd_xl_base_1.0.safetensors";
  EXPECT_NE(must_parse(ckpt).structural_hash(), base);

  json::value klass = doc;
  klass.as_object()["3"].as_object()["class_type"] = "KSamplerAdvanced";
  EXPECT_NE(must_parse(klass).structural_hash(), base);

  json::value output = doc;  // VAE from output 1 instead of 2
  input_of(output, "8", "vae") = json::array{"4", 1};
  EXPECT_NE(must_parse(output).structural_hash(), base);

  json::value swapped = doc;  // positive and negative swapped: the input names see it
  input_of(swapped, "3", "positive") = json::array{"7", 0};
  input_of(swapped, "3", "negative") = json::array{"6", 0};
  const std::string swapped_hash = must_parse(swapped).structural_hash();
  // Both prompts are CLIPTextEncode nodes from the same CLIP: the swap is invisible to a
  // literal-free signature, as it should be.
  EXPECT_EQ(swapped_hash, base);

  json::value rewired = doc;  // negative from the positive prompt: node "7" is left unused
  input_of(rewired, "3", "negative") = json::array{"6", 0};
  EXPECT_NE(must_parse(rewired).structural_hash(), base);

  json::value renamed_input = doc;
  auto& inputs = renamed_input.as_object()["8"].as_object()["inputs"].as_object();
  inputs["latent"] = inputs["samples"];
  inputs.erase("samples");
  EXPECT_NE(must_parse(renamed_input).structural_hash(), base);

  json::value extra = doc;  // one more node
  extra.as_object()["10"] = json::object{
      {"class_type", "PreviewImage"}, {"inputs", json::object{{"images", json::array{"8", 0}}}}};
  EXPECT_NE(must_parse(extra).structural_hash(), base);

  json::value lora = doc;  // a LoRA file added as a literal on an existing node
  input_of(lora, "6", "lora") = "detail.safetensors";
  EXPECT_NE(must_parse(lora).structural_hash(), base);
}

}  // namespace
}  // namespace comfyfarm::comfy
