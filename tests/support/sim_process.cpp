#include "support/sim_process.hpp"

#include "comfy/json_util.hpp"
#include "unit/net_test_util.hpp"

#include <gtest/gtest.h>

namespace comfyfarm::test {

namespace fs = std::filesystem;
namespace json = boost::json;

SimProcess::SimProcess(const std::vector<std::string>& args, std::chrono::milliseconds deadline) {
  const fs::path ready = dir_.path() / "ready.json";
  std::vector<std::string> argv = {COMFYFARM_BINARY, "sim",           "--listen",
                                   "127.0.0.1:0",    "--ready-file", ready.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  if (!child_.spawn(argv, /*append_output=*/false)) return;
  auto doc = child_.wait_ready(ready, deadline);
  if (!doc) return;
  ready_doc_ = *doc;
  if (const auto* servers = doc->get_object().if_contains("servers");
      servers != nullptr && servers->is_array()) {
    for (const auto& s : servers->get_array()) {
      servers_.emplace_back(s.at("http").as_string());
    }
  }
}

SimProcess::~SimProcess() = default;

std::string SimProcess::url(std::size_t i) const {
  return i < servers_.size() ? "http://" + servers_[i] : std::string("http://127.0.0.1:1");
}

std::string SimProcess::ws_url(const std::string& client_id, std::size_t i) const {
  const std::string host = i < servers_.size() ? servers_[i] : std::string("127.0.0.1:1");
  return "ws://" + host + "/ws" + (client_id.empty() ? std::string() : "?clientId=" + client_id);
}

SimHttp::SimHttp(net::IoRuntime& io, const std::string& base_url) : io_(&io) {
  net::HttpClientOptions options;
  options.request_timeout = 20s;
  auto c = net::HttpClient::create(io.executor(), base_url, options);
  EXPECT_TRUE(c) << base_url;
  if (c) client_ = std::move(*c);
}

Result<net::Response> SimHttp::request(net::Method method, const std::string& target,
                                       std::string body, net::Headers headers) {
  net::HttpRequest req;
  req.method = method;
  req.target = target;
  req.body = std::move(body);
  req.headers = std::move(headers);
  return net::test::run_sync(io_->executor(), client_.request(std::move(req)), 30s);
}

json::value SimHttp::get_json(const std::string& target) {
  auto res = get(target);
  EXPECT_TRUE(res) << target << ": " << (res ? "" : res.error().message);
  if (!res) return nullptr;
  EXPECT_EQ(res->status, 200) << target << ": " << res->body;
  auto doc = comfy::parse_json(res->body);
  EXPECT_TRUE(doc) << target << ": " << res->body;
  return doc ? *doc : json::value(nullptr);
}

std::unique_ptr<SimWs> SimWs::connect(net::IoRuntime& io, const std::string& url) {
  auto c = net::test::run_sync(io.executor(), net::WebSocketClient::connect(io.executor(), url),
                               20s);
  EXPECT_TRUE(c) << url << ": " << (c ? "" : c.error().message);
  if (!c) return nullptr;
  return std::unique_ptr<SimWs>(new SimWs(io, std::move(*c)));
}

SimWs::~SimWs() {
  if (!closed_) {
    (void)net::test::run_sync(io_->executor(), client_.close(), 10s);
  }
}

std::optional<net::WebSocketMessage> SimWs::read(std::chrono::milliseconds timeout) {
  if (closed_) return std::nullopt;
  auto m = net::test::run_sync(io_->executor(), client_.read(timeout), timeout + 10s);
  if (m) return std::move(*m);
  if (m.error().code != Errc::kTimeout) closed_ = true;
  return std::nullopt;
}

std::optional<json::value> SimWs::read_json(std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto m = read(left);
    if (!m) return std::nullopt;
    if (m->binary) {
      binaries_.push_back(std::move(m->data));
      continue;
    }
    auto doc = comfy::parse_json(m->data);
    EXPECT_TRUE(doc) << m->data;
    if (doc) return *doc;
  }
}

std::optional<json::value> SimWs::read_until(const std::string& type,
                                             std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    auto doc = read_json(left);
    if (!doc) return std::nullopt;
    seen_.push_back(*doc);
    if (doc->is_object() && doc->get_object().contains("type") &&
        doc->at("type").as_string() == type) {
      return doc;
    }
  }
}

void SimWs::send_text(std::string text) {
  auto r = net::test::run_sync(io_->executor(), client_.write_text(std::move(text)), 10s);
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
}

json::value load_json(const fs::path& path) {
  auto doc = comfy::parse_json(read_file(path));
  EXPECT_TRUE(doc) << path;
  return doc ? *doc : json::value(nullptr);
}

}  // namespace comfyfarm::test
