#include "support/farm_process.hpp"

#include <gtest/gtest.h>

namespace comfyfarm::test {

namespace fs = std::filesystem;

FarmProcess::FarmProcess(std::vector<std::string> args, fs::path data_dir,
                         std::chrono::milliseconds deadline)
    : data_(data_dir.empty() ? dir_.path() / "data" : std::move(data_dir)), args_(std::move(args)) {
  start(deadline);
}

FarmProcess::~FarmProcess() = default;

bool FarmProcess::start(std::chrono::milliseconds deadline) {
  ++runs_;
  address_.clear();
  ready_doc_ = nullptr;
  const fs::path ready = dir_.path() / ("ready-" + std::to_string(runs_) + ".json");
  std::vector<std::string> argv = {COMFYFARM_BINARY, "serve",        "--listen",
                                   "127.0.0.1:0",    "--ready-file", ready.string(),
                                   "--data",         data_.string()};
  argv.insert(argv.end(), args_.begin(), args_.end());
  // Appended: log() holds every run's stderr.
  if (!child_.spawn(argv, /*append_output=*/true)) return false;
  auto doc = child_.wait_ready(ready, deadline);
  if (!doc) return false;
  ready_doc_ = *doc;
  if (const auto* http = doc->get_object().if_contains("http"); http != nullptr && http->is_string()) {
    address_ = std::string(http->get_string());
  }
  EXPECT_FALSE(address_.empty()) << "ready file without \"http\": " << read_file(ready);
  return !address_.empty();
}

std::string FarmProcess::ws_url(const std::string& client_id) const {
  return "ws://" + address_ + "/ws" + (client_id.empty() ? std::string() : "?clientId=" + client_id);
}

bool FarmProcess::restart(std::chrono::milliseconds deadline) {
  if (running()) {
    ADD_FAILURE() << "restart() while the farm still runs";
    return false;
  }
  return start(deadline);
}

}  // namespace comfyfarm::test
