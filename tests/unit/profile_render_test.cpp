// Renderers: JSON (schema, round trip, documented fields), CSV, Chrome trace events, text.
#include "profile/profile_json.hpp"

#include "comfy/json_util.hpp"
#include "profile/chrome_trace.hpp"
#include "profile/csv_report.hpp"
#include "profile/text_report.hpp"
#include "profile_test_util.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace comfyfarm::profile {
namespace {

using namespace comfyfarm::profile::testing;
namespace json = boost::json;

std::vector<JobProfile> all_recorded_profiles() {
  std::vector<JobProfile> out;
  for (const auto& name : recorded_runs()) out.push_back(profile_run(load_run(name)));
  return out;
}

json::value reparse(const json::value& v) {
  auto parsed = comfy::parse_json(comfy::dumps(v));
  EXPECT_TRUE(parsed);
  return parsed ? *parsed : json::value();
}

TEST(ProfileJson, EveryRecordedProfileRoundTrips) {
  for (const auto& p : all_recorded_profiles()) {
    SCOPED_TRACE(p.label);
    const ProfileAnalysis a = analyze(p);
    const json::value doc = reparse(to_json(p, &a));
    ASSERT_TRUE(doc.is_object());
    EXPECT_EQ(doc.at("schema").as_string(), "comfyfarm.profile/1");
    EXPECT_EQ(doc.at("nodes").as_array().size(), p.nodes.size());
    EXPECT_TRUE(doc.at("analysis").is_object());
    auto back = profile_from_json(doc);
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(*back, p);
    auto pretty = comfy::parse_json(pretty_json(doc));
    ASSERT_TRUE(pretty);
    EXPECT_EQ(*pretty, doc);
  }
}

TEST(ProfileJson, SeedFieldsArePresentWithUnits) {
  const JobProfile p = profile_run(load_run("ws_image_legacy_binary/run2"));
  const json::value doc = reparse(to_json(p));
  const auto& timing = doc.at("timing").as_object();
  for (const char* k : {"queued_at_ms", "started_at_ms", "completed_at_ms", "total_duration_ms",
                        "queue_time_ms", "execution_time_ms"}) {
    EXPECT_TRUE(timing.at(k).is_number()) << k;
  }
  const auto& summary = doc.at("summary").as_object();
  EXPECT_EQ(summary.at("total_nodes").to_number<std::uint64_t>(), 3u);
  EXPECT_EQ(summary.at("executed_nodes").to_number<std::uint64_t>(), 1u);
  EXPECT_EQ(summary.at("cached_nodes").to_number<std::uint64_t>(), 2u);
  EXPECT_EQ(summary.at("failed_nodes").to_number<std::uint64_t>(), 0u);
  EXPECT_EQ(summary.at("progress_nodes").as_array().size(), 1u);
  EXPECT_EQ(summary.at("slowest_nodes").as_array().size(), 1u);
  const auto& node3 = doc.at("nodes").as_array().at(0).as_object();
  EXPECT_EQ(node3.at("node_id").as_string(), "3");
  EXPECT_EQ(node3.at("class_type").as_string(), "SaveImageWebsocket");
  EXPECT_EQ(node3.at("status").as_string(), "completed");
  EXPECT_EQ(node3.at("cached").as_bool(), false);
  EXPECT_EQ(node3.at("progress").as_array().size(), 2u);
  const auto& sample = node3.at("progress").as_array().at(0).as_object();
  EXPECT_TRUE(sample.at("t_ms").is_number());
  EXPECT_EQ(sample.at("value").to_number<double>(), 0.0);
  EXPECT_EQ(sample.at("max").to_number<double>(), 2.0);
  EXPECT_EQ(doc.at("nodes").as_array().at(1).at("status").as_string(), "cached");
  EXPECT_EQ(doc.at("nodes").as_array().at(1).at("duration_ms").to_number<double>(), 0.0);
}

// Every key the JSON forms emit is documented in docs/profile-schema.md.
void collect_keys(const json::value& v, std::set<std::string>& keys) {
  if (v.is_object()) {
    for (const auto& kv : v.get_object()) {
      keys.emplace(kv.key());
      collect_keys(kv.value(), keys);
    }
  } else if (v.is_array()) {
    for (const auto& e : v.get_array()) collect_keys(e, keys);
  }
}

TEST(ProfileJson, EveryEmittedFieldIsDocumented) {
  const std::filesystem::path doc_path =
      std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "docs" / "profile-schema.md";
  const std::string doc = test::read_file(doc_path);
  ASSERT_FALSE(doc.empty());
  std::vector<JobProfile> runs = all_recorded_profiles();
  const ProfileComparison cmp = compare(runs[0], runs[1]);
  std::set<std::string> keys;
  collect_keys(profile_set_to_json(runs, {}, &cmp), keys);
  collect_keys(profile_set_to_json(runs), keys);
  for (const auto& k : keys) {
    EXPECT_NE(doc.find("`" + k + "`"), std::string::npos) << "undocumented field " << k;
  }
}

TEST(ProfileJson, ProfileSetReadsBackItsRuns) {
  std::vector<JobProfile> runs = {profile_run(load_run("slow_blur/run1")),
                                  profile_run(load_run("slow_blur/run2"))};
  const json::value set = reparse(profile_set_to_json(runs));
  EXPECT_EQ(set.at("schema").as_string(), "comfyfarm.profile-set/1");
  EXPECT_EQ(set.at("aggregate").at("runs").to_number<std::uint64_t>(), 2u);
  EXPECT_TRUE(set.at("comparison").is_null());
  auto back = profiles_from_json(set);
  ASSERT_TRUE(back) << back.error().message;
  EXPECT_EQ(*back, runs);
}

TEST(ProfileJson, RejectsOtherSchemasAndBadFields) {
  auto wrong = profile_from_json(json::object{{"schema", "comfyfarm.profile/2"}});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().code, Errc::kInvalidArgument);
  json::value doc = to_json(profile_run(load_run("slow_blur/run1")));
  doc.at("nodes").as_array().at(2).as_object()["status"] = "sleeping";
  auto bad = profile_from_json(doc);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("nodes[2].status: unknown value \"sleeping\""),
            std::string::npos)
      << bad.error().message;
}

TEST(ProfileCsv, OneRowPerNodePerRunWithQuoting) {
  std::vector<JobProfile> runs = all_recorded_profiles();
  runs[0].nodes.at(0).title = "a, \"quoted\" title";
  const std::string csv = render_csv(runs);
  std::size_t rows = 0;
  for (std::size_t pos = 0; (pos = csv.find("\r\n", pos)) != std::string::npos; pos += 2) ++rows;
  std::size_t nodes = 0;
  for (const auto& p : runs) nodes += p.nodes.size();
  EXPECT_EQ(rows, nodes + 1);
  EXPECT_TRUE(csv.starts_with("run,prompt_id,backend,node_id,class_type,title,status,"));
  EXPECT_NE(csv.find("\"a, \"\"quoted\"\" title\""), std::string::npos);
  EXPECT_NE(csv.find("slow_blur/run1,2f458447-b648-49e7-a894-f582d043164c,comfyui-0.3.64,2,"
                     "ImageBlur,,completed,false,1,1.440,3684.256,3682.816,1,0,0,true,"),
            std::string::npos)
      << csv;
}

TEST(ProfileChromeTrace, NodesAreCompleteSlicesInMicroseconds) {
  const std::vector<JobProfile> runs = {profile_run(load_run("slow_blur/run1")),
                                        profile_run(load_run("slow_blur/run2")),
                                        profile_run(load_run("ws_image_legacy_binary/run1"))};
  const json::value trace = reparse(render_chrome_trace(runs));
  ASSERT_TRUE(trace.is_object());
  EXPECT_EQ(trace.at("displayTimeUnit").as_string(), "ms");
  const auto& events = trace.at("traceEvents").as_array();
  const TimePoint origin = *runs[0].queued_at;
  EXPECT_EQ(trace.at("otherData").at("origin_epoch_ms").to_number<double>(), to_epoch_ms(origin));
  std::map<std::int64_t, std::size_t> slices_per_pid;
  std::map<std::int64_t, std::string> process_names;
  std::size_t counters = 0;
  std::size_t cached_instants = 0;
  for (const auto& ev : events) {
    const auto& o = ev.as_object();
    const std::string ph(o.at("ph").as_string());
    const std::int64_t pid = o.at("pid").to_number<std::int64_t>();
    ASSERT_TRUE(o.at("name").is_string());
    if (ph == "M" && o.at("name").as_string() == "process_name") {
      process_names[pid] = std::string(o.at("args").at("name").as_string());
    }
    if (ph == "X" && o.at("cat").as_string() == "node") {
      ++slices_per_pid[pid];
      const JobProfile& p = runs.at(static_cast<std::size_t>(pid - 1));
      const NodeProfile* n = p.find(std::string(o.at("args").at("node_id").as_string()));
      ASSERT_NE(n, nullptr);
      ASSERT_EQ(n->intervals.size(), 1u);
      EXPECT_EQ(o.at("ts").to_number<std::int64_t>(), (n->intervals[0].start - origin).count());
      EXPECT_EQ(o.at("dur").to_number<std::int64_t>(), n->intervals[0].duration().count());
      EXPECT_EQ(o.at("tid").to_number<std::int64_t>(), 1);  // sequential: one lane
    }
    if (ph == "C") ++counters;
    if (ph == "i" && o.at("cat").as_string() == "cache") ++cached_instants;
  }
  EXPECT_EQ(slices_per_pid[1], 4u);  // every executed node of run 1
  EXPECT_EQ(slices_per_pid[2], 0u);  // run 2 was all cached
  EXPECT_EQ(slices_per_pid[3], 3u);
  EXPECT_EQ(cached_instants, 4u);
  EXPECT_EQ(counters, 3u);  // 0/2, 1/2 and the final 2/2 of SaveImageWebsocket
  EXPECT_EQ(process_names.size(), 3u);
  EXPECT_NE(process_names[1].find("slow_blur/run1 @ comfyui-0.3.64"), std::string::npos);
}

TEST(ProfileChromeTrace, OverlappingNodesGoToSeparateLanes) {
  Script s;
  s.at(0).execution_start().cached({});
  s.at(1).running("A");
  s.at(1.005).executing("A");
  s.run("B", 10, 50);
  s.at(100).finished("A");
  s.at(101).success();
  const std::vector<JobProfile> runs = {profile_trace(s.events())};
  const json::value trace = render_chrome_trace(runs);
  std::map<std::string, std::int64_t> lane;
  bool overlap_named = false;
  for (const auto& ev : trace.at("traceEvents").as_array()) {
    const auto& o = ev.as_object();
    if (o.at("ph").as_string() == "X" && o.at("cat").as_string() == "node") {
      lane[std::string(o.at("args").at("node_id").as_string())] = o.at("tid").as_int64();
    }
    if (o.at("ph").as_string() == "M" && o.at("name").as_string() == "thread_name" &&
        o.at("args").at("name").as_string() == "overlap 1") {
      overlap_named = true;
    }
  }
  EXPECT_EQ(lane["A"], 1);
  EXPECT_EQ(lane["B"], 2);
  EXPECT_TRUE(overlap_named);
}

TEST(ProfileText, ReportHasTheSeedSectionsAndNoEscapesWhenPlain) {
  const JobProfile p = profile_run(load_run("runtime_error/run1"));
  const std::string plain = render_text(p, analyze(p));
  for (const char* s : {"PROFILE", "Prompt ID", "Queue wait", "Execution", "Critical path",
                        "Speedup bound", "Parallelizability", "Slowest nodes", "Bottlenecks",
                        "Time by class type", "All nodes", "Recommendations",
                        "raised IndexError: index 3 is out of bounds"}) {
    EXPECT_NE(plain.find(s), std::string::npos) << s << "\n" << plain;
  }
  for (unsigned char c : plain) {
    EXPECT_TRUE(c == '\n' || (c >= 0x20 && c < 0x7f)) << "byte " << int(c) << "\n" << plain;
  }
  TextOptions fancy;
  fancy.color = true;
  fancy.unicode = true;
  const std::string rich = render_text(p, analyze(p), fancy);
  EXPECT_NE(rich.find("\x1b["), std::string::npos);
  EXPECT_NE(rich.find("═"), std::string::npos);
}

TEST(ProfileText, TablesAreAligned) {
  const JobProfile p = profile_run(load_run("branch_two_outputs/run1"));
  const std::string text = render_text(p, analyze(p));
  // In the "All nodes" table the Duration column ends at the same offset on every row.
  const auto start = text.find("All nodes");
  ASSERT_NE(start, std::string::npos);
  std::vector<std::size_t> ends;
  std::size_t pos = text.find('\n', start) + 1;
  for (int row = 0; row < 9; ++row) {
    const auto eol = text.find('\n', pos);
    const std::string line = text.substr(pos, eol - pos);
    const auto ms = line.rfind(" ms");
    if (row > 0) {
      ASSERT_NE(ms, std::string::npos) << line;
      ends.push_back(ms);
    }
    pos = eol + 1;
  }
  for (auto e : ends) EXPECT_EQ(e, ends.front()) << text;
}

TEST(ProfileText, AggregateAndComparisonReports) {
  std::vector<JobProfile> runs = {profile_run(load_run("slow_blur/run1")),
                                  profile_run(load_run("slow_blur/run2"))};
  const std::string agg = render_text(aggregate(runs));
  EXPECT_NE(agg.find("AGGREGATE  2 run(s): 2 succeeded, 0 failed"), std::string::npos) << agg;
  EXPECT_NE(agg.find("3682.82 ms"), std::string::npos) << agg;
  const std::string cmp = render_text(compare(runs[0], runs[1]));
  EXPECT_NE(cmp.find("cache_changed"), std::string::npos) << cmp;
  EXPECT_NE(cmp.find("improvement"), std::string::npos) << cmp;
}

}  // namespace
}  // namespace comfyfarm::profile
