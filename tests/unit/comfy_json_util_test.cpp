#include "comfy/json_util.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>

namespace comfyfarm::comfy {
namespace {

TEST(ParseJson, KeepsSeedsUpToUint64Max) {
  auto v = parse_json(R"({"seed": 18446744073709551615, "small": 7})");
  ASSERT_TRUE(v) << v.error().message;
  const auto& o = v->as_object();
  ASSERT_TRUE(o.at("seed").is_uint64());
  EXPECT_EQ(o.at("seed").get_uint64(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_EQ(dumps(*v), R"({"seed": 18446744073709551615, "small": 7})");
}

TEST(ParseJson, ReportsByteOffsetOfMalformedInput) {
  auto v = parse_json(R"({"a": 1,, "b": 2})");
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, Errc::kInvalidArgument);
  EXPECT_NE(v.error().message.find("malformed JSON at byte 8"), std::string::npos)
      << v.error().message;
}

TEST(ParseJson, AcceptsPythonNonFiniteTokensOutsideStrings) {
  auto v = parse_json(R"({"a": NaN, "b": [Infinity, -Infinity], "s": "NaN stays"})");
  ASSERT_TRUE(v) << v.error().message;
  const auto& o = v->as_object();
  EXPECT_TRUE(o.at("a").is_null());
  EXPECT_TRUE(o.at("b").as_array().at(0).is_null());
  EXPECT_TRUE(o.at("b").as_array().at(1).is_null());
  EXPECT_EQ(o.at("s").as_string(), "NaN stays");
}

TEST(ParseJson, RejectsTruncatedInput) {
  auto v = parse_json(R"({"a": [1, 2)");
  ASSERT_FALSE(v);
  EXPECT_EQ(v.error().code, Errc::kInvalidArgument);
}

TEST(Dumps, MatchesPythonDefaults) {
  auto v = parse_json(R"({"f": 1.0, "g": 0.5, "e": 1e20, "n": null, "t": true, "u": "é\n"})");
  ASSERT_TRUE(v);
  EXPECT_EQ(dumps(*v), R"({"f": 1.0, "g": 0.5, "e": 1e+20, "n": null, "t": true, "u": "\u00e9\n"})");
}

TEST(Dumps, WritesFloatsAsPythonRepr) {
  struct Case {
    double value;
    const char* text;
  };
  const Case cases[] = {{0.0001, "0.0001"},  {1e-5, "1e-05"},  {1e15, "1000000000000000.0"},
                        {1e16, "1e+16"},     {-2.5, "-2.5"},   {0.1, "0.1"},
                        {123456.789, "123456.789"}, {1.5e300, "1.5e+300"}, {0.0, "0.0"}};
  for (const auto& c : cases) {
    EXPECT_EQ(dumps(json::value(c.value)), c.text) << c.value;
  }
}

TEST(Dumps, EscapesAstralCharactersAsSurrogatePairs) {
  json::value v = "\xF0\x9F\x98\x80";  // U+1F600
  EXPECT_EQ(dumps(v), R"("\ud83d\ude00")");
}

TEST(CanonicalJson, SortsKeysRecursivelyAndIsCompact) {
  auto a = parse_json(R"({"b": {"y": 1, "x": [2, {"d": 1, "c": 2}]}, "a": "é"})");
  auto b = parse_json(R"({"a": "é", "b": {"x": [2, {"c": 2, "d": 1}], "y": 1}})");
  ASSERT_TRUE(a && b);
  EXPECT_EQ(canonical_json(*a), canonical_json(*b));
  EXPECT_EQ(canonical_json(*a), "{\"a\":\"\xC3\xA9\",\"b\":{\"x\":[2,{\"c\":2,\"d\":1}],\"y\":1}}");
}

}  // namespace
}  // namespace comfyfarm::comfy
