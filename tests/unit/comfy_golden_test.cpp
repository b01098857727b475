// Golden tests: every recording of a real ComfyUI 0.3.64 server (shared/fixtures/comfyui-real)
// decodes into the typed messages and bodies and re-encodes to what was recorded.
#include "comfy/messages.hpp"

#include "comfy/bodies.hpp"
#include "comfy/json_util.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace comfyfarm::comfy {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Finding the recordings.

std::string relative_name(const fs::path& p) {
  return fs::relative(p, test::fixtures_dir()).generic_string();
}

bool is_ws_recording(const fs::path& p) {
  const std::string name = p.filename().string();
  return name.starts_with("ws") && p.extension() == ".jsonl";
}

// Body files per name; the run folders hold the per-prompt ones, the top level the server ones.
const std::set<std::string>& body_file_names() {
  static const std::set<std::string> names = {
      "request.json",     "prompt_response.json", "history.json",         "queue_after.json",
      "queue_during.json", "system_stats.json",   "features.json",        "object_info_used.json"};
  return names;
}

// Files that are not protocol traffic: descriptions, scenario inputs (the workflow module's
// golden tests cover workflow*.json) and timing notes.
bool is_not_protocol(const fs::path& p) {
  const std::string name = p.filename().string();
  return name == "README.md" || name == "index.json" || name == "meta.json" ||
         (name.starts_with("workflow") && p.extension() == ".json");
}

std::vector<fs::path> all_fixture_files() {
  std::vector<fs::path> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(test::fixtures_dir(), ec), end; !ec && it != end;
       it.increment(ec)) {
    if (it->is_regular_file()) out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ws_recordings() {
  std::vector<std::string> out;
  for (const auto& p : all_fixture_files()) {
    if (is_ws_recording(p)) out.push_back(relative_name(p));
  }
  return out;
}

std::vector<std::string> body_recordings() {
  std::vector<std::string> out;
  for (const auto& p : all_fixture_files()) {
    if (body_file_names().contains(p.filename().string())) out.push_back(relative_name(p));
  }
  return out;
}

std::string test_name(const testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

json::value parse_or_fail(std::string_view text) {
  auto v = parse_json(text);
  EXPECT_TRUE(v) << v.error().message;
  return v ? *v : json::value();
}

std::vector<std::string> keys_of(const json::value& v) {
  std::vector<std::string> keys;
  if (const auto* o = v.if_object()) {
    for (const auto& kv : *o) keys.emplace_back(kv.key());
  }
  return keys;
}

std::string join(const std::vector<std::string>& keys) {
  std::string out;
  for (const auto& k : keys) out += (out.empty() ? "" : ",") + k;
  return out;
}

// ---------------------------------------------------------------------------------------------
// What the reference (§6.4) says each message's data keys are, in order.

const std::map<std::string, std::vector<std::vector<std::string>>>& reference_data_keys() {
  static const std::map<std::string, std::vector<std::vector<std::string>>> keys = {
      {"status", {{"status"}, {"status", "sid"}}},
      {"execution_start", {{"prompt_id", "timestamp"}}},
      {"execution_cached", {{"nodes", "prompt_id", "timestamp"}}},
      {"executing", {{"node", "display_node", "prompt_id"}, {"node", "prompt_id"}, {"node"}}},
      {"executed", {{"node", "display_node", "output", "prompt_id"}}},
      {"progress", {{"value", "max", "prompt_id", "node"}}},
      {"progress_state", {{"prompt_id", "nodes"}}},
      {"execution_success", {{"prompt_id", "timestamp"}}},
      {"execution_error",
       {{"prompt_id", "node_id", "node_type", "executed", "exception_message", "exception_type",
         "traceback", "current_inputs", "current_outputs", "timestamp"}}},
      {"execution_interrupted", {{"prompt_id", "node_id", "node_type", "executed", "timestamp"}}},
      {"feature_flags",
       {{"supports_preview_metadata"}, {"supports_preview_metadata", "max_upload_size"}}},
  };
  return keys;
}

const std::vector<std::string> kNodeProgressKeys = {
    "value", "max", "state", "node_id", "prompt_id", "display_node_id", "parent_node_id",
    "real_node_id"};

// The Event alternative each wire type must decode to.
std::size_t expected_index(std::string_view type) {
  static const std::map<std::string, std::size_t, std::less<>> index = {
      {"status", Event(std::in_place_type<Status>).index()},
      {"execution_start", Event(std::in_place_type<ExecutionStart>).index()},
      {"execution_cached", Event(std::in_place_type<ExecutionCached>).index()},
      {"executing", Event(std::in_place_type<Executing>).index()},
      {"progress", Event(std::in_place_type<Progress>).index()},
      {"progress_state", Event(std::in_place_type<ProgressState>).index()},
      {"executed", Event(std::in_place_type<Executed>).index()},
      {"execution_success", Event(std::in_place_type<ExecutionSuccess>).index()},
      {"execution_error", Event(std::in_place_type<ExecutionError>).index()},
      {"execution_interrupted", Event(std::in_place_type<ExecutionInterrupted>).index()},
      {"feature_flags", Event(std::in_place_type<FeatureFlags>).index()},
  };
  const auto it = index.find(type);
  return it == index.end() ? Event(std::in_place_type<Unknown>).index() : it->second;
}

// No recorded message carries keys beyond the reference, so nothing may land in `extra`.
bool has_no_extra(const Event& e) {
  return std::visit(
      [](const auto& m) {
        using T = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<T, FeatureFlags> || std::is_same_v<T, Unknown>) {
          return true;
        } else if constexpr (std::is_same_v<T, ProgressState>) {
          return m.extra.empty() && std::all_of(m.nodes.begin(), m.nodes.end(),
                                                [](const auto& n) { return n.extra.empty(); });
        } else {
          return m.extra.empty();
        }
      },
      e);
}

std::string hex(std::span<const std::uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (const auto b : bytes) {
    out += kHex[b >> 4];
    out += kHex[b & 0xF];
  }
  return out;
}

std::vector<std::uint8_t> unhex(std::string_view text) {
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i + 1 < text.size(); i += 2) {
    out.push_back(static_cast<std::uint8_t>(std::stoi(std::string(text.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// One text frame.

void check_text_frame(const json::object& line, const std::string& file) {
  const json::value& msg = line.at("msg");
  ASSERT_TRUE(msg.is_object());
  const std::string type(msg.at("type").as_string());
  const json::value& data = msg.at("data");

  // The recorded keys are what the reference documents.
  const auto& known = reference_data_keys();
  if (const auto it = known.find(type); it != known.end()) {
    const auto keys = keys_of(data);
    EXPECT_TRUE(std::find(it->second.begin(), it->second.end(), keys) != it->second.end())
        << type << " has data keys " << join(keys);
    if (type == "executing") {
      const bool end_form = data.at("node").is_null();
      if (end_form) {
        EXPECT_EQ(join(keys), "node,prompt_id") << "executing null has display_node";
      }
    }
    if (type == "progress_state") {
      for (const auto& kv : data.at("nodes").as_object()) {
        EXPECT_EQ(join(keys_of(kv.value())), join(kNodeProgressKeys)) << "node " << kv.key();
      }
    }
  }

  const std::string text = dumps(msg);
  auto result = decode_event(text);
  ASSERT_TRUE(result) << result.error().message;
  const Event& event = result.value();
  EXPECT_EQ(event.index(), expected_index(type)) << type << " decoded to the wrong alternative";
  EXPECT_EQ(type_name(event), type);
  EXPECT_TRUE(has_no_extra(event)) << "keys beyond the reference in " << type;

  const std::string encoded = encode_event(event);
  EXPECT_EQ(encoded, text) << "re-encoding is not byte-identical";
  auto reparsed = parse_json(encoded);
  ASSERT_TRUE(reparsed) << reparsed.error().message;
  EXPECT_EQ(reparsed.value(), msg) << "re-encoding is not json-equal";

  // Routing: prompt_id_of reads data.prompt_id whenever the message has one.
  const auto* recorded_id = data.is_object() ? data.as_object().if_contains("prompt_id") : nullptr;
  const auto routed = prompt_id_of(event);
  if (recorded_id != nullptr) {
    ASSERT_TRUE(routed.has_value()) << type;
    EXPECT_EQ(*routed, std::string_view(recorded_id->as_string()));
  } else {
    EXPECT_FALSE(routed.has_value()) << type;
  }

  // Typed spot checks of what the reference calls out.
  if (const auto* e = std::get_if<Executing>(&event)) {
    EXPECT_EQ(e->is_end_of_prompt(), data.at("node").is_null());
  }
  if (const auto* p = std::get_if<ProgressState>(&event)) {
    const auto& nodes = data.at("nodes").as_object();
    ASSERT_EQ(p->nodes.size(), nodes.size());
    std::size_t i = 0;
    for (const auto& kv : nodes) {
      const auto& n = p->nodes[i++];
      EXPECT_EQ(n.node_id, std::string_view(kv.key()));
      EXPECT_EQ(n.value.is_integer(), kv.value().at("value").is_int64());
      EXPECT_EQ(n.max.is_integer(), kv.value().at("max").is_int64());
      EXPECT_FALSE(n.parent_node_id.has_value());
    }
  }
  if (const auto* e = std::get_if<ExecutionError>(&event)) {
    EXPECT_TRUE(e->timestamp.has_value());
    EXPECT_EQ(e->exception_type, "IndexError");
    EXPECT_TRUE(e->exception_message.ends_with("\n"));
    EXPECT_TRUE(e->current_inputs.is_object());
  }
  (void)file;
}

// ---------------------------------------------------------------------------------------------
// One binary frame: built from its recorded decoded fields, it must have the recorded length and
// first 8 bytes, and decode back to itself.

void check_binary_frame(const json::object& line) {
  const auto event_type = line.at("event_type").as_int64();
  const auto len = static_cast<std::size_t>(line.at("len").as_int64());
  const std::string head_hex(line.at("head_hex").as_string());

  BinaryEvent event;
  switch (event_type) {
    case 1: {
      PreviewImage preview;
      preview.format = static_cast<ImageFormat>(line.at("image_format").as_int64());
      preview.image = unhex(line.at("payload_magic_hex").as_string());
      ASSERT_LE(preview.image.size() + 8, len);
      preview.image.resize(len - 8, 0);
      event = std::move(preview);
      break;
    }
    case 3:
      event = ProgressText{std::string(line.at("text_node_id").as_string()),
                           std::string(line.at("text").as_string())};
      break;
    case 4: {
      const auto& recorded = line.at("metadata").as_object();
      auto str = [&](std::string_view k) { return std::string_view(recorded.at(k).as_string()); };
      PreviewImageWithMetadata preview;
      // Built in ComfyUI's key order from the fields, not copied from the recording: the
      // encoder must produce the server's exact bytes.
      preview.metadata = make_preview_metadata(
          str("node_id"), str("prompt_id"), str("display_node_id"),
          recorded.at("parent_node_id").is_null()
              ? std::nullopt
              : std::optional<std::string_view>(str("parent_node_id")),
          str("real_node_id"), str("image_type"));
      EXPECT_EQ(json::value(preview.metadata), json::value(recorded));
      const std::size_t meta_len = dumps(json::value(preview.metadata)).size();
      EXPECT_EQ(meta_len, std::stoul(head_hex.substr(8, 8), nullptr, 16));
      preview.image = unhex(line.at("payload_magic_hex").as_string());
      ASSERT_LE(preview.image.size() + 8 + meta_len, len);
      preview.image.resize(len - 8 - meta_len, 0);
      event = std::move(preview);
      break;
    }
    default: FAIL() << "unexpected recorded binary event type " << event_type;
  }

  const std::vector<std::uint8_t> frame = encode_binary(event);
  EXPECT_EQ(frame.size(), len);
  EXPECT_EQ(hex(std::span(frame).first(std::min<std::size_t>(8, frame.size()))), head_hex);

  auto result = decode_binary(frame);
  ASSERT_TRUE(result) << result.error().message;
  const BinaryEvent& decoded = result.value();
  EXPECT_EQ(decoded, event);
  EXPECT_EQ(encode_binary(decoded), frame);
  if (event_type == 4) {
    EXPECT_EQ(prompt_id_of(decoded),
              std::string_view(line.at("metadata").at("prompt_id").as_string()));
  }
}

class WsRecording : public testing::TestWithParam<std::string> {};

TEST_P(WsRecording, EveryFrameDecodesTypedAndReencodesExactly) {
  const fs::path file = test::fixtures_dir() / GetParam();
  const auto lines = split_lines(test::read_file(file));
  ASSERT_FALSE(lines.empty());
  std::size_t checked = 0;
  bool seen_status = false;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE(GetParam() + ":" + std::to_string(i + 1));
    const json::value line = parse_or_fail(lines[i]);
    ASSERT_TRUE(line.is_object());
    const auto& obj = line.as_object();
    const auto& kind = obj.at("kind").as_string();
    if (kind == "text") {
      check_text_frame(obj, GetParam());
      const auto& msg = obj.at("msg");
      if (msg.at("type") == "status" && obj.at("dir") == "recv") {
        // sid only in the first status on a socket.
        EXPECT_EQ(msg.at("data").as_object().contains("sid"), !seen_status);
        seen_status = true;
      }
      ++checked;
    } else if (kind == "binary") {
      check_binary_frame(obj);
      ++checked;
    } else {
      ADD_FAILURE() << "unknown frame kind " << kind;
    }
  }
  EXPECT_GT(checked, 0u);
  EXPECT_EQ(checked, lines.size());
  RecordProperty("frames", static_cast<int>(checked));
}

INSTANTIATE_TEST_SUITE_P(Recordings, WsRecording, testing::ValuesIn(ws_recordings()), test_name);

// ---------------------------------------------------------------------------------------------
// Bodies.

template <class T>
void check_round_trip(const json::value& recorded) {
  auto typed = T::from_json(recorded);
  ASSERT_TRUE(typed) << typed.error().message;
  EXPECT_EQ(typed.value().to_json(), recorded);
  // And again from text, through parse().
  auto again = T::parse(dumps(recorded));
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(again.value(), typed.value());
}

void check_history(const json::value& recorded) {
  check_round_trip<History>(recorded);
  auto history = History::from_json(recorded);
  ASSERT_TRUE(history);
  ASSERT_EQ(history.value().entries.size(), 1u);
  const auto& entry = history.value().entries.front();
  EXPECT_EQ(entry.prompt.prompt_id, entry.prompt_id);
  ASSERT_TRUE(entry.status.has_value());
  ASSERT_TRUE(entry.meta.has_value());
  const auto& messages = entry.status->messages;
  ASSERT_EQ(messages.size(), 3u);
  EXPECT_TRUE(std::holds_alternative<ExecutionStart>(messages[0]));
  EXPECT_TRUE(std::holds_alternative<ExecutionCached>(messages[1]));
  const bool success = std::holds_alternative<ExecutionSuccess>(messages[2]);
  EXPECT_TRUE(success || std::holds_alternative<ExecutionError>(messages[2]) ||
              std::holds_alternative<ExecutionInterrupted>(messages[2]));
  EXPECT_EQ(entry.status->status_str, success ? "success" : "error");
  EXPECT_EQ(entry.status->completed, success);
  for (const auto& m : messages) EXPECT_EQ(prompt_id_of(m), entry.prompt_id);
}

class BodyRecording : public testing::TestWithParam<std::string> {};

TEST_P(BodyRecording, DecodesTypedAndReencodesEqual) {
  const fs::path file = test::fixtures_dir() / GetParam();
  SCOPED_TRACE(GetParam());
  const json::value recorded = parse_or_fail(test::read_file(file));
  const std::string name = file.filename().string();
  if (name == "request.json") {
    check_round_trip<PromptRequest>(recorded);
  } else if (name == "prompt_response.json") {
    const auto status = recorded.at("http_status").as_int64();
    const json::value& body = recorded.at("body");
    if (status == 200) {
      check_round_trip<PromptResponse>(body);
    } else {
      EXPECT_EQ(status, 400);
      check_round_trip<PromptErrorResponse>(body);
      auto typed = PromptErrorResponse::from_json(body);
      ASSERT_TRUE(typed);
      EXPECT_FALSE(typed.value().error.type.empty());
      // The other shape must not be mistaken for it.
      EXPECT_FALSE(PromptResponse::from_json(body));
    }
  } else if (name == "history.json") {
    check_history(recorded);
  } else if (name == "queue_after.json" || name == "queue_during.json") {
    check_round_trip<QueueSnapshot>(recorded);
  } else if (name == "system_stats.json") {
    check_round_trip<SystemStats>(recorded);
  } else if (name == "features.json") {
    check_round_trip<Features>(recorded);
  } else if (name == "object_info_used.json") {
    check_round_trip<ObjectInfo>(recorded);
    auto info = ObjectInfo::from_json(recorded);
    ASSERT_TRUE(info);
    EXPECT_EQ(info.value().classes.size(), recorded.as_object().size());
    for (const auto& c : info.value().classes) {
      SCOPED_TRACE(c.class_type);
      EXPECT_EQ(c.to_json(), recorded.at(c.class_type));  // every class on its own
      EXPECT_EQ(c.output_count(), c.output_name.size());
    }
  } else {
    FAIL() << "no check for " << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Recordings, BodyRecording, testing::ValuesIn(body_recordings()),
                         test_name);

// Every file of the recordings is either checked above or known not to be protocol traffic, so
// a new kind of recording cannot slip past the golden tests.
TEST(GoldenCoverage, EveryRecordingIsChecked) {
  std::size_t ws = 0;
  std::size_t bodies = 0;
  for (const auto& p : all_fixture_files()) {
    SCOPED_TRACE(relative_name(p));
    if (is_ws_recording(p)) {
      ++ws;
    } else if (body_file_names().contains(p.filename().string())) {
      ++bodies;
    } else {
      EXPECT_TRUE(is_not_protocol(p)) << "recording without a golden check";
    }
  }
  EXPECT_GT(ws, 0u);
  EXPECT_GT(bodies, 0u);
  EXPECT_EQ(ws, ws_recordings().size());
  EXPECT_EQ(bodies, body_recordings().size());
  RecordProperty("ws_files", static_cast<int>(ws));
  RecordProperty("body_files", static_cast<int>(bodies));
}

// ---------------------------------------------------------------------------------------------
// Cross-checks between recordings of the same run.

std::vector<fs::path> run_dirs() {
  std::vector<fs::path> out;
  for (const auto& p : all_fixture_files()) {
    if (p.filename() == "request.json") out.push_back(p.parent_path());
  }
  return out;
}

std::vector<Event> ws_events(const fs::path& file) {
  std::vector<Event> out;
  if (!fs::exists(file)) return out;
  for (const auto& line : split_lines(test::read_file(file))) {
    const json::value v = parse_or_fail(line);
    if (v.at("kind") != "text") continue;
    auto e = decode_event(dumps(v.at("msg")));
    EXPECT_TRUE(e);
    if (e) out.push_back(std::move(e).value());
  }
  return out;
}

TEST(GoldenCrossCheck, HistoryMessagesEqualTheWebSocketEvents) {
  std::size_t compared = 0;
  for (const auto& dir : run_dirs()) {
    if (!fs::exists(dir / "history.json")) continue;
    SCOPED_TRACE(relative_name(dir));
    auto history = History::parse(test::read_file(dir / "history.json"));
    ASSERT_TRUE(history) << history.error().message;
    const auto events = ws_events(dir / "ws.jsonl");
    for (const auto& entry : history.value().entries) {
      for (const auto& m : entry.status->messages) {
        const auto it = std::find_if(events.begin(), events.end(), [&](const Event& e) {
          return type_name(e) == type_name(m) && prompt_id_of(e) == prompt_id_of(m);
        });
        // Without a client_id the executor's events are recorded but never sent.
        if (it == events.end()) continue;
        EXPECT_EQ(encode_event(*it), encode_event(m));
        ++compared;
      }
    }
  }
  EXPECT_GT(compared, 0u);
}

TEST(GoldenCrossCheck, RequestPromptReachesQueueAndHistoryUnchanged) {
  std::size_t compared = 0;
  for (const auto& dir : run_dirs()) {
    SCOPED_TRACE(relative_name(dir));
    auto request_result = PromptRequest::parse(test::read_file(dir / "request.json"));
    ASSERT_TRUE(request_result) << request_result.error().message;
    const PromptRequest& request = request_result.value();
    if (fs::exists(dir / "history.json")) {
      auto history = History::parse(test::read_file(dir / "history.json"));
      ASSERT_TRUE(history);
      ASSERT_EQ(history.value().entries.size(), 1u);
      const QueueItem& item = history.value().entries.front().prompt;
      EXPECT_EQ(item.prompt, request.prompt);
      if (request.client_id) {
        EXPECT_EQ(item.extra_data.at("client_id"), json::value(*request.client_id));
      } else {
        EXPECT_TRUE(item.extra_data.empty());
      }
      auto response = PromptResponse::parse(
          dumps(parse_or_fail(test::read_file(dir / "prompt_response.json")).at("body")));
      ASSERT_TRUE(response) << response.error().message;
      EXPECT_EQ(response.value().prompt_id, item.prompt_id);
      EXPECT_EQ(response.value().number, item.number);
      ++compared;
    }
    if (fs::exists(dir / "queue_during.json")) {
      auto queue = QueueSnapshot::parse(test::read_file(dir / "queue_during.json"));
      ASSERT_TRUE(queue) << queue.error().message;
      for (const auto& item : queue.value().running) EXPECT_EQ(item.prompt, request.prompt);
    }
  }
  EXPECT_GT(compared, 0u);
}

TEST(GoldenCrossCheck, FeaturesEqualTheServersFeatureFlagsReply) {
  auto parsed = Features::parse(test::read_file(test::fixtures_dir() / "features.json"));
  ASSERT_TRUE(parsed) << parsed.error().message;
  const Features& features = parsed.value();
  EXPECT_EQ(features.supports_preview_metadata, true);
  EXPECT_EQ(features.max_upload_size, Number(104857600));
  std::size_t compared = 0;
  for (const auto& p : all_fixture_files()) {
    if (!is_ws_recording(p)) continue;
    for (const auto& line : split_lines(test::read_file(p))) {
      const json::value v = parse_or_fail(line);
      if (v.at("kind") != "text" || v.at("dir") != "recv") continue;
      if (v.at("msg").at("type") != "feature_flags") continue;
      auto e = decode_event(dumps(v.at("msg")));
      ASSERT_TRUE(e);
      EXPECT_EQ(json::value(std::get<FeatureFlags>(e.value()).flags), features.to_json());
      ++compared;
    }
  }
  EXPECT_GT(compared, 0u);
}

// ---------------------------------------------------------------------------------------------
// Typed views of the server bodies, on what the reference calls out.

TEST(GoldenObjectInfo, HelpersReadEveryInputForm) {
  auto parsed = ObjectInfo::parse(test::read_file(test::fixtures_dir() / "object_info_used.json"));
  ASSERT_TRUE(parsed) << parsed.error().message;
  const ObjectInfo* info = &parsed.value();

  const auto* blend = info->find("ImageBlend");  // V3 ["COMBO", {"options": [...]}]
  ASSERT_NE(blend, nullptr);
  ASSERT_NE(blend->combo_choices("blend_mode"), nullptr);
  EXPECT_EQ(blend->combo_choices("blend_mode")->size(), 6u);
  EXPECT_EQ(blend->combo_choices("blend_mode")->at(0), "normal");
  EXPECT_FALSE(blend->display_name.has_value());
  EXPECT_TRUE(blend->extra.contains("output_tooltips"));

  const auto* scale = info->find("ImageScaleBy");  // classic [[values]]
  ASSERT_NE(scale, nullptr);
  ASSERT_NE(scale->combo_choices("upscale_method"), nullptr);
  EXPECT_EQ(scale->combo_choices("upscale_method")->size(), 5u);
  EXPECT_FALSE(scale->find_input("upscale_method")->options.has_value());
  EXPECT_EQ(scale->combo_choices("scale_by"), nullptr);

  const auto* any = info->find("PreviewAny");
  ASSERT_NE(any, nullptr);
  EXPECT_EQ(any->find_input("source")->types(), std::vector<std::string_view>{"*"});
  EXPECT_TRUE(any->is_output_node());
  EXPECT_EQ(any->output_count(), 0u);

  const auto* save = info->find("SaveImage");
  ASSERT_NE(save, nullptr);
  EXPECT_TRUE(save->is_output_node());
  ASSERT_TRUE(save->hidden.has_value());
  EXPECT_TRUE(save->find_input("prompt")->bare);
  EXPECT_EQ(std::get<std::string>(save->find_input("prompt")->type), "PROMPT");

  const auto* size = info->find("GetImageSize");
  ASSERT_NE(size, nullptr);
  EXPECT_EQ(size->output_count(), 3u);
  EXPECT_EQ(size->output_name, (std::vector<std::string>{"width", "height", "batch_size"}));

  const auto* empty = info->find("EmptyImage");
  ASSERT_NE(empty, nullptr);
  std::vector<std::string> names;
  for (const auto& in : empty->required_inputs()) names.push_back(in.name);
  EXPECT_EQ(names, (std::vector<std::string>{"width", "height", "batch_size", "color"}));
  EXPECT_EQ(empty->find_input("color")->options->at("max"), 16777215);
  EXPECT_FALSE(empty->is_output_node());
  EXPECT_EQ(info->find("NoSuchClass"), nullptr);
}

TEST(GoldenSystemStats, CpuServerFields) {
  auto parsed = SystemStats::parse(test::read_file(test::fixtures_dir() / "system_stats.json"));
  ASSERT_TRUE(parsed) << parsed.error().message;
  const SystemStats* stats = &parsed.value();
  EXPECT_EQ(stats->system.os, "posix");
  EXPECT_EQ(stats->system.comfyui_version, "0.3.64");
  ASSERT_TRUE(stats->system.installed_templates_version.has_value());  // present...
  EXPECT_FALSE(stats->system.installed_templates_version->has_value());  // ...and null
  ASSERT_EQ(stats->devices.size(), 1u);
  EXPECT_EQ(stats->devices[0].type, "cpu");
  EXPECT_FALSE(stats->devices[0].index.has_value());
  EXPECT_EQ(stats->devices[0].vram_total, stats->system.ram_total);
  EXPECT_GT(stats->system.ram_total, std::int64_t{1} << 32);
}

}  // namespace
}  // namespace comfyfarm::comfy
