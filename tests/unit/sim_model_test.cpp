// Unit tests of the simulator's pure model: catalog, timing, VRAM, caching, the planner's
// message order, interrupts and faults. Time is simulated (run_to_end); nothing sleeps.
#include "sim/prompt_run.hpp"

#include "comfy/json_util.hpp"
#include "comfy/messages.hpp"
#include "sim/default_data.hpp"
#include "sim/detail/execution_list.hpp"
#include "sim/detail/python_repr.hpp"
#include "sim/model_library.hpp"
#include "sim/node_catalog.hpp"
#include "sim/png.hpp"
#include "sim/sim_data.hpp"
#include "sim/sim_state.hpp"
#include "sim/timing_model.hpp"
#include "sim/vram_model.hpp"
#include "support/test_support.hpp"

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace comfyfarm::sim {
namespace {

namespace fs = std::filesystem;
namespace json = boost::json;

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr std::uint64_t kGiB = 1ULL << 30;

json::value parse(std::string_view text) {
  auto v = comfy::parse_json(text);
  EXPECT_TRUE(v) << text;
  return v ? *v : json::value();
}

json::object load_workflow(std::string_view name) {
  return parse(test::read_file(test::shared_dir() / "workflows" / name)).as_object();
}

fs::path data_dir() { return fs::path(__FILE__).parent_path() / ".." / ".." / "data" / "sim"; }

// ---------------------------------------------------------------------------------------------
// Reading steps.

const comfy::Event* event_of(const Step& s) { return std::get_if<comfy::Event>(&s.payload); }

template <class T>
const T* as(const Step& s) {
  const auto* e = event_of(s);
  return e == nullptr ? nullptr : std::get_if<T>(e);
}

/// "type" per step that goes to someone ("binary:N" for binary frames, "-" for silent steps).
std::vector<std::string> kinds(const std::vector<Step>& steps) {
  std::vector<std::string> out;
  for (const auto& s : steps) {
    if (s.route == Route::kNone) {
      out.emplace_back("-");
    } else if (const auto* e = event_of(s)) {
      out.emplace_back(comfy::type_name(*e));
    } else if (const auto* b = std::get_if<comfy::BinaryEvent>(&s.payload)) {
      out.push_back("binary:" + std::to_string(comfy::encode_binary(*b).at(3)));
    }
  }
  return out;
}

std::vector<std::string> executing_nodes(const std::vector<Step>& steps) {
  std::vector<std::string> out;
  for (const auto& s : steps) {
    if (const auto* e = as<comfy::Executing>(s); e != nullptr && e->node) out.push_back(*e->node);
  }
  return out;
}

template <class T>
const T* find_event(const std::vector<Step>& steps) {
  for (const auto& s : steps) {
    if (const auto* t = as<T>(s)) return t;
  }
  return nullptr;
}

double total_ms(const std::vector<Step>& steps) {
  double sum = 0.0;
  for (const auto& s : steps) sum += s.delay_ms;
  return sum;
}

/// Milliseconds from the node's executing message to its finished snapshot.
double node_ms(const std::vector<Step>& steps, std::string_view node) {
  double sum = 0.0;
  bool in = false;
  for (const auto& s : steps) {
    if (in) sum += s.delay_ms;
    if (const auto* e = as<comfy::Executing>(s); e != nullptr && e->node == node) in = true;
    if (const auto* p = as<comfy::ProgressState>(s); in && p != nullptr) {
      for (const auto& n : p->nodes) {
        if (n.node_id == node && n.state == "finished") return sum;
      }
    }
  }
  return sum;
}

const comfy::NodeProgress* entry(const comfy::ProgressState& p, std::string_view node) {
  for (const auto& n : p.nodes) {
    if (n.node_id == node) return &n;
  }
  return nullptr;
}

std::vector<std::string> cached_nodes(const std::vector<Step>& steps) {
  const auto* c = find_event<comfy::ExecutionCached>(steps);
  return c == nullptr ? std::vector<std::string>{} : c->nodes;
}

bool has_change(const std::vector<Step>& steps, StateChange::Kind kind, std::string_view subject) {
  for (const auto& s : steps) {
    for (const auto& c : s.changes) {
      if (c.kind == kind && c.subject == subject) return true;
    }
  }
  return false;
}

class SimModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto d = SimData::load_default();
    ASSERT_TRUE(d) << d.error().message;
    data_ = std::move(*d);
  }

  SimState make_state(std::uint64_t vram_bytes = 24 * kGiB) const {
    SimSettings s = SimSettings::defaults(data_);
    s.vram_total_bytes = vram_bytes;
    return SimState(data_, s);
  }

  PlanRequest request(json::object prompt, std::vector<std::string> outputs,
                      bool with_client = true) {
    PlanRequest r;
    r.item.number = next_number_;
    r.item.prompt_id = "prompt-" + std::to_string(next_number_++);
    r.item.prompt = std::move(prompt);
    if (with_client) r.item.extra_data.emplace("client_id", "client-1");
    r.item.outputs_to_execute = std::move(outputs);
    return r;
  }

  std::vector<Step> run(SimState& state, PlanRequest req, PromptRun** out = nullptr) {
    auto r = PromptRun::start(data_, state, std::move(req));
    EXPECT_TRUE(r) << (r ? "" : r.error().message);
    if (!r) return {};
    runs_.push_back(std::make_unique<PromptRun>(std::move(*r)));
    if (out != nullptr) *out = runs_.back().get();
    return run_to_end(*runs_.back(), 1'800'000'000'000);
  }

  std::vector<Step> txt2img(SimState& state, std::int64_t seed = 123456789,
                            std::int64_t steps = 20) {
    auto wf = load_workflow("txt2img_sd15.json");
    auto& inputs = wf["3"].as_object()["inputs"].as_object();
    inputs["seed"] = seed;
    inputs["steps"] = steps;
    return run(state, request(std::move(wf), {"9"}));
  }

  SimData data_;
  std::int64_t next_number_ = 0;
  std::vector<std::unique_ptr<PromptRun>> runs_;
};

// =============================================================================================
// Node catalog

TEST_F(SimModelTest, CatalogHasEveryRecordedClassVerbatim) {
  const auto recorded =
      parse(test::read_file(test::fixtures_dir() / "object_info_used.json")).as_object();
  for (const auto& kv : recorded) {
    SCOPED_TRACE(std::string(kv.key()));
    ASSERT_TRUE(data_.catalog.contains(kv.key()));
    EXPECT_EQ(data_.catalog.to_json().at(kv.key()), kv.value());
  }
}

TEST_F(SimModelTest, CatalogCoversTheSampleWorkflowsAndTheCommonSet) {
  for (const auto& e : fs::directory_iterator(test::shared_dir() / "workflows")) {
    for (const auto& kv : load_workflow(e.path().filename().string())) {
      const auto& cls = kv.value().at("class_type").as_string();
      EXPECT_TRUE(data_.catalog.contains(cls)) << e.path() << ": " << cls;
    }
  }
  for (const auto* cls : {"CheckpointLoaderSimple",
                          "VAELoader",
                          "CLIPLoader",
                          "UNETLoader",
                          "LoraLoader",
                          "ControlNetLoader",
                          "UpscaleModelLoader",
                          "CLIPTextEncode",
                          "EmptyLatentImage",
                          "KSampler",
                          "KSamplerAdvanced",
                          "VAEDecode",
                          "VAEEncode",
                          "LatentUpscale",
                          "LatentUpscaleBy",
                          "ImageScale",
                          "ImageScaleBy",
                          "ImageUpscaleWithModel",
                          "ControlNetApply",
                          "LoadImage",
                          "SaveImage",
                          "PreviewImage",
                          "EmptyImage",
                          "ImageBlur",
                          "ImageInvert"}) {
    EXPECT_TRUE(data_.catalog.contains(cls)) << cls;
    EXPECT_TRUE(data_.timing.has_class(cls)) << cls << " has no timing entry";
  }
}

TEST_F(SimModelTest, KSamplerInputsAreComfyUIs) {
  const auto* k = data_.catalog.find("KSampler");
  ASSERT_NE(k, nullptr);
  const auto* seed = k->find_input("seed");
  ASSERT_NE(seed, nullptr);
  EXPECT_EQ(seed->options->at("max").as_uint64(), 18446744073709551615ULL);
  const auto* samplers = k->combo_choices("sampler_name");
  ASSERT_NE(samplers, nullptr);
  EXPECT_NE(std::find(samplers->begin(), samplers->end(), json::value("euler")), samplers->end());
  EXPECT_NE(std::find(samplers->begin(), samplers->end(), json::value("uni_pc_bh2")),
            samplers->end());
  const auto* schedulers = k->combo_choices("scheduler");
  ASSERT_NE(schedulers, nullptr);
  EXPECT_EQ(schedulers->size(), 9U);
  EXPECT_EQ(k->input_order->required->front(), "model");
  EXPECT_THAT(k->output_name, ElementsAre("LATENT"));
  EXPECT_FALSE(k->output_node);
}

TEST_F(SimModelTest, CatalogMergeReplacesInPlaceAndAppends) {
  auto extra = NodeCatalog::parse(R"json({
    "ImageInvert": {"input": {"required": {"image": ["IMAGE"]}}, "output": ["IMAGE"],
                    "output_is_list": [false], "output_name": ["IMAGE"], "name": "ImageInvert",
                    "display_name": "Invert (mine)", "description": "", "python_module": "nodes",
                    "category": "image", "output_node": false},
    "MyNode": {"input": {"required": {"x": ["INT", {"default": 1}]}}, "output": ["INT"],
               "output_is_list": [false], "output_name": ["INT"], "name": "MyNode",
               "display_name": "Mine", "description": "", "python_module": "custom_nodes.mine",
               "category": "utils", "output_node": true}})json");
  ASSERT_TRUE(extra) << extra.error().message;
  NodeCatalog c = data_.catalog;
  const auto before = c.size();
  const auto position = [&](std::string_view cls) {
    std::size_t i = 0;
    for (const auto& kv : c.to_json()) {
      if (kv.key() == cls) return i;
      ++i;
    }
    return i;
  };
  const auto invert_at = position("ImageInvert");
  c.merge(*extra);
  EXPECT_EQ(c.size(), before + 1);
  EXPECT_EQ(*c.find("ImageInvert")->display_name, "Invert (mine)");
  EXPECT_EQ(position("ImageInvert"), invert_at);
  EXPECT_EQ(position("MyNode"), before);
  EXPECT_TRUE(c.is_output_node("MyNode"));

  // Through SimData::load, a user file adds a node that prompts can then use.
  const std::vector<std::string> catalogs = {comfy::dumps(extra->to_json())};
  auto d = SimData::load(catalogs, {}, {});
  ASSERT_TRUE(d);
  EXPECT_TRUE(d->catalog.contains("MyNode"));
  SimState state(*d, SimSettings::defaults(*d));
  PlanRequest req;
  req.item.prompt_id = "p";
  req.item.prompt = parse(R"({"1": {"class_type": "MyNode", "inputs": {"x": 3}}})").as_object();
  req.item.outputs_to_execute = {"1"};
  req.item.extra_data.emplace("client_id", "c");
  auto r = PromptRun::start(*d, state, std::move(req));
  ASSERT_TRUE(r);
  const auto steps = run_to_end(*r, 0);
  EXPECT_EQ(r->outcome(), Outcome::kSuccess);
  EXPECT_THAT(executing_nodes(steps), ElementsAre("1"));
}

TEST_F(SimModelTest, CatalogRejectsMalformedFiles) {
  EXPECT_FALSE(NodeCatalog::parse("[1, 2]"));
  const auto bad = NodeCatalog::parse(R"({"Broken": {"input": {}, "output": 3}})");
  ASSERT_FALSE(bad);
  EXPECT_THAT(bad.error().message, HasSubstr("Broken"));
  EXPECT_EQ(bad.error().code, Errc::kInvalidArgument);
}

TEST_F(SimModelTest, EmbeddedDataIsTheDataFiles) {
  EXPECT_EQ(default_catalog_json(), test::read_file(data_dir() / "nodes.json"));
  EXPECT_EQ(default_timing_json(), test::read_file(data_dir() / "timing.json"));
  EXPECT_EQ(default_models_json(), test::read_file(data_dir() / "models.json"));
}

TEST_F(SimModelTest, ObjectInfoFillsModelAndInputCombosAtRunTime) {
  const std::vector<std::string> inputs = {"example.png", "mask.png"};
  const auto body = data_.object_info_json(inputs).as_object();
  const auto& ckpt = body.at("CheckpointLoaderSimple").at("input").at("required").at("ckpt_name");
  EXPECT_EQ(ckpt.as_array()[0],
            parse(R"(["sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly-fp16.safetensors",
                      "v1-5-pruned-emaonly.safetensors"])"));
  EXPECT_EQ(ckpt.as_array()[1], parse(R"({"tooltip": ""})"));
  const auto& image = body.at("LoadImage").at("input").at("required").at("image");
  EXPECT_EQ(image.as_array()[0], parse(R"(["example.png", "mask.png"])"));
  EXPECT_EQ(image.as_array()[1], parse(R"({"image_upload": true})"));
  const auto& lora = body.at("LoraLoader").at("input").at("required").at("lora_name");
  EXPECT_EQ(lora.as_array()[0], parse(R"(["lcm-lora-sdv1-5.safetensors"])"));
  // The catalog itself keeps its empty combos.
  EXPECT_TRUE(data_.catalog.to_json()
                  .at("CheckpointLoaderSimple")
                  .at("input")
                  .at("required")
                  .at("ckpt_name")
                  .as_array()[0]
                  .as_array()
                  .empty());
  // Decoded, it is what a validator checks against.
  const auto info = data_.object_info([&](std::string_view folder) {
    return folder == "input" ? inputs : data_.models.files(folder);
  });
  ASSERT_NE(info.find("VAELoader"), nullptr);
  EXPECT_EQ(info.find("VAELoader")->combo_choices("vae_name")->size(), 2U);
}

// =============================================================================================
// Timing

TEST_F(SimModelTest, SamplerTimeIsLinearInSteps) {
  auto t = TimingModel::parse(R"({"classes": {"KSampler": {
      "per_step_megapixel_ms": 100, "progress": {"kind": "steps"}}}})");
  ASSERT_TRUE(t) << t.error().message;
  CostInputs in;
  in.megapixels = 0.25;
  in.steps = 20;
  const auto c20 = t->cost("KSampler", in, 1.0, 1.0);
  in.steps = 40;
  const auto c40 = t->cost("KSampler", in, 1.0, 1.0);
  EXPECT_DOUBLE_EQ(c40.total_ms(), 2.0 * c20.total_ms());
  EXPECT_EQ(c20.updates, 20);
  EXPECT_DOUBLE_EQ(c20.per_update_ms, 25.0);  // 100 ms/MP/step x 0.25 MP
  // And in the planner: twice the steps, twice the time between the sampler's updates.
  SimState state = make_state();
  const double a = node_ms(txt2img(state, 1, 20), "3");
  const double b = node_ms(txt2img(state, 2, 40), "3");
  const auto& k = data_.timing.behaviour("KSampler");
  EXPECT_NEAR(b - a, 20 * k.per_step_megapixel_ms * 0.262144, 1e-6);
}

TEST_F(SimModelTest, SpeedAndTimeScaleScaleDurations) {
  CostInputs in;
  in.megapixels = 0.262144;
  in.steps = 20;
  in.sampler = "euler";
  in.arch = "sd15";
  const double base = data_.timing.cost("KSampler", in, 1.0, 1.0).total_ms();
  EXPECT_DOUBLE_EQ(data_.timing.cost("KSampler", in, 0.4, 1.0).total_ms(), base * 2.5);
  EXPECT_DOUBLE_EQ(data_.timing.cost("KSampler", in, 1.0, 0.01).total_ms(), base * 0.01);
  EXPECT_DOUBLE_EQ(data_.timing.cost("KSampler", in, 0.5, 3.0).total_ms(), base * 6.0);
  EXPECT_DOUBLE_EQ(data_.timing.load_ms(4'000'000'000, 0.5),
                   0.5 * data_.timing.load_ms(4'000'000'000, 1.0));

  // Whole prompts: a 0.4 card takes 2.5x the compute time.
  SimState fast = make_state();
  SimState slow = make_state();
  slow.set_speed(0.4);
  const auto f = txt2img(fast);
  const auto s = txt2img(slow);
  EXPECT_NEAR(node_ms(s, "3"), 2.5 * node_ms(f, "3"), 1e-6);
  SimState scaled = make_state();
  scaled.set_time_scale(0.01);
  EXPECT_NEAR(total_ms(txt2img(scaled)), 0.01 * total_ms(f), 1e-6);
}

TEST_F(SimModelTest, DefaultTimingIsPlausibleForAnRtx4090) {
  CostInputs sd15;
  sd15.megapixels = 512.0 * 512 / 1e6;
  sd15.steps = 20;
  sd15.sampler = "euler";
  sd15.cfg = 7.0;
  sd15.arch = "sd15";
  const double sd15_ms = data_.timing.cost("KSampler", sd15, 1.0, 1.0).total_ms();
  EXPECT_GE(sd15_ms, 1000.0);
  EXPECT_LE(sd15_ms, 1500.0);
  CostInputs sdxl = sd15;
  sdxl.megapixels = 1024.0 * 1024 / 1e6;
  sdxl.arch = "sdxl";
  const double sdxl_ms = data_.timing.cost("KSampler", sdxl, 1.0, 1.0).total_ms();
  EXPECT_GE(sdxl_ms, 4000.0);
  EXPECT_LE(sdxl_ms, 5000.0);
  // A two-evaluation sampler costs twice per step; CFG 1.0 skips the negative pass.
  CostInputs heun = sd15;
  heun.sampler = "heun";
  EXPECT_NEAR(data_.timing.cost("KSampler", heun, 1, 1).per_update_ms,
              2 * data_.timing.cost("KSampler", sd15, 1, 1).per_update_ms, 1e-9);
  CostInputs cfg1 = sd15;
  cfg1.cfg = 1.0;
  EXPECT_LT(data_.timing.cost("KSampler", cfg1, 1, 1).per_update_ms,
            0.6 * data_.timing.cost("KSampler", sd15, 1, 1).per_update_ms);
  // Checkpoint from NVMe at 2.5 GB/s: the 4.27 GB SD1.5 file takes under 2 s.
  const double load = data_.timing.load_ms(4'265'146'304, 1.0);
  EXPECT_GT(load, 1500.0);
  EXPECT_LT(load, 2000.0);
  // A whole fresh txt2img_sd15: load, encode, 20 steps, decode, save: about 3 s.
  SimState state = make_state();
  const double prompt_ms = total_ms(txt2img(state));
  EXPECT_GT(prompt_ms, 2500.0);
  EXPECT_LT(prompt_ms, 4000.0);
}

TEST_F(SimModelTest, UnknownClassesUseTheDefaultEntry) {
  EXPECT_FALSE(data_.timing.has_class("SomeCustomNode"));
  EXPECT_DOUBLE_EQ(data_.timing.behaviour("SomeCustomNode").base_ms, 5.0);
  EXPECT_EQ(data_.timing.cost("SomeCustomNode", {}, 1.0, 2.0).total_ms(), 10.0);
}

TEST_F(SimModelTest, TimingFilesAreCheckedAndMerged) {
  const auto typo = TimingModel::parse(R"({"classes": {"KSampler": {"bsae_ms": 3}}})");
  ASSERT_FALSE(typo);
  EXPECT_THAT(typo.error().message, HasSubstr("classes.KSampler"));
  EXPECT_THAT(typo.error().message, HasSubstr("bsae_ms"));
  EXPECT_FALSE(TimingModel::parse(R"({"speed": -1})"));
  EXPECT_FALSE(TimingModel::parse(R"({"classes": {"X": {"ui": "pictures"}}})"));

  TimingModel t = data_.timing;
  ASSERT_TRUE(t.merge_json(R"({"speed": 0.5, "sampler_factors": {"euler": 3},
                               "classes": {"ImageBlur": {"base_ms": 1000}}})"));
  EXPECT_DOUBLE_EQ(t.default_speed(), 0.5);
  EXPECT_DOUBLE_EQ(t.sampler_factor("euler"), 3.0);
  EXPECT_DOUBLE_EQ(t.sampler_factor("heun"), 2.0);  // the rest of the table stays
  EXPECT_DOUBLE_EQ(t.behaviour("ImageBlur").base_ms, 1000.0);
  EXPECT_DOUBLE_EQ(t.behaviour("KSampler").base_ms, data_.timing.behaviour("KSampler").base_ms);
  // A failed merge changes nothing.
  EXPECT_FALSE(t.merge_json(R"({"speed": 2, "classes": {"X": {"nope": 1}}})"));
  EXPECT_DOUBLE_EQ(t.default_speed(), 0.5);
}

// =============================================================================================
// VRAM

TEST(VramModel, LoadsEvictLeastRecentlyUsedFirst) {
  VramModel v(10 * kGiB, 1 * kGiB);
  EXPECT_EQ(v.free_bytes(), 9 * kGiB);
  ASSERT_TRUE(v.load("a", 3 * kGiB));
  ASSERT_TRUE(v.load("b", 3 * kGiB));
  ASSERT_TRUE(v.load("c", 2 * kGiB));
  EXPECT_EQ(v.free_bytes(), 1 * kGiB);
  v.touch("a");  // b is now the least recently used
  auto r = v.load("d", 3 * kGiB);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->evicted.size(), 1U);
  EXPECT_EQ(r->evicted[0].key, "b");
  EXPECT_FALSE(v.is_resident("b"));
  EXPECT_TRUE(v.is_resident("a"));
  // A resident model loads for free and counts as used.
  auto again = v.load("c", 2 * kGiB);
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->was_resident);
  EXPECT_EQ(v.resident().back().key, "c");
}

TEST(VramModel, PinnedModelsStayAndOomLeavesStateUnchanged) {
  VramModel v(10 * kGiB, 1 * kGiB);
  ASSERT_TRUE(v.load("a", 4 * kGiB));
  ASSERT_TRUE(v.load("b", 4 * kGiB));
  const std::vector<std::string> pinned = {"a", "b"};
  const auto oom = v.allocate(2 * kGiB, pinned);
  ASSERT_FALSE(oom);
  EXPECT_EQ(oom.error().code, Errc::kResourceExhausted);
  EXPECT_TRUE(v.is_resident("a"));
  EXPECT_TRUE(v.is_resident("b"));
  EXPECT_EQ(v.activation_bytes(), 0U);
  // Pinning only a: b goes.
  const std::vector<std::string> only_a = {"a"};
  auto ok = v.allocate(2 * kGiB, only_a);
  ASSERT_TRUE(ok);
  ASSERT_EQ(ok->size(), 1U);
  EXPECT_EQ((*ok)[0].key, "b");
  EXPECT_EQ(v.free_bytes(), 3 * kGiB);
  v.release(2 * kGiB);
  EXPECT_EQ(v.free_bytes(), 5 * kGiB);
  // Larger than the card even with nothing else loaded.
  EXPECT_FALSE(v.load("huge", 20 * kGiB));
  EXPECT_TRUE(v.is_resident("a"));
  EXPECT_EQ(v.unload_all().size(), 1U);
  EXPECT_EQ(v.free_bytes(), 9 * kGiB);
}

TEST_F(SimModelTest, CheckpointStaysResidentAndCostsNothingWhenReused) {
  SimState state = make_state();
  const auto before = state.vram().free_bytes();
  const auto first = txt2img(state, 1);
  const auto* ckpt = data_.models.find("checkpoints", "v1-5-pruned-emaonly.safetensors");
  ASSERT_NE(ckpt, nullptr);
  EXPECT_TRUE(has_change(first, StateChange::Kind::kModelLoaded, ckpt->key()));
  EXPECT_TRUE(state.vram().is_resident(ckpt->key()));
  EXPECT_EQ(before - state.vram().free_bytes(), ckpt->vram_bytes);
  EXPECT_EQ(state.vram().activation_bytes(), 0U);  // released when the nodes finished
  EXPECT_GT(node_ms(first, "4"), 1500.0);          // read from disk

  // Another workflow in between drops the loader from the cache, but the file stays resident:
  // the loader runs again at no cost.
  run(state, request(load_workflow("model_free_blur.json"), {"4"}));
  const auto third = txt2img(state, 2);
  EXPECT_THAT(executing_nodes(third), ::testing::Contains("4"));
  EXPECT_LT(node_ms(third, "4"), 50.0);
}

TEST_F(SimModelTest, FreeUnloadsModelsAndSamplersLoadThemBack) {
  SimState state = make_state();
  txt2img(state, 1);
  const auto* ckpt = data_.models.find("checkpoints", "v1-5-pruned-emaonly.safetensors");
  state.free(true, false);  // {"unload_models": true}
  EXPECT_FALSE(state.vram().is_resident(ckpt->key()));
  EXPECT_EQ(state.vram().free_bytes(), 24 * kGiB - data_.timing.vram_reserved_bytes());
  // The loader and the text encoders are still cached; the sampler uploads the weights again.
  const auto steps = txt2img(state, 2);
  EXPECT_THAT(cached_nodes(steps), ElementsAre("4", "5", "6", "7"));
  EXPECT_TRUE(has_change(steps, StateChange::Kind::kModelLoaded, ckpt->key()));
  EXPECT_TRUE(state.vram().is_resident(ckpt->key()));
}

TEST_F(SimModelTest, VramFreeDropsWhileTheSamplerRuns) {
  SimState state = make_state();
  auto req = request(load_workflow("txt2img_sd15.json"), {"9"});
  auto r = PromptRun::start(data_, state, std::move(req));
  ASSERT_TRUE(r);
  std::uint64_t during = 0;
  std::uint64_t after_models = 0;
  while (!r->done()) {
    (void)r->delay_before_next_ms();
    const Step s = r->next_step(0);
    if (const auto* p = as<comfy::Progress>(s); p != nullptr && p->value.as_int64() == 1) {
      during = state.vram().free_bytes();
    }
  }
  after_models = state.vram().free_bytes();
  const auto& k = data_.timing.behaviour("KSampler");
  const auto activation =
      static_cast<std::uint64_t>(static_cast<double>(k.activation_base_bytes) +
                                 static_cast<double>(k.activation_per_megapixel_bytes) * 0.262144);
  EXPECT_EQ(after_models - during, activation);
}

TEST_F(SimModelTest, ABatchTooLargeForTheCardFailsWithComfyUIsOutOfMemoryError) {
  SimState state = make_state(8 * kGiB);
  auto wf = load_workflow("txt2img_sd15.json");
  wf["5"].as_object()["inputs"].as_object()["batch_size"] = 64;
  PromptRun* r = nullptr;
  const auto steps = run(state, request(std::move(wf), {"9"}), &r);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->outcome(), Outcome::kError);
  const auto* err = find_event<comfy::ExecutionError>(steps);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->node_id, "3");
  EXPECT_EQ(err->node_type, "KSampler");
  EXPECT_EQ(err->exception_type, "torch.OutOfMemoryError");
  EXPECT_EQ(err->exception_message,
            "Allocation on device \nThis error means you ran out of memory on your GPU.\n\n"
            "TIPS: If the workflow worked before you might have accidentally set the batch_size "
            "to a large number.");
  EXPECT_EQ(find_event<comfy::ExecutionSuccess>(steps), nullptr);
  // ComfyUI unloads every model after an OOM.
  EXPECT_TRUE(state.vram().resident().empty());
  EXPECT_EQ(state.vram().activation_bytes(), 0U);
  EXPECT_TRUE(has_change(steps, StateChange::Kind::kModelsUnloaded, ""));
  // The sampler's last snapshot says running: no finished one follows an error.
  const comfy::ProgressState* last = nullptr;
  for (const auto& s : steps) {
    if (const auto* p = as<comfy::ProgressState>(s)) last = p;
  }
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(entry(*last, "3")->state, "running");
}

TEST_F(SimModelTest, AModelLargerThanTheCardFailsInItsLoader) {
  SimState state = make_state(4 * kGiB);
  auto wf = load_workflow("txt2img_sd15.json");
  wf["4"].as_object()["inputs"].as_object()["ckpt_name"] = "sd_xl_base_1.0.safetensors";
  const auto steps = run(state, request(std::move(wf), {"9"}));
  const auto* err = find_event<comfy::ExecutionError>(steps);
  ASSERT_NE(err, nullptr);
  EXPECT_EQ(err->node_id, "4");
  EXPECT_EQ(err->exception_type, "torch.OutOfMemoryError");
  EXPECT_THAT(err->executed, IsEmpty());
}

// =============================================================================================
// Caching and message order

TEST_F(SimModelTest, FreshRunFollowsComfyUIsMessageOrder) {
  SimState state = make_state();
  const auto steps = txt2img(state, 1, 3);
  std::vector<std::string> want = {"execution_start", "execution_cached"};
  for (int node = 0; node < 4; ++node) {  // 4, 5, 7, 6 in some order: no progress, no UI
    want.insert(want.end(), {"progress_state", "executing", "progress_state"});
  }
  want.insert(want.end(), {"progress_state", "executing"});
  for (int i = 0; i < 3; ++i) want.insert(want.end(), {"progress_state", "progress"});
  want.insert(want.end(),
              {"progress_state", "progress_state", "executing", "progress_state", "progress_state",
               "executing", "executed", "progress_state", "execution_success"});
  EXPECT_EQ(kinds(steps), want);
  EXPECT_THAT(executing_nodes(steps), ElementsAre("4", "5", "7", "6", "3", "8", "9"));
  // Number types: floats without a progress bar, integers for the sampler's updates.
  const auto* start = as<comfy::ProgressState>(steps[2]);
  ASSERT_NE(start, nullptr);
  EXPECT_EQ(entry(*start, "4")->value, comfy::Number(0.0));
  EXPECT_EQ(entry(*start, "4")->max, comfy::Number(1.0));
  for (const auto& s : steps) {
    if (const auto* p = as<comfy::Progress>(s)) {
      EXPECT_TRUE(p->value.is_integer());
      EXPECT_EQ(p->max, comfy::Number(3));
      EXPECT_EQ(p->node, "3");
    }
  }
  const comfy::ProgressState* last = nullptr;
  for (const auto& s : steps) {
    if (const auto* p = as<comfy::ProgressState>(s)) last = p;
  }
  ASSERT_NE(last, nullptr);
  EXPECT_EQ(entry(*last, "3")->value, comfy::Number(3));
  EXPECT_EQ(entry(*last, "8")->value, comfy::Number(1.0));
  EXPECT_EQ(last->nodes.size(), 7U);
  const auto* executed = find_event<comfy::Executed>(steps);
  ASSERT_NE(executed, nullptr);
  EXPECT_EQ(
      comfy::dumps(executed->output),
      R"({"images": [{"filename": "txt2img_sd15_00001_.png", "subfolder": "", "type": "output"}]})");
}

TEST_F(SimModelTest, UnchangedPromptIsFullyCached) {
  SimState state = make_state();
  const auto first = txt2img(state);
  const auto second = txt2img(state);
  EXPECT_THAT(cached_nodes(second), ElementsAre("4", "5", "6", "7", "3", "8", "9"));
  EXPECT_EQ(kinds(second),
            (std::vector<std::string>{"execution_start", "execution_cached", "executed",
                                      "progress_state", "execution_success"}));
  // The replay re-sends the old file names: no new file is written.
  EXPECT_EQ(find_event<comfy::Executed>(second)->output,
            find_event<comfy::Executed>(first)->output);
  for (const auto& s : second) EXPECT_THAT(s.files, IsEmpty());
  const auto* snap = find_event<comfy::ProgressState>(second);
  ASSERT_EQ(snap->nodes.size(), 1U);
  EXPECT_EQ(snap->nodes[0].value, comfy::Number(1));
  EXPECT_EQ(snap->nodes[0].max, comfy::Number(1));
  EXPECT_LT(total_ms(second), 1.0);
}

TEST_F(SimModelTest, ChangedSeedRerunsTheSamplerAndDownstreamOnly) {
  SimState state = make_state();
  txt2img(state, 1);
  const auto steps = txt2img(state, 2);
  EXPECT_THAT(cached_nodes(steps), ElementsAre("4", "5", "6", "7"));
  EXPECT_THAT(executing_nodes(steps), ElementsAre("3", "8", "9"));
  const auto* executed = find_event<comfy::Executed>(steps);
  ASSERT_NE(executed, nullptr);
  EXPECT_THAT(comfy::dumps(executed->output), HasSubstr("txt2img_sd15_00002_.png"));
}

TEST_F(SimModelTest, RenumberedGraphStillHitsTheCache) {
  SimState state = make_state();
  run(state, request(load_workflow("model_free_blur.json"), {"4"}));
  const auto wf = load_workflow("model_free_blur.json");
  json::object renumbered;
  for (const auto& kv : wf) {
    json::object node = kv.value().as_object();
    for (auto& in : node["inputs"].as_object()) {
      if (in.value().is_array()) {
        auto& link = in.value().as_array();
        link[0] = "n" + std::string(link[0].as_string());
      }
    }
    renumbered.emplace("n" + std::string(kv.key()), std::move(node));
  }
  const auto steps = run(state, request(std::move(renumbered), {"n4"}));
  EXPECT_THAT(cached_nodes(steps), ElementsAre("n1", "n2", "n3", "n4"));
}

TEST_F(SimModelTest, AlternatingTwoWorkflowsLosesTheCache) {
  SimState state = make_state();
  txt2img(state);
  run(state, request(load_workflow("model_free_blur.json"), {"4"}));
  const auto steps = txt2img(state);
  EXPECT_THAT(cached_nodes(steps), IsEmpty());
  EXPECT_THAT(executing_nodes(steps), ElementsAre("4", "5", "7", "6", "3", "8", "9"));
}

TEST_F(SimModelTest, FreeMemoryClearsTheCache) {
  SimState state = make_state();
  txt2img(state);
  state.free(false, true);  // {"free_memory": true}
  EXPECT_EQ(state.cache().size(), 0U);
  EXPECT_TRUE(state.vram().resident().empty());
  EXPECT_THAT(cached_nodes(txt2img(state)), IsEmpty());
}

TEST_F(SimModelTest, SaveImageWebsocketAlwaysRunsAgain) {
  SimState state = make_state();
  const auto wf = parse(R"({
      "1": {"class_type": "EmptyImage", "inputs": {"width": 64, "height": 64, "batch_size": 2, "color": 0}},
      "2": {"class_type": "SaveImageWebsocket", "inputs": {"images": ["1", 0]}}})")
                      .as_object();
  run(state, request(wf, {"2"}));
  const auto steps = run(state, request(wf, {"2"}));
  EXPECT_THAT(cached_nodes(steps), ElementsAre("1"));
  EXPECT_THAT(executing_nodes(steps), ElementsAre("2"));
  EXPECT_EQ(find_event<comfy::Executed>(steps), nullptr);  // an empty UI sends no executed
}

TEST_F(SimModelTest, LoadImageRerunsWhenTheUploadedFileChanges) {
  SimState state = make_state();
  std::string fingerprint = "aaa";
  const auto wf = load_workflow("img2img.json");
  auto make = [&] {
    auto r = request(wf, {"8"});
    r.input_fingerprint = [&](std::string_view) { return fingerprint; };
    r.input_image_size = [](std::string_view) { return ImageSize{768, 512}; };
    return r;
  };
  const auto first = run(state, make());
  EXPECT_EQ(first.back().route, Route::kClient);
  EXPECT_THAT(cached_nodes(run(state, make())),
              ElementsAre("1", "2", "3", "4", "5", "6", "7", "8"));
  fingerprint = "bbb";
  const auto steps = run(state, make());
  EXPECT_THAT(cached_nodes(steps), ElementsAre("1", "4", "5"));
  // The sampler works on the uploaded image's size: 768x512.
  const auto* executed = find_event<comfy::Executed>(steps);
  ASSERT_NE(executed, nullptr);
  for (const auto& s : steps) {
    for (const auto& f : s.files) {
      EXPECT_EQ(f.width, 768);
      EXPECT_EQ(f.height, 512);
    }
  }
}

TEST_F(SimModelTest, ShapesFollowTheGraph) {
  // hires fix: the second sampler and the decode work at 768x768.
  SimState state = make_state();
  const auto steps = run(state, request(load_workflow("hires_fix_upscale.json"), {"9"}));
  std::vector<OutputFile> files;
  for (const auto& s : steps) files.insert(files.end(), s.files.begin(), s.files.end());
  ASSERT_EQ(files.size(), 1U);
  EXPECT_EQ(files[0].width, 768);
  EXPECT_EQ(files[0].height, 768);
  EXPECT_EQ(files[0].ref, (ImageRef{"hires_fix_00001_.png", "", "output"}));
  // 20 steps at 512x512, then 14 at 768x768 (KSampler counts all its steps, denoise or not).
  std::vector<std::int64_t> maxes;
  for (const auto& s : steps) {
    if (const auto* p = as<comfy::Progress>(s); p != nullptr && p->value.as_int64() == 1) {
      maxes.push_back(p->max.as_int64());
    }
  }
  EXPECT_THAT(maxes, ElementsAre(20, 14));
  EXPECT_NEAR(node_ms(steps, "7") / node_ms(steps, "5"),
              (14 * 0.589824 * 190 + 60) / (20 * 0.262144 * 190 + 60), 0.01);
}

TEST_F(SimModelTest, KSamplerAdvancedRunsItsStepRange) {
  SimState state = make_state();
  auto wf = load_workflow("txt2img_sd15.json");
  wf["3"] = parse(R"({"class_type": "KSamplerAdvanced", "inputs": {
      "add_noise": "enable", "noise_seed": 1, "steps": 20, "cfg": 7.0, "sampler_name": "euler",
      "scheduler": "normal", "start_at_step": 5, "end_at_step": 15,
      "return_with_leftover_noise": "disable", "model": ["4", 0], "positive": ["6", 0],
      "negative": ["7", 0], "latent_image": ["5", 0]}})");
  const auto steps = run(state, request(std::move(wf), {"9"}));
  std::vector<std::int64_t> values;
  for (const auto& s : steps) {
    if (const auto* p = as<comfy::Progress>(s)) {
      values.push_back(p->value.as_int64());
      EXPECT_EQ(p->max, comfy::Number(10));
    }
  }
  EXPECT_EQ(values.size(), 10U);
  EXPECT_EQ(values.front(), 1);
  EXPECT_EQ(values.back(), 10);
}

TEST_F(SimModelTest, FileNamesFollowComfyUIsCounters) {
  SimState state = make_state();
  const auto wf = parse(R"({
      "1": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 16, "batch_size": 2, "color": 0}},
      "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "runs/%width%x%height%"}},
      "3": {"class_type": "PreviewImage", "inputs": {"images": ["1", 0]}}})")
                      .as_object();
  const auto steps = run(state, request(wf, {"2", "3"}));
  std::vector<ImageRef> refs;
  for (const auto& s : steps) {
    for (const auto& f : s.files) refs.push_back(f.ref);
  }
  ASSERT_EQ(refs.size(), 4U);
  EXPECT_EQ(refs[0], (ImageRef{"32x16_00001_.png", "runs", "output"}));
  EXPECT_EQ(refs[1], (ImageRef{"32x16_00002_.png", "runs", "output"}));
  EXPECT_THAT(refs[2].filename, ::testing::MatchesRegex("ComfyUI_temp_[a-z]{5}_00001_\\.png"));
  EXPECT_THAT(refs[3].filename, ::testing::MatchesRegex("ComfyUI_temp_[a-z]{5}_00002_\\.png"));
  EXPECT_EQ(refs[2].type, "temp");
  // The history lists the outputs and their meta.
  const auto h = runs_.back()->history_entry();
  EXPECT_EQ(h.outputs.size(), 2U);
  EXPECT_EQ(comfy::dumps(h.meta->at("2")),
            R"({"node_id": "2", "display_node": "2", "parent_node": null, "real_node_id": "2"})");
  // Same seed, same names: the namer is deterministic.
  SimState other = make_state();
  const auto again = run(other, request(wf, {"2", "3"}));
  std::vector<ImageRef> refs2;
  for (const auto& s : again) {
    for (const auto& f : s.files) refs2.push_back(f.ref);
  }
  EXPECT_EQ(refs, refs2);
}

TEST_F(SimModelTest, WithoutClientIdOnlyBroadcastsAreSent) {
  SimState state = make_state();
  const auto steps = run(state, request(load_workflow("txt2img_sd15.json"), {"9"}, false));
  std::set<std::string> sent;
  for (const auto& s : steps) {
    EXPECT_NE(s.route, Route::kClient);
    if (s.route == Route::kBroadcast) {
      if (const auto* e = event_of(s)) sent.insert(std::string(comfy::type_name(*e)));
    }
  }
  EXPECT_EQ(sent, (std::set<std::string>{"progress_state", "progress"}));
  // The files are still written, and the history still has its messages.
  bool wrote = false;
  for (const auto& s : steps) wrote = wrote || !s.files.empty();
  EXPECT_TRUE(wrote);
  const auto h = runs_.back()->history_entry();
  ASSERT_TRUE(h.status);
  EXPECT_EQ(h.status->messages.size(), 3U);
  EXPECT_EQ(h.status->status_str, "success");
  EXPECT_THAT(h.outputs, ::testing::SizeIs(1));
  EXPECT_THAT(closing_steps("p", false, 0), ::testing::SizeIs(1));
}

TEST_F(SimModelTest, SamplerPreviewsFollowTheClientsFormat) {
  for (const bool metadata : {false, true}) {
    SimState state = make_state();
    state.set_sampler_previews(true);
    auto req = request(load_workflow("txt2img_sd15.json"), {"9"});
    req.item.prompt["3"].as_object()["inputs"].as_object()["steps"] = 2;
    req.preview_metadata = metadata;
    const auto all = kinds(run(state, std::move(req)));
    const auto it = std::find(all.begin(), all.end(), "progress");
    ASSERT_NE(it, all.end());
    if (metadata) {
      EXPECT_EQ(*(it - 1), "binary:4");
    } else {
      EXPECT_EQ(*(it + 1), "binary:1");
    }
  }
}

TEST_F(SimModelTest, ClosingStepsAreStatusThenExecutingNull) {
  const auto steps = closing_steps("p1", true, 2);
  ASSERT_EQ(steps.size(), 2U);
  EXPECT_EQ(comfy::encode_event(std::get<comfy::Event>(steps[0].payload)),
            R"({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 2}}}})");
  EXPECT_EQ(steps[0].route, Route::kBroadcast);
  EXPECT_EQ(comfy::encode_event(std::get<comfy::Event>(steps[1].payload)),
            R"({"type": "executing", "data": {"node": null, "prompt_id": "p1"}})");
  EXPECT_EQ(steps[1].route, Route::kClient);
}

// =============================================================================================
// Interrupts and faults

TEST_F(SimModelTest, InterruptBetweenNodesStopsAtTheNextNode) {
  SimState state = make_state();
  auto r = PromptRun::start(data_, state, request(load_workflow("model_free_blur.json"), {"4"}));
  ASSERT_TRUE(r);
  std::vector<Step> steps;
  bool blur_running = false;
  while (!r->done()) {
    (void)r->delay_before_next_ms();
    if (blur_running) r->request_interrupt();  // arrives while node 2 computes
    steps.push_back(r->next_step(0));
    const auto* e = as<comfy::Executing>(steps.back());
    blur_running = e != nullptr && e->node == "2";
  }
  EXPECT_EQ(r->outcome(), Outcome::kInterrupted);
  const auto k = kinds(steps);
  EXPECT_EQ(std::vector<std::string>(k.end() - 5, k.end()),
            (std::vector<std::string>{"executing", "progress_state", "progress_state", "executing",
                                      "execution_interrupted"}));
  const auto* i = find_event<comfy::ExecutionInterrupted>(steps);
  ASSERT_NE(i, nullptr);
  EXPECT_EQ(i->node_id, "3");
  EXPECT_EQ(i->node_type, "ImageInvert");
  EXPECT_THAT(i->executed, ElementsAre("1", "2"));
  EXPECT_TRUE(steps.back().terminal);
  EXPECT_EQ(steps.back().route, Route::kClient);
  const auto h = r->history_entry();
  EXPECT_EQ(h.status->status_str, "error");
  EXPECT_FALSE(h.status->completed);
  EXPECT_THAT(h.outputs, IsEmpty());
  // The interrupted node is not cached; the finished ones are.
  EXPECT_THAT(cached_nodes(run(state, request(load_workflow("model_free_blur.json"), {"4"}))),
              ElementsAre("1", "2"));
}

TEST_F(SimModelTest, InterruptStopsASamplerAtItsNextStep) {
  SimState state = make_state();
  auto r = PromptRun::start(data_, state, request(load_workflow("txt2img_sd15.json"), {"9"}));
  ASSERT_TRUE(r);
  std::vector<Step> steps;
  while (!r->done()) {
    const double delay = r->delay_before_next_ms();
    if (const auto* p = steps.empty() ? nullptr : as<comfy::Progress>(steps.back());
        p != nullptr && p->value.as_int64() == 5) {
      r->request_interrupt();
    }
    steps.push_back(r->next_step(0));
    EXPECT_EQ(steps.back().delay_ms, delay);
  }
  EXPECT_EQ(r->outcome(), Outcome::kInterrupted);
  std::int64_t last_value = 0;
  for (const auto& s : steps) {
    if (const auto* p = as<comfy::Progress>(s)) last_value = p->value.as_int64();
  }
  EXPECT_EQ(last_value, 5);
  const auto* i = find_event<comfy::ExecutionInterrupted>(steps);
  ASSERT_NE(i, nullptr);
  EXPECT_EQ(i->node_id, "3");
  EXPECT_EQ(i->node_type, "KSampler");
  EXPECT_THAT(i->executed, ElementsAre("4", "5", "7", "6"));
  // It stopped after the compute of step 6, with no finished snapshot for the sampler.
  EXPECT_GT(steps.back().delay_ms, 0.0);
  const auto* before = as<comfy::ProgressState>(steps[steps.size() - 3]);
  ASSERT_NE(before, nullptr);
  EXPECT_EQ(entry(*before, "3")->state, "running");
  EXPECT_EQ(state.vram().activation_bytes(), 0U);
}

TEST_F(SimModelTest, InterruptAfterTheLastNodeChangesNothing) {
  SimState state = make_state();
  auto r = PromptRun::start(data_, state, request(load_workflow("model_free_blur.json"), {"4"}));
  ASSERT_TRUE(r);
  std::vector<Step> steps;
  while (!r->done()) {
    (void)r->delay_before_next_ms();
    steps.push_back(r->next_step(0));
    if (as<comfy::Executed>(steps.back()) != nullptr) r->request_interrupt();
  }
  EXPECT_EQ(r->outcome(), Outcome::kSuccess);
}

TEST_F(SimModelTest, InterruptWithoutClientIsBroadcast) {
  SimState state = make_state();
  auto r =
      PromptRun::start(data_, state, request(load_workflow("model_free_blur.json"), {"4"}, false));
  ASSERT_TRUE(r);
  r->request_interrupt();
  const auto steps = run_to_end(*r, 0);
  ASSERT_FALSE(steps.empty());
  EXPECT_NE(as<comfy::ExecutionInterrupted>(steps.back()), nullptr);
  EXPECT_EQ(steps.back().route, Route::kBroadcast);
  EXPECT_THAT(as<comfy::ExecutionInterrupted>(steps.back())->executed, IsEmpty());
}

TEST_F(SimModelTest, NodeErrorFaultRaisesInThatNode) {
  SimState state = make_state();
  auto req = request(load_workflow("model_free_blur.json"), {"4"});
  req.fault = node_error_for_classes({"ImageInvert"});
  PromptRun* r = nullptr;
  const auto steps = run(state, std::move(req), &r);
  EXPECT_EQ(r->outcome(), Outcome::kError);
  const auto k = kinds(steps);
  EXPECT_EQ(std::vector<std::string>(k.end() - 3, k.end()),
            (std::vector<std::string>{"progress_state", "executing", "execution_error"}));
  EXPECT_EQ(find_event<comfy::ExecutionSuccess>(steps), nullptr);
  const auto* e = find_event<comfy::ExecutionError>(steps);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->node_id, "3");
  EXPECT_EQ(e->node_type, "ImageInvert");
  EXPECT_THAT(e->executed, ElementsAre("1", "2"));
  EXPECT_EQ(e->exception_type, "RuntimeError");
  EXPECT_THAT(e->exception_message, HasSubstr("ImageInvert"));
  EXPECT_EQ(e->exception_message.back(), '\n');
  EXPECT_EQ(e->traceback.size(), 5U);
  EXPECT_THAT(e->current_outputs, ElementsAre("1", "2", "3", "4"));
  ASSERT_TRUE(e->current_inputs.is_object());
  const auto& image = e->current_inputs.as_object().at("image").as_array();
  ASSERT_EQ(image.size(), 1U);
  // EmptyImage color 0xFFA500, blurred (still orange), as torch prints it.
  EXPECT_THAT(std::string(image[0].as_string()),
              ::testing::StartsWith("tensor([[[[1.0000, 0.6471, 0.0000],"));
  EXPECT_TRUE(e->timestamp.has_value());
  const auto h = r->history_entry();
  EXPECT_EQ(h.status->status_str, "error");
  ASSERT_EQ(h.status->messages.size(), 3U);
  EXPECT_EQ(comfy::type_name(h.status->messages.back()), "execution_error");
  // The failing node is not cached; the nodes before it are, and it fails again.
  auto again = request(load_workflow("model_free_blur.json"), {"4"});
  again.fault = node_error_for_classes({"ImageInvert"});
  const auto second = run(state, std::move(again));
  EXPECT_THAT(cached_nodes(second), ElementsAre("1", "2"));
  EXPECT_THAT(find_event<comfy::ExecutionError>(second)->executed, IsEmpty());
}

TEST_F(SimModelTest, OomFaultLooksLikeARealOne) {
  SimState state = make_state();
  auto req = request(load_workflow("txt2img_sd15.json"), {"9"});
  req.fault = [](std::string_view, std::string_view cls) -> std::optional<NodeFault> {
    if (cls != "KSampler") return std::nullopt;
    return NodeFault{NodeFault::Kind::kOutOfMemory, {}, {}};
  };
  const auto steps = run(state, std::move(req));
  const auto* e = find_event<comfy::ExecutionError>(steps);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->node_id, "3");
  EXPECT_EQ(e->exception_type, "torch.OutOfMemoryError");
  EXPECT_THAT(e->exception_message, ::testing::StartsWith("Allocation on device \n"));
  EXPECT_TRUE(state.vram().resident().empty());
  // current_inputs shows the inputs as ComfyUI's format_value does.
  const auto& in = e->current_inputs.as_object();
  EXPECT_EQ(in.at("seed"), parse("[123456789]"));
  EXPECT_EQ(in.at("sampler_name"), parse(R"(["euler"])"));
  EXPECT_THAT(std::string(in.at("model").as_array()[0].as_string()),
              ::testing::StartsWith("<comfy.model_patcher.ModelPatcher object at 0x7f"));
  EXPECT_THAT(std::string(in.at("latent_image").as_array()[0].as_string()),
              ::testing::StartsWith("{'samples': tensor([[[[0., 0., 0.,  ..., 0., 0., 0.],"));
}

TEST_F(SimModelTest, PreviewAnyShowsTheValues) {
  SimState state = make_state();
  const auto wf = parse(R"({
      "1": {"class_type": "PrimitiveInt", "inputs": {"value": 7}},
      "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
      "3": {"class_type": "StringConcatenate", "inputs": {"string_a": "a", "string_b": "b", "delimiter": "+"}},
      "4": {"class_type": "PreviewAny", "inputs": {"source": ["3", 0]}}})")
                      .as_object();
  run(state, request(wf, {"2", "4"}));
  const auto h = runs_.back()->history_entry();
  EXPECT_EQ(h.outputs.at("2"), parse(R"({"text": ["7"]})"));
  EXPECT_EQ(h.outputs.at("4"), parse(R"({"text": ["a+b"]})"));
}

TEST_F(SimModelTest, StartRejectsWhatValidationWouldHaveRejected) {
  SimState state = make_state();
  auto unknown =
      request(parse(R"({"1": {"class_type": "Nope", "inputs": {}}})").as_object(), {"1"});
  const auto r1 = PromptRun::start(data_, state, std::move(unknown));
  ASSERT_FALSE(r1);
  EXPECT_THAT(r1.error().message, HasSubstr("Nope"));
  auto missing = request(load_workflow("model_free_blur.json"), {"99"});
  EXPECT_FALSE(PromptRun::start(data_, state, std::move(missing)));
}

// =============================================================================================
// Pieces

TEST(ExecutionList, PicksLikeUxFriendlyPickNode) {
  // 0 -> 1 -> 2(out);  3 -> 4(out): a node that feeds an output directly goes first.
  const std::vector<std::vector<std::size_t>> inputs = {{}, {0}, {1}, {}, {3}};
  detail::ExecutionList list([&](std::size_t n) { return inputs[n]; },
                             [](std::size_t) { return false; },
                             [](std::size_t n) { return n == 2 || n == 4; });
  list.add_node(2);
  list.add_node(4);
  std::vector<std::size_t> order;
  while (!list.empty()) {
    const auto n = list.pick();
    ASSERT_TRUE(n);
    order.push_back(*n);
    list.complete(*n);
  }
  EXPECT_THAT(order, ElementsAre(3, 4, 0, 1, 2));
}

TEST(PythonRepr, MatchesPython) {
  EXPECT_EQ(detail::py_repr(parse(R"({"a": [1, 2.5, true, null, "it's"]})")),
            R"({'a': [1, 2.5, True, None, "it's"]})");
  EXPECT_EQ(detail::py_str(json::value("x")), "x");
  EXPECT_EQ(detail::py_repr(json::value(1.0)), "1.0");
  const std::int64_t small[] = {2, 2};
  const double v[] = {0.5, 1.0};
  EXPECT_EQ(detail::torch_repr(small, v), "tensor([[0.5000, 1.0000],\n        [0.5000, 1.0000]])");
  const double ones[] = {1.0};
  EXPECT_EQ(detail::torch_repr(small, ones), "tensor([[1., 1.],\n        [1., 1.]])");
}

TEST(Png, EncodesASolidImage) {
  const auto png = encode_png(300, 200, Rgb{10, 20, 30}, {{"prompt", "{}"}});
  ASSERT_GT(png.size(), 33U);
  EXPECT_EQ(std::vector<std::uint8_t>(png.begin(), png.begin() + 8),
            (std::vector<std::uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'}));
  auto u32 = [&](std::size_t at) {
    return (std::uint32_t{png[at]} << 24) | (std::uint32_t{png[at + 1]} << 16) |
           (std::uint32_t{png[at + 2]} << 8) | std::uint32_t{png[at + 3]};
  };
  EXPECT_EQ(u32(16), 300U);
  EXPECT_EQ(u32(20), 200U);
  EXPECT_LT(png.size(), 2000U);
  // The IDAT inflates to 200 rows of filter byte + 300 RGB pixels.
  std::size_t at = 8;
  std::vector<std::uint8_t> idat;
  while (at + 8 <= png.size()) {
    const auto len = u32(at);
    const std::string type(png.begin() + static_cast<std::ptrdiff_t>(at + 4),
                           png.begin() + static_cast<std::ptrdiff_t>(at + 8));
    if (type == "IDAT") {
      idat.assign(png.begin() + static_cast<std::ptrdiff_t>(at + 8),
                  png.begin() + static_cast<std::ptrdiff_t>(at + 8 + len));
    }
    at += 12 + len;
  }
  std::vector<std::uint8_t> raw(200 * 901);
  uLongf raw_len = raw.size();
  ASSERT_EQ(uncompress(raw.data(), &raw_len, idat.data(), idat.size()), Z_OK);
  EXPECT_EQ(raw_len, raw.size());
  EXPECT_EQ(raw[0], 0);
  EXPECT_EQ(raw[1], 10);
  EXPECT_EQ(raw[3], 30);
}

TEST(ModelLibrary, ListsFilesAndResolvesUnknownOnes) {
  auto lib = ModelLibrary::load_default();
  ASSERT_TRUE(lib) << lib.error().message;
  const auto* sd15 = lib->find("checkpoints", "v1-5-pruned-emaonly.safetensors");
  ASSERT_NE(sd15, nullptr);
  EXPECT_EQ(sd15->size_bytes, 4'265'146'304U);
  EXPECT_LT(sd15->vram_bytes, sd15->size_bytes);
  EXPECT_EQ(sd15->arch, "sd15");
  const auto* sdxl = lib->find("checkpoints", "sd_xl_base_1.0.safetensors");
  ASSERT_NE(sdxl, nullptr);
  EXPECT_EQ(sdxl->vram_bytes, sdxl->size_bytes);
  const auto mine = lib->resolve("loras", "my_style.safetensors");
  EXPECT_EQ(mine.key(), "loras/my_style.safetensors");
  EXPECT_GT(mine.size_bytes, 0U);
  auto extra = ModelLibrary::parse(
      R"({"models": [{"folder": "loras", "filename": "a.safetensors", "size_bytes": 5}]})");
  ASSERT_TRUE(extra);
  lib->merge(*extra);
  EXPECT_THAT(lib->files("loras"), ElementsAre("a.safetensors", "lcm-lora-sdv1-5.safetensors"));
  EXPECT_FALSE(ModelLibrary::parse(R"({"models": [{"folder": "x"}]})"));
}

}  // namespace
}  // namespace comfyfarm::sim
