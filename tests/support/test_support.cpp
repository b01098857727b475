#include "support/test_support.hpp"

#include "comfy/json_util.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>

namespace comfyfarm::test {

std::filesystem::path shared_dir() { return std::filesystem::path(COMFYFARM_SHARED_DIR); }

std::filesystem::path fixtures_dir() { return shared_dir() / "fixtures" / "comfyui-real"; }

std::string read_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    ADD_FAILURE() << "cannot read " << path;
    return {};
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<boost::json::object> read_jsonl(const std::filesystem::path& path) {
  std::vector<boost::json::object> out;
  if (!std::filesystem::exists(path)) return out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto v = comfy::parse_json(line);
    EXPECT_TRUE(v && v->is_object()) << path << ": " << line;
    if (v && v->is_object()) out.push_back(v->get_object());
  }
  return out;
}

ProcessResult run_comfyfarm(const std::string& args, int deadline_s) {
  return run_comfyfarm_env("", args, deadline_s);
}

ProcessResult run_comfyfarm_env(const std::string& env, const std::string& args, int deadline_s) {
  TempDir dir;
  const auto out_path = dir.path() / "out.txt";
  const auto err_path = dir.path() / "err.txt";
  const std::string cmd = "timeout -k 5 " + std::to_string(deadline_s) + " env " + env + " '" +
                          std::string(COMFYFARM_BINARY) + "' " + args + " >'" +
                          out_path.string() + "' 2>'" + err_path.string() + "' </dev/null";
  const int status = std::system(cmd.c_str());
  ProcessResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    auto candidate = std::filesystem::temp_directory_path() /
                     ("comfyfarm-test-" + std::to_string(rd()) + std::to_string(attempt));
    std::error_code ec;
    if (std::filesystem::create_directory(candidate, ec)) {
      path_ = candidate;
      return;
    }
  }
  ADD_FAILURE() << "cannot create a temp dir";
}

TempDir::~TempDir() {
  std::error_code ec;
  if (!path_.empty()) std::filesystem::remove_all(path_, ec);
}

}  // namespace comfyfarm::test
