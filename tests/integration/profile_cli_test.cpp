// `comfyfarm profile` as a process against `comfyfarm sim` (real sockets, the built binary), and
// offline on a recorded real-ComfyUI event log.
//
// Timing tolerance: at --time-scale 0.05 a node's modelled duration (docs/sim-model.md) is
// compared with the measured one within ±(10% of the model + 8 ms). The sim paces steps against
// absolute deadlines, so the error is only the delivery jitter of the two frames that bound a
// node (a few ms on a loaded 2-core machine). A small write held back by Nagle's algorithm costs
// 20-40 ms and fails this check.
#include "support/sim_process.hpp"
#include "support/test_support.hpp"

#include "comfy/json_util.hpp"

#include <boost/json/value.hpp>
#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <string>

namespace comfyfarm {
namespace {

namespace json = boost::json;
using namespace std::chrono_literals;

using test::count_lines;

std::string quote(const std::filesystem::path& p) { return "'" + p.string() + "'"; }

std::filesystem::path workflow(const std::string& name) {
  return test::shared_dir() / "workflows" / name;
}

json::value read_json(const std::filesystem::path& p) {
  auto v = comfy::parse_json(test::read_file(p));
  EXPECT_TRUE(v.has_value()) << p;
  return v ? *v : json::value();
}

void write_file(const std::filesystem::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

const json::object* node_of(const json::value& run, const std::string& id) {
  for (const auto& n : run.at("nodes").as_array()) {
    if (n.at("node_id").as_string() == id) return &n.as_object();
  }
  return nullptr;
}

double number(const json::value& v) { return v.is_double() ? v.as_double() : static_cast<double>(v.to_number<double>()); }

constexpr double kTimeScale = 0.05;

void expect_near_model(double measured_ms, double model_ms, const std::string& what) {
  const double scaled = model_ms * kTimeScale;
  const double tolerance = 0.1 * scaled + 8.0;
  EXPECT_NEAR(measured_ms, scaled, tolerance) << what << ": model " << scaled << " ms";
}

TEST(ProfileCli, ProfilesThreeRunsAgainstTheSim) {
  test::SimProcess sim({"--time-scale", "0.05"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  test::TempDir dir;
  const auto trace = dir.path() / "t.json";
  const auto json_out = dir.path() / "p.json";
  const auto csv = dir.path() / "p.csv";
  auto r = test::run_comfyfarm("profile --server " + sim.url() + " --workflow " +
                      quote(workflow("txt2img_sd15.json")) +
                      " --runs 3 --vary-seed --sample-interval 0.05 --trace " + quote(trace) +
                      " --json " + quote(json_out) + " --csv " + quote(csv));
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  EXPECT_NE(r.out.find("KSampler"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Resources"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("VRAM"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\x1b["), std::string::npos) << "no colour when stdout is not a terminal";

  // The Chrome trace: valid JSON, X slices for the nodes.
  const json::value t = read_json(trace);
  ASSERT_TRUE(t.is_object());
  const auto& events = t.at("traceEvents").as_array();
  bool ksampler_slice = false;
  for (const auto& e : events) {
    const auto& o = e.as_object();
    if (o.at("ph").as_string() == "X" && o.contains("name") &&
        std::string(o.at("name").as_string()).find("KSampler") != std::string::npos) {
      ksampler_slice = true;
    }
  }
  EXPECT_TRUE(ksampler_slice);

  // The JSON: a profile set of three runs; the loader ran cold, then was cached.
  const json::value p = read_json(json_out);
  ASSERT_TRUE(p.is_object());
  EXPECT_EQ(p.at("schema").as_string(), "comfyfarm.profile-set/1");
  const auto& runs = p.at("runs").as_array();
  ASSERT_EQ(runs.size(), 3u);
  for (std::size_t i = 0; i < runs.size(); ++i) {
    EXPECT_EQ(runs[i].at("schema").as_string(), "comfyfarm.profile/1");
    EXPECT_EQ(runs[i].at("outcome").as_string(), "succeeded");
    const auto* loader = node_of(runs[i], "4");
    const auto* sampler = node_of(runs[i], "3");
    ASSERT_NE(loader, nullptr);
    ASSERT_NE(sampler, nullptr);
    EXPECT_EQ(loader->at("status").as_string(), i == 0 ? "completed" : "cached") << "run " << i;
    EXPECT_EQ(sampler->at("status").as_string(), "completed") << "run " << i;
    // KSampler, 512x512, 20 steps, euler, CFG 7: 60 + 190 ms/MP/step x 0.262144 MP x 20.
    expect_near_model(number(sampler->at("duration_ms")), 60.0 + 190.0 * 0.262144 * 20.0,
                      "KSampler run " + std::to_string(i + 1));
    if (i == 0) {
      // The cold checkpoint load: 300 ms + 5 ms residency check + 4,265,146,304 bytes read at
      // 2.5 GB/s. The first node of a prompt is the one a delayed send (Nagle) would shorten.
      expect_near_model(number(loader->at("duration_ms")), 300.0 + 5.0 + 4265146304.0 / 2.5e6,
                        "cold CheckpointLoaderSimple");
    }
  }
  const auto& stats = p.at("system_stats").as_object();
  ASSERT_EQ(stats.at("runs").as_array().size(), 3u);
  const auto& s0 = stats.at("runs").as_array()[0].as_object();
  EXPECT_GE(s0.at("samples").to_number<std::int64_t>(), 1);
  ASSERT_FALSE(s0.at("devices").as_array().empty());
  EXPECT_GT(s0.at("devices").as_array()[0].at("vram_used_peak").to_number<std::int64_t>(), 0);
  EXPECT_FALSE(test::read_file(csv).empty());
}

TEST(ProfileCli, FromTraceAnalysesARecordedRun) {
  const auto run1 = test::fixtures_dir() / "slow_blur" / "run1";
  auto r = test::run_comfyfarm("profile --from-trace " + quote(run1 / "ws.jsonl") + " --workflow " +
                      quote(test::fixtures_dir() / "slow_blur" / "workflow.json"));
  ASSERT_EQ(r.exit_code, 0) << r.err << r.out;
  test::TempDir dir;
  const auto json_out = dir.path() / "p.json";
  r = test::run_comfyfarm("profile --from-trace " + quote(run1 / "ws.jsonl") + " --workflow " +
                 quote(test::fixtures_dir() / "slow_blur" / "workflow.json") + " --json " +
                 quote(json_out));
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const json::value p = read_json(json_out);
  ASSERT_EQ(p.at("runs").as_array().size(), 1u);
  const auto* blur = node_of(p.at("runs").as_array()[0], "2");
  ASSERT_NE(blur, nullptr);
  EXPECT_NEAR(number(blur->at("duration_ms")), 3680.0, 30.0);
  EXPECT_NE(r.out.find("3682.8"), std::string::npos) << r.out;  // 3.68 s, in ms
}

TEST(ProfileCli, ValidationFailureNamesNodeAndInput) {
  test::SimProcess sim({"--time-scale", "0.05"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  test::TempDir dir;
  std::string text = test::read_file(workflow("txt2img_sd15.json"));
  const auto pos = text.find("\"euler\"");
  ASSERT_NE(pos, std::string::npos);
  text.replace(pos, 7, "\"no_such_sampler\"");
  const auto bad = dir.path() / "bad.json";
  write_file(bad, text);
  auto r = test::run_comfyfarm("profile --server " + sim.url() + " --workflow " + quote(bad));
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find("node 3"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("sampler_name"), std::string::npos) << r.err;
  EXPECT_EQ(r.out.find("PROFILE"), std::string::npos) << "no report for a rejected run";
}

TEST(ProfileCli, UnreachableServerIsOneLine) {
  auto r = test::run_comfyfarm("profile --server http://127.0.0.1:1 --workflow " +
                      quote(workflow("txt2img_sd15.json")) + " --timeout 5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("cannot reach"), std::string::npos) << r.err;
}

TEST(ProfileCli, UiFormatWorkflowGetsTheExportHint) {
  test::TempDir dir;
  const auto ui = dir.path() / "ui.json";
  write_file(ui, R"({"last_node_id": 9, "last_link_id": 9, "nodes": [{"id": 3, "type": "KSampler"}],
                    "links": [], "groups": [], "version": 0.4})");
  auto r = test::run_comfyfarm("profile --server http://127.0.0.1:1 --workflow " + quote(ui));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("Save (API Format)"), std::string::npos) << r.err;
}

TEST(ProfileCli, MalformedWorkflowIsOneLine) {
  test::TempDir dir;
  const auto bad = dir.path() / "bad.json";
  write_file(bad, "{\"3\": {\"class_type\": ");
  auto r = test::run_comfyfarm("profile --server http://127.0.0.1:1 --workflow " + quote(bad));
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
}

TEST(ProfileCli, BadFlagExitsTwo) {
  auto r = test::run_comfyfarm("profile --runs 0 --server http://127.0.0.1:1 --workflow x.json");
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

TEST(ProfileCli, CompareReportsARegressionOnASlowerServer) {
  test::TempDir dir;
  const auto baseline = dir.path() / "baseline.json";
  {
    test::SimProcess fast({"--time-scale", "0.05"});
    ASSERT_TRUE(fast.ready()) << fast.log();
    auto r = test::run_comfyfarm("profile --server " + fast.url() + " --workflow " +
                        quote(workflow("txt2img_sd15.json")) + " --runs 2 --vary-seed --json " +
                        quote(baseline));
    ASSERT_EQ(r.exit_code, 0) << r.err;
    // Against itself (same speed): no regression beyond the thresholds.
    r = test::run_comfyfarm("profile --server " + fast.url() + " --workflow " +
                   quote(workflow("txt2img_sd15.json")) +
                   " --runs 2 --vary-seed --threshold-ms 30 --compare " + quote(baseline));
    EXPECT_EQ(r.exit_code, 0) << r.err << r.out;
  }
  test::SimProcess slow({"--time-scale", "0.05", "--speed", "0.5"});
  ASSERT_TRUE(slow.ready()) << slow.log();
  auto r = test::run_comfyfarm("profile --server " + slow.url() + " --workflow " +
                      quote(workflow("txt2img_sd15.json")) +
                      " --runs 2 --vary-seed --threshold-ms 20 --compare " + quote(baseline));
  EXPECT_EQ(r.exit_code, 1) << r.err << r.out;
  EXPECT_NE(r.err.find("regression"), std::string::npos) << r.err;
}

TEST(ProfileCli, AStalledServerIsATimeoutInOneLine) {
  // The server accepts the prompt and never starts it.
  test::SimProcess sim({"--time-scale", "0.05", "--fault", "stall"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  auto r = test::run_comfyfarm("profile --server " + sim.url() + " --workflow " +
                      quote(workflow("model_free_blur.json")) + " --timeout 2");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("timed out after 2 s"), std::string::npos) << r.err;
}

TEST(ProfileCli, ALostSocketIsRecoveredFromTheHistory) {
  // Every WebSocket is closed when the prompt starts: its events are lost, /history tells the
  // outcome.
  test::SimProcess sim({"--time-scale", "0.05", "--fault", "ws-drop"});
  ASSERT_TRUE(sim.ready()) << sim.log();
  test::TempDir dir;
  const auto json_path = dir.path() / "p.json";
  auto r = test::run_comfyfarm("profile --server " + sim.url() + " --workflow " +
                      quote(workflow("model_free_blur.json")) + " --timeout 30 --json " +
                      quote(json_path));
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto doc = read_json(json_path);
  ASSERT_TRUE(doc.is_object()) << r.out;
  const auto& run = doc.at("runs").as_array().at(0);
  EXPECT_EQ(run.at("outcome").as_string(), "succeeded") << comfy::dumps(run);
  // The socket really was dropped mid-prompt, and the history still gave every node's outcome.
  EXPECT_NE(sim.log().find("ws-drop fault: closing"), std::string::npos) << sim.log();
  std::size_t completed = 0;
  for (const auto& n : run.at("nodes").as_array()) {
    completed += n.at("status").as_string() == "completed";
  }
  EXPECT_EQ(completed, 4u) << comfy::dumps(run);
}

}  // namespace
}  // namespace comfyfarm
