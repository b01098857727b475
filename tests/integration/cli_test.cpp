// Runs the built comfyfarm binary as a process: help, version, and one-line errors with exit 2.
#include "support/test_support.hpp"

#include <gtest/gtest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
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

/// `comfyfarm serve` refuses bad settings before it opens anything: one line naming the setting,
/// exit 2. (Each case would otherwise start a farm on 127.0.0.1:8288.)
void expect_serve_refuses(const std::string& args, const std::string& named, const char* env = nullptr) {
  const std::string cmd = (env != nullptr ? std::string(env) + " " : std::string()) + "serve " + args;
  auto r = env != nullptr ? test::run_comfyfarm_env(env, "serve " + args) : test::run_comfyfarm("serve " + args);
  EXPECT_EQ(r.exit_code, 2) << cmd << "\n" << r.err;
  EXPECT_EQ(count_lines(r.err), 1) << cmd << "\n" << r.err;
  EXPECT_NE(r.err.find(named), std::string::npos) << cmd << "\n" << r.err;
}

TEST(CliServe, BadFlagsConfigAndEnvironmentAreOneLineErrors) {
  expect_serve_refuses("--max-attempts 0", "--max-attempts: must be at least 1");
  expect_serve_refuses("--backend gpu1:8188", "expected [ID=]http://HOST:PORT");
  expect_serve_refuses("--backend a=http://h:1 --backend a=http://h:2", "backend 'a' is given twice");
  expect_serve_refuses("--listen nope", "--listen");
  expect_serve_refuses("--retry-backoff x", "--retry-backoff");
  expect_serve_refuses("--durability maybe", "--durability");
  test::TempDir dir;
  const auto unknown = dir.path() / "unknown.json";
  std::ofstream(unknown) << R"({"listen": "127.0.0.1:0", "bogus": 1})";
  expect_serve_refuses("--config " + unknown.string(), "unknown setting 'bogus'");
  const auto wrong = dir.path() / "wrong.json";
  std::ofstream(wrong) << R"({"max-attempts": "three"})";
  expect_serve_refuses("--config " + wrong.string(), "max_attempts: expected a number");
  const auto broken = dir.path() / "broken.json";
  std::ofstream(broken) << "{not json";
  expect_serve_refuses("--config " + broken.string(), "not a JSON object");
  expect_serve_refuses("", "COMFY_MAX_RETRIES", "COMFY_MAX_RETRIES=abc");
  expect_serve_refuses("", "COMFY_RETRY_BACKOFF_SEC", "COMFY_RETRY_BACKOFF_SEC=-1");
}

}  // namespace
}  // namespace comfyfarm
