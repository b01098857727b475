// Process tests of `comfyfarm serve`: start the built binary on 127.0.0.1:0 with a ready file and
// a data directory, SIGKILL it, start it again on the same data. Talk to it with SimHttp/SimWs.
#pragma once

#include "support/child_process.hpp"
#include "support/test_support.hpp"

#include <boost/json/value.hpp>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace comfyfarm::test {

using namespace std::chrono_literals;

/// A running `comfyfarm serve` process. The destructor stops it with SIGTERM and expects exit
/// status 0 (SIGKILL after 20 s), unless the test already killed it or saw it exit.
class FarmProcess {
 public:
  /// Starts `COMFYFARM_BINARY serve --listen 127.0.0.1:0 --ready-file ... --data DATA ARGS...`
  /// (stdout and stderr appended to files of its own temp dir) and waits for the ready file.
  /// An empty `data_dir` means a "data" folder in that temp dir.
  explicit FarmProcess(std::vector<std::string> args, std::filesystem::path data_dir = {},
                       std::chrono::milliseconds deadline = 30s);
  ~FarmProcess();
  FarmProcess(const FarmProcess&) = delete;
  FarmProcess& operator=(const FarmProcess&) = delete;

  /// Whether the current run wrote its ready file in time.
  [[nodiscard]] bool ready() const { return !address_.empty(); }
  /// "http://HOST:PORT" of the current run (a new port after each restart).
  [[nodiscard]] std::string url() const { return "http://" + address_; }
  [[nodiscard]] std::string ws_url(const std::string& client_id) const;
  [[nodiscard]] pid_t pid() const { return child_.pid(); }
  [[nodiscard]] bool running() const { return child_.running(); }
  [[nodiscard]] const std::filesystem::path& data_dir() const { return data_; }
  [[nodiscard]] const boost::json::value& ready_document() const { return ready_doc_; }

  void signal(int sig) const { child_.signal(sig); }
  /// SIGKILL and reap.
  void kill() { child_.kill(); }
  /// Starts the same command again (same --data and flags) after the previous run ended or was
  /// killed; waits for the new ready file. Returns ready().
  bool restart(std::chrono::milliseconds deadline = 30s);
  /// Waits for the process to end; its wait status, or nullopt after the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds deadline) { return child_.wait_exit(deadline); }
  /// Everything every run wrote to stderr so far.
  [[nodiscard]] std::string log() const { return child_.log(); }

 private:
  bool start(std::chrono::milliseconds deadline);

  TempDir dir_;
  std::filesystem::path data_;
  std::vector<std::string> args_;
  ChildProcess child_{"comfyfarm serve", dir_.path(), 20s};
  int runs_ = 0;
  std::string address_;
  boost::json::value ready_doc_;
};

}  // namespace comfyfarm::test
