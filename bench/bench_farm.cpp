// bench_farm: the client side of the farm benchmarks (bench/farm_bench.sh runs it).
//
//   bench_farm submit URL WORKFLOW --connections N --seconds S
//       POST /prompt from N keep-alive connections for S seconds; prints accepted prompts/s.
//   bench_farm latency URL WORKFLOW --jobs N
//       One job at a time: POST /prompt, then wait on /ws for its execution_success; prints
//       p50/p90/p99/max of submit-to-success in ms. Each job gets a fresh seed (no cache hit).
//
// Output is one JSON line, for the script to compare runs measured side by side.
#include "comfy/json_util.hpp"
#include "net/http_client.hpp"
#include "net/io_runtime.hpp"
#include "net/websocket_client.hpp"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace asio = boost::asio;
namespace json = boost::json;
using namespace comfyfarm;
using Clock = std::chrono::steady_clock;

namespace {

struct Args {
  std::string mode, url, workflow;
  int connections = 16;
  double seconds = 5;
  int jobs = 200;
};

json::object load_workflow(const std::string& path) {
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  auto v = comfy::parse_json(text);
  if (!v || !v->is_object()) {
    std::cerr << "bench_farm: cannot read workflow " << path << "\n";
    std::exit(2);
  }
  return v->get_object();
}

/// Gives every seed/noise_seed input a new value so that no two prompts hit the cache.
void reseed(json::object& prompt, std::int64_t seed) {
  for (auto& [id, node] : prompt) {
    if (!node.is_object()) continue;
    auto* inputs = node.get_object().if_contains("inputs");
    if (inputs == nullptr || !inputs->is_object()) continue;
    for (auto& [name, value] : inputs->get_object()) {
      if ((name == "seed" || name == "noise_seed") && value.is_number()) value = seed;
    }
  }
}

struct SubmitStats {
  std::atomic<std::uint64_t> ok{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> errors{0};
};

asio::awaitable<void> submitter(std::string url, std::string body_prefix, int worker,
                                Clock::time_point until, SubmitStats* stats) {
  auto ex = co_await asio::this_coro::executor;
  net::HttpClientOptions options;
  options.request_timeout = std::chrono::seconds(30);
  auto client = net::HttpClient::create(ex, url, options);
  if (!client) {
    stats->errors++;
    co_return;
  }
  std::uint64_t n = 0;
  while (Clock::now() < until) {
    std::string body = body_prefix;
    body += std::to_string(worker) + "-" + std::to_string(n++) + "\"}";
    net::Headers headers;
    headers.set("Content-Type", "application/json");
    auto r = co_await client->request(net::Method::kPost, "/prompt", std::move(headers), std::move(body));
    if (!r) {
      stats->errors++;
    } else if (r->status == 200) {
      stats->ok++;
    } else {
      stats->refused++;
    }
  }
}

int run_submit(const Args& a) {
  auto wf = load_workflow(a.workflow);
  // One fixed workflow; distinct prompt ids. {"prompt": ..., "prompt_id": "bench-W-N"}
  json::object body;
  body["prompt"] = wf;
  std::string text = comfy::dumps(body);
  text.pop_back();  // the closing brace
  text += ", \"prompt_id\": \"bench-" + std::to_string(Clock::now().time_since_epoch().count()) + "-";
  net::IoRuntime io(1);
  SubmitStats stats;
  const auto start = Clock::now();
  const auto until = start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(a.seconds));
  std::vector<std::future<void>> done;
  for (int i = 0; i < a.connections; ++i) {
    done.push_back(asio::co_spawn(io.executor(), submitter(a.url, text, i, until, &stats), asio::use_future));
  }
  for (auto& f : done) f.get();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  json::object out;
  out["mode"] = "submit";
  out["url"] = a.url;
  out["connections"] = a.connections;
  out["seconds"] = secs;
  out["accepted"] = stats.ok.load();
  out["refused"] = stats.refused.load();
  out["errors"] = stats.errors.load();
  out["accepted_per_s"] = static_cast<double>(stats.ok.load()) / secs;
  std::cout << json::serialize(out) << std::endl;
  return stats.ok.load() > 0 ? 0 : 1;
}

asio::awaitable<int> latency_run(Args a, std::vector<double>* samples) {
  auto ex = co_await asio::this_coro::executor;
  auto wf = load_workflow(a.workflow);
  const std::string client_id = "bench-latency-" + std::to_string(Clock::now().time_since_epoch().count());
  std::string ws_url = a.url;
  ws_url.replace(0, 4, "ws");
  ws_url += "/ws?clientId=" + client_id;
  auto ws = co_await net::WebSocketClient::connect(ex, ws_url);
  if (!ws) {
    std::cerr << "bench_farm: websocket: " << ws.error().message << "\n";
    co_return 1;
  }
  auto http = net::HttpClient::create(ex, a.url);
  if (!http) co_return 1;
  const std::int64_t base = std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'000;
  for (int i = 0; i < a.jobs; ++i) {
    json::object prompt = wf;
    reseed(prompt, base + i);
    json::object body;
    body["prompt"] = std::move(prompt);
    body["client_id"] = client_id;
    std::string text = comfy::dumps(body);
    net::Headers headers;
    headers.set("Content-Type", "application/json");
    const auto t0 = Clock::now();
    auto r = co_await http->request(net::Method::kPost, "/prompt", std::move(headers), std::move(text));
    if (!r || r->status != 200) {
      std::cerr << "bench_farm: POST /prompt failed: " << (r ? r->body : r.error().message) << "\n";
      co_return 1;
    }
    auto reply = comfy::parse_json(r->body);
    const std::string id(reply->at("prompt_id").as_string());
    for (;;) {
      auto m = co_await ws->read(std::chrono::seconds(60));
      if (!m) {
        std::cerr << "bench_farm: websocket read: " << m.error().message << "\n";
        co_return 1;
      }
      if (m->binary) continue;
      auto v = comfy::parse_json(m->data);
      if (!v || !v->is_object()) continue;
      const auto* type = v->get_object().if_contains("type");
      if (type == nullptr || !type->is_string()) continue;
      const auto& data = v->get_object().at("data");
      const auto* pid = data.is_object() ? data.get_object().if_contains("prompt_id") : nullptr;
      if (pid == nullptr || !pid->is_string() || pid->get_string() != id) continue;
      if (type->get_string() == "execution_error") {
        std::cerr << "bench_farm: job failed: " << m->data << "\n";
        co_return 1;
      }
      if (type->get_string() == "execution_success") break;
    }
    samples->push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
  }
  co_return 0;
}

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(std::min<double>(static_cast<double>(v.size() - 1),
                                                           p / 100.0 * static_cast<double>(v.size() - 1) + 0.5));
  return v[i];
}

int run_latency(const Args& a) {
  net::IoRuntime io(1);
  std::vector<double> samples;
  auto f = asio::co_spawn(io.executor(), latency_run(a, &samples), asio::use_future);
  const int rc = f.get();
  json::object out;
  out["mode"] = "latency";
  out["url"] = a.url;
  out["jobs"] = static_cast<std::int64_t>(samples.size());
  out["p50_ms"] = percentile(samples, 50);
  out["p90_ms"] = percentile(samples, 90);
  out["p99_ms"] = percentile(samples, 99);
  out["max_ms"] = samples.empty() ? 0.0 : *std::max_element(samples.begin(), samples.end());
  std::cout << json::serialize(out) << std::endl;
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  std::vector<std::string> pos;
  for (int i = 1; i < argc; ++i) {
    const std::string s = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "bench_farm: " << s << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (s == "--connections") a.connections = std::stoi(next());
    else if (s == "--seconds") a.seconds = std::stod(next());
    else if (s == "--jobs") a.jobs = std::stoi(next());
    else pos.push_back(s);
  }
  if (pos.size() != 3 || (pos[0] != "submit" && pos[0] != "latency")) {
    std::cerr << "usage: bench_farm submit|latency URL WORKFLOW [--connections N] [--seconds S] [--jobs N]\n";
    return 2;
  }
  a.mode = pos[0];
  a.url = pos[1];
  a.workflow = pos[2];
  return a.mode == "submit" ? run_submit(a) : run_latency(a);
}
