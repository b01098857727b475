// ComfyUI prompt validation (comfy::validate_prompt): it runs on every POST /prompt of the
// simulator and of the farm's front, against the simulator's built-in node catalog.
#include "comfy/json_util.hpp"
#include "comfy/prompt_validator.hpp"
#include "sim/sim_data.hpp"

#include <benchmark/benchmark.h>

#include <fstream>
#include <sstream>

namespace {

using namespace comfyfarm;

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void BM_ValidatePrompt(benchmark::State& state, const char* file) {
  auto data = sim::SimData::load_default();
  if (!data) {
    state.SkipWithError(data.error().message.c_str());
    return;
  }
  const comfy::NodeCatalog catalog(data->object_info([](std::string_view) {
    return std::vector<std::string>{"v1-5-pruned-emaonly.safetensors", "example.png"};
  }));
  auto doc = comfy::parse_json(read(std::string(COMFYFARM_SHARED_DIR) + "/workflows/" + file));
  if (!doc || !doc->is_object()) {
    state.SkipWithError("cannot read the workflow");
    return;
  }
  const auto prompt = doc->as_object();
  if (!comfy::validate_prompt(prompt, catalog).ok) {
    state.SkipWithError("the workflow does not validate against the catalog");
    return;
  }
  for (auto _ : state) {
    auto copy = prompt;  // a server moves the parsed request's prompt in; copying is included
    auto outcome = comfy::validate_prompt(std::move(copy), catalog);
    benchmark::DoNotOptimize(outcome.ok);
  }
  state.counters["classes"] = static_cast<double>(catalog.info().classes.size());
}

BENCHMARK_CAPTURE(BM_ValidatePrompt, txt2img_sd15, "txt2img_sd15.json");
BENCHMARK_CAPTURE(BM_ValidatePrompt, hires_fix_upscale, "hires_fix_upscale.json");
BENCHMARK_CAPTURE(BM_ValidatePrompt, model_free_blur, "model_free_blur.json");

}  // namespace

BENCHMARK_MAIN();
