#include "comfy/messages.hpp"

#include "comfy/json_util.hpp"

#include <boost/json/parse.hpp>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

namespace comfyfarm::comfy {
namespace {

constexpr std::string_view kPid = "2f458447-b648-49e7-a894-f582d043164c";

// Decodes, expects success, and checks that re-encoding gives the same bytes back.
Event round_trip(std::string_view text) {
  auto r = decode_event(text);
  EXPECT_TRUE(r) << r.error().message;
  if (!r) return Unknown{};
  Event e = std::move(r).value();
  EXPECT_EQ(encode_event(e), text);
  return e;
}

// Decodes, expects a kProtocol failure, and returns its message.
std::string decode_error(std::string_view text) {
  auto r = decode_event(text);
  EXPECT_FALSE(r) << "decoded: " << text;
  if (r) return {};
  EXPECT_EQ(r.error().code, Errc::kProtocol);
  return r.error().message;
}

// ----- numbers

TEST(Number, KeepsIntegerAndFloatApart) {
  EXPECT_TRUE(Number(2).is_integer());
  EXPECT_FALSE(Number(2.0).is_integer());
  EXPECT_NE(Number(1), Number(1.0));
  EXPECT_EQ(Number(1.0), Number(1.0));
  EXPECT_EQ(Number(7).as_double(), 7.0);
  EXPECT_EQ(Number(2.9).as_int64(), 2);
}

TEST(DecodeEvent, ProgressKeepsIntegerValues) {
  const std::string text = R"({"type": "progress", "data": {"value": 0, "max": 2, "prompt_id": ")" +
                           std::string(kPid) + R"(", "node": "3"}})";
  const Event e = round_trip(text);
  const auto& p = std::get<Progress>(e);
  EXPECT_EQ(p.value, Number(0));
  EXPECT_EQ(p.max, Number(2));
  EXPECT_EQ(p.node, "3");
  EXPECT_EQ(prompt_id_of(e), kPid);
}

TEST(DecodeEvent, ProgressStateKeepsFloatAndIntegerValuesPerNode) {
  const std::string text =
      R"({"type": "progress_state", "data": {"prompt_id": "P", "nodes": {)"
      R"("1": {"value": 1.0, "max": 1.0, "state": "finished", "node_id": "1", "prompt_id": "P", "display_node_id": "1", "parent_node_id": null, "real_node_id": "1"}, )"
      R"("3": {"value": 0, "max": 2, "state": "running", "node_id": "3", "prompt_id": "P", "display_node_id": "3", "parent_node_id": "12", "real_node_id": "12"}}}})";
  const Event e = round_trip(text);
  const auto& s = std::get<ProgressState>(e);
  ASSERT_EQ(s.nodes.size(), 2u);
  EXPECT_EQ(s.nodes[0].value, Number(1.0));
  EXPECT_FALSE(s.nodes[0].parent_node_id.has_value());
  EXPECT_EQ(s.nodes[1].value, Number(0));
  EXPECT_EQ(s.nodes[1].max, Number(2));
  EXPECT_EQ(s.nodes[1].parent_node_id, "12");
  EXPECT_EQ(s.nodes[1].state, "running");
}

TEST(DecodeEvent, ProgressStateKeepsNodeOrderNotKeyOrder) {
  const std::string text =
      R"({"type": "progress_state", "data": {"prompt_id": "P", "nodes": {)"
      R"("8": {"value": 1, "max": 1, "state": "finished", "node_id": "8", "prompt_id": "P", "display_node_id": "8", "parent_node_id": null, "real_node_id": "8"}, )"
      R"("10": {"value": 1, "max": 1, "state": "finished", "node_id": "10", "prompt_id": "P", "display_node_id": "10", "parent_node_id": null, "real_node_id": "10"}}}})";
  const Event e = round_trip(text);
  EXPECT_EQ(std::get<ProgressState>(e).nodes[0].node_id, "8");
}

// ----- executing: the three forms

TEST(DecodeEvent, ExecutingWhileRunning) {
  const Event e = round_trip(
      R"({"type": "executing", "data": {"node": "3", "display_node": "3", "prompt_id": "P"}})");
  const auto& x = std::get<Executing>(e);
  EXPECT_FALSE(x.is_end_of_prompt());
  EXPECT_EQ(x.display_node, "3");
  EXPECT_EQ(prompt_id_of(e), "P");
}

TEST(DecodeEvent, ExecutingNullNodeEndsThePromptAndHasNoDisplayNode) {
  const Event e = round_trip(R"({"type": "executing", "data": {"node": null, "prompt_id": "P"}})");
  const auto& x = std::get<Executing>(e);
  EXPECT_TRUE(x.is_end_of_prompt());
  EXPECT_FALSE(x.display_node.has_value());
  EXPECT_EQ(x.prompt_id, "P");
}

TEST(DecodeEvent, ExecutingReconnectFormHasOnlyTheNode) {
  const Event e = round_trip(R"({"type": "executing", "data": {"node": "2"}})");
  const auto& x = std::get<Executing>(e);
  EXPECT_EQ(x.node, "2");
  EXPECT_FALSE(x.display_node.has_value());
  EXPECT_FALSE(x.prompt_id.has_value());
  EXPECT_FALSE(prompt_id_of(e).has_value());
}

TEST(EncodeEvent, WritesConstructedEventsInComfyOrder) {
  EXPECT_EQ(encode_event(Executing{.node = std::nullopt, .prompt_id = "P"}),
            R"({"type": "executing", "data": {"node": null, "prompt_id": "P"}})");
  EXPECT_EQ(encode_event(Status{.queue_remaining = 2}),
            R"({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 2}}}})");
  EXPECT_EQ(encode_event(Status{.queue_remaining = 0, .sid = "c1"}),
            R"({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "c1"}})");
  EXPECT_EQ(encode_event(ExecutionSuccess{.prompt_id = "P", .timestamp = 1795349666102}),
            R"({"type": "execution_success", "data": {"prompt_id": "P", "timestamp": 1795349666102}})");
  EXPECT_EQ(encode_event(Progress{.value = 1, .max = 2.0, .prompt_id = "P", .node = "3"}),
            R"({"type": "progress", "data": {"value": 1, "max": 2.0, "prompt_id": "P", "node": "3"}})");
  EXPECT_EQ(encode_event(ExecutionCached{.nodes = {"1", "2"}, .prompt_id = "P"}),
            R"({"type": "execution_cached", "data": {"nodes": ["1", "2"], "prompt_id": "P"}})");
}

// ----- other known types

TEST(DecodeEvent, StatusWithAndWithoutSid) {
  const Event first = round_trip(
      R"({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 0}}, "sid": "golden-client-0001"}})");
  EXPECT_EQ(std::get<Status>(first).sid, "golden-client-0001");
  const Event later =
      round_trip(R"({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": 1}}}})");
  EXPECT_EQ(std::get<Status>(later).queue_remaining, 1);
  EXPECT_FALSE(std::get<Status>(later).sid.has_value());
  EXPECT_FALSE(prompt_id_of(later).has_value());
}

TEST(DecodeEvent, ExecutedOutputObjectOrNull) {
  const Event e = round_trip(
      R"({"type": "executed", "data": {"node": "7", "display_node": "7", "output": {"text": ["30"]}, "prompt_id": "P"}})");
  EXPECT_EQ(std::get<Executed>(e).output.at("text").at(0), "30");
  const Event cached = round_trip(
      R"({"type": "executed", "data": {"node": "7", "display_node": "7", "output": null, "prompt_id": "P"}})");
  EXPECT_TRUE(std::get<Executed>(cached).output.is_null());
  EXPECT_NE(decode_error(
                R"({"type": "executed", "data": {"node": "7", "output": [1], "prompt_id": "P"}})")
                .find("executed: output: expected an object or null, found array"),
            std::string::npos);
}

TEST(DecodeEvent, ExecutionInterruptedHasNoExceptionFields) {
  const Event e = round_trip(
      R"({"type": "execution_interrupted", "data": {"prompt_id": "P", "node_id": "3", "node_type": "ImageBlur", "executed": ["1", "2"], "timestamp": 1795349690713}})");
  const auto& x = std::get<ExecutionInterrupted>(e);
  EXPECT_EQ(x.executed, (std::vector<std::string>{"1", "2"}));
  EXPECT_EQ(x.timestamp, 1795349690713);
}

TEST(DecodeEvent, ExecutionBlockedHasNoTimestampAndEmptyLists) {
  const Event e = round_trip(
      R"({"type": "execution_error", "data": {"prompt_id": "P", "node_id": "5", "node_type": "X", "executed": [], "exception_message": "blocked", "exception_type": "ExecutionBlocked", "traceback": [], "current_inputs": [], "current_outputs": []}})");
  const auto& x = std::get<ExecutionError>(e);
  EXPECT_FALSE(x.timestamp.has_value());
  EXPECT_TRUE(x.current_inputs.is_array());
}

TEST(DecodeEvent, NaNAndInfinityInsideCurrentInputsSurvive) {
  const std::string text =
      R"({"type": "execution_error", "data": {"prompt_id": "P", "node_id": "3", "node_type": "KSampler", "executed": [], "exception_message": "bad\n", "exception_type": "ValueError", "traceback": ["  File \"x.py\", line 1\n"], "current_inputs": {"cfg": [NaN], "denoise": [Infinity, -Infinity], "seed": [18446744073709551615]}, "current_outputs": ["3"], "timestamp": 1}})";
  const Event e = round_trip(text);  // re-encodes NaN/Infinity exactly as Python wrote them
  const auto& inputs = std::get<ExecutionError>(e).current_inputs;
  ASSERT_TRUE(inputs.at("cfg").at(0).is_double());
  EXPECT_TRUE(std::isnan(inputs.at("cfg").at(0).get_double()));
  EXPECT_EQ(inputs.at("denoise").at(0).get_double(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(inputs.at("denoise").at(1).get_double(), -std::numeric_limits<double>::infinity());
  ASSERT_TRUE(inputs.at("seed").at(0).is_uint64());
  EXPECT_EQ(inputs.at("seed").at(0).get_uint64(), std::numeric_limits<std::uint64_t>::max());
}

TEST(DecodeEvent, FeatureFlagsBothDirections) {
  const Event client =
      round_trip(R"({"type": "feature_flags", "data": {"supports_preview_metadata": true}})");
  EXPECT_EQ(std::get<FeatureFlags>(client).flags.at("supports_preview_metadata"), true);
  const Event server = round_trip(
      R"({"type": "feature_flags", "data": {"supports_preview_metadata": true, "max_upload_size": 104857600}})");
  EXPECT_EQ(std::get<FeatureFlags>(server).flags.size(), 2u);
  EXPECT_FALSE(prompt_id_of(server).has_value());
  EXPECT_NE(decode_error(R"({"type": "feature_flags", "data": [true]})")
                .find("feature_flags: expected an object, found array"),
            std::string::npos);
}

TEST(ClientHello, FirstJsonObjectFrameOnly) {
  const auto flags = parse_client_hello(R"({"type": "feature_flags", "data": {"supports_preview_metadata": true}})");
  ASSERT_TRUE(flags);
  EXPECT_TRUE(flags->feature_flags);
  EXPECT_TRUE(flags->preview_metadata);
  const auto off = parse_client_hello(R"({"type": "feature_flags", "data": {"supports_preview_metadata": "yes"}})");
  ASSERT_TRUE(off);
  EXPECT_FALSE(off->preview_metadata);  // only a JSON true counts
  const auto other = parse_client_hello(R"({"type": "hello"})");
  ASSERT_TRUE(other);  // an object: the one frame ComfyUI looks at, though not feature flags
  EXPECT_FALSE(other->feature_flags);
  EXPECT_FALSE(parse_client_hello("[1, 2]"));
  EXPECT_FALSE(parse_client_hello("not json"));
}

TEST(DecodeEvent, OldServerFormsDecode) {
  // progress before 2024 had only value and max; executor events before mid-2024 no timestamp.
  const Event p = round_trip(R"({"type": "progress", "data": {"value": 7, "max": 20}})");
  EXPECT_FALSE(prompt_id_of(p).has_value());
  const Event s = round_trip(R"({"type": "execution_start", "data": {"prompt_id": "P"}})");
  EXPECT_FALSE(std::get<ExecutionStart>(s).timestamp.has_value());
  const Event x = round_trip(
      R"({"type": "executed", "data": {"node": "9", "output": {"images": []}, "prompt_id": "P"}})");
  EXPECT_FALSE(std::get<Executed>(x).display_node.has_value());
}

// ----- unknown types and unknown keys

TEST(DecodeEvent, UnknownTypesArePreservedForForwarding) {
  const std::string logs =
      R"({"type": "logs", "data": {"entries": [{"t": "2025-10-12T10:00:00.000000", "m": "got prompt\n"}], "size": null}})";
  const Event e = round_trip(logs);
  ASSERT_TRUE(std::holds_alternative<Unknown>(e));
  EXPECT_EQ(type_name(e), "logs");
  EXPECT_EQ(std::get<Unknown>(e).data.at("size"), nullptr);

  const Event custom = round_trip(
      R"({"type": "crystools.monitor", "data": {"cpu_utilization": 12.5, "prompt_id": "P", "gpus": [{"vram_used": 1}]}})");
  EXPECT_EQ(type_name(custom), "crystools.monitor");
  EXPECT_EQ(prompt_id_of(custom), "P");

  const Event scalar = round_trip(R"({"type": "display_component", "data": "text"})");
  EXPECT_EQ(std::get<Unknown>(scalar).data, "text");
  EXPECT_FALSE(prompt_id_of(scalar).has_value());
}

TEST(DecodeEvent, UnknownKeysOfKnownTypesAreKept) {
  const Event e = round_trip(
      R"({"type": "execution_start", "data": {"prompt_id": "P", "timestamp": 5, "worker": {"id": 3}}})");
  const auto& s = std::get<ExecutionStart>(e);
  EXPECT_EQ(s.extra.at("worker").at("id"), 3);
  const Event n = round_trip(
      R"({"type": "progress_state", "data": {"prompt_id": "P", "nodes": {"1": {"value": 0.5, "max": 1.0, "state": "running", "node_id": "1", "prompt_id": "P", "display_node_id": "1", "parent_node_id": null, "real_node_id": "1", "eta": 2}}}})");
  EXPECT_EQ(std::get<ProgressState>(n).nodes[0].extra.at("eta"), 2);
}

TEST(DecodeEvent, AcceptsDataBeforeTypeAndWhitespace) {
  auto r = decode_event(" {\n \"data\" : {\"node\": \"2\"},\t\"type\": \"executing\" }\n");
  ASSERT_TRUE(r) << r.error().message;
  EXPECT_EQ(std::get<Executing>(r.value()).node, "2");
  EXPECT_EQ(encode_event(r.value()), R"({"type": "executing", "data": {"node": "2"}})");
}

TEST(DecodeEvent, StringsAreUnescapedAndReencodedLikePython) {
  // Python's json.dumps escapes non-ASCII as \uXXXX (surrogate pairs above the BMP).
  const std::string text =
      R"({"type": "execution_error", "data": {"prompt_id": "P", "node_id": "3", "node_type": "T\u00e9", "executed": [], "exception_message": "tab\there \"q\" \\ \ud83d\ude00\n", "exception_type": "E", "traceback": [], "current_inputs": {"k\u00e9y": ["\u0001"]}, "current_outputs": [], "timestamp": 1}})";
  const Event e = round_trip(text);
  const auto& x = std::get<ExecutionError>(e);
  EXPECT_EQ(x.node_type, "T\xC3\xA9");
  EXPECT_EQ(x.exception_message, "tab\there \"q\" \\ \xF0\x9F\x98\x80\n");
  EXPECT_TRUE(x.current_inputs.as_object().contains("k\xC3\xA9y"));
  // Raw UTF-8 on input is accepted and written back escaped.
  auto raw = decode_event("{\"type\": \"executing\", \"data\": {\"node\": \"\xC3\xA9\"}}");
  ASSERT_TRUE(raw) << raw.error().message;
  EXPECT_EQ(encode_event(raw.value()), R"({"type": "executing", "data": {"node": "\u00e9"}})");
}

// ----- errors name the field

TEST(DecodeEvent, WrongFieldTypesNameTheField) {
  EXPECT_NE(decode_error(R"({"type": "progress", "data": {"value": "0", "max": 2}})")
                .find("progress: value: expected a number, found string"),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"type": "execution_start", "data": {"prompt_id": 7}})")
                .find("execution_start: prompt_id: expected a string, found number"),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"type": "execution_start", "data": {"prompt_id": "P", "timestamp": 1.5}})")
                .find("execution_start: timestamp: expected an integer, found a float"),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"type": "execution_cached", "data": {"nodes": ["1", 2], "prompt_id": "P"}})")
                .find("execution_cached: nodes[1]: expected a string, found number"),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"type": "status", "data": {"status": {"exec_info": {"queue_remaining": "1"}}}})")
                .find("status: status.exec_info.queue_remaining: expected an integer, found string"),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"type": "executing", "data": {"node": "1", "display_node": null}})")
                .find("executing: display_node: expected a string, found null"),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"type": "progress", "data": {"value": 18446744073709551615, "max": 1}})")
                .find("progress: value: integer out of int64 range"),
            std::string::npos);
}

TEST(DecodeEvent, MissingFieldsAreNamedWithTheirPath) {
  EXPECT_NE(decode_error(R"({"type": "executing", "data": {"prompt_id": "P"}})")
                .find(R"(executing: missing field "node")"),
            std::string::npos);
  EXPECT_NE(decode_error(
                R"({"type": "progress_state", "data": {"prompt_id": "P", "nodes": {"3": {"value": 0, "max": 1, "state": "running", "node_id": "3", "prompt_id": "P", "display_node_id": "3", "parent_node_id": null}}}})")
                .find(R"(progress_state: nodes.3: missing field "real_node_id")"),
            std::string::npos);
  EXPECT_NE(decode_error(
                R"({"type": "progress_state", "data": {"prompt_id": "P", "nodes": {"3": {"value": 0, "max": [], "state": "running"}}}})")
                .find("progress_state: nodes.3.max: expected a number, found array"),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"type": "status", "data": {"sid": "x"}})")
                .find(R"(status: missing field "status")"),
            std::string::npos);
  EXPECT_NE(decode_error(R"({"data": {}})").find(R"(missing field "type")"), std::string::npos);
  EXPECT_NE(decode_error(R"({"type": "progress"})").find(R"(progress: missing field "data")"),
            std::string::npos);
}

TEST(DecodeEvent, ProgressStateKeyMustMatchNodeId) {
  EXPECT_NE(decode_error(
                R"({"type": "progress_state", "data": {"prompt_id": "P", "nodes": {"3": {"value": 0, "max": 1, "state": "running", "node_id": "4", "prompt_id": "P", "display_node_id": "4", "parent_node_id": null, "real_node_id": "4"}}}})")
                .find(R"(nodes.3: key differs from its node_id "4")"),
            std::string::npos);
}

TEST(DecodeEvent, MalformedAndTruncatedJsonIsAnError) {
  const std::string full =
      R"({"type": "progress", "data": {"value": 0, "max": 2, "prompt_id": "P", "node": "3"}})";
  for (std::size_t n = 0; n < full.size(); ++n) {
    SCOPED_TRACE(n);
    auto r = decode_event(std::string_view(full).substr(0, n));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kProtocol);
    EXPECT_NE(r.error().message.find("at byte"), std::string::npos) << r.error().message;
  }
  for (const char* bad : {
           R"([1, 2])",
           R"({"type": "progress", "data": {"value": 0, "max": 2,}})",
           R"({"type": "progress", "data": {"value": 01, "max": 2}})",
           R"({"type": "progress", "data": {"value": 0 "max": 2}})",
           R"({"type": "progress", "data": {"value": -, "max": 2}})",
           R"({"type": "progress", "data": {"value": 1., "max": 2}})",
           R"({"type": "progress", "data": {"value": nul, "max": 2}})",
           R"({"type": "executing", "data": {"node": "a\qb"}})",
           R"({"type": "executing", "data": {"node": "\ud800"}})",
           R"({"type": "executing", "data": {"node": "\udc00"}})",
           R"({"type": "logs", "data": [1, 2,]})",
           R"({"type": "logs", "data": {}} trailing)",
           "{\"type\": \"executing\", \"data\": {\"node\": \"a\nb\"}}",
           "{\"type\": \"executing\", \"data\": {\"node\": \"\xC3\x28\"}}",
           "{\"type\": \"executing\", \"data\": {\"node\": \"\xED\xA0\x80\"}}",
       }) {
    SCOPED_TRACE(bad);
    auto r = decode_event(bad);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kProtocol);
  }
}

TEST(DecodeEvent, DeepNestingIsRejectedNotAStackOverflow) {
  std::string text = R"({"type": "logs", "data": )";
  text += std::string(10000, '[');
  text += std::string(10000, ']');
  text += "}";
  EXPECT_NE(decode_error(text).find("nesting deeper than"), std::string::npos);
}

TEST(DecodeEvent, NumbersReadLikeBoostJson) {
  const std::string numbers =
      "[0, -0, -9223372036854775808, 9223372036854775807, 9223372036854775808, "
      "18446744073709551615, 18446744073709551616, 0.1, 1e2, 1E-2, -2.5e+3, 1e400, -1e400, 1e-400, "
      "123456789012345678901234567890.5, 0.30000000000000004, 2.2250738585072014e-308]";
  auto r = decode_event(R"({"type": "x", "data": )" + numbers + "}");
  ASSERT_TRUE(r) << r.error().message;
  const auto& a = std::get<Unknown>(r.value()).data.as_array();
  EXPECT_TRUE(a[0].is_int64());
  EXPECT_TRUE(a[1].is_int64());
  EXPECT_EQ(a[2].as_int64(), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(a[3].as_int64(), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(a[4].as_uint64(), 9223372036854775808u);
  EXPECT_EQ(a[5].as_uint64(), std::numeric_limits<std::uint64_t>::max());
  EXPECT_TRUE(a[6].is_double());
  EXPECT_EQ(a[7].as_double(), 0.1);
  EXPECT_EQ(a[11].as_double(), std::numeric_limits<double>::infinity());
  EXPECT_EQ(a[12].as_double(), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(a[13].as_double(), 0.0);
  // Kinds and values are the ones Boost.JSON's own parser gives for the same text.
  EXPECT_EQ(json::value(a), json::parse(numbers));
}

// ----- type_name, prompt_id_of, DOM helpers

TEST(Event, TypeNameAndPromptIdOfEveryAlternative) {
  const std::vector<std::pair<Event, std::string_view>> cases = {
      {Status{}, "status"},
      {ExecutionStart{.prompt_id = "P"}, "execution_start"},
      {ExecutionCached{.prompt_id = "P"}, "execution_cached"},
      {Executing{.node = "1", .prompt_id = "P"}, "executing"},
      {Progress{.prompt_id = "P"}, "progress"},
      {ProgressState{.prompt_id = "P"}, "progress_state"},
      {Executed{.prompt_id = "P"}, "executed"},
      {ExecutionSuccess{.prompt_id = "P"}, "execution_success"},
      {ExecutionError{.prompt_id = "P"}, "execution_error"},
      {ExecutionInterrupted{.prompt_id = "P"}, "execution_interrupted"},
      {FeatureFlags{}, "feature_flags"},
      {Unknown{.type = "logs"}, "logs"},
  };
  ASSERT_EQ(cases.size(), std::variant_size_v<Event>);
  for (const auto& [event, name] : cases) {
    SCOPED_TRACE(name);
    EXPECT_EQ(type_name(event), name);
    const bool routed = name != "status" && name != "feature_flags" && name != "logs";
    EXPECT_EQ(prompt_id_of(event).has_value(), routed);
    if (routed) {
      EXPECT_EQ(*prompt_id_of(event), "P");
    }
  }
}

TEST(Event, DataToAndFromJson) {
  const std::string text =
      R"({"type": "execution_error", "data": {"prompt_id": "P", "node_id": "2", "node_type": "ImageToMask", "executed": ["1"], "exception_message": "m\n", "exception_type": "IndexError", "traceback": ["t"], "current_inputs": {"x": [NaN]}, "current_outputs": ["1", "2"], "timestamp": 9}})";
  auto decoded = decode_event(text);
  ASSERT_TRUE(decoded);
  const json::value data = event_data_to_json(decoded.value());
  EXPECT_EQ(data.at("timestamp"), 9);
  EXPECT_TRUE(std::isnan(data.at("current_inputs").at("x").at(0).as_double()));
  auto again = event_from_json("execution_error", data);
  ASSERT_TRUE(again) << again.error().message;
  EXPECT_EQ(encode_event(again.value()), text);

  auto bad = event_from_json("execution_start", json::value{{"prompt_id", 3}});
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("execution_start: prompt_id: expected a string"),
            std::string::npos);
  auto data_only = decode_event_data("executing", R"({"node": null, "prompt_id": "P"})");
  ASSERT_TRUE(data_only);
  EXPECT_TRUE(std::get<Executing>(data_only.value()).is_end_of_prompt());
}

// ----- binary frames

TEST(BinaryFrames, PreviewImageRoundTrip) {
  PreviewImage preview{ImageFormat::kJpeg, {0xFF, 0xD8, 0xFF, 0xE0}};
  const auto frame = encode_binary(preview);
  EXPECT_EQ(frame, (std::vector<std::uint8_t>{0, 0, 0, 1, 0, 0, 0, 1, 0xFF, 0xD8, 0xFF, 0xE0}));
  auto decoded = decode_binary(frame);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(std::get<PreviewImage>(decoded.value()), preview);
  EXPECT_FALSE(prompt_id_of(decoded.value()).has_value());
}

TEST(BinaryFrames, ProgressTextLayout) {
  const ProgressText text{"6", "width: 40, height: 30\n batch size: 1"};
  const auto frame = encode_binary(text);
  ASSERT_EQ(frame.size(), 45u);  // as recorded in text_outputs
  EXPECT_EQ(frame[7], 1);
  EXPECT_EQ(frame[8], '6');
  auto decoded = decode_binary(std::string_view(reinterpret_cast<const char*>(frame.data()), frame.size()));
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(std::get<ProgressText>(decoded.value()), text);
}

TEST(BinaryFrames, PreviewMetadataIsByteIdenticalToComfyUI) {
  const json::object meta = make_preview_metadata("3", "a7434fe7-d5d7-446c-9f79-1bca36a29b32", "3",
                                                  std::nullopt, "3", "image/png");
  const std::string text = dumps(json::value(meta));
  EXPECT_EQ(text,
            R"({"node_id": "3", "prompt_id": "a7434fe7-d5d7-446c-9f79-1bca36a29b32", "display_node_id": "3", "parent_node_id": null, "real_node_id": "3", "image_type": "image/png"})");
  EXPECT_EQ(text.size(), 165u);
  const PreviewImageWithMetadata preview{meta, {0x89, 'P', 'N', 'G'}};
  const auto frame = encode_binary(preview);
  ASSERT_EQ(frame.size(), 8u + 165u + 4u);
  EXPECT_EQ(frame[7], 0xA5);
  auto decoded = decode_binary(frame);
  ASSERT_TRUE(decoded) << decoded.error().message;
  EXPECT_EQ(std::get<PreviewImageWithMetadata>(decoded.value()), preview);
  EXPECT_EQ(encode_binary(decoded.value()), frame);
  EXPECT_EQ(prompt_id_of(decoded.value()), "a7434fe7-d5d7-446c-9f79-1bca36a29b32");
}

TEST(BinaryFrames, UnknownTypesArePreserved) {
  const std::vector<std::uint8_t> frame = {0, 0, 0, 2, 1, 2, 3};
  auto decoded = decode_binary(frame);
  ASSERT_TRUE(decoded) << decoded.error().message;
  const auto& unknown = std::get<UnknownBinary>(decoded.value());
  EXPECT_EQ(unknown.type, 2u);
  EXPECT_EQ(unknown.payload, (std::vector<std::uint8_t>{1, 2, 3}));
  EXPECT_EQ(encode_binary(decoded.value()), frame);
}

TEST(BinaryFrames, TruncatedFramesGiveClearErrors) {
  struct Case {
    std::vector<std::uint8_t> frame;
    std::string_view message;
  };
  const std::vector<Case> cases = {
      {{}, "binary frame: 0 bytes, shorter than the 4-byte event type"},
      {{0, 0, 1}, "binary frame: 3 bytes, shorter than the 4-byte event type"},
      {{0, 0, 0, 1, 0, 0}, "preview image frame (type 1): 6 bytes, shorter than its 8-byte header"},
      {{0, 0, 0, 3, 0, 0, 0}, "progress text frame (type 3): 7 bytes, shorter than its 8-byte header"},
      {{0, 0, 0, 3, 0, 0, 0, 5, '1', '2'},
       "progress text frame (type 3): node id length 5 exceeds the 2 bytes left"},
      {{0, 0, 0, 4, 0, 0, 0, 0xA5, '{', '}'},
       "preview with metadata frame (type 4): metadata length 165 exceeds the 2 bytes left"},
      {{0, 0, 0, 4, 0xFF, 0xFF, 0xFF, 0xFF}, "metadata length 4294967295 exceeds the 0 bytes left"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.message);
    auto r = decode_binary(c.frame);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().code, Errc::kProtocol);
    EXPECT_NE(r.error().message.find(c.message), std::string::npos) << r.error().message;
  }
}

TEST(BinaryFrames, BadMetadataIsAnError) {
  auto frame_with = [](std::string_view meta) {
    std::string f("\0\0\0\x04\0\0\0", 7);
    f += static_cast<char>(meta.size());
    f += meta;
    f += '\x89';
    return f;
  };
  auto not_json = decode_binary(frame_with(R"({"node_id": )"));
  ASSERT_FALSE(not_json);
  EXPECT_NE(not_json.error().message.find("type 4): metadata:"), std::string::npos);
  auto not_object = decode_binary(frame_with("[1]"));
  ASSERT_FALSE(not_object);
  EXPECT_NE(not_object.error().message.find("expected an object, found array"), std::string::npos);
  auto minimal = decode_binary(frame_with(R"({"prompt_id": "P"})"));
  ASSERT_TRUE(minimal) << minimal.error().message;
  EXPECT_EQ(prompt_id_of(minimal.value()), "P");
  EXPECT_EQ(std::get<PreviewImageWithMetadata>(minimal.value()).image.size(), 1u);
}

}  // namespace
}  // namespace comfyfarm::comfy
