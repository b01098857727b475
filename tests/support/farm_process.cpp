#include "support/farm_process.hpp"

#include "comfy/json_util.hpp"

#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
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

FarmProcess::FarmProcess(std::vector<std::string> args, fs::path data_dir,
                         std::chrono::milliseconds deadline)
    : data_(data_dir.empty() ? dir_.path() / "data" : std::move(data_dir)), args_(std::move(args)) {
  start(deadline);
}

FarmProcess::~FarmProcess() {
  if (!running()) return;
  ::kill(pid_, SIGTERM);
  const auto status = wait_exit(20s);
  if (!status) {
    ADD_FAILURE() << "comfyfarm serve did not stop within 20 s of SIGTERM:\n" << log();
    ::kill(pid_, SIGKILL);
    int ignored = 0;
    ::waitpid(pid_, &ignored, 0);
    return;
  }
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << "comfyfarm serve ended with wait status " << *status << " after SIGTERM:\n" << log();
}

bool FarmProcess::start(std::chrono::milliseconds deadline) {
  ++runs_;
  address_.clear();
  ready_doc_ = nullptr;
  exited_ = false;
  const fs::path ready = dir_.path() / ("ready-" + std::to_string(runs_) + ".json");
  std::vector<std::string> argv = {COMFYFARM_BINARY, "serve",        "--listen",
                                   "127.0.0.1:0",    "--ready-file", ready.string(),
                                   "--data",         data_.string()};
  argv.insert(argv.end(), args_.begin(), args_.end());
  std::vector<char*> cargv;
  for (auto& a : argv) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string out = (dir_.path() / "stdout.txt").string();
  const std::string err = (dir_.path() / "stderr.txt").string();
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  const int rc = posix_spawn(&pid_, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << COMFYFARM_BINARY << ": " << std::strerror(rc);
    pid_ = -1;
    return false;
  }

  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    std::error_code ec;
    if (fs::exists(ready, ec)) {
      auto doc = comfy::parse_json(slurp(ready));
      if (doc && doc->is_object()) {
        ready_doc_ = *doc;
        if (const auto* http = doc->get_object().if_contains("http"); http != nullptr && http->is_string()) {
          address_ = std::string(http->get_string());
        }
        EXPECT_FALSE(address_.empty()) << "ready file without \"http\": " << slurp(ready);
        return !address_.empty();
      }
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      ADD_FAILURE() << "comfyfarm serve exited (wait status " << status
                    << ") before writing its ready file:\n" << log();
      return false;
    }
    std::this_thread::sleep_for(10ms);
  }
  ADD_FAILURE() << "comfyfarm serve: no ready file within " << deadline.count() << " ms:\n" << log();
  return false;
}

std::string FarmProcess::ws_url(const std::string& client_id) const {
  return "ws://" + address_ + "/ws" + (client_id.empty() ? std::string() : "?clientId=" + client_id);
}

void FarmProcess::signal(int sig) const {
  if (running()) ::kill(pid_, sig);
}

void FarmProcess::kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  exited_ = true;
}

bool FarmProcess::restart(std::chrono::milliseconds deadline) {
  if (running()) {
    ADD_FAILURE() << "restart() while the farm still runs";
    return false;
  }
  return start(deadline);
}

std::optional<int> FarmProcess::wait_exit(std::chrono::milliseconds deadline) {
  if (!running()) return std::nullopt;
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

std::string FarmProcess::log() const { return slurp(dir_.path() / "stderr.txt"); }

}  // namespace comfyfarm::test
