#include "support/sim_process.hpp"

#include "comfy/json_util.hpp"
#include "unit/net_test_util.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace comfyfarm::test {

namespace fs = std::filesystem;
namespace json = boost::json;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

SimProcess::SimProcess(const std::vector<std::string>& args, std::chrono::milliseconds deadline) {
  const fs::path ready = dir_.path() / "ready.json";
  std::vector<std::string> argv = {COMFYFARM_BINARY, "sim",           "--listen",
                                   "127.0.0.1:0",    "--ready-file", ready.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string out = (dir_.path() / "stdout.txt").string();
  const std::string err = (dir_.path() / "stderr.txt").string();
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int rc = posix_spawn(&pid_, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << COMFYFARM_BINARY << ": " << std::strerror(rc);
    pid_ = -1;
    return;
  }

  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    std::error_code ec;
    if (fs::exists(ready, ec)) {
      auto doc = comfy::parse_json(slurp(ready));
      if (doc && doc->is_object()) {
        ready_doc_ = *doc;
        if (const auto* servers = doc->get_object().if_contains("servers");
            servers != nullptr && servers->is_array()) {
          for (const auto& s : servers->get_array()) {
            servers_.emplace_back(s.at("http").as_string());
          }
        }
        return;
      }
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      ADD_FAILURE() << "comfyfarm sim exited before writing its ready file:\n" << log();
      return;
    }
    std::this_thread::sleep_for(10ms);
  }
  ADD_FAILURE() << "no ready file within " << deadline.count() << " ms:\n" << log();
}

SimProcess::~SimProcess() {
  if (pid_ <= 0 || exited_) return;
  // Every test ends with a graceful stop, which must exit 0 (sanitizer reports at exit too).
  ::kill(pid_, SIGTERM);
  const auto status = wait_exit(10s);
  if (!status) {
    ADD_FAILURE() << "comfyfarm sim did not stop within 10 s of SIGTERM:\n" << log();
    ::kill(pid_, SIGKILL);
    int ignored = 0;
    ::waitpid(pid_, &ignored, 0);
    return;
  }
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "comfyfarm sim ended with wait status " << *status << " after SIGTERM:\n" << log();
}

std::string SimProcess::url(std::size_t i) const {
  return i < servers_.size() ? "http://" + servers_[i] : std::string("http://127.0.0.1:1");
}

std::string SimProcess::ws_url(const std::string& client_id, std::size_t i) const {
  const std::string host = i < servers_.size() ? servers_[i] : std::string("127.0.0.1:1");
  return "ws://" + host + "/ws" + (client_id.empty() ? std::string() : "?clientId=" + client_id);
}

void SimProcess::signal(int sig) const {
  if (pid_ > 0 && !exited_) ::kill(pid_, sig);
}

std::optional<int> SimProcess::wait_exit(std::chrono::milliseconds deadline) {
  if (pid_ <= 0 || exited_) return std::nullopt;
  const auto end = std::chrono::steady_clock::now() + deadline;
  for (;;) {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      return status;
    }
    if (std::chrono::steady_clock::now() >= end) return std::nullopt;
    std::this_thread::sleep_for(5ms);
  }
}

std::string SimProcess::log() const { return slurp(dir_.path() / "stderr.txt"); }

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
