#include "support/farm_test_util.hpp"

#include "comfy/json_util.hpp"
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <thread>

namespace comfyfarm::test {

namespace fs = std::filesystem;
namespace json = boost::json;

// ---- workflows and flags -------------------------------------------------------------------------

const std::vector<std::string>& checkpoints() {
  static const std::vector<std::string> names{"farm-a.safetensors", "farm-b.safetensors",
                                              "farm-c.safetensors", "farm-d.safetensors"};
  return names;
}

std::string models_flag() {
  std::string out;
  for (const auto& c : checkpoints()) out += (out.empty() ? "" : ",") + c;
  return out;
}

std::vector<std::string> sim_args(const std::string& time_scale, std::vector<std::string> more) {
  std::vector<std::string> out{"--time-scale", time_scale, "--models", models_flag(), "--log-level", "warn"};
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

json::object txt2img_sd15(int i, std::int64_t seed, const std::string& prefix) {
  static const json::object base = load_json(shared_dir() / "workflows" / "txt2img_sd15.json").as_object();
  json::object g = base;
  g["4"].as_object()["inputs"].as_object()["ckpt_name"] = checkpoints()[static_cast<std::size_t>(i) % 4];
  g["3"].as_object()["inputs"].as_object()["seed"] = seed;
  g["9"].as_object()["inputs"].as_object()["filename_prefix"] = prefix;
  return g;
}

std::vector<std::string> farm_args(const ServeFlags& defaults, const std::vector<Backend>& backends,
                                   std::vector<std::string> more) {
  std::vector<std::string> out;
  for (const auto& [flag, value] : defaults) {
    if (std::find(more.begin(), more.end(), flag) != more.end()) continue;
    out.push_back(flag);
    out.push_back(value);
  }
  for (const auto& b : backends) {
    out.emplace_back("--backend");
    out.push_back(b.id + "=" + b.url);
  }
  out.insert(out.end(), more.begin(), more.end());
  return out;
}

// ---- JSON ------------------------------------------------------------------------------------------

json::value parse(const std::string& text) {
  auto doc = comfy::parse_json(text);
  EXPECT_TRUE(doc) << text;
  return doc ? *doc : json::value(nullptr);
}

std::string str(const json::value& v, std::string_view key) {
  if (!v.is_object()) return {};
  const auto* x = v.get_object().if_contains(key);
  return x != nullptr && x->is_string() ? std::string(x->get_string()) : std::string();
}

std::int64_t num(const json::value& v, std::string_view key) {
  if (!v.is_object()) return -1;
  const auto* x = v.get_object().if_contains(key);
  return x != nullptr && x->is_number() ? x->to_number<std::int64_t>() : -1;
}

// ---- prompts and jobs ------------------------------------------------------------------------------

std::string prompt_body(const json::object& graph, const std::string& client_id) {
  json::object body;
  body["prompt"] = graph;
  if (!client_id.empty()) body["client_id"] = client_id;
  return comfy::dumps(body);
}

std::string submit(SimHttp& http, const json::object& graph, const std::string& client_id) {
  auto r = http.post("/prompt", prompt_body(graph, client_id));
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  if (!r) return {};
  EXPECT_EQ(r->status, 200) << r->body;
  auto doc = comfy::parse_json(r->body);
  if (r->status != 200 || !doc || !doc->is_object() || !doc->get_object().contains("prompt_id")) return {};
  return std::string(doc->at("prompt_id").as_string());
}

bool terminal(const std::string& state) {
  return state == "succeeded" || state == "failed" || state == "cancelled";
}

std::map<std::string, json::value> wait_jobs_ended(SimHttp& farm, const std::vector<std::string>& ids,
                                                   std::chrono::milliseconds deadline,
                                                   std::chrono::milliseconds poll) {
  std::map<std::string, json::value> done;
  const auto end = std::chrono::steady_clock::now() + deadline;
  std::set<std::string> pending(ids.begin(), ids.end());
  std::map<std::string, std::string> last_state;
  while (!pending.empty() && std::chrono::steady_clock::now() < end) {
    for (auto it = pending.begin(); it != pending.end();) {
      auto r = farm.get("/api/farm/jobs/" + *it);
      if (r && r->status == 200) {
        auto doc = parse(r->body);
        last_state[*it] = str(doc, "state");
        if (terminal(str(doc, "state"))) {
          done[*it] = std::move(doc);
          it = pending.erase(it);
          continue;
        }
      }
      ++it;
    }
    if (!pending.empty()) std::this_thread::sleep_for(poll);
  }
  if (!pending.empty()) {
    std::string list;
    for (const auto& id : pending) list += "\n  " + id + " (" + last_state[id] + ")";
    ADD_FAILURE() << pending.size() << " job(s) not ended within " << deadline.count() << " ms:" << list;
  }
  return done;
}

bool wait_queue_empty(SimHttp& server, std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  json::value q;
  while (std::chrono::steady_clock::now() < end) {
    q = server.get_json("/queue");
    if (q.is_object() && q.at("queue_running").as_array().empty() &&
        q.at("queue_pending").as_array().empty()) {
      return true;
    }
    std::this_thread::sleep_for(20ms);
  }
  ADD_FAILURE() << "the queue is still busy: " << comfy::dumps(q);
  return false;
}

std::vector<std::string> outcomes(const json::value& job) {
  std::vector<std::string> out;
  for (const auto& a : job.at("attempts").as_array()) out.push_back(str(a, "outcome"));
  return out;
}

std::string describe_attempts(const json::value& job) {
  std::string s;
  if (!job.is_object() || !job.get_object().contains("attempts")) return comfy::dumps(job);
  for (const auto& a : job.at("attempts").as_array()) {
    s += "[" + str(a, "backend") + ": " + str(a, "outcome") + "] ";
  }
  return s;
}

// ---- the sims' own records -------------------------------------------------------------------------

Rendered rendered(net::IoRuntime& io, const std::vector<std::string>& urls) {
  Rendered out;
  for (const auto& url : urls) {
    SimHttp http(io, url);
    const auto h = http.get_json("/history");
    if (!h.is_object()) continue;
    for (const auto& [id, entry] : h.get_object()) {
      out.entries[std::string(id)]++;
      if (str(entry.at("status"), "status_str") == "success") out.successes[std::string(id)]++;
    }
  }
  return out;
}

int files_with_prefix(const std::vector<fs::path>& dirs, const std::string& prefix) {
  int n = 0;
  for (const auto& d : dirs) {
    std::error_code ec;
    for (fs::recursive_directory_iterator it(d, ec), end; !ec && it != end; it.increment(ec)) {
      if (it->is_regular_file() && it->path().filename().string().starts_with(prefix + "_")) ++n;
    }
  }
  return n;
}

// ---- WebSocket messages ----------------------------------------------------------------------------

std::vector<json::value> prompt_messages(SimWs& ws, const std::string& prompt_id,
                                         std::chrono::milliseconds deadline, std::chrono::milliseconds linger) {
  std::vector<json::value> out;
  auto for_prompt = [&](const json::value& m) {
    const auto* data = m.is_object() ? m.get_object().if_contains("data") : nullptr;
    return data != nullptr && data->is_object() && str(*data, "prompt_id") == prompt_id;
  };
  const auto end = std::chrono::steady_clock::now() + deadline;
  bool ended = false;
  while (!ended && std::chrono::steady_clock::now() < end) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    auto m = ws.read_json(left);
    if (!m) break;
    if (!for_prompt(*m)) continue;
    out.push_back(*m);
    if (str(*m, "type") == "executing" && m->at("data").at("node").is_null()) ended = true;
  }
  EXPECT_TRUE(ended) << "no executing {node: null} for " << prompt_id;
  const auto stop = std::chrono::steady_clock::now() + linger;
  while (std::chrono::steady_clock::now() < stop) {
    auto m = ws.read_json(std::chrono::duration_cast<std::chrono::milliseconds>(stop - std::chrono::steady_clock::now()));
    if (!m) break;
    if (for_prompt(*m)) out.push_back(*m);
  }
  return out;
}

int count_type(const std::vector<json::value>& msgs, const std::string& type) {
  return static_cast<int>(std::count_if(msgs.begin(), msgs.end(),
                                        [&](const json::value& m) { return str(m, "type") == type; }));
}

std::string types_of(const std::vector<json::value>& msgs) {
  std::string s;
  for (const auto& m : msgs) {
    s += str(m, "type");
    if (str(m, "type") == "executing") s += "(" + comfy::dumps(m.at("data").at("node")) + ")";
    s += " ";
  }
  return s;
}

// ---- one sim behind a farm -------------------------------------------------------------------------

void FarmOnOneSim::start(const ServeFlags& defaults, const std::vector<std::string>& sim_flags,
                         const std::string& backend, std::vector<std::string> farm_more) {
  sim_.emplace(sim_flags);
  ASSERT_TRUE(sim_->ready());
  farm_.emplace(farm_args(defaults, {{backend, sim_->url()}}, std::move(farm_more)));
  ASSERT_TRUE(farm_->ready());
  http_.emplace(io_, farm_->url());
}

std::tuple<SimProcess&, FarmProcess&, net::IoRuntime&, SimHttp&> FarmOnOneSim::parts() {
  return {*sim_, *farm_, io_, *http_};
}

}  // namespace comfyfarm::test
