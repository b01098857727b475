// FaultSet: the `--fault` grammar and the /sim/faults JSON, parsed and printed in one place.
#include "sim/fault_set.hpp"

#include "comfy/json_util.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace comfyfarm::sim {
namespace {

FaultSet apply_all(const std::vector<std::string>& specs) {
  FaultSet f;
  for (const auto& s : specs) {
    auto spec = parse_fault_spec(s);
    EXPECT_TRUE(spec) << s;
    if (!spec) continue;
    std::optional<std::string_view> value;
    if (spec->value) value = *spec->value;
    auto r = f.apply(spec->name, value);
    EXPECT_TRUE(r) << s << ": " << (r ? "" : r.error().message);
  }
  return f;
}

TEST(FaultSpec, SplitsTargetNameAndValue) {
  auto s = parse_fault_spec("@2:oom=0.5");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->target, 2U);
  EXPECT_EQ(s->name, "oom");
  EXPECT_EQ(s->value, "0.5");
  auto bare = parse_fault_spec("stall");
  ASSERT_TRUE(bare);
  EXPECT_FALSE(bare->target);
  EXPECT_FALSE(bare->value);
  for (const char* bad : {"@x:oom", "@1oom", "", "=3", "@1:"}) {
    EXPECT_FALSE(parse_fault_spec(bad)) << bad;
  }
}

TEST(FaultSet, AppliesEveryFaultOfTheGrammar) {
  const auto f = apply_all({"oom=every:3", "crash=after:2", "stall", "ws-silence=0.25", "ws-drop",
                            "http-latency=200", "http-error=0.1", "slow-object-info=50",
                            "node-error=KSampler,VAEDecode"});
  EXPECT_EQ(f.oom_every, 3U);
  EXPECT_EQ(f.crash_after, 2U);
  EXPECT_TRUE(f.stall);
  EXPECT_EQ(f.ws_silence, 0.25);
  EXPECT_EQ(f.ws_drop, 1.0);
  EXPECT_EQ(f.http_latency_ms, 200U);
  EXPECT_EQ(f.http_error_rate, 0.1);
  EXPECT_EQ(f.slow_object_info_ms, 50U);
  EXPECT_EQ(f.node_error_classes, (std::vector<std::string>{"KSampler", "VAEDecode"}));
  EXPECT_EQ(f.specs(), (std::vector<std::string>{"oom=every:3", "crash=after:2", "stall",
                                                 "ws-silence=0.25", "ws-drop=1", "http-latency=200",
                                                 "http-error=0.1", "slow-object-info=50",
                                                 "node-error=KSampler,VAEDecode"}));
  // The canonical specs read back to the same set.
  EXPECT_EQ(apply_all(f.specs()), f);
}

TEST(FaultSet, DefaultsOfValuelessFaults) {
  const auto f = apply_all({"oom", "crash"});
  EXPECT_EQ(f.oom_every, 1U);
  EXPECT_EQ(f.crash_after, 0U);
  EXPECT_FALSE(FaultSet{}.specs().size());
  EXPECT_TRUE(FaultSet{}.empty());
  EXPECT_FALSE(f.empty());
}

TEST(FaultSet, RejectsBadValuesWithTheSpecInTheMessage) {
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"oom", "1.5"}, {"oom", "every:0"}, {"crash", "after:x"}, {"stall", "maybe"},
           {"http-latency", "-5"}, {"http-latency", "fast"}, {"http-error", "2"},
           {"ws-drop", "later"}, {"node-error", ""}, {"node-error", "A,,B"}, {"nope", "1"}}) {
    FaultSet f;
    auto r = f.apply(name, value);
    ASSERT_FALSE(r) << name << "=" << value;
    EXPECT_NE(r.error().message.find(name), std::string::npos) << r.error().message;
    EXPECT_EQ(f, FaultSet{});
  }
  FaultSet f;
  EXPECT_FALSE(f.apply("http-latency", std::nullopt));
}

TEST(FaultSet, JsonBodyMergesReplacesAndTurnsOff) {
  FaultSet f = apply_all({"stall", "http-latency=10"});
  auto body = comfy::parse_json(R"({"oom": 0.5, "http-latency": null, "node-error": ["A", "B"]})");
  ASSERT_TRUE(body);
  ASSERT_TRUE(f.apply_json(body->as_object()));
  EXPECT_TRUE(f.stall);
  EXPECT_EQ(f.http_latency_ms, 0U);
  EXPECT_EQ(f.oom_probability, 0.5);
  EXPECT_EQ(comfy::dumps(f.to_json()), R"({"oom": 0.5, "stall": true, "node-error": ["A", "B"]})");

  auto replace = comfy::parse_json(R"({"mode": "replace", "specs": ["crash=0.25"], "stall": false})");
  ASSERT_TRUE(f.apply_json(replace->as_object()));
  EXPECT_EQ(f.specs(), std::vector<std::string>{"crash=0.25"});

  bool drop = false;
  auto now = comfy::parse_json(R"({"ws-drop": "now"})");
  ASSERT_TRUE(f.apply_json(now->as_object(), &drop));
  EXPECT_TRUE(drop);
  EXPECT_EQ(f.ws_drop, 0.0);

  // A bad key leaves the set as it was.
  const FaultSet before = f;
  auto bad = comfy::parse_json(R"({"oom": 0.1, "warp-drive": 1})");
  EXPECT_FALSE(f.apply_json(bad->as_object()));
  EXPECT_EQ(f, before);
}

}  // namespace
}  // namespace comfyfarm::sim
