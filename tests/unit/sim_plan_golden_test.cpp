// Golden tests of the simulator's planner: for every recorded run of a real ComfyUI 0.3.64
// (shared/fixtures/comfyui-real/*/run*/ with a history.json), the steps PromptRun plays for the
// recorded workflow, run after run on one SimState, give the recorded WebSocket frames of the
// prompt (same types, order, keys, JSON types and node ids; prompt ids, timestamps and file
// names excepted) and the recorded history entry.
#include "sim/prompt_run.hpp"

#include "comfy/bodies.hpp"
#include "comfy/json_util.hpp"
#include "comfy/messages.hpp"
#include "sim/sim_data.hpp"
#include "sim/sim_state.hpp"
#include "support/json_shape.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace comfyfarm::sim {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

// ---------------------------------------------------------------------------------------------
// Structural comparison: same keys in the same order, same JSON types, same values except for
// the fields that differ between any two runs (ids, clocks, random file names).

// Values that differ between any two runs (ids, clocks, random file names, the traceback's
// own frames) are compared by type only.
struct CompareOptions : test::ShapeOptions {
  CompareOptions() { ignore_values = {"prompt_id", "timestamp", "filename", "traceback"}; }
};

using test::compare_shape;
using test::join_lines;

// ---------------------------------------------------------------------------------------------
// The recordings.

json::value load_json(const fs::path& p) {
  auto v = comfy::parse_json(test::read_file(p));
  EXPECT_TRUE(v) << p;
  return v ? *v : json::value();
}


struct RecordedRun {
  std::string scenario;
  fs::path dir;
  comfy::QueueItem item;
  bool preview_metadata = false;
  std::string socket_client_id;      ///< the recording socket's clientId
  std::vector<json::object> frames;  ///< the prompt's frames, as the recording socket got them
  json::value history;               ///< the recorded entry (value of the prompt id key)
};

std::optional<RecordedRun> load_run(const std::string& scenario, const fs::path& dir) {
  RecordedRun r;
  r.scenario = scenario;
  r.dir = dir;
  const auto history = load_json(dir / "history.json");
  if (!history.is_object() || history.get_object().size() != 1) return std::nullopt;
  r.history = history.get_object().begin()->value();
  auto item = comfy::QueueItem::from_json(r.history.get_object().at("prompt"));
  EXPECT_TRUE(item) << dir;
  if (!item) return std::nullopt;
  r.item = std::move(*item);
  const auto meta = load_json(dir / "meta.json");
  if (const auto* c = meta.get_object().if_contains("client_id"); c && c->is_string()) {
    r.socket_client_id = std::string(c->get_string());
  }
  bool leading = true;
  for (auto& f : test::read_jsonl(dir / "ws.jsonl")) {
    if (f.at("dir").as_string() == "send") {
      const auto& msg = f.at("msg").as_object();
      if (msg.at("type").as_string() == "feature_flags") {
        const auto* flag = msg.at("data").as_object().if_contains("supports_preview_metadata");
        r.preview_metadata = flag != nullptr && flag->is_bool() && flag->get_bool();
      }
      continue;
    }
    // Connect-time frames come before the POST.
    if (f.at("t_rel_ms").to_number<double>() < 0) continue;
    // The queue's two status broadcasts (put, then the worker's get) are the server's, not the
    // planner's: skip the status frames that come before the prompt's first message.
    const bool is_status =
        f.at("kind").as_string() == "text" && f.at("msg").at("type").as_string() == "status";
    if (leading && is_status) continue;
    leading = false;
    r.frames.push_back(std::move(f));
  }
  return r;
}

struct Scenario {
  std::string name;
  std::vector<RecordedRun> runs;
};

std::vector<Scenario> scenarios() {
  std::vector<Scenario> out;
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(test::fixtures_dir())) {
    if (e.is_directory()) dirs.push_back(e.path());
  }
  std::sort(dirs.begin(), dirs.end());
  for (const auto& d : dirs) {
    Scenario s{d.filename().string(), {}};
    std::vector<fs::path> runs;
    for (const auto& e : fs::directory_iterator(d)) {
      if (e.is_directory() && fs::exists(e.path() / "history.json")) runs.push_back(e.path());
    }
    std::sort(runs.begin(), runs.end());
    for (const auto& r : runs) {
      if (auto run = load_run(s.name, r)) s.runs.push_back(std::move(*run));
    }
    if (!s.runs.empty()) out.push_back(std::move(s));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// What the recorded scenarios did beyond posting a prompt.

/// runtime_error: ImageToMask with channel "alpha" on an RGB image raises an IndexError.
std::optional<NodeFault> recorded_fault(std::string_view, std::string_view class_type) {
  if (class_type != "ImageToMask") return std::nullopt;
  return NodeFault{NodeFault::Kind::kNodeError, "IndexError",
                   "index 3 is out of bounds for dimension 3 with size 3"};
}

struct Played {
  std::vector<Step> steps;  ///< the run's steps, then the closing ones
  comfy::HistoryEntry history;
};

Played play(const SimData& data, SimState& state, const RecordedRun& rec) {
  PlanRequest req;
  req.item = rec.item;
  req.preview_metadata = rec.preview_metadata;
  if (rec.scenario == "runtime_error") req.fault = recorded_fault;
  auto run = PromptRun::start(data, state, std::move(req));
  EXPECT_TRUE(run) << (run ? "" : run.error().message);
  Played out;
  if (!run) return out;
  std::int64_t now = 1'795'000'000'000;
  bool node_2_running = false;
  while (!run->done()) {
    now += static_cast<std::int64_t>(run->delay_before_next_ms());
    // interrupt: the POST /interrupt landed while node 2 ran, during the wait for its next step.
    if (node_2_running) run->request_interrupt();
    Step step = run->next_step(now);
    node_2_running = false;
    if (rec.scenario == "interrupt") {
      if (const auto* e = std::get_if<comfy::Event>(&step.payload)) {
        const auto* executing = std::get_if<comfy::Executing>(e);
        node_2_running = executing != nullptr && executing->node == "2";
      }
    }
    out.steps.push_back(std::move(step));
  }
  out.history = run->history_entry();
  for (auto& s : closing_steps(run->prompt_id(), run->client_id().has_value(), 0)) {
    out.steps.push_back(std::move(s));
  }
  return out;
}

/// The steps the recording socket would have received.
std::vector<const Step*> delivered(const Played& p, const RecordedRun& rec) {
  const auto* cid = rec.item.extra_data.if_contains("client_id");
  const bool mine = cid != nullptr && cid->is_string() && cid->get_string() == rec.socket_client_id;
  std::vector<const Step*> out;
  for (const auto& s : p.steps) {
    if (s.route == Route::kBroadcast || (s.route == Route::kClient && mine)) out.push_back(&s);
  }
  return out;
}

std::string describe(const json::object& frame) {
  if (frame.at("kind").as_string() == "text") return comfy::dumps(frame.at("msg")).substr(0, 200);
  return "binary type " + comfy::dumps(frame.at("event_type"));
}

std::string describe(const Step& s) {
  if (const auto* e = std::get_if<comfy::Event>(&s.payload)) {
    return comfy::encode_event(*e).substr(0, 200);
  }
  if (const auto* b = std::get_if<comfy::BinaryEvent>(&s.payload)) {
    return "binary type " + std::to_string(comfy::encode_binary(*b).at(3));
  }
  return "(nothing)";
}

void compare_frame(const json::object& want, const Step& got, const std::string& where,
                   std::vector<std::string>& diffs) {
  const CompareOptions opt;
  if (want.at("kind").as_string() == "text") {
    const auto* e = std::get_if<comfy::Event>(&got.payload);
    if (e == nullptr) {
      diffs.push_back(where + ": a binary frame or nothing, recorded " + describe(want));
      return;
    }
    auto mine = comfy::parse_json(comfy::encode_event(*e));
    ASSERT_TRUE(mine);
    compare_shape(want.at("msg"), *mine, where, "", opt, diffs);
    return;
  }
  const auto* b = std::get_if<comfy::BinaryEvent>(&got.payload);
  if (b == nullptr) {
    diffs.push_back(where + ": " + describe(got) + ", recorded " + describe(want));
    return;
  }
  const auto bytes = comfy::encode_binary(*b);
  const auto type = static_cast<std::int64_t>(bytes.at(3));
  if (type != want.at("event_type").to_number<std::int64_t>()) {
    diffs.push_back(where + ": binary type " + std::to_string(type) + ", recorded " +
                    comfy::dumps(want.at("event_type")));
    return;
  }
  if (const auto* p1 = std::get_if<comfy::PreviewImage>(b)) {
    if (static_cast<std::int64_t>(p1->format) !=
        want.at("image_format").to_number<std::int64_t>()) {
      diffs.push_back(where + ": image format differs");
    }
    if (p1->image.size() < 8 || p1->image[1] != 'P') diffs.push_back(where + ": not a PNG");
  } else if (const auto* t = std::get_if<comfy::ProgressText>(b)) {
    if (t->node_id != want.at("text_node_id").as_string()) {
      diffs.push_back(where + ": text node " + t->node_id);
    }
    if (t->text != want.at("text").as_string())
      diffs.push_back(where + ": text \"" + t->text + "\"");
  } else if (const auto* p4 = std::get_if<comfy::PreviewImageWithMetadata>(b)) {
    compare_shape(want.at("metadata"), json::value(p4->metadata), where + ".metadata", "", opt, diffs);
    if (p4->image.size() < 8 || p4->image[1] != 'P') diffs.push_back(where + ": not a PNG");
  }
}

SimData load_data() {
  auto d = SimData::load_default();
  EXPECT_TRUE(d) << d.error().message;
  return d ? std::move(*d) : SimData{};
}

std::vector<std::string> scenario_names() {
  std::vector<std::string> out;
  for (const auto& s : scenarios()) out.push_back(s.name);
  return out;
}

/// One test per recorded scenario: its runs play in order on one SimState (run2 sees run1's
/// cache), each compared frame by frame and then its history entry.
class SimPlanGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(SimPlanGolden, MatchesTheRecording) {
  const SimData data = load_data();
  const auto all = scenarios();
  const auto it =
      std::find_if(all.begin(), all.end(), [&](const Scenario& s) { return s.name == GetParam(); });
  ASSERT_NE(it, all.end());
  SimState state(data, SimSettings::defaults(data));
  for (const auto& rec : it->runs) {
    SCOPED_TRACE(rec.dir.string());
    const Played played = play(data, state, rec);

    const auto mine = delivered(played, rec);
    std::vector<std::string> diffs;
    const std::size_t n = std::min(mine.size(), rec.frames.size());
    for (std::size_t i = 0; i < n; ++i) {
      compare_frame(rec.frames[i], *mine[i], "frame " + std::to_string(i), diffs);
    }
    if (mine.size() != rec.frames.size()) {
      diffs.push_back(std::to_string(mine.size()) + " frames, recorded " +
                      std::to_string(rec.frames.size()));
      for (std::size_t i = n; i < mine.size(); ++i) diffs.push_back("extra: " + describe(*mine[i]));
      for (std::size_t i = n; i < rec.frames.size(); ++i) {
        diffs.push_back("missing: " + describe(rec.frames[i]));
      }
    }
    EXPECT_TRUE(diffs.empty()) << "WebSocket frames:\n" << join_lines(diffs);

    CompareOptions opt;
    opt.unordered_objects = {"outputs", "meta"};  // Python set order in ComfyUI
    comfy::History h;
    h.entries.push_back(played.history);
    std::vector<std::string> history_diffs;
    compare_shape(rec.history, h.to_json().get_object().begin()->value(), "history", "", opt,
            history_diffs);
    EXPECT_TRUE(history_diffs.empty()) << "history entry:\n" << join_lines(history_diffs);
  }
}

INSTANTIATE_TEST_SUITE_P(Recorded, SimPlanGolden, ::testing::ValuesIn(scenario_names()),
                         [](const ::testing::TestParamInfo<std::string>& param) {
                           return param.param;
                         });

TEST(SimPlanGoldenSet, FindsTheRecordedRuns) {
  const auto all = scenarios();
  std::set<std::string> names;
  std::size_t runs = 0;
  for (const auto& s : all) {
    names.insert(s.name);
    runs += s.runs.size();
  }
  for (const auto* expected :
       {"slow_blur", "branch_two_outputs", "text_outputs", "runtime_error", "interrupt",
        "ws_image_legacy_binary", "ws_image_preview_metadata", "no_client_id"}) {
    EXPECT_TRUE(names.contains(expected)) << expected;
  }
  EXPECT_GE(runs, 14U);
}

TEST(SimPlanGoldenSet, RuntimeErrorDetailsAreTheRecordedOnes) {
  // Beyond types: the node's inputs as ComfyUI printed them (the EmptyImage's colour as a
  // torch tensor) and the executor's traceback frames, byte for byte.
  const SimData data = load_data();
  const auto all = scenarios();
  const auto it = std::find_if(all.begin(), all.end(),
                               [](const Scenario& s) { return s.name == "runtime_error"; });
  ASSERT_NE(it, all.end());
  SimState state(data, SimSettings::defaults(data));
  const Played played = play(data, state, it->runs.front());
  const comfy::ExecutionError* mine = nullptr;
  for (const auto& s : played.steps) {
    if (const auto* e = std::get_if<comfy::Event>(&s.payload)) {
      if (const auto* x = std::get_if<comfy::ExecutionError>(e)) mine = x;
    }
  }
  ASSERT_NE(mine, nullptr);
  const json::object* recorded = nullptr;
  for (const auto& f : it->runs.front().frames) {
    if (f.at("kind").as_string() == "text" &&
        f.at("msg").at("type").as_string() == "execution_error") {
      recorded = &f.at("msg").at("data").as_object();
    }
  }
  ASSERT_NE(recorded, nullptr);
  EXPECT_EQ(mine->current_inputs, recorded->at("current_inputs"));
  EXPECT_EQ(mine->exception_message, recorded->at("exception_message").as_string());
  const auto& frames = recorded->at("traceback").as_array();
  ASSERT_EQ(mine->traceback.size(), frames.size());
  for (std::size_t i = 0; i + 1 < frames.size(); ++i) {
    EXPECT_EQ(mine->traceback[i], frames[i].as_string()) << "frame " << i;
  }
}

TEST(SimPlanGoldenSet, ExecutionOrderIsComfyUIs) {
  const SimData data = load_data();
  // branch_two_outputs (and no_client_id, the same shape) ran 2, 4, 7, 8, 1, 3, 5, 6 with
  // outputs_to_execute ["8", "6"]; text_outputs ran 1 to 7 with ["7", "2", "4"].
  for (const auto& [scenario, want] :
       {std::pair{std::string("branch_two_outputs"),
                  std::vector<std::string>{"2", "4", "7", "8", "1", "3", "5", "6"}},
        std::pair{std::string("text_outputs"),
                  std::vector<std::string>{"1", "2", "3", "4", "5", "6", "7"}}}) {
    SCOPED_TRACE(scenario);
    const auto all = scenarios();
    const auto it =
        std::find_if(all.begin(), all.end(), [&](const Scenario& s) { return s.name == scenario; });
    ASSERT_NE(it, all.end());
    SimState state(data, SimSettings::defaults(data));
    const Played played = play(data, state, it->runs.front());
    std::vector<std::string> order;
    for (const auto& s : played.steps) {
      const auto* e = std::get_if<comfy::Event>(&s.payload);
      const auto* x = e ? std::get_if<comfy::Executing>(e) : nullptr;
      if (x != nullptr && x->node) order.push_back(*x->node);
    }
    EXPECT_EQ(order, want);
  }
}

}  // namespace
}  // namespace comfyfarm::sim
