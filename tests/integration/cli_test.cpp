// Runs the built comfyfarm binary as a process: help, version, and one-line errors with exit 2.
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <string>

namespace comfyfarm {
namespace {

using test::count_lines;

TEST(Cli, HelpDescribesTheProgramAndExitsZero) {
  auto r = test::run_comfyfarm("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("render-farm orchestrator for ComfyUI"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("--version"), std::string::npos) << r.out;
}

TEST(Cli, VersionPrintsNameAndVersion) {
  auto r = test::run_comfyfarm("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("comfyfarm ", 0), 0u) << r.out;
}

TEST(Cli, UnknownSubcommandIsOneLineErrorAndExitTwo) {
  auto r = test::run_comfyfarm("no-such-command");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("no-such-command"), std::string::npos) << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
}

TEST(Cli, UnknownFlagIsOneLineErrorAndExitTwo) {
  auto r = test::run_comfyfarm("--frobnicate");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(count_lines(r.err), 1) << r.err;
  EXPECT_NE(r.err.find("--frobnicate"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace comfyfarm
