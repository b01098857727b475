// comfyfarm: one binary, subcommands registered through CLI11.
#include "command.hpp"
#include "core/version.hpp"

#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>
#include <iostream>
#include <map>
#include <string>

namespace comfyfarm::app {

std::vector<CommandRegistration> all_commands() { return {&register_serve, &register_loadtest, &register_sim, &register_profile}; }

namespace {

int run(int argc, char** argv) {
  CLI::App root{
      "comfyfarm: a render-farm orchestrator for ComfyUI.\n"
      "Turns many ComfyUI servers into one farm with a ComfyUI-compatible front door,\n"
      "a durable queue, placement, retries and per-node profiles.",
      "comfyfarm"};
  root.set_version_flag("-V,--version", std::string("comfyfarm ") + kVersion);
  root.footer("Run 'comfyfarm <command> --help' for the flags of one command.");

  std::map<CLI::App*, CommandMain> mains;
  for (auto registration : all_commands()) {
    CommandMain main_fn = registration(root);
    mains.emplace(root.get_subcommands({}).back(), std::move(main_fn));
  }

  try {
    root.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return root.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return root.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    for (auto& c : what) {
      if (c == '\n') c = ' ';
    }
    std::cerr << "comfyfarm: error: " << what << " (see 'comfyfarm --help')\n";
    return 2;
  }

  for (auto& [sub, main_fn] : mains) {
    if (sub->parsed()) return main_fn();
  }
  std::cout << root.help();
  return 0;
}

}  // namespace
}  // namespace comfyfarm::app

int main(int argc, char** argv) {
  try {
    return comfyfarm::app::run(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "comfyfarm: fatal: %s\n", e.what());
    return 1;
  }
}
