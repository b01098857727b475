#include "comfy/bodies.hpp"

#include "comfy/json_util.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace comfyfarm::comfy {
namespace {

json::value parse(std::string_view text) {
  auto v = parse_json(text);
  EXPECT_TRUE(v) << v.error().message;
  return v ? v.value() : json::value();
}

// Parses T from text, expects success, and checks that to_json gives the same JSON back.
template <class T>
T round_trip(std::string_view text) {
  auto r = T::parse(text);
  EXPECT_TRUE(r) << r.error().message;
  if (!r) return T{};
  T value = std::move(r).value();
  EXPECT_EQ(value.to_json(), parse(text));
  return value;
}

template <class T>
Error parse_error(std::string_view text) {
  auto r = T::parse(text);
  EXPECT_FALSE(r) << text;
  if (r) return Error{};
  return r.error();
}

bool contains(const std::string& haystack, std::string_view needle) {
  return haystack.find(needle) != std::string::npos;
}

// ----- POST /prompt request

TEST(PromptRequest, MinimalRequest) {
  const auto r = round_trip<PromptRequest>(
      R"({"prompt": {"1": {"class_type": "EmptyImage", "inputs": {"width": 64}}}, "client_id": "c"})");
  EXPECT_EQ(r.client_id, "c");
  EXPECT_FALSE(r.prompt_id.has_value());
  EXPECT_FALSE(r.number.has_value());
  EXPECT_EQ(r.prompt.at("1").at("class_type"), "EmptyImage");
}

TEST(PromptRequest, EveryFieldKeptVerbatim) {
  const auto r = round_trip<PromptRequest>(
      R"({"prompt": {"9": {"class_type": "SaveImage", "inputs": {"images": ["8", 0]}}, "8": {"class_type": "X", "inputs": {"seed": 18446744073709551615}}},
          "client_id": "c", "prompt_id": "my-id", "number": 7.5, "front": true,
          "extra_data": {"extra_pnginfo": {"workflow": {"nodes": []}}, "api_key_comfy_org": "k"},
          "partial_execution_targets": ["9"], "x_custom": [1]})");
  EXPECT_EQ(r.prompt_id, "my-id");
  EXPECT_EQ(r.number, Number(7.5));
  EXPECT_EQ(r.front, true);
  EXPECT_EQ(r.extra_data->at("api_key_comfy_org"), "k");
  EXPECT_EQ(r.partial_execution_targets, std::vector<std::string>{"9"});
  EXPECT_EQ(r.extra.at("x_custom").at(0), 1);
  // Key order of the graph is kept (9 before 8), and big seeds stay exact.
  EXPECT_EQ(r.prompt.begin()->key(), "9");
  EXPECT_EQ(r.prompt.at("8").at("inputs").at("seed").as_uint64(), 18446744073709551615u);
}

TEST(PromptRequest, IntegerNumberStaysInteger) {
  const auto r = round_trip<PromptRequest>(R"({"prompt": {}, "number": 3})");
  EXPECT_TRUE(r.number->is_integer());
  EXPECT_EQ(dumps(r.to_json()), R"({"prompt": {}, "number": 3})");
}

TEST(PromptRequest, ErrorsAreInvalidArgumentAndNameTheField) {
  auto missing = parse_error<PromptRequest>(R"({"client_id": "c"})");
  EXPECT_EQ(missing.code, Errc::kInvalidArgument);
  EXPECT_EQ(missing.message, R"(prompt request: missing field "prompt")");

  auto wrong = parse_error<PromptRequest>(R"({"prompt": [1]})");
  EXPECT_EQ(wrong.message, "prompt request: prompt: expected an object, found array");

  auto target = parse_error<PromptRequest>(R"({"prompt": {}, "partial_execution_targets": ["9", 4]})");
  EXPECT_EQ(target.message,
            "prompt request: partial_execution_targets[1]: expected a string, found integer");

  auto number = parse_error<PromptRequest>(R"({"prompt": {}, "number": "7"})");
  EXPECT_EQ(number.message, "prompt request: number: expected a number, found string");

  auto null_client = parse_error<PromptRequest>(R"({"prompt": {}, "client_id": null})");
  EXPECT_EQ(null_client.message, "prompt request: client_id: expected a string, found null");

  auto malformed = parse_error<PromptRequest>(R"({"prompt": {)");
  EXPECT_EQ(malformed.code, Errc::kInvalidArgument);
  EXPECT_TRUE(contains(malformed.message, "prompt request: malformed JSON at byte")) << malformed.message;

  auto not_object = PromptRequest::from_json(json::value("text"));
  ASSERT_FALSE(not_object);
  EXPECT_EQ(not_object.error().message, "prompt request: expected an object, found string");
}

// ----- POST /prompt replies

TEST(PromptResponse, FloatNumberStaysFloat) {
  const auto r = round_trip<PromptResponse>(R"({"prompt_id": "P", "number": 7.0, "node_errors": {}})");
  EXPECT_FALSE(r.number.is_integer());
  EXPECT_EQ(dumps(r.to_json()), R"({"prompt_id": "P", "number": 7.0, "node_errors": {}})");
}

TEST(PromptResponse, PartialAcceptanceKeepsNodeErrors) {
  const auto r = round_trip<PromptResponse>(
      R"json({"prompt_id": "P", "number": 12, "node_errors": {"4": {"errors": [{"type": "value_not_in_list", "message": "Value not in list", "details": "ckpt_name: 'x' not in (list of length 37)", "extra_info": {"input_name": "ckpt_name", "input_config": null, "received_value": "x"}}], "dependent_outputs": ["9"], "class_type": "CheckpointLoaderSimple"}}})json");
  ASSERT_EQ(r.node_errors.size(), 1u);
  EXPECT_EQ(r.node_errors[0].node_id, "4");
  EXPECT_EQ(r.node_errors[0].errors[0].extra_info.at("received_value"), "x");
}

TEST(PromptErrorResponse, NoPromptError) {
  const auto r = round_trip<PromptErrorResponse>(
      R"({"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}, "node_errors": {}})");
  EXPECT_EQ(r.error.type, "no_prompt");
  EXPECT_TRUE(r.node_errors.empty());
}

TEST(PromptErrorResponse, ErrorsNameTheNodeAndField) {
  auto e = parse_error<PromptErrorResponse>(
      R"({"error": {"type": "t", "message": "m", "details": "", "extra_info": {}}, "node_errors": {"4": {"errors": [{"type": "t", "message": "m", "details": ""}], "dependent_outputs": [], "class_type": "X"}}})");
  EXPECT_EQ(e.code, Errc::kProtocol);
  EXPECT_EQ(e.message, R"(prompt error response: node_errors.4.errors[0]: missing field "extra_info")");
  // The old shape (a string error and a list) is reported, not misread.
  auto old = parse_error<PromptErrorResponse>(R"({"error": "no prompt", "node_errors": []})");
  EXPECT_EQ(old.message, "prompt error response: error: expected an object, found string");
}

// ----- queue

TEST(QueueSnapshot, FiveTuples) {
  const auto q = round_trip<QueueSnapshot>(
      R"({"queue_running": [[11, "run", {"3": {"class_type": "KSampler", "inputs": {}}}, {"client_id": "a"}, ["9"]]],
          "queue_pending": [[12, "p1", {}, {}, ["4"]], [-3.0, "p2", {}, {"client_id": "b"}, []]]})");
  ASSERT_EQ(q.running.size(), 1u);
  EXPECT_EQ(q.running[0].prompt_id, "run");
  EXPECT_EQ(q.running[0].outputs_to_execute, std::vector<std::string>{"9"});
  ASSERT_EQ(q.pending.size(), 2u);
  EXPECT_EQ(q.pending[1].number, Number(-3.0));
}

TEST(QueueSnapshot, ShortTupleIsAnErrorAndLongTupleIsKept) {
  auto e = parse_error<QueueSnapshot>(R"({"queue_running": [[1, "p", {}, {}]], "queue_pending": []})");
  EXPECT_EQ(e.message,
            "queue: queue_running[0]: expected 5 elements [number, prompt_id, prompt, extra_data, "
            "outputs], found 4");
  const auto q = round_trip<QueueSnapshot>(
      R"({"queue_running": [], "queue_pending": [[1, "p", {}, {}, [], {"sensitive": 1}]]})");
  EXPECT_EQ(q.pending[0].extra_elements.size(), 1u);
  auto bad_id = parse_error<QueueSnapshot>(R"({"queue_running": [[1, 2, {}, {}, []]], "queue_pending": []})");
  EXPECT_EQ(bad_id.message, "queue: queue_running[0][1]: expected a string, found integer");
}

TEST(ExecInfo, QueueRemaining) {
  const auto e = round_trip<ExecInfo>(R"({"exec_info": {"queue_remaining": 3}})");
  EXPECT_EQ(e.queue_remaining, 3);
  EXPECT_EQ(parse_error<ExecInfo>(R"({"exec_info": {}})").message,
            R"(exec_info: exec_info: missing field "queue_remaining")");
}

// ----- history

constexpr std::string_view kHistory = R"({
  "5d0e": {
    "prompt": [0, "5d0e", {"4": {"class_type": "CheckpointLoaderSimple", "inputs": {}}}, {"client_id": "gw"}, ["9"]],
    "outputs": {"9": {"images": [{"filename": "a_00001_.png", "subfolder": "", "type": "output"}]}},
    "status": {"status_str": "success", "completed": true, "messages": [
      ["execution_start", {"prompt_id": "5d0e", "timestamp": 1760250000123}],
      ["execution_cached", {"nodes": [], "prompt_id": "5d0e", "timestamp": 1760250000131}],
      ["execution_success", {"prompt_id": "5d0e", "timestamp": 1760250004870}]]},
    "meta": {"9": {"node_id": "9", "display_node": "9", "parent_node": null, "real_node_id": "9"}}
  },
  "old": {"prompt": [1, "old", {}, {}, []], "outputs": {}}
})";

TEST(History, EntriesWithTypedMessages) {
  const auto h = round_trip<History>(kHistory);
  ASSERT_EQ(h.entries.size(), 2u);
  const HistoryEntry* e = h.find("5d0e");
  ASSERT_NE(e, nullptr);
  ASSERT_TRUE(e->status.has_value());
  ASSERT_EQ(e->status->messages.size(), 3u);
  EXPECT_EQ(std::get<ExecutionStart>(e->status->messages[0]).timestamp, 1760250000123);
  EXPECT_TRUE(std::holds_alternative<ExecutionSuccess>(e->status->messages[2]));
  EXPECT_EQ(e->outputs.at("9").at("images").at(0).at("type"), "output");
  // An entry from a server before 2024 has neither status nor meta, and gains none.
  const HistoryEntry* old = h.find("old");
  ASSERT_NE(old, nullptr);
  EXPECT_FALSE(old->status.has_value());
  EXPECT_FALSE(old->meta.has_value());
  EXPECT_EQ(h.find("missing"), nullptr);
}

TEST(History, EmptyMeansNotFinished) {
  const auto h = round_trip<History>("{}");
  EXPECT_TRUE(h.entries.empty());
}

TEST(History, UnknownEventsInMessagesAreKept) {
  const auto h = round_trip<History>(
      R"({"p": {"prompt": [1, "p", {}, {}, []], "outputs": {}, "status": {"status_str": "error", "completed": false, "messages": [["custom_event", {"a": 1}]]}, "meta": {}}})");
  EXPECT_TRUE(std::holds_alternative<Unknown>(h.entries[0].status->messages[0]));
}

TEST(History, BadMessagesNameTheirPath) {
  auto pair = parse_error<History>(
      R"({"p": {"prompt": [1, "p", {}, {}, []], "outputs": {}, "status": {"status_str": "error", "completed": false, "messages": [["execution_start"]]}}})");
  EXPECT_EQ(pair.message, "history: p.status.messages[0]: expected an [event_name, data] pair");
  auto event = parse_error<History>(
      R"({"p": {"prompt": [1, "p", {}, {}, []], "outputs": {}, "status": {"status_str": "error", "completed": false, "messages": [["execution_start", {"timestamp": 1}]]}}})");
  EXPECT_TRUE(contains(event.message, "history: p.status.messages[0]: execution_start: missing field \"prompt_id\""))
      << event.message;
  auto status = parse_error<History>(
      R"({"p": {"prompt": [1, "p", {}, {}, []], "outputs": {}, "status": {"status_str": "error", "completed": "no", "messages": []}}})");
  EXPECT_EQ(status.message, "history: p.status.completed: expected a boolean, found string");
}

// ----- system stats, features

TEST(SystemStats, CudaServer) {
  const auto s = round_trip<SystemStats>(R"({
    "system": {"os": "posix", "ram_total": 135089172480, "ram_free": 121734184960, "comfyui_version": "0.3.64",
               "required_frontend_version": "1.27.10", "installed_templates_version": "0.1.95",
               "required_templates_version": "0.1.95", "python_version": "3.12.3 (main, Aug 14 2025, 17:47:21) [GCC 13.3.0]",
               "pytorch_version": "2.8.0+cu128", "embedded_python": false, "argv": ["main.py", "--listen", "127.0.0.1"]},
    "devices": [{"name": "cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync", "type": "cuda", "index": 0,
                 "vram_total": 84929347584, "vram_free": 83905937408, "torch_vram_total": 0, "torch_vram_free": 0}]})");
  EXPECT_EQ(s.devices[0].index, 0);
  EXPECT_EQ(s.devices[0].vram_total, 84929347584);
  EXPECT_EQ(s.system.installed_templates_version, std::optional<std::string>("0.1.95"));
}

TEST(SystemStats, OldServerLacksNewerFieldsAndGainsNone) {
  const auto s = round_trip<SystemStats>(R"({
    "system": {"os": "nt", "ram_total": 1, "ram_free": 1, "python_version": "3.10", "pytorch_version": "2.1", "embedded_python": true},
    "devices": [{"name": "cpu", "type": "cpu", "index": null, "vram_total": 1, "vram_free": 1, "torch_vram_total": 1, "torch_vram_free": 1}]})");
  EXPECT_FALSE(s.system.comfyui_version.has_value());
  EXPECT_FALSE(s.system.required_frontend_version.has_value());
  EXPECT_FALSE(s.system.argv.has_value());
  EXPECT_FALSE(s.devices[0].index.has_value());
}

TEST(SystemStats, ErrorsNameTheField) {
  auto e = parse_error<SystemStats>(R"({"system": {}, "devices": []})");
  EXPECT_EQ(e.message, R"(system_stats: system: missing field "os")");
  auto idx = parse_error<SystemStats>(
      R"({"system": {"os": "posix", "ram_total": 1, "ram_free": 1, "python_version": "", "pytorch_version": "", "embedded_python": false},
          "devices": [{"name": "cpu", "type": "cpu", "index": "0", "vram_total": 1, "vram_free": 1, "torch_vram_total": 1, "torch_vram_free": 1}]})");
  EXPECT_EQ(idx.code, Errc::kProtocol);
  EXPECT_EQ(idx.message, "system_stats: devices[0].index: expected an integer, found string");
  auto ram = parse_error<SystemStats>(
      R"({"system": {"os": "posix", "ram_total": 1.5, "ram_free": 1, "python_version": "", "pytorch_version": "", "embedded_python": false}, "devices": []})");
  EXPECT_EQ(ram.message, "system_stats: system.ram_total: expected an integer, found number");
}

TEST(Features, FloatUploadSizeStaysFloat) {
  const auto f = round_trip<Features>(R"({"supports_preview_metadata": true, "max_upload_size": 209715200.0, "new_flag": 1})");
  EXPECT_FALSE(f.max_upload_size->is_integer());
  EXPECT_EQ(f.extra.at("new_flag"), 1);
  EXPECT_EQ(dumps(f.to_json()),
            R"({"supports_preview_metadata": true, "max_upload_size": 209715200.0, "new_flag": 1})");
  const auto empty = round_trip<Features>("{}");  // an old server
  EXPECT_FALSE(empty.supports_preview_metadata.has_value());
}

// ----- object_info

constexpr std::string_view kObjectInfo = R"({
  "KSampler": {
    "input": {
      "required": {
        "model": ["MODEL", {"tooltip": "m"}],
        "seed": ["INT", {"default": 0, "min": 0, "max": 18446744073709551615}],
        "sampler_name": [["euler", "dpmpp_2m"], {"tooltip": "s"}],
        "mask": ["IMAGE,MASK"]
      },
      "optional": {"scheduler": ["COMBO", {"options": ["normal", "karras"], "multiselect": false}]},
      "hidden": {"unique_id": "UNIQUE_ID"}
    },
    "input_order": {"required": ["model", "seed", "sampler_name", "mask"], "optional": ["scheduler"], "hidden": ["unique_id"]},
    "output": ["LATENT", ["a", "b"]],
    "output_is_list": [false, true],
    "output_name": ["LATENT", "choice"],
    "name": "KSampler",
    "display_name": "KSampler",
    "description": "Uses the provided model",
    "python_module": "nodes",
    "category": "sampling",
    "output_node": false,
    "output_tooltips": ["The denoised latent.", null],
    "api_node": false
  },
  "V3Node": {
    "input": {"required": {}},
    "output": [], "output_is_list": [], "output_name": [],
    "name": "V3Node", "display_name": null, "python_module": "comfy_extras.x", "category": "c", "output_node": true
  }
})";

TEST(ObjectInfo, EveryInputForm) {
  const auto info = round_trip<ObjectInfo>(kObjectInfo);
  ASSERT_EQ(info.classes.size(), 2u);
  const NodeClassInfo* k = info.find("KSampler");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->required_inputs().size(), 4u);

  const InputSpec* model = k->find_input("model");
  ASSERT_NE(model, nullptr);
  EXPECT_FALSE(model->is_combo());
  EXPECT_EQ(model->types(), std::vector<std::string_view>{"MODEL"});
  EXPECT_EQ(model->options->at("tooltip"), "m");

  EXPECT_EQ(k->find_input("seed")->options->at("max").as_uint64(), 18446744073709551615u);

  const json::array* samplers = k->combo_choices("sampler_name");  // classic
  ASSERT_NE(samplers, nullptr);
  EXPECT_EQ(*samplers, (json::array{"euler", "dpmpp_2m"}));
  EXPECT_EQ(k->find_input("sampler_name")->types(), std::vector<std::string_view>{"COMBO"});

  const json::array* schedulers = k->combo_choices("scheduler");  // V3, in "optional"
  ASSERT_NE(schedulers, nullptr);
  EXPECT_EQ(*schedulers, (json::array{"normal", "karras"}));

  EXPECT_EQ(k->find_input("mask")->types(), (std::vector<std::string_view>{"IMAGE", "MASK"}));
  EXPECT_FALSE(k->find_input("mask")->options.has_value());
  EXPECT_EQ(k->combo_choices("mask"), nullptr);

  const InputSpec* uid = k->find_input("unique_id");
  ASSERT_NE(uid, nullptr);
  EXPECT_TRUE(uid->bare);
  EXPECT_EQ(k->combo_choices("nope"), nullptr);

  EXPECT_EQ(k->output_count(), 2u);
  EXPECT_TRUE(std::holds_alternative<json::array>(k->output[1]));
  EXPECT_EQ(k->output_is_list, (std::vector<bool>{false, true}));
  EXPECT_FALSE(k->is_output_node());
  EXPECT_EQ(k->input_order->optional, std::vector<std::string>{"scheduler"});
  EXPECT_TRUE(k->extra.contains("output_tooltips"));

  const NodeClassInfo* v3 = info.find("V3Node");
  ASSERT_NE(v3, nullptr);
  EXPECT_FALSE(v3->display_name.has_value());
  EXPECT_FALSE(v3->description.has_value());
  EXPECT_FALSE(v3->input_order.has_value());
  EXPECT_TRUE(v3->is_output_node());
  EXPECT_EQ(v3->output_count(), 0u);
  EXPECT_TRUE(v3->required_inputs().empty());
}

TEST(ObjectInfo, ErrorsNameClassAndInput) {
  auto empty_spec = parse_error<ObjectInfo>(
      R"({"X": {"input": {"required": {"a": []}}, "output": [], "output_is_list": [], "output_name": [], "name": "X", "display_name": "X", "python_module": "nodes", "category": "c", "output_node": false}})");
  EXPECT_EQ(empty_spec.message,
            "object_info: X.input.required.a: expected an input spec [type, options], found []");
  auto bad_options = parse_error<ObjectInfo>(
      R"({"X": {"input": {"required": {"a": ["INT", 3]}}, "output": [], "output_is_list": [], "output_name": [], "name": "X", "display_name": "X", "python_module": "nodes", "category": "c", "output_node": false}})");
  EXPECT_EQ(bad_options.message, "object_info: X.input.required.a[1]: expected an options object, found integer");
  auto no_display = parse_error<ObjectInfo>(
      R"({"X": {"input": {}, "output": [], "output_is_list": [], "output_name": [], "name": "X", "python_module": "nodes", "category": "c", "output_node": false}})");
  EXPECT_EQ(no_display.message, R"(object_info: X: missing field "display_name")");
}

// ----- text with NaN (parse_json reads it as null)

TEST(Bodies, PythonNonFiniteTokensAreAccepted) {
  auto r = History::parse(
      R"({"p": {"prompt": [1, "p", {}, {}, []], "outputs": {}, "status": {"status_str": "error", "completed": false, "messages": [["execution_error", {"prompt_id": "p", "node_id": "1", "node_type": "T", "executed": [], "exception_message": "", "exception_type": "E", "traceback": [], "current_inputs": {"x": [NaN]}, "current_outputs": [], "timestamp": 1}]]}}})");
  ASSERT_TRUE(r) << r.error().message;
  const auto& error = std::get<ExecutionError>(r.value().entries[0].status->messages[0]);
  EXPECT_TRUE(error.current_inputs.at("x").at(0).is_null());
}

}  // namespace
}  // namespace comfyfarm::comfy
