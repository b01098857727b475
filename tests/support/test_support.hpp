// Helpers shared by the tests: paths to the shared fixtures, reading files, temp dirs.
#pragma once

#include <boost/json/object.hpp>

#include <filesystem>
#include <string>
#include <vector>

namespace comfyfarm::test {

/// The shared/ folder (fixtures, workflows), as configured at build time.
std::filesystem::path shared_dir();

/// shared/fixtures/comfyui-real/
std::filesystem::path fixtures_dir();

/// Reads a whole file; fails the current test (and returns "") when it cannot.
std::string read_file(const std::filesystem::path& path);

/// The JSON objects of a .jsonl file (one per line; blank lines skipped, a line that is not an
/// object fails the current test). An absent file gives none.
std::vector<boost::json::object> read_jsonl(const std::filesystem::path& path);

/// What a finished child process left: its exit code (-1 when killed by a signal), stdout,
/// stderr.
struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

/// Runs the built comfyfarm binary with `args` (shell words, already quoted), stdin empty, and
/// a deadline (coreutils timeout: exit 124 when it ran past it).
ProcessResult run_comfyfarm(const std::string& args, int deadline_s = 120);
/// The same with environment assignments ("COMFY_MAX_RETRIES=abc") for the process.
ProcessResult run_comfyfarm_env(const std::string& env, const std::string& args, int deadline_s = 120);

/// Number of '\n' in s.
int count_lines(const std::string& s);

/// A fresh empty directory under the system temp dir, removed when the object goes away.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

}  // namespace comfyfarm::test
