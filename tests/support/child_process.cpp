#include "support/child_process.hpp"

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
using namespace std::chrono_literals;

namespace {

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

ChildProcess::ChildProcess(std::string name, fs::path dir, std::chrono::milliseconds stop_deadline)
    : name_(std::move(name)), dir_(std::move(dir)), stop_deadline_(stop_deadline) {}

ChildProcess::~ChildProcess() {
  if (!running()) return;
  // Every test ends with a graceful stop, which must exit 0 (sanitizer reports at exit too).
  ::kill(pid_, SIGTERM);
  const auto status = wait_exit(stop_deadline_);
  if (!status) {
    ADD_FAILURE() << name_ << " did not stop within " << stop_deadline_.count() / 1000
                  << " s of SIGTERM:\n" << log();
    ::kill(pid_, SIGKILL);
    int ignored = 0;
    ::waitpid(pid_, &ignored, 0);
    return;
  }
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0)
      << name_ << " ended with wait status " << *status << " after SIGTERM:\n" << log();
}

bool ChildProcess::spawn(const std::vector<std::string>& argv, bool append_output) {
  exited_ = false;
  std::vector<std::string> args = argv;
  std::vector<char*> cargv;
  for (auto& a : args) cargv.push_back(a.data());
  cargv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  const std::string out = (dir_ / "stdout.txt").string();
  const std::string err = (dir_ / "stderr.txt").string();
  const int mode = O_WRONLY | O_CREAT | (append_output ? O_APPEND : O_TRUNC);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, out.c_str(), mode, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, err.c_str(), mode, 0644);
  const int rc = posix_spawn(&pid_, cargv[0], &actions, nullptr, cargv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    ADD_FAILURE() << "cannot start " << argv.front() << ": " << std::strerror(rc);
    pid_ = -1;
    return false;
  }
  return true;
}

std::optional<boost::json::value> ChildProcess::wait_ready(const fs::path& ready_file,
                                                           std::chrono::milliseconds deadline) {
  const auto end = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < end) {
    std::error_code ec;
    if (fs::exists(ready_file, ec)) {
      auto doc = comfy::parse_json(slurp(ready_file));
      if (doc && doc->is_object()) return *doc;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      exited_ = true;
      ADD_FAILURE() << name_ << " exited (wait status " << status << ") before writing its ready file:\n"
                    << log();
      return std::nullopt;
    }
    std::this_thread::sleep_for(10ms);
  }
  ADD_FAILURE() << name_ << ": no ready file within " << deadline.count() << " ms:\n" << log();
  return std::nullopt;
}

void ChildProcess::signal(int sig) const {
  if (running()) ::kill(pid_, sig);
}

void ChildProcess::kill() {
  if (!running()) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  exited_ = true;
}

std::optional<int> ChildProcess::wait_exit(std::chrono::milliseconds deadline) {
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

std::string ChildProcess::log() const { return slurp(dir_ / "stderr.txt"); }

}  // namespace comfyfarm::test
