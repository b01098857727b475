// Runs the built comfyfarm binary as a process: help, version, and one-line errors with exit 2.
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <string>

namespace comfyfarm {
namespace {

struct ProcessResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

ProcessResult run_binary(const std::string& args) {
  test::TempDir dir;
  const auto out_path = dir.path() / "out.txt";
  const auto err_path = dir.path() / "err.txt";
  const std::string cmd = std::string("'") + COMFYFARM_BINARY + "' " + args + " >'" +
                          out_path.string() + "' 2>'" + err_path.string() + "' </dev/null";
  const int status = std::system(cmd.c_str());
  ProcessResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = test::read_file(out_path);
  r.err = test::read_file(err_path);
  return r;
}

int count_lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}

TEST(Cli, HelpDescribesTheProgramAndExitsZero) {
  auto r = run_binary("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("render-farm orchestrator for ComfyUI"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--version"), std::string::npos) << r.out;
}

TEST(Cli, VersionPrintsNameAndVersion) {
  auto r = run_binary("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("comfyfarm ", 0), 0u) << r.out;
}

TEST(Cli, UnknownSubcommandIsOneLineErrorAndExitTwo) {
  auto r = run_binary("no-such-command");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("no-such-command"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Cli, UnknownFlagIsOneLineErrorAndExitTwo) {
  auto r = run_binary("--frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--frobnicate"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace comfyfarm
