// ReplayServer: a small ComfyUI stand-in for integration tests. It serves the HTTP routes a
// BackendLink uses and replays a scenario recorded from a real ComfyUI
// (shared/fixtures/comfyui-real/<scenario>/<run>) over its WebSocket, with the recorded
// prompt id replaced by the one the client chose. Faults are switched on per test.
#pragma once

#include "net/http_server.hpp"
#include "net/io_runtime.hpp"

#include <boost/json/value.hpp>

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace comfyfarm::test {

struct RecordedRequest {
  std::string method;
  std::string target;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool has_header(std::string_view name) const;
};

struct ReplayOptions {
  std::string scenario = "slow_blur";
  std::string run = "run1";
  /// Send the prompt's frames before answering POST /prompt (ComfyUI may do that).
  bool events_before_reply = false;
  /// Close the WebSocket abruptly after this many prompt frames (-1: never).
  int drop_after_frames = -1;
  /// Answer POST /prompt with 500 and a plain-text body, as ComfyUI does on a crash.
  bool prompt_500 = false;
  /// Ignore the client-chosen prompt_id and answer with this one (an old server).
  std::string force_prompt_id{};
  /// GET /system_stats waits this long before answering.
  std::chrono::milliseconds system_stats_delay{0};
};

class ReplayServer {
 public:
  explicit ReplayServer(ReplayOptions options);
  ~ReplayServer();

  /// "http://127.0.0.1:PORT"
  std::string base_url() const;
  std::vector<RecordedRequest> requests() const;
  /// Text frames the clients sent on their WebSockets, in order.
  std::vector<std::string> client_frames() const;
  /// WebSocket connections accepted so far.
  int websocket_connections() const;
  /// The frames replayed for one prompt, after id substitution (what a client should get).
  std::vector<boost::json::value> expected_frames(const std::string& prompt_id) const;

  struct State;

 private:
  std::shared_ptr<State> state_;
  std::unique_ptr<net::IoRuntime> io_;
  std::unique_ptr<net::HttpServer> server_;
};

}  // namespace comfyfarm::test
