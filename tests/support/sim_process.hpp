// Process tests of `comfyfarm sim`: start the built binary on 127.0.0.1:0 with a ready file, and
// talk to it over real sockets with blocking, deadline-bound HTTP and WebSocket helpers.
#pragma once

#include "core/error.hpp"
#include "net/http_client.hpp"
#include "net/http_types.hpp"
#include "net/io_runtime.hpp"
#include "net/websocket_client.hpp"
#include "support/child_process.hpp"
#include "support/test_support.hpp"

#include <boost/json/value.hpp>
#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace comfyfarm::test {

using namespace std::chrono_literals;

/// A running `comfyfarm sim` process. The destructor stops it with SIGTERM and expects exit
/// status 0 (SIGKILL after 10 s).
class SimProcess {
 public:
  /// Starts `COMFYFARM_BINARY sim --listen 127.0.0.1:0 --ready-file DIR/ready.json ARGS...` (stdout
  /// and stderr into DIR) and waits for the ready file; ready() tells whether it came in time.
  explicit SimProcess(const std::vector<std::string>& args,
                      std::chrono::milliseconds deadline = 30s);
  ~SimProcess();
  SimProcess(const SimProcess&) = delete;
  SimProcess& operator=(const SimProcess&) = delete;

  [[nodiscard]] bool ready() const { return !servers_.empty(); }
  /// "HOST:PORT" of each server, from the ready file.
  [[nodiscard]] const std::vector<std::string>& servers() const { return servers_; }
  /// "http://HOST:PORT" of server i.
  [[nodiscard]] std::string url(std::size_t i = 0) const;
  [[nodiscard]] std::string ws_url(const std::string& client_id, std::size_t i = 0) const;
  [[nodiscard]] pid_t pid() const { return child_.pid(); }
  [[nodiscard]] const boost::json::value& ready_document() const { return ready_doc_; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }

  void signal(int sig) const { child_.signal(sig); }
  /// Waits for the process to end; its wait status, or nullopt after the deadline.
  std::optional<int> wait_exit(std::chrono::milliseconds deadline) { return child_.wait_exit(deadline); }
  /// What the process wrote to stderr so far.
  [[nodiscard]] std::string log() const { return child_.log(); }

 private:
  TempDir dir_;
  ChildProcess child_{"comfyfarm sim", dir_.path(), 10s};
  std::vector<std::string> servers_;
  boost::json::value ready_doc_;
};

/// Blocking HTTP to one server, each request with a deadline.
class SimHttp {
 public:
  SimHttp(net::IoRuntime& io, const std::string& base_url);
  [[nodiscard]] Result<net::Response> request(net::Method method, const std::string& target,
                                              std::string body = {}, net::Headers headers = {});
  [[nodiscard]] Result<net::Response> get(const std::string& target) {
    return request(net::Method::kGet, target);
  }
  [[nodiscard]] Result<net::Response> post(const std::string& target, std::string body) {
    return request(net::Method::kPost, target, std::move(body),
                   net::Headers{{"Content-Type", "application/json"}});
  }
  /// GET, expecting 200 and JSON (a failure otherwise; null then).
  boost::json::value get_json(const std::string& target);

 private:
  net::IoRuntime* io_;
  net::HttpClient client_;
};

/// A blocking WebSocket client with deadlines.
class SimWs {
 public:
  /// Connects; nullptr (and a test failure) when it cannot.
  static std::unique_ptr<SimWs> connect(net::IoRuntime& io, const std::string& url);
  ~SimWs();

  /// The next message within `timeout`; nullopt on timeout or when the connection ended
  /// (closed() tells which).
  std::optional<net::WebSocketMessage> read(std::chrono::milliseconds timeout = 10s);
  /// The next text message as JSON within `timeout` (binary frames are kept in binaries()).
  std::optional<boost::json::value> read_json(std::chrono::milliseconds timeout = 10s);
  /// Reads until a text message of `type` arrives (others are collected into seen()).
  std::optional<boost::json::value> read_until(const std::string& type,
                                               std::chrono::milliseconds timeout = 10s);
  void send_text(std::string text);
  [[nodiscard]] bool closed() const { return closed_; }
  [[nodiscard]] const std::vector<boost::json::value>& seen() const { return seen_; }
  [[nodiscard]] const std::vector<std::string>& binaries() const { return binaries_; }

 private:
  SimWs(net::IoRuntime& io, net::WebSocketClient client)
      : io_(&io), client_(std::move(client)) {}
  net::IoRuntime* io_;
  net::WebSocketClient client_;
  bool closed_ = false;
  std::vector<boost::json::value> seen_;
  std::vector<std::string> binaries_;
};

/// Reads a file of shared/ as JSON (a failure and null when it cannot).
boost::json::value load_json(const std::filesystem::path& path);

}  // namespace comfyfarm::test
