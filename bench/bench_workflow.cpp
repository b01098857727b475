// Workflow benchmarks: for every sample in shared/workflows, the cost of parse + validate +
// both hashes from the raw text, and separately of each part. Target: <= 20 us for the 7-node
// txt2img_sd15.json in a Release build.
#include "comfy/json_util.hpp"
#include "comfy/workflow.hpp"

#include <benchmark/benchmark.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using comfyfarm::comfy::Workflow;

struct Sample {
  std::string name;
  std::string text;
};

std::vector<Sample> load_samples() {
  const std::filesystem::path dir = std::filesystem::path(COMFYFARM_SHARED_DIR) / "workflows";
  std::vector<Sample> samples;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    samples.push_back({entry.path().stem().string(), text.str()});
  }
  std::sort(samples.begin(), samples.end(),
            [](const Sample& a, const Sample& b) { return a.name < b.name; });
  return samples;
}

// What the gateway does per submitted prompt: text -> validated graph -> both hashes.
void bm_parse_validate_hash(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    auto wf = Workflow::parse(text);
    if (!wf) {
      state.SkipWithError("parse failed");
      return;
    }
    std::string content = wf->content_hash();
    std::string structural = wf->structural_hash();
    benchmark::DoNotOptimize(content);
    benchmark::DoNotOptimize(structural);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(text.size()));
}

// Text -> validated graph (JSON parse + structural validation + topological order).
void bm_parse(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    auto wf = Workflow::parse(text);
    benchmark::DoNotOptimize(wf);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations()) *
                          static_cast<std::int64_t>(text.size()));
}

// The JSON parse alone, the floor under bm_parse.
void bm_parse_json_only(benchmark::State& state, const std::string& text) {
  for (auto _ : state) {
    auto v = comfyfarm::comfy::parse_json(text);
    benchmark::DoNotOptimize(v);
  }
}

void bm_content_hash(benchmark::State& state, const std::string& text) {
  const Workflow wf = Workflow::parse(text).value();
  for (auto _ : state) {
    std::string h = wf.content_hash();
    benchmark::DoNotOptimize(h);
  }
}

void bm_structural_hash(benchmark::State& state, const std::string& text) {
  const Workflow wf = Workflow::parse(text).value();
  for (auto _ : state) {
    std::string h = wf.structural_hash();
    benchmark::DoNotOptimize(h);
  }
}

void bm_both_hashes(benchmark::State& state, const std::string& text) {
  const Workflow wf = Workflow::parse(text).value();
  for (auto _ : state) {
    std::string content = wf.content_hash();
    std::string structural = wf.structural_hash();
    benchmark::DoNotOptimize(content);
    benchmark::DoNotOptimize(structural);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The samples live until main returns; the benchmarks capture references to their text.
  static const std::vector<Sample> samples = load_samples();
  if (samples.empty()) {
    std::cerr << "no workflows in " << COMFYFARM_SHARED_DIR << "/workflows\n";
    return 1;
  }
  using Fn = void (*)(benchmark::State&, const std::string&);
  const std::pair<const char*, Fn> kinds[] = {
      {"ParseValidateHash", bm_parse_validate_hash},
      {"Parse", bm_parse},
      {"ParseJsonOnly", bm_parse_json_only},
      {"ContentHash", bm_content_hash},
      {"StructuralHash", bm_structural_hash},
      {"BothHashes", bm_both_hashes},
  };
  for (const auto& [kind, fn] : kinds) {
    for (const auto& sample : samples) {
      const std::string name = std::string("Workflow/") + kind + "/" + sample.name;
      benchmark::RegisterBenchmark(name.c_str(), fn, std::cref(sample.text))
          ->Unit(benchmark::kMicrosecond);
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
