// Process tests of `comfyfarm sim`: routes, queue, WebSocket behaviour, VRAM, files, interrupts,
// signals and every fault, each against a freshly started binary over real sockets.
#include "support/sim_process.hpp"

#include "comfy/json_util.hpp"
#include "net/io_runtime.hpp"
#include "sim/png.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace comfyfarm::test {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

json::object workflow(const std::string& name) {
  return load_json(shared_dir() / "workflows" / name).as_object();
}

json::object slow_blur() {
  return load_json(fixtures_dir() / "slow_blur" / "workflow.json").as_object();
}

std::string prompt_body(const json::object& graph, const std::string& client_id,
                        json::object extra = {}) {
  json::object body = std::move(extra);
  body["prompt"] = graph;
  if (!client_id.empty()) body["client_id"] = client_id;
  return comfy::dumps(body);
}

/// POSTs a prompt that must be accepted; its prompt id.
std::string submit(SimHttp& http, const json::object& graph, const std::string& client_id,
                   json::object extra = {}) {
  auto r = http.post("/prompt", prompt_body(graph, client_id, std::move(extra)));
  EXPECT_TRUE(r);
  if (!r) return {};
  EXPECT_EQ(r->status, 200) << r->body;
  auto doc = comfy::parse_json(r->body);
  if (!doc || !doc->is_object() || !doc->get_object().contains("prompt_id")) return {};
  return std::string(doc->at("prompt_id").as_string());
}

/// Polls GET /history/{id} until the entry is there; the entry or null after the deadline.
json::value wait_history(SimHttp& http, const std::string& id,
                         std::chrono::milliseconds deadline = 20s) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    auto h = http.get_json("/history/" + id);
    if (h.is_object() && h.get_object().contains(id)) return h.at(id);
    std::this_thread::sleep_for(10ms);
  }
  ADD_FAILURE() << "no history entry for " << id << " within " << deadline.count() << " ms";
  return nullptr;
}

std::string type_of(const json::value& msg) { return std::string(msg.at("type").as_string()); }

std::int64_t vram_free(SimHttp& http) {
  const auto stats = http.get_json("/system_stats");
  return stats.at("devices").at(0).at("vram_free").to_number<std::int64_t>();
}

std::string multipart(const std::string& boundary,
                      const std::vector<std::pair<std::string, std::string>>& fields,
                      const std::string& filename, const std::string& bytes) {
  std::string b;
  b += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"" +
       filename + "\"\r\nContent-Type: image/png\r\n\r\n" + bytes + "\r\n";
  for (const auto& [k, v] : fields) {
    b += "--" + boundary + "\r\nContent-Disposition: form-data; name=\"" + k + "\"\r\n\r\n" + v +
         "\r\n";
  }
  b += "--" + boundary + "--\r\n";
  return b;
}

std::string png_bytes(std::uint32_t w, std::uint32_t h, std::uint8_t r) {
  const auto png = sim::encode_png(w, h, sim::Rgb{r, 10, 20});
  return std::string(png.begin(), png.end());
}

Result<net::Response> upload(SimHttp& http, const std::string& filename, const std::string& bytes,
                             const std::vector<std::pair<std::string, std::string>>& fields = {}) {
  const std::string boundary = "----comfyfarmtestboundary";
  return http.request(net::Method::kPost, "/upload/image", multipart(boundary, fields, filename, bytes),
                      net::Headers{{"Content-Type", "multipart/form-data; boundary=" + boundary}});
}

struct ProcessResult {
  int exit_code = -1;
  std::string err;
};

ProcessResult run_binary(const std::string& args) {
  TempDir dir;
  const auto err = dir.path() / "err.txt";
  // `timeout` keeps a command that wrongly starts serving from hanging the test.
  const std::string cmd = std::string("timeout 20 '") + COMFYFARM_BINARY + "' " + args + " >/dev/null 2>'" +
                          err.string() + "' </dev/null";
  const int status = std::system(cmd.c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(err)};
}

// ---- command line ----------------------------------------------------------------------------

TEST(SimCli, BadFlagsAreOneLineErrorsWithExitTwo) {
  for (const char* args :
       {"sim --fault frobnicate", "sim --fault oom=2", "sim --count 2 --fault @5:stall",
        "sim --listen nohost", "sim --time-scale -1", "sim --preview-method fancy",
        "sim --models ''", "sim --catalog /no/such/file.json"}) {
    SCOPED_TRACE(args);
    const auto r = run_binary(args);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
}

TEST(SimCli, HelpListsTheFlagsAndTheFaultGrammar) {
  TempDir dir;
  const auto out = dir.path() / "out.txt";
  const std::string cmd = std::string("'") + COMFYFARM_BINARY + "' sim --help >'" + out.string() + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0);
  const std::string help = read_file(out);
  for (const char* flag : {"--listen", "--ready-file", "--count", "--gpu-name", "--vram-gb",
                           "--speed", "--time-scale", "--models", "--catalog", "--fault", "--seed",
                           "--output-dir", "--preview-method", "oom[=P|every:N]", "@I:"}) {
    EXPECT_NE(help.find(flag), std::string::npos) << flag;
  }
}

TEST(SimProcessTest, SigtermStopsGracefullyWithExitZeroAndRemovesTheTempDir) {
  SimProcess sim({"--time-scale", "0.01"});
  ASSERT_TRUE(sim.ready());
  const std::string log = sim.log();
  std::smatch m;
  ASSERT_TRUE(std::regex_search(log, m, std::regex("files under (\\S+)"))) << log;
  const fs::path files = m[1].str();
  EXPECT_TRUE(fs::exists(files / "output"));
  sim.signal(SIGTERM);
  const auto status = sim.wait_exit(10s);
  ASSERT_TRUE(status) << "still running after SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status));
  EXPECT_EQ(WEXITSTATUS(*status), 0) << sim.log();
  EXPECT_FALSE(fs::exists(files));
}

TEST(SimProcessTest, CountThreeGivesThreeIndependentServers) {
  SimProcess sim({"--count", "3", "--time-scale", "0.01"});
  ASSERT_TRUE(sim.ready());
  ASSERT_EQ(sim.servers().size(), 3U);
  const auto& doc = sim.ready_document();
  EXPECT_EQ(doc.at("http").as_string(), sim.servers()[0]);
  EXPECT_EQ(doc.at("pid").to_number<int>(), sim.pid());
  std::set<std::string> distinct(sim.servers().begin(), sim.servers().end());
  EXPECT_EQ(distinct.size(), 3U);

  net::IoRuntime io(1);
  SimHttp s0(io, sim.url(0));
  SimHttp s1(io, sim.url(1));
  SimHttp s2(io, sim.url(2));
  const auto id = submit(s1, workflow("model_free_blur.json"), "c1");
  ASSERT_FALSE(wait_history(s1, id).is_null());
  EXPECT_EQ(s0.get_json("/history"), json::value(json::object()));
  EXPECT_EQ(s2.get_json("/history"), json::value(json::object()));
  // Each server counts its own prompts.
  auto r = s0.post("/prompt", prompt_body(workflow("model_free_blur.json"), "c0"));
  ASSERT_TRUE(r);
  EXPECT_EQ(comfy::parse_json(r->body)->at("number").to_number<int>(), 0);
}

// ---- routes ----------------------------------------------------------------------------------

TEST(SimRoutes, SmallRoutesAndTheApiAlias) {
  SimProcess sim({"--time-scale", "0.01", "--gpu-name", "NVIDIA H100 80GB HBM3", "--vram-gb", "80"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  for (const std::string prefix : {"", "/api"}) {
    SCOPED_TRACE(prefix);
    EXPECT_EQ(comfy::dumps(http.get_json(prefix + "/prompt")),
              R"({"exec_info": {"queue_remaining": 0}})");
    EXPECT_EQ(comfy::dumps(http.get_json(prefix + "/features")),
              R"({"supports_preview_metadata": true, "max_upload_size": 104857600})");
    EXPECT_EQ(http.get_json(prefix + "/embeddings"), json::value(json::array()));
    EXPECT_EQ(http.get_json(prefix + "/extensions"), json::value(json::array()));
    const auto models = http.get_json(prefix + "/models");
    EXPECT_NE(std::find(models.as_array().begin(), models.as_array().end(),
                        json::value("checkpoints")),
              models.as_array().end());
    const auto ckpts = http.get_json(prefix + "/models/checkpoints");
    EXPECT_NE(std::find(ckpts.as_array().begin(), ckpts.as_array().end(),
                        json::value("v1-5-pruned-emaonly.safetensors")),
              ckpts.as_array().end());
    auto missing = http.get(prefix + "/models/no_such_folder");
    ASSERT_TRUE(missing);
    EXPECT_EQ(missing->status, 404);
    EXPECT_EQ(http.get_json(prefix + "/object_info/NoSuchNode"), json::value(json::object()));
    const auto ks = http.get_json(prefix + "/object_info/KSampler");
    EXPECT_TRUE(ks.at("KSampler").at("input").at("required").as_object().contains("steps"));
    const auto all = http.get_json(prefix + "/object_info");
    EXPECT_GE(all.as_object().size(), 30U);
    const auto ckpt_combo = all.at("CheckpointLoaderSimple").at("input").at("required").at("ckpt_name");
    EXPECT_NE(comfy::dumps(ckpt_combo).find("v1-5-pruned-emaonly.safetensors"), std::string::npos);
  }
  const auto stats = http.get_json("/api/system_stats");
  EXPECT_EQ(stats.at("system").at("os").as_string(), "posix");
  EXPECT_EQ(stats.at("system").at("comfyui_version").as_string(), "0.3.64");
  const auto& dev = stats.at("devices").as_array();
  ASSERT_EQ(dev.size(), 1U);
  EXPECT_EQ(dev[0].at("name").as_string(), "cuda:0 NVIDIA H100 80GB HBM3 : cudaMallocAsync");
  EXPECT_EQ(dev[0].at("type").as_string(), "cuda");
  EXPECT_EQ(dev[0].at("vram_total").to_number<std::int64_t>(), 80LL << 30);
  EXPECT_GT(dev[0].at("vram_free").to_number<std::int64_t>(), 70LL << 30);
  // The shape of a real server's /system_stats.
  const auto recorded = load_json(fixtures_dir() / "system_stats.json");
  for (const auto& kv : recorded.at("system").as_object()) {
    EXPECT_TRUE(stats.at("system").as_object().contains(kv.key())) << kv.key();
  }
  for (const auto& kv : recorded.at("devices").at(0).as_object()) {
    EXPECT_TRUE(dev[0].as_object().contains(kv.key())) << kv.key();
  }

  // The WebSocket under /api/ws too; a missing clientId gets a 32-hex sid.
  auto ws = SimWs::connect(io, "ws://" + sim.servers()[0] + "/api/ws");
  ASSERT_TRUE(ws);
  const auto status = ws->read_json();
  ASSERT_TRUE(status);
  const std::string sid(status->at("data").at("sid").as_string());
  EXPECT_TRUE(std::regex_match(sid, std::regex("[0-9a-f]{32}"))) << sid;
}

TEST(SimRoutes, PromptErrorsAndTheNumberCounter) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "stall"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto bad = http.post("/prompt", "{not json");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 500);
  EXPECT_EQ(bad->headers.get("Content-Type").value_or("").rfind("text/plain", 0), 0U);

  auto none = http.post("/prompt", R"({"client_id": "x"})");
  ASSERT_TRUE(none);
  EXPECT_EQ(none->status, 400);
  EXPECT_EQ(none->body,
            R"({"error": {"type": "no_prompt", "message": "No prompt provided", "details": "No prompt provided", "extra_info": {}}, "node_errors": {}})");

  json::object broken = workflow("model_free_blur.json");
  broken["2"].as_object()["inputs"].as_object()["blur_radius"] = 1000;
  auto invalid = http.post("/prompt", prompt_body(broken, "x"));
  ASSERT_TRUE(invalid);
  EXPECT_EQ(invalid->status, 400);
  EXPECT_NE(invalid->body.find("value_bigger_than_max"), std::string::npos) << invalid->body;

  // Both rejected posts consumed a number; the malformed one did not get that far.
  auto ok = http.post("/prompt", prompt_body(workflow("model_free_blur.json"), "x"));
  ASSERT_TRUE(ok);
  EXPECT_EQ(comfy::parse_json(ok->body)->at("number"), json::value(2));

  // A client-chosen prompt_id is honoured.
  json::object extra;
  extra["prompt_id"] = "my-own-id";
  auto mine = http.post("/prompt", prompt_body(workflow("model_free_blur.json"), "x", extra));
  ASSERT_TRUE(mine);
  EXPECT_EQ(comfy::parse_json(mine->body)->at("prompt_id").as_string(), "my-own-id");
}

TEST(SimRoutes, QueueOrderPrioritiesDeleteAndClear) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "stall"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto ws = SimWs::connect(io, sim.ws_url("watcher"));
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->read_json());  // the connect status

  const auto graph = workflow("model_free_blur.json");
  const auto a = submit(http, graph, "c");  // number 0
  json::object front;
  front["front"] = true;
  const auto b = submit(http, graph, "c", front);  // -1
  json::object explicit_number;
  explicit_number["number"] = 0.5;
  auto rc = http.post("/prompt", prompt_body(graph, "c", explicit_number));
  ASSERT_TRUE(rc);
  const auto c_reply = comfy::parse_json(rc->body);
  EXPECT_NE(rc->body.find("\"number\": 0.5"), std::string::npos) << rc->body;
  const std::string c(c_reply->at("prompt_id").as_string());

  auto queue = http.get_json("/queue");
  const auto& pending = queue.at("queue_pending").as_array();
  ASSERT_EQ(pending.size(), 3U);
  EXPECT_EQ(pending[0].at(1).as_string(), b);
  EXPECT_EQ(pending[1].at(1).as_string(), a);
  EXPECT_EQ(pending[2].at(1).as_string(), c);
  EXPECT_EQ(pending[0].at(0), json::value(-1));
  EXPECT_EQ(pending[0].as_array().size(), 5U);
  EXPECT_EQ(pending[0].at(3), json::value(json::object{{"client_id", "c"}}));
  EXPECT_TRUE(queue.at("queue_running").as_array().empty());

  // Three enqueue broadcasts: 1, 2, 3.
  for (int want = 1; want <= 3; ++want) {
    const auto s = ws->read_json();
    ASSERT_TRUE(s);
    EXPECT_EQ(s->at("data").at("status").at("exec_info").at("queue_remaining"), json::value(want));
  }
  auto del = http.post("/queue", comfy::dumps(json::object{{"delete", json::array{json::value(a)}}}));
  ASSERT_TRUE(del);
  EXPECT_EQ(del->status, 200);
  EXPECT_TRUE(del->body.empty());
  EXPECT_EQ(http.get_json("/queue").at("queue_pending").as_array().size(), 2U);
  EXPECT_EQ(ws->read_json()->at("data").at("status").at("exec_info").at("queue_remaining"),
            json::value(2));
  ASSERT_TRUE(http.post("/queue", R"({"clear": true})"));
  EXPECT_TRUE(http.get_json("/queue").at("queue_pending").as_array().empty());
  EXPECT_EQ(ws->read_json()->at("data").at("status").at("exec_info").at("queue_remaining"),
            json::value(0));
}

TEST(SimRoutes, HistoryWindowsDeleteAndClear) {
  SimProcess sim({"--time-scale", "0"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  std::vector<std::string> ids;
  for (int i = 0; i < 4; ++i) {
    json::object g = workflow("model_free_blur.json");
    g["1"].as_object()["inputs"].as_object()["color"] = i;  // not cached: each one runs
    ids.push_back(submit(http, g, ""));
    ASSERT_FALSE(wait_history(http, ids.back()).is_null());
  }
  auto keys = [](const json::value& v) {
    std::vector<std::string> out;
    for (const auto& kv : v.as_object()) out.emplace_back(kv.key());
    return out;
  };
  EXPECT_EQ(keys(http.get_json("/history")), ids);
  EXPECT_EQ(keys(http.get_json("/history?max_items=2")), (std::vector{ids[2], ids[3]}));
  EXPECT_EQ(keys(http.get_json("/history?max_items=2&offset=1")), (std::vector{ids[1], ids[2]}));
  EXPECT_EQ(keys(http.get_json("/history?offset=9")), std::vector<std::string>{});
  auto bad = http.get("/history?max_items=x");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 500);
  ASSERT_TRUE(http.post("/history", comfy::dumps(json::object{{"delete", json::array{json::value(ids[0])}}})));
  EXPECT_EQ(http.get_json("/history/" + ids[0]), json::value(json::object()));
  ASSERT_TRUE(http.post("/history", R"({"clear": true})"));
  EXPECT_EQ(http.get_json("/history"), json::value(json::object()));
}

TEST(SimFiles, ViewServesARealPngAndAppliesComfyUIsRules) {
  SimProcess sim({"--time-scale", "0.01"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  const auto id = submit(http, workflow("model_free_blur.json"), "c");
  const auto entry = wait_history(http, id);
  ASSERT_FALSE(entry.is_null());
  const auto& image = entry.at("outputs").at("4").at("images").at(0);
  const std::string name(image.at("filename").as_string());
  EXPECT_EQ(name, "model_free_blur_00001_.png");
  EXPECT_EQ(image.at("type").as_string(), "output");

  for (const std::string prefix : {"", "/api"}) {
    auto r = http.get(prefix + "/view?filename=" + name + "&type=output&subfolder=");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(r->headers.get("Content-Type").value_or(""), "image/png");
    EXPECT_EQ(r->headers.get("Content-Disposition").value_or(""), "filename=\"" + name + "\"");
    const std::string& png = r->body;
    ASSERT_GE(png.size(), 33U);
    EXPECT_EQ(png.substr(0, 8), std::string("\x89PNG\r\n\x1a\n", 8));
    EXPECT_EQ(png.substr(12, 4), "IHDR");
    auto be32 = [&](std::size_t at) {
      return (static_cast<std::uint32_t>(static_cast<unsigned char>(png[at])) << 24) |
             (static_cast<std::uint32_t>(static_cast<unsigned char>(png[at + 1])) << 16) |
             (static_cast<std::uint32_t>(static_cast<unsigned char>(png[at + 2])) << 8) |
             static_cast<std::uint32_t>(static_cast<unsigned char>(png[at + 3]));
    };
    EXPECT_EQ(be32(16), 512U);
    EXPECT_EQ(be32(20), 512U);
    EXPECT_NE(png.find("tEXtprompt"), std::string::npos);  // SaveImage's metadata
  }
  auto status_of = [&](const std::string& target) {
    auto r = http.get(target);
    return r ? r->status : -1;
  };
  EXPECT_EQ(status_of("/view"), 404);
  EXPECT_EQ(status_of("/view?filename="), 400);
  EXPECT_EQ(status_of("/view?filename=/etc/passwd"), 400);
  EXPECT_EQ(status_of("/view?filename=..%2Fx.png"), 400);
  EXPECT_EQ(status_of("/view?filename=" + name + "&type=secret"), 400);
  EXPECT_EQ(status_of("/view?filename=" + name + "&subfolder=../../etc"), 403);
  EXPECT_EQ(status_of("/view?filename=nope.png"), 404);
  EXPECT_EQ(status_of("/view?filename=" + name + "&type=input"), 404);
  EXPECT_EQ(status_of("/view?filename=" + name + "%20%5Boutput%5D&type=input"), 200);
}

TEST(SimFiles, UploadThenLoadImageValidatesAndRuns) {
  TempDir out;
  SimProcess sim({"--time-scale", "0.01", "--output-dir", out.path().string()});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  json::object graph;
  graph["1"] = json::object{{"class_type", "LoadImage"},
                            {"inputs", json::object{{"image", "example.png"}}}};
  graph["2"] = json::object{{"class_type", "SaveImage"},
                            {"inputs", json::object{{"images", json::array{"1", 0}},
                                                    {"filename_prefix", "loaded"}}}};
  auto before = http.post("/prompt", prompt_body(graph, "c"));
  ASSERT_TRUE(before);
  EXPECT_EQ(before->status, 400);
  EXPECT_NE(before->body.find("custom_validation_failed"), std::string::npos) << before->body;
  EXPECT_NE(before->body.find("Invalid image file: example.png"), std::string::npos) << before->body;

  const std::string first = png_bytes(64, 48, 200);
  auto up = upload(http, "example.png", first);
  ASSERT_TRUE(up);
  ASSERT_EQ(up->status, 200) << up->body;
  EXPECT_EQ(up->body, R"({"name": "example.png", "subfolder": "", "type": "input"})");
  EXPECT_TRUE(fs::exists(out.path() / "input" / "example.png"));
  // The same bytes again: the file is reused; other bytes: a new name.
  auto same = upload(http, "example.png", first);
  ASSERT_TRUE(same);
  EXPECT_EQ(comfy::parse_json(same->body)->at("name").as_string(), "example.png");
  auto other = upload(http, "example.png", png_bytes(64, 48, 10));
  ASSERT_TRUE(other);
  EXPECT_EQ(comfy::parse_json(other->body)->at("name").as_string(), "example (1).png");
  auto overwrite = upload(http, "example.png", png_bytes(64, 48, 30), {{"overwrite", "true"}});
  ASSERT_TRUE(overwrite);
  EXPECT_EQ(comfy::parse_json(overwrite->body)->at("name").as_string(), "example.png");
  auto bad_type = upload(http, "x.png", first, {{"type", "elsewhere"}});
  ASSERT_TRUE(bad_type);
  EXPECT_EQ(bad_type->status, 500);
  auto escape = upload(http, "x.png", first, {{"subfolder", "../.."}});
  ASSERT_TRUE(escape);
  EXPECT_EQ(escape->status, 400);

  const auto info = http.get_json("/object_info/LoadImage");
  EXPECT_EQ(comfy::dumps(info.at("LoadImage").at("input").at("required").at("image").at(0)),
            R"(["example (1).png", "example.png"])");

  const auto id = submit(http, graph, "c");
  const auto entry = wait_history(http, id);
  ASSERT_FALSE(entry.is_null());
  EXPECT_EQ(entry.at("status").at("status_str").as_string(), "success");
  // The saved image has the uploaded image's size.
  auto r = http.get("/view?filename=loaded_00001_.png");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  ASSERT_GE(r->body.size(), 24U);
  EXPECT_EQ(static_cast<unsigned char>(r->body[19]), 64);
  EXPECT_EQ(static_cast<unsigned char>(r->body[23]), 48);
}

// ---- VRAM ------------------------------------------------------------------------------------

TEST(SimVram, SystemStatsShowsTheCheckpointAndFreeGivesItBack) {
  SimProcess sim({"--time-scale", "0.01"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  const auto idle = vram_free(http);
  const auto id = submit(http, workflow("txt2img_sd15.json"), "c");
  const auto entry = wait_history(http, id);
  ASSERT_FALSE(entry.is_null());
  EXPECT_EQ(entry.at("status").at("status_str").as_string(), "success");
  const auto loaded = vram_free(http);
  EXPECT_LT(loaded, idle - (1LL << 30)) << "an SD1.5 checkpoint holds about 2 GB";
  auto state = http.get_json("/sim/state");
  EXPECT_FALSE(state.at("vram").at("resident").as_array().empty());
  auto r = http.post("/free", R"({"unload_models": true})");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_TRUE(r->body.empty());
  EXPECT_EQ(vram_free(http), idle);
}

TEST(SimVram, TooSmallACardFailsWithComfyUIsOutOfMemoryError) {
  SimProcess sim({"--time-scale", "0.01", "--vram-gb", "2"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto ws = SimWs::connect(io, sim.ws_url("c"));
  ASSERT_TRUE(ws);
  submit(http, workflow("txt2img_sd15.json"), "c");
  const auto error = ws->read_until("execution_error");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->at("data").at("exception_type").as_string(), "torch.OutOfMemoryError");
}

// ---- WebSocket -------------------------------------------------------------------------------

TEST(SimWebSocket, ReconnectGetsTheRunningNodeAndTheRestOfThePrompt) {
  SimProcess sim({"--time-scale", "200"});  // node 2 runs about 1.2 s
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto first = SimWs::connect(io, sim.ws_url("rc"));
  ASSERT_TRUE(first);
  const auto id = submit(http, slow_blur(), "rc");
  for (;;) {
    const auto m = first->read_until("executing");
    ASSERT_TRUE(m);
    if (m->at("data").at("node") == json::value("2")) break;
  }
  auto second = SimWs::connect(io, sim.ws_url("rc"));
  ASSERT_TRUE(second);
  const auto status = second->read_json();
  ASSERT_TRUE(status);
  EXPECT_EQ(comfy::dumps(*status),
            R"({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}, "sid": "rc"}})");
  const auto executing = second->read_json();
  ASSERT_TRUE(executing);
  EXPECT_EQ(comfy::dumps(*executing), R"({"type": "executing", "data": {"node": "2"}})");
  // The rest goes to the new socket only (ComfyUI keeps the last socket of a client id).
  const auto next = second->read_until("executing");
  ASSERT_TRUE(next);
  EXPECT_EQ(comfy::dumps(next->at("data")),
            R"({"node": "3", "display_node": "3", "prompt_id": ")" + id + "\"}");
  const auto old = first->read(100ms);
  EXPECT_FALSE(old) << old->data;
}

TEST(SimWebSocket, FeatureFlagsSelectTypeFourPreviews) {
  SimProcess sim({"--time-scale", "0.01"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  const auto graph = load_json(fixtures_dir() / "ws_image_legacy_binary" / "workflow.json").as_object();
  for (const bool negotiate : {false, true}) {
    SCOPED_TRACE(negotiate);
    const std::string cid = negotiate ? "meta" : "legacy";
    auto ws = SimWs::connect(io, sim.ws_url(cid));
    ASSERT_TRUE(ws);
    if (negotiate) ws->send_text(R"({"type": "feature_flags", "data": {"supports_preview_metadata": true}})");
    ASSERT_TRUE(ws->read_json());  // status
    if (negotiate) {
      const auto flags = ws->read_json();
      ASSERT_TRUE(flags);
      EXPECT_EQ(comfy::dumps(*flags),
                R"({"type": "feature_flags", "data": {"supports_preview_metadata": true, "max_upload_size": 104857600}})");
    }
    json::object g = graph;
    g["1"].as_object()["inputs"].as_object()["color"] = negotiate ? 1 : 2;
    submit(http, g, cid);
    ASSERT_TRUE(ws->read_until("execution_success"));
    ASSERT_EQ(ws->binaries().size(), 2U);
    for (const auto& b : ws->binaries()) {
      ASSERT_GE(b.size(), 8U);
      EXPECT_EQ(static_cast<unsigned char>(b[3]), negotiate ? 4 : 1);
    }
  }
}

// ---- interrupt -------------------------------------------------------------------------------

TEST(SimInterrupt, ByPromptIdOnlyStopsThatPromptAndGlobalStopsTheRunningOne) {
  SimProcess sim({"--time-scale", "100"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto ws = SimWs::connect(io, sim.ws_url("int"));
  ASSERT_TRUE(ws);
  // An interrupt while idle does not touch the next prompt.
  ASSERT_TRUE(http.request(net::Method::kPost, "/interrupt"));
  const auto id = submit(http, slow_blur(), "int");
  auto wait_node = [&](const std::string& node) {
    for (;;) {
      const auto m = ws->read_until("executing");
      if (!m) return false;
      if (m->at("data").at("node") == json::value(node)) return true;
    }
  };
  ASSERT_TRUE(wait_node("2"));
  auto other = http.post("/interrupt", R"({"prompt_id": "someone-else"})");
  ASSERT_TRUE(other);
  EXPECT_EQ(other->status, 200);
  ASSERT_TRUE(wait_node("3"));  // the other id did nothing
  auto mine = http.post("/interrupt", comfy::dumps(json::object{{"prompt_id", id}}));
  ASSERT_TRUE(mine);
  EXPECT_EQ(mine->status, 200);
  const auto stopped = ws->read_until("execution_interrupted");
  ASSERT_TRUE(stopped);
  EXPECT_EQ(stopped->at("data").at("node_id").as_string(), "4");
  EXPECT_EQ(comfy::dumps(stopped->at("data").at("executed")), R"(["1", "2", "3"])");
  const auto entry = wait_history(http, id);
  EXPECT_EQ(entry.at("status").at("status_str").as_string(), "error");
  EXPECT_FALSE(entry.at("status").at("completed").as_bool());

  // Global, without a body.
  json::object g = slow_blur();
  g["4"].as_object()["inputs"].as_object()["filename_prefix"] = "second";
  g["1"].as_object()["inputs"].as_object()["color"] = 5;
  const auto id2 = submit(http, g, "int");
  ASSERT_TRUE(wait_node("2"));
  ASSERT_TRUE(http.request(net::Method::kPost, "/interrupt"));
  const auto stopped2 = ws->read_until("execution_interrupted");
  ASSERT_TRUE(stopped2);
  EXPECT_EQ(stopped2->at("data").at("prompt_id").as_string(), id2);
  EXPECT_EQ(stopped2->at("data").at("node_id").as_string(), "3");
}

// ---- faults ----------------------------------------------------------------------------------

TEST(SimFaults, OomRaisesTorchOutOfMemoryInTheSampler) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "oom=every:1"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto ws = SimWs::connect(io, sim.ws_url("o"));
  ASSERT_TRUE(ws);
  const auto id = submit(http, workflow("txt2img_sd15.json"), "o");
  const auto error = ws->read_until("execution_error");
  ASSERT_TRUE(error);
  const auto& d = error->at("data");
  EXPECT_EQ(d.at("exception_type").as_string(), "torch.OutOfMemoryError");
  EXPECT_EQ(d.at("node_type").as_string(), "KSampler");
  EXPECT_EQ(d.at("node_id").as_string(), "3");
  for (const char* k : {"executed", "exception_message", "traceback", "current_inputs",
                        "current_outputs", "timestamp"}) {
    EXPECT_TRUE(d.as_object().contains(k)) << k;
  }
  const auto end = ws->read_until("executing");
  ASSERT_TRUE(end);
  EXPECT_TRUE(end->at("data").at("node").is_null());
  const auto entry = wait_history(http, id);
  EXPECT_EQ(entry.at("status").at("status_str").as_string(), "error");
  // ComfyUI unloads every model after an out-of-memory error.
  EXPECT_TRUE(http.get_json("/sim/state").at("vram").at("resident").as_array().empty());
}

TEST(SimFaults, FaultsChangeAtRunTimeThroughSimFaults) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "http-latency=5"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  EXPECT_EQ(comfy::dumps(http.get_json("/sim/faults")),
            R"({"server": 0, "faults": {"http-latency": 5}, "specs": ["http-latency=5"]})");
  auto bad = http.post("/sim/faults", R"({"oom": "sometimes"})");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->status, 400);
  auto set = http.post("/sim/faults", R"({"oom": "every:2", "node-error": ["VAEDecode"]})");
  ASSERT_TRUE(set);
  EXPECT_EQ(set->status, 200) << set->body;
  EXPECT_EQ(comfy::dumps(comfy::parse_json(set->body)->at("specs")),
            R"(["oom=every:2", "http-latency=5", "node-error=VAEDecode"])");
  auto replace = http.post("/sim/faults", R"({"mode": "replace", "specs": ["stall"]})");
  ASSERT_TRUE(replace);
  EXPECT_EQ(comfy::dumps(comfy::parse_json(replace->body)->at("specs")), R"(["stall"])");
  auto cleared = http.request(net::Method::kDelete, "/sim/faults");
  ASSERT_TRUE(cleared);
  EXPECT_EQ(comfy::dumps(comfy::parse_json(cleared->body)->at("faults")), "{}");

  // oom=every:2 at run time: the first sampler runs, the second fails.
  ASSERT_TRUE(http.post("/sim/faults", R"({"oom": "every:2"})"));
  auto ws = SimWs::connect(io, sim.ws_url("f"));
  ASSERT_TRUE(ws);
  json::object g = workflow("txt2img_sd15.json");
  submit(http, g, "f");
  ASSERT_TRUE(ws->read_until("execution_success"));
  g["3"].as_object()["inputs"].as_object()["seed"] = 7;
  submit(http, g, "f");
  const auto error = ws->read_until("execution_error");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->at("data").at("exception_type").as_string(), "torch.OutOfMemoryError");
}

TEST(SimFaults, CrashKillsTheProcessWhileAPromptRuns) {
  TempDir out;
  SimProcess sim({"--time-scale", "0.01", "--fault", "crash=after:1", "--output-dir",
                  out.path().string()});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto ws = SimWs::connect(io, sim.ws_url("k"));
  ASSERT_TRUE(ws);
  const auto first = submit(http, workflow("model_free_blur.json"), "k");
  ASSERT_FALSE(wait_history(http, first).is_null());  // after:1: the first prompt is spared
  json::object g = workflow("model_free_blur.json");
  g["1"].as_object()["inputs"].as_object()["color"] = 1;
  const auto second = submit(http, g, "k");
  const auto status = sim.wait_exit(20s);
  ASSERT_TRUE(status) << "the simulator did not die";
  EXPECT_TRUE(WIFSIGNALED(*status));
  EXPECT_EQ(WTERMSIG(*status), SIGKILL);
  EXPECT_NE(sim.log().find("crash fault"), std::string::npos) << sim.log();
  // It died mid-prompt: the socket saw the start and no end.
  bool started = false;
  bool ended = false;
  while (auto m = ws->read_json(2s)) {
    const auto* data = m->at("data").as_object().if_contains("prompt_id");
    if (data == nullptr || *data != json::value(second)) continue;
    started = started || type_of(*m) == "execution_start";
    ended = ended || type_of(*m) == "execution_success";
  }
  EXPECT_TRUE(started);
  EXPECT_FALSE(ended);
  EXPECT_TRUE(ws->closed());
}

TEST(SimFaults, StallKeepsThePromptPendingUntilLifted) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "stall"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto ws = SimWs::connect(io, sim.ws_url("s"));
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->read_json());
  const auto id = submit(http, workflow("model_free_blur.json"), "s");
  const auto queued = ws->read_json();
  ASSERT_TRUE(queued);
  EXPECT_EQ(type_of(*queued), "status");
  EXPECT_FALSE(ws->read(300ms)) << "the stalled prompt must not start";
  const auto queue = http.get_json("/queue");
  ASSERT_EQ(queue.at("queue_pending").as_array().size(), 1U);
  EXPECT_EQ(queue.at("queue_pending").at(0).at(1).as_string(), id);
  EXPECT_EQ(comfy::dumps(http.get_json("/prompt")), R"({"exec_info": {"queue_remaining": 1}})");
  ASSERT_TRUE(http.request(net::Method::kDelete, "/sim/faults"));
  ASSERT_TRUE(ws->read_until("execution_success"));
}

TEST(SimFaults, WsSilenceStopsMessagesButThePromptFinishes) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "ws-silence"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto ws = SimWs::connect(io, sim.ws_url("q"));
  ASSERT_TRUE(ws);
  ASSERT_TRUE(ws->read_json());
  const auto id = submit(http, workflow("model_free_blur.json"), "q");
  ASSERT_TRUE(ws->read_until("execution_start"));
  const auto entry = wait_history(http, id);
  ASSERT_FALSE(entry.is_null());
  EXPECT_EQ(entry.at("status").at("status_str").as_string(), "success");
  // The prompt is over: nothing came after execution_start, and the socket is still open.
  const auto extra = ws->read(100ms);
  EXPECT_FALSE(extra) << extra->data;
  std::vector<std::string> types;
  for (const auto& m : ws->seen()) types.push_back(type_of(m));
  EXPECT_EQ(types, (std::vector<std::string>{"status", "status", "execution_start"}));
  EXPECT_FALSE(ws->closed());
}

TEST(SimFaults, WsDropClosesSocketsOnPromptStartAndOnRequest) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "ws-drop"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto ws = SimWs::connect(io, sim.ws_url("d"));
  ASSERT_TRUE(ws);
  const auto id = submit(http, workflow("model_free_blur.json"), "d");
  while (ws->read_json(5s)) {
  }
  EXPECT_TRUE(ws->closed());
  EXPECT_FALSE(wait_history(http, id).is_null());  // the prompt itself runs on

  ASSERT_TRUE(http.request(net::Method::kDelete, "/sim/faults"));
  auto again = SimWs::connect(io, sim.ws_url("d"));
  ASSERT_TRUE(again);
  ASSERT_TRUE(again->read_json());
  ASSERT_TRUE(http.post("/sim/faults", R"({"ws-drop": "now"})"));
  while (again->read_json(5s)) {
  }
  EXPECT_TRUE(again->closed());
}

TEST(SimFaults, HttpLatencyDelaysEveryReply) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "http-latency=400"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  for (const char* target : {"/prompt", "/queue", "/system_stats"}) {
    const auto start = std::chrono::steady_clock::now();
    auto r = http.get(target);
    const auto took = std::chrono::steady_clock::now() - start;
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_GE(took, 400ms) << target;
  }
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(http.get("/sim/faults"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms) << "/sim/faults is not delayed";
}

TEST(SimFaults, HttpErrorAnswers503AtTheGivenRate) {
  SimProcess sim({"--time-scale", "0.01", "--count", "2", "--seed", "7", "--fault",
                  "@0:http-error=1", "--fault", "@1:http-error=0.5"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp always(io, sim.url(0));
  SimHttp half(io, sim.url(1));
  for (int i = 0; i < 5; ++i) {
    auto r = always.get("/prompt");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 503);
  }
  int errors = 0;
  for (int i = 0; i < 60; ++i) {
    auto r = half.get("/prompt");
    ASSERT_TRUE(r);
    errors += r->status == 503;
  }
  EXPECT_GT(errors, 10);
  EXPECT_LT(errors, 50);
}

TEST(SimFaults, TargetedFaultHitsOnlyItsServer) {
  SimProcess sim({"--time-scale", "0.01", "--count", "2", "--fault", "@1:http-error=1"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp s0(io, sim.url(0));
  SimHttp s1(io, sim.url(1));
  EXPECT_EQ(s0.get("/prompt")->status, 200);
  EXPECT_EQ(s1.get("/prompt")->status, 503);
  // /sim/faults on one port changes only that server.
  ASSERT_TRUE(s0.post("/sim/faults", R"({"stall": true})"));
  EXPECT_EQ(comfy::dumps(s0.get_json("/sim/faults").at("specs")), R"(["stall"])");
  EXPECT_EQ(comfy::dumps(s1.get_json("/sim/faults").at("specs")), R"(["http-error=1"])");
}

TEST(SimFaults, SlowObjectInfoDelaysOnlyObjectInfo) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "slow-object-info=400"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  for (const char* target : {"/object_info", "/object_info/KSampler"}) {
    const auto start = std::chrono::steady_clock::now();
    auto r = http.get(target);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_GE(std::chrono::steady_clock::now() - start, 400ms) << target;
  }
  const auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(http.get("/prompt"));
  EXPECT_LT(std::chrono::steady_clock::now() - start, 300ms);
}

TEST(SimFaults, NodeErrorRaisesInThatClass) {
  SimProcess sim({"--time-scale", "0.01", "--fault", "node-error=ImageInvert"});
  ASSERT_TRUE(sim.ready());
  net::IoRuntime io(1);
  SimHttp http(io, sim.url());
  auto ws = SimWs::connect(io, sim.ws_url("n"));
  ASSERT_TRUE(ws);
  const auto id = submit(http, workflow("model_free_blur.json"), "n");
  const auto error = ws->read_until("execution_error");
  ASSERT_TRUE(error);
  const auto& d = error->at("data");
  EXPECT_EQ(d.at("node_id").as_string(), "3");
  EXPECT_EQ(d.at("node_type").as_string(), "ImageInvert");
  EXPECT_EQ(d.at("exception_type").as_string(), "RuntimeError");
  EXPECT_EQ(comfy::dumps(d.at("executed")), R"(["1", "2"])");
  const auto entry = wait_history(http, id);
  EXPECT_EQ(entry.at("status").at("status_str").as_string(), "error");
  EXPECT_EQ(entry.at("outputs"), json::value(json::object()));
}

}  // namespace
}  // namespace comfyfarm::test
