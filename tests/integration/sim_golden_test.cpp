// Golden tests of `comfyfarm sim` as a process: every scenario recorded from a real ComfyUI
// 0.3.64 (shared/fixtures/comfyui-real/) is replayed against a fresh simulator over real sockets
// (run1 then run2 on the same server), and what a client receives is compared with the
// recording: the WebSocket frames (types, order, keys and JSON types; ids, timestamps and file
// names excepted), the POST /prompt reply, the history entry and the queue afterwards. The
// validation scenarios must give the recorded status and body (traceback text excepted).
#include "support/sim_process.hpp"

#include "comfy/json_util.hpp"
#include "comfy/messages.hpp"
#include "net/io_runtime.hpp"
#include "support/json_shape.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace comfyfarm::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// ---- structural comparison -------------------------------------------------------------------

// Values that differ between any two runs are compared by type only. Tooltips: the recorder
// removed ComfyUI's descriptive texts from object_info_used.json, so the simulator's catalog has
// none, while the validation bodies recorded the real ones.
struct CompareOptions : test::ShapeOptions {
  CompareOptions() { ignore_values = {"prompt_id", "timestamp", "filename", "traceback", "sid",
                                         "number",    "tooltip"}; }
};

using test::compare_shape;
using test::join_lines;

// ---- recordings ------------------------------------------------------------------------------


/// The frames a socket received: the connect-time ones (before the POST) and the others.
struct Frames {
  std::vector<json::object> connect;
  std::vector<json::object> after;
  std::optional<json::value> sent_flags;  ///< the feature_flags message the client sent first
};

Frames load_frames(const fs::path& p) {
  Frames f;
  for (auto& frame : test::read_jsonl(p)) {
    if (frame.at("dir").as_string() == "send") {
      if (!f.sent_flags) f.sent_flags = frame.at("msg");
      continue;
    }
    if (frame.at("t_rel_ms").to_number<double>() < 0) {
      f.connect.push_back(std::move(frame));
    } else {
      f.after.push_back(std::move(frame));
    }
  }
  return f;
}

std::string client_id_of(const fs::path& run) {
  const auto meta = load_json(run / "meta.json");
  if (const auto* c = meta.get_object().if_contains("client_id"); c != nullptr && c->is_string()) {
    return std::string(c->get_string());
  }
  return {};
}

std::vector<fs::path> runs_of(const fs::path& scenario) {
  std::vector<fs::path> runs;
  for (const auto& e : fs::directory_iterator(scenario)) {
    if (e.is_directory() && e.path().filename().string().starts_with("run")) {
      runs.push_back(e.path());
    }
  }
  std::sort(runs.begin(), runs.end());
  return runs;
}

std::vector<std::string> scenario_names(bool with_history) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(fixtures_dir())) {
    if (!e.is_directory()) continue;
    const auto runs = runs_of(e.path());
    if (runs.empty()) continue;
    if (fs::exists(runs.front() / "history.json") == with_history) {
      out.push_back(e.path().filename().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// ---- frames received from the simulator ------------------------------------------------------

/// A received frame in the recording's shape: text frames as {"kind": "text", "msg"}, binary
/// ones as {"kind": "binary", "event_type", and the per-type fields the recorder wrote}.
json::object as_recorded(const net::WebSocketMessage& m) {
  json::object out;
  if (!m.binary) {
    out["kind"] = "text";
    auto doc = comfy::parse_json(m.data);
    EXPECT_TRUE(doc) << m.data;
    out["msg"] = doc ? *doc : json::value(nullptr);
    return out;
  }
  out["kind"] = "binary";
  auto decoded = comfy::decode_binary(std::string_view(m.data));
  EXPECT_TRUE(decoded);
  if (!decoded) return out;
  const auto png_magic = [](const std::vector<std::uint8_t>& img) {
    static constexpr std::uint8_t kMagic[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    return img.size() >= 8 && std::equal(std::begin(kMagic), std::end(kMagic), img.begin());
  };
  if (const auto* p1 = std::get_if<comfy::PreviewImage>(&*decoded)) {
    out["event_type"] = 1;
    out["image_format"] = static_cast<std::int64_t>(p1->format);
    out["png"] = png_magic(p1->image);
  } else if (const auto* t = std::get_if<comfy::ProgressText>(&*decoded)) {
    out["event_type"] = 3;
    out["text_node_id"] = t->node_id;
    out["text"] = t->text;
  } else if (const auto* p4 = std::get_if<comfy::PreviewImageWithMetadata>(&*decoded)) {
    out["event_type"] = 4;
    out["metadata"] = p4->metadata;
    out["png"] = png_magic(p4->image);
  } else if (const auto* u = std::get_if<comfy::UnknownBinary>(&*decoded)) {
    out["event_type"] = u->type;
  }
  return out;
}

/// Where the real server's node order is a Python set's (several output nodes), nodes may run
/// in another order: compare everything but which node a frame is about.
json::value node_agnostic(const json::value& msg) {
  json::value v = msg;
  auto* data = v.get_object().if_contains("data");
  if (data == nullptr || !data->is_object()) return v;
  auto& d = data->get_object();
  for (const char* k : {"node", "display_node"}) {
    if (auto* n = d.if_contains(k); n != nullptr && n->is_string()) *n = "*";
  }
  if (auto* out = d.if_contains("output"); out != nullptr) *out = "*";
  if (auto* nodes = d.if_contains("nodes"); nodes != nullptr && nodes->is_object()) {
    // progress_state: the states of the entries, as a sorted list.
    std::vector<std::string> states;
    for (const auto& kv : nodes->get_object()) {
      const auto& e = kv.value().get_object();
      states.push_back(std::string(e.at("state").as_string()) + " " + test::json_kind(e.at("value")) +
                       "/" + test::json_kind(e.at("max")));
    }
    std::sort(states.begin(), states.end());
    json::array a;
    for (auto& s : states) a.emplace_back(s);
    *nodes = std::move(a);
  }
  return v;
}

void compare_frame(const json::object& want, const json::object& got, bool relaxed,
                   const CompareOptions& opt, const std::string& where,
                   std::vector<std::string>& diffs) {
  if (want.at("kind") != got.at("kind")) {
    diffs.push_back(where + ": " + comfy::dumps(got).substr(0, 200) + ", recorded " +
                    comfy::dumps(want).substr(0, 200));
    return;
  }
  if (want.at("kind").as_string() == "text") {
    if (relaxed) {
      compare_shape(node_agnostic(want.at("msg")), node_agnostic(got.at("msg")), where, "", opt, diffs);
    } else {
      compare_shape(want.at("msg"), got.at("msg"), where, "", opt, diffs);
    }
    return;
  }
  const auto type = want.at("event_type").to_number<std::int64_t>();
  if (type != got.at("event_type").to_number<std::int64_t>()) {
    diffs.push_back(where + ": binary type " + comfy::dumps(got.at("event_type")) +
                    ", recorded " + std::to_string(type));
    return;
  }
  if (type == 1) {
    if (want.at("image_format") != got.at("image_format")) diffs.push_back(where + ": format");
    if (!got.at("png").as_bool()) diffs.push_back(where + ": not a PNG");
  } else if (type == 3) {
    if (want.at("text_node_id") != got.at("text_node_id") || want.at("text") != got.at("text")) {
      diffs.push_back(where + ": text frame " + comfy::dumps(got));
    }
  } else if (type == 4) {
    compare_shape(want.at("metadata"), got.at("metadata"), where + ".metadata", "", opt, diffs);
    if (!got.at("png").as_bool()) diffs.push_back(where + ": not a PNG");
  }
}

std::vector<json::object> read_frames(SimWs& ws, std::size_t n) {
  std::vector<json::object> out;
  while (out.size() < n) {
    auto m = ws.read(10s);
    if (!m) break;
    out.push_back(as_recorded(*m));
  }
  return out;
}

/// What differs by design in a scenario: runtime_error's exception comes from a node-error
/// fault (RuntimeError with the simulator's message), not from torch.
CompareOptions options_for(const std::string& scenario) {
  CompareOptions opt;
  if (scenario == "runtime_error") {
    opt.ignore_values.insert("exception_type");
    opt.ignore_values.insert("exception_message");
  }
  return opt;
}

void compare_frames(const std::vector<json::object>& want, const std::vector<json::object>& got,
                    bool relaxed, const std::string& what, const CompareOptions& opt = {}) {
  std::vector<std::string> diffs;
  const std::size_t n = std::min(want.size(), got.size());
  for (std::size_t i = 0; i < n; ++i) {
    compare_frame(want[i], got[i], relaxed, opt, what + " frame " + std::to_string(i), diffs);
  }
  if (want.size() != got.size()) {
    diffs.push_back(what + ": " + std::to_string(got.size()) + " frames, recorded " +
                    std::to_string(want.size()));
    for (std::size_t i = n; i < want.size(); ++i) {
      diffs.push_back("missing: " + comfy::dumps(want[i]).substr(0, 200));
    }
  }
  EXPECT_TRUE(diffs.empty()) << (relaxed ? "(node order relaxed)\n" : "") << join_lines(diffs);
}

std::vector<std::string> executing_nodes(const std::vector<json::object>& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) {
    if (f.at("kind").as_string() != "text") continue;
    const auto& msg = f.at("msg").get_object();
    if (msg.at("type").as_string() != "executing") continue;
    const auto& node = msg.at("data").at("node");
    if (node.is_string()) out.emplace_back(node.get_string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// The arguments that make the simulator do what the recorded server did.
std::vector<std::string> sim_args(const std::string& scenario) {
  std::vector<std::string> args = {"--time-scale", "0.01"};
  // ImageToMask's "alpha" channel on an RGB image raises on a real server; the simulator does
  // not model that, so a node-error fault stands in (exception type and message differ).
  if (scenario == "runtime_error") args = {"--time-scale", "0.01", "--fault", "node-error=ImageToMask"};
  // The interrupt lands while the first blur runs: make the blurs last long enough.
  if (scenario == "interrupt") args = {"--time-scale", "100"};
  return args;
}

// ---- the tests -------------------------------------------------------------------------------

class SimGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(SimGolden, ClientSeesWhatTheRecordedServerSent) {
  const std::string scenario = GetParam();
  const fs::path dir = fixtures_dir() / scenario;
  SimProcess sim(sim_args(scenario));
  ASSERT_TRUE(sim.ready()) << sim.log();
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());

  for (const auto& run : runs_of(dir)) {
    SCOPED_TRACE(run.string());
    const Frames frames = load_frames(run / "ws.jsonl");
    const Frames observer_frames = load_frames(run / "ws_observer.jsonl");
    const auto ws = SimWs::connect(io, sim.ws_url(client_id_of(run)));
    ASSERT_TRUE(ws);
    if (frames.sent_flags) ws->send_text(comfy::dumps(*frames.sent_flags));
    std::unique_ptr<SimWs> observer;
    if (!observer_frames.connect.empty()) {
      observer = SimWs::connect(io, sim.ws_url("golden-observer-0001"));
      ASSERT_TRUE(observer);
    }
    compare_frames(frames.connect, read_frames(*ws, frames.connect.size()), false, "connect");
    if (observer) {
      compare_frames(observer_frames.connect,
                     read_frames(*observer, observer_frames.connect.size()), false,
                     "observer connect");
    }

    const auto response = load_json(run / "prompt_response.json");
    auto posted = http.post("/prompt", read_file(run / "request.json"));
    ASSERT_TRUE(posted);
    EXPECT_EQ(posted->status, response.at("http_status").to_number<int>()) << posted->body;
    EXPECT_EQ(posted->headers.get("Content-Type").value_or(""),
              response.at("content_type").as_string());
    const auto body = comfy::parse_json(posted->body);
    ASSERT_TRUE(body) << posted->body;
    {
      std::vector<std::string> diffs;
      compare_shape(response.at("body"), *body, "prompt reply", "", CompareOptions{}, diffs);
      EXPECT_TRUE(diffs.empty()) << join_lines(diffs);
    }
    const std::string prompt_id(body->at("prompt_id").as_string());

    std::vector<json::object> got;
    if (scenario == "interrupt") {
      // POST /interrupt (no body) while node 2 runs, as the recording did.
      while (got.size() < frames.after.size()) {
        auto m = ws->read(10s);
        ASSERT_TRUE(m) << "frames so far: " << got.size();
        got.push_back(as_recorded(*m));
        const auto& f = got.back();
        if (f.at("kind").as_string() == "text" &&
            f.at("msg").at("type").as_string() == "executing" &&
            f.at("msg").at("data").at("node") == "2") {
          auto r = http.request(net::Method::kPost, "/interrupt");
          ASSERT_TRUE(r);
          EXPECT_EQ(r->status, 200);
          EXPECT_TRUE(r->body.empty());
        }
      }
    } else {
      got = read_frames(*ws, frames.after.size());
    }

    const auto recorded_history = load_json(run / "history.json");
    auto history = http.get_json("/history/" + prompt_id);
    ASSERT_TRUE(history.is_object());
    ASSERT_EQ(history.get_object().size(), 1U) << comfy::dumps(history);
    json::value mine = history.get_object().begin()->value();
    json::value theirs = recorded_history.get_object().begin()->value();
    // Which order several output nodes run in is a Python set's on a real server.
    const bool relaxed = mine.at("prompt").at(4) != theirs.at("prompt").at(4);
    compare_frames(frames.after, got, relaxed, "prompt", options_for(scenario));
    if (relaxed) {
      EXPECT_EQ(executing_nodes(got), executing_nodes(frames.after));
    }
    if (observer) {
      compare_frames(observer_frames.after,
                     read_frames(*observer, observer_frames.after.size()), relaxed, "observer");
    }

    // Nothing more arrives once the prompt is over.
    const auto extra = ws->read(100ms);
    EXPECT_FALSE(extra) << "an extra frame: " << (extra ? extra->data.substr(0, 200) : "");

    {
      CompareOptions opt = options_for(scenario);
      opt.unordered_objects = {"outputs", "meta"};
      // The number and the id are the server's own.
      for (auto* entry : {&theirs, &mine}) {
        auto& prompt = entry->get_object()["prompt"].get_array();
        prompt[0] = nullptr;
        prompt[1] = nullptr;
      }
      if (relaxed) {
        auto& p = theirs.get_object()["prompt"].get_array()[4].get_array();
        auto& q = mine.get_object()["prompt"].get_array()[4].get_array();
        std::sort(p.begin(), p.end(), [](auto& a, auto& b) { return a.as_string() < b.as_string(); });
        std::sort(q.begin(), q.end(), [](auto& a, auto& b) { return a.as_string() < b.as_string(); });
      }
      std::vector<std::string> diffs;
      compare_shape(theirs, mine, "history", "", opt, diffs);
      EXPECT_TRUE(diffs.empty()) << join_lines(diffs);
    }
    EXPECT_EQ(http.get_json("/queue"), load_json(run / "queue_after.json"));
  }
}

INSTANTIATE_TEST_SUITE_P(Recorded, SimGolden, ::testing::ValuesIn(scenario_names(true)),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

class SimGoldenValidation : public ::testing::TestWithParam<std::string> {};

TEST_P(SimGoldenValidation, RejectsWithTheRecordedBodyAndNoMessage) {
  const fs::path run = fixtures_dir() / GetParam() / "run1";
  SimProcess sim({"--time-scale", "0.01"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  const auto ws = SimWs::connect(io, sim.ws_url(client_id_of(run)));
  ASSERT_TRUE(ws);
  const Frames frames = load_frames(run / "ws.jsonl");
  compare_frames(frames.connect, read_frames(*ws, frames.connect.size()), false, "connect");

  const auto response = load_json(run / "prompt_response.json");
  auto posted = http.post("/prompt", read_file(run / "request.json"));
  ASSERT_TRUE(posted);
  EXPECT_EQ(posted->status, response.at("http_status").to_number<int>());
  EXPECT_EQ(posted->headers.get("Content-Type").value_or(""),
            response.at("content_type").as_string());
  const auto body = comfy::parse_json(posted->body);
  ASSERT_TRUE(body) << posted->body;
  std::vector<std::string> diffs;
  compare_shape(response.at("body"), *body, "body", "", CompareOptions{}, diffs);
  EXPECT_TRUE(diffs.empty()) << join_lines(diffs) << posted->body;

  // No WebSocket message at all, nothing queued.
  const auto extra = ws->read(150ms);
  EXPECT_FALSE(extra) << extra->data;
  EXPECT_EQ(http.get_json("/queue"), load_json(run / "queue_after.json"));
  EXPECT_EQ(http.get_json("/history"), json::value(json::object()));
}

INSTANTIATE_TEST_SUITE_P(Recorded, SimGoldenValidation,
                         ::testing::ValuesIn(scenario_names(false)),
                         [](const ::testing::TestParamInfo<std::string>& p) { return p.param; });

TEST(SimGoldenSet, CoversEveryRecordedScenario) {
  EXPECT_GE(scenario_names(true).size(), 8U);
  EXPECT_GE(scenario_names(false).size(), 6U);
}

}  // namespace
}  // namespace comfyfarm::test
