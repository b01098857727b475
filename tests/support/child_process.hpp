// A child process of a process test (`comfyfarm sim`, `comfyfarm serve`): spawned with stdin from
// /dev/null and stdout/stderr into files of a folder, waited for through the ready file it
// writes, and stopped with SIGTERM (SIGKILL when it does not stop).
#pragma once

#include <boost/json/value.hpp>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace comfyfarm::test {

class ChildProcess {
 public:
  /// `name` is what failures call it; `dir` holds stdout.txt and stderr.txt; `stop_deadline` is
  /// how long the destructor waits after SIGTERM before it SIGKILLs.
  ChildProcess(std::string name, std::filesystem::path dir, std::chrono::milliseconds stop_deadline);
  /// Unless the process already ended (or was killed): SIGTERM, and a failure unless it exits 0
  /// within the stop deadline (SIGKILL then).
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  /// Starts `argv` (argv[0] a path), its output appended to the files of `dir` or replacing
  /// what they held. False (and a failure) when it cannot.
  bool spawn(const std::vector<std::string>& argv, bool append_output);
  /// Waits until `ready_file` holds a JSON object; the object, or nullopt (and a failure) when
  /// the process exited first or the deadline passed.
  std::optional<boost::json::value> wait_ready(const std::filesystem::path& ready_file,
                                               std::chrono::milliseconds deadline);

  [[nodiscard]] pid_t pid() const { return pid_; }
  [[nodiscard]] bool running() const { return pid_ > 0 && !exited_; }
  void signal(int sig) const;
  /// SIGKILL and reap.
  void kill();
  /// Waits for the process to end; its wait status, or nullopt after the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds deadline);
  /// What the process wrote to stderr so far.
  [[nodiscard]] std::string log() const;

 private:
  std::string name_;
  std::filesystem::path dir_;
  std::chrono::milliseconds stop_deadline_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

}  // namespace comfyfarm::test
