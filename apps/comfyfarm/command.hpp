// A subcommand of the comfyfarm binary: registers its flags on a CLI11 sub-app and returns the
// function that runs it once the command line parsed.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace comfyfarm::app {

/// Runs a parsed subcommand; returns the process exit code.
using CommandMain = std::function<int()>;

/// Adds a subcommand to `root` and returns what runs it. The returned function may read
/// variables the registration bound to flags, so it runs only after parsing succeeded.
using CommandRegistration = CommandMain (*)(CLI::App& root);

/// Every subcommand the binary offers, in the order --help lists them.
std::vector<CommandRegistration> all_commands();

/// `comfyfarm sim`: simulated ComfyUI servers with fault injection (cmd_sim.cpp).
CommandMain register_sim(CLI::App& root);

/// `comfyfarm serve`: the farm (cmd_serve.cpp).
CommandMain register_serve(CLI::App& root);

/// `comfyfarm loadtest`: load, SLA reports and fault scenarios (cmd_loadtest.cpp).
CommandMain register_loadtest(CLI::App& root);

/// `comfyfarm profile`: per-node profile of a workflow on a server or of a recording (cmd_profile.cpp).
CommandMain register_profile(CLI::App& root);

}  // namespace comfyfarm::app
