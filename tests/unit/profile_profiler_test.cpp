// JobProfiler against every recorded run of a real ComfyUI 0.3.64 (statuses, counts, cached sets
// and durations from the recordings' own receive times), and against synthetic streams for what
// the recordings lack: old servers, lazy, async and expanded nodes, events before the POST reply.
#include "profile/job_profiler.hpp"

#include "comfy/bodies.hpp"
#include "profile/trace_reader.hpp"
#include "profile_test_util.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace comfyfarm::profile {
namespace {

using namespace comfyfarm::profile::testing;
using Ids = std::vector<std::string>;

// What each recording must give, written from reading the ws.jsonl files.
struct Expected {
  Outcome outcome = Outcome::kSucceeded;
  Ids completed{};  // in start order
  Ids cached{};     // sorted
  Ids failed{};
  Ids interrupted{};
  Ids pending{};  // sorted
  Ids progress_nodes{};
  Ids outputs{};  // nodes that sent `executed` (live or replayed), sorted
};

const std::map<std::string, Expected>& expectations() {
  static const std::map<std::string, Expected> table = [] {
    std::map<std::string, Expected> t;
    const Ids branch_order = {"2", "4", "7", "8", "1", "3", "5", "6"};
    t["branch_two_outputs/run1"] = {Outcome::kSucceeded, branch_order, {}, {}, {}, {}, {}, {"6", "8"}};
    t["branch_two_outputs/run2"] = {
        Outcome::kSucceeded, {}, {"1", "2", "3", "4", "5", "6", "7", "8"}, {}, {}, {}, {}, {"6", "8"}};
    t["interrupt/run1"] = {Outcome::kInterrupted, {"1", "2"}, {}, {}, {"3"}, {"4"}, {}, {}};
    t["no_client_id/run1"] = {Outcome::kIncomplete, branch_order, {}, {}, {}, {}, {}, {}};
    t["runtime_error/run1"] = {Outcome::kFailed, {"1"}, {}, {"2"}, {}, {"3", "4"}, {}, {}};
    t["runtime_error/run2"] = {Outcome::kFailed, {}, {"1"}, {"2"}, {}, {"3", "4"}, {}, {}};
    t["slow_blur/run1"] = {Outcome::kSucceeded, {"1", "2", "3", "4"}, {}, {}, {}, {}, {}, {"4"}};
    t["slow_blur/run2"] = {Outcome::kSucceeded, {}, {"1", "2", "3", "4"}, {}, {}, {}, {}, {"4"}};
    t["text_outputs/run1"] = {
        Outcome::kSucceeded, {"1", "2", "3", "4", "5", "6", "7"}, {}, {}, {}, {}, {}, {"2", "4", "7"}};
    t["text_outputs/run2"] = {
        Outcome::kSucceeded, {}, {"1", "2", "3", "4", "5", "6", "7"}, {}, {}, {}, {}, {"2", "4", "7"}};
    for (const char* s : {"ws_image_legacy_binary", "ws_image_preview_metadata"}) {
      t[std::string(s) + "/run1"] = {Outcome::kSucceeded, {"1", "2", "3"}, {}, {}, {}, {}, {"3"}, {}};
      t[std::string(s) + "/run2"] = {Outcome::kSucceeded, {"3"}, {"1", "2"}, {}, {}, {}, {"3"}, {}};
    }
    // Rejected by validation: no event of a prompt at all; every node of the workflow (when it
    // parses) stays pending.
    for (const char* s : {"validation_bad_combo_value", "validation_missing_input",
                          "validation_no_output_node", "validation_unknown_class_type",
                          "validation_value_out_of_range"}) {
      t[std::string(s) + "/run1"] = {Outcome::kNotStarted, {}, {}, {}, {}, {}, {}, {}};
    }
    t["validation_link_to_missing_node/run1"] = {Outcome::kNotStarted, {}, {}, {}, {}, {}, {}, {}};
    return t;
  }();
  return table;
}

class RecordedRuns : public ::testing::TestWithParam<std::string> {};

TEST_P(RecordedRuns, StatusesCountsAndCachedSetsAreExact) {
  const std::string name = GetParam();
  auto it = expectations().find(name);
  ASSERT_NE(it, expectations().end()) << "no expectation written for the recording " << name;
  const Expected& want = it->second;
  const RecordedRun run = load_run(name);
  const JobProfile p = profile_run(run);

  EXPECT_EQ(p.outcome, want.outcome) << to_string(p.outcome);
  Ids completed;
  for (const auto& n : p.nodes) {
    if (n.status == NodeStatus::kCompleted) completed.push_back(n.id);
  }
  EXPECT_EQ(completed, want.completed);  // start order
  EXPECT_EQ(sorted(ids_with(p, NodeStatus::kCached)), want.cached);
  EXPECT_EQ(ids_with(p, NodeStatus::kFailed), want.failed);
  EXPECT_EQ(ids_with(p, NodeStatus::kInterrupted), want.interrupted);
  EXPECT_EQ(ids_with(p, NodeStatus::kExecuting), Ids{});
  const std::size_t total = run.workflow ? run.workflow->size() : 0;
  EXPECT_EQ(p.summary.total_nodes, total);
  if (want.outcome == Outcome::kNotStarted) {
    EXPECT_EQ(p.summary.pending_nodes, total);
  } else {
    EXPECT_EQ(sorted(ids_with(p, NodeStatus::kPending)), want.pending);
  }
  EXPECT_EQ(p.summary.executed_nodes, want.completed.size());
  EXPECT_EQ(p.summary.cached_nodes, want.cached.size());
  EXPECT_EQ(p.summary.failed_nodes, want.failed.size());
  EXPECT_EQ(p.summary.interrupted_nodes, want.interrupted.size());
  EXPECT_EQ(p.summary.progress_nodes, want.progress_nodes);
  Ids outputs;
  for (const auto& n : p.nodes) {
    if (n.has_output) outputs.push_back(n.id);
  }
  EXPECT_EQ(sorted(outputs), want.outputs);

  for (const auto& n : p.nodes) {
    SCOPED_TRACE(name + " node " + n.id);
    EXPECT_EQ(n.cached, n.status == NodeStatus::kCached);
    if (n.cached) {
      EXPECT_EQ(n.duration, Duration::zero());
      EXPECT_FALSE(n.started_at.has_value());
    }
    if (n.status == NodeStatus::kCompleted || n.status == NodeStatus::kFailed) {
      EXPECT_EQ(n.executions, 1u);
      ASSERT_TRUE(n.duration.has_value());
      EXPECT_GE(n.duration->count(), 0);
    }
    if (run.workflow) {
      EXPECT_EQ(n.class_type, run.workflow->find(n.id)->class_type);
    }
  }
  // The server's own `executed` list agrees with the nodes completed here.
  if (p.server_executed) {
    EXPECT_EQ(sorted(*p.server_executed), sorted(want.completed));
  }
}

TEST_P(RecordedRuns, DurationsLieWithinTheRecordingsOwnTimestamps) {
  const RecordedRun run = load_run(GetParam());
  const JobProfile p = profile_run(run);
  if (run.events.empty() || p.outcome == Outcome::kNotStarted) {
    EXPECT_FALSE(p.started_at.has_value());
    EXPECT_FALSE(p.execution_time.has_value());
    return;
  }
  const TimePoint first = run.events.front().received;
  const TimePoint last = run.events.back().received;
  ASSERT_TRUE(p.started_at && p.completed_at && p.execution_time);
  EXPECT_GE(*p.started_at, first);
  EXPECT_LE(*p.completed_at, last);
  EXPECT_EQ(*p.execution_time, *p.completed_at - *p.started_at);
  Duration node_sum{};
  for (const auto& n : p.nodes) {
    for (const auto& iv : n.intervals) {
      EXPECT_GE(iv.start, *p.started_at) << n.id;
      EXPECT_LE(iv.end, *p.completed_at) << n.id;
      EXPECT_LE(iv.start, iv.end) << n.id;
    }
    if (n.duration && !n.cached) node_sum += *n.duration;
  }
  // ComfyUI 0.3.64 runs these (non-async) nodes one at a time: their times fit in the run.
  EXPECT_LE(node_sum, *p.execution_time);
  if (run.posted) {
    ASSERT_TRUE(p.queue_time.has_value());
    EXPECT_EQ(*p.queue_time, *p.started_at - *run.posted);
    EXPECT_EQ(*p.total_duration, *p.completed_at - *run.posted);
  }
}

std::string run_test_name(const ::testing::TestParamInfo<std::string>& param) {
  std::string s = param.param;
  for (char& c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return s;
}

INSTANTIATE_TEST_SUITE_P(JobProfiler, RecordedRuns, ::testing::ValuesIn(recorded_runs()),
                         run_test_name);

TEST(JobProfiler, EveryRecordedRunHasAnExpectation) {
  const auto runs = recorded_runs();
  EXPECT_EQ(runs.size(), expectations().size());
  for (const auto& r : runs) EXPECT_TRUE(expectations().contains(r)) << r;
}

TEST(JobProfiler, SlowBlurNodeTimesComeFromSnapshots) {
  const JobProfile p = profile_run(load_run("slow_blur/run1"));
  // Node 2: running snapshot at .076559, finished snapshot at 662.759375.
  const NodeProfile* n2 = p.find("2");
  ASSERT_NE(n2, nullptr);
  EXPECT_EQ(n2->duration, Duration(3'682'816));
  EXPECT_EQ(n2->started_at, at_s(1795349659.076559));
  EXPECT_EQ(n2->completed_at, at_s(1795349662.759375));
  EXPECT_EQ(n2->intervals.at(0).start_source, StartSource::kRunningSnapshot);
  EXPECT_EQ(n2->intervals.at(0).end_source, EndSource::kFinishedSnapshot);
  EXPECT_EQ(p.find("1")->duration, Duration(1'218));
  EXPECT_EQ(p.find("3")->duration, Duration(3'334'561));
  // SaveImage: `executed` at .102849 came 131 ms before its finished snapshot (.233848), whose
  // delivery was held up (execution_success carries server time .102 but arrived at .234).
  const NodeProfile* n4 = p.find("4");
  EXPECT_EQ(n4->duration, Duration(8'167));
  EXPECT_EQ(n4->intervals.at(0).end_source, EndSource::kExecuted);
  EXPECT_EQ(p.started_at, at_s(1795349659.075119));
  EXPECT_EQ(p.completed_at, at_s(1795349666.234003));
  EXPECT_EQ(p.closed_at, at_s(1795349666.234164));
  EXPECT_EQ(p.queue_time, at_s(1795349659.075119) - at_s(1795349659.068166));
  EXPECT_EQ(p.server_started_ms, 1795349659072);
  EXPECT_EQ(p.server_completed_ms, 1795349666102);
  // Lags: start 3.119 ms, cached 2.133 ms, success 132.003 ms.
  EXPECT_EQ(p.delivery_lag_spread, Duration(132'003 - 2'133));
  EXPECT_TRUE(p.saw_progress_state);
  EXPECT_TRUE(p.saw_execution_success);
  EXPECT_FALSE(p.start_inferred);
  EXPECT_FALSE(p.completion_inferred);
  ASSERT_EQ(p.summary.slowest_nodes.size(), 4u);
  EXPECT_EQ(p.summary.slowest_nodes[0].node_id, "2");
  EXPECT_EQ(p.summary.slowest_nodes[1].node_id, "3");
  EXPECT_EQ(p.summary.slowest_nodes[2].node_id, "4");
}

TEST(JobProfiler, CachedRerunReplaysOutputWithoutTime) {
  const JobProfile p = profile_run(load_run("slow_blur/run2"));
  const NodeProfile* n4 = p.find("4");
  EXPECT_EQ(n4->status, NodeStatus::kCached);
  EXPECT_TRUE(n4->has_output);
  EXPECT_TRUE(n4->intervals.empty());
  EXPECT_EQ(n4->duration, Duration::zero());
  EXPECT_EQ(p.summary.executed_nodes, 0u);
  EXPECT_TRUE(p.summary.slowest_nodes.empty());
}

TEST(JobProfiler, RuntimeErrorIsAttributedToTheFailingNode) {
  const JobProfile p = profile_run(load_run("runtime_error/run1"));
  const NodeProfile* n2 = p.find("2");
  ASSERT_NE(n2, nullptr);
  EXPECT_EQ(n2->status, NodeStatus::kFailed);
  ASSERT_TRUE(n2->error.has_value());
  EXPECT_EQ(n2->error->exception_type, "IndexError");
  EXPECT_EQ(n2->error->exception_message, "index 3 is out of bounds for dimension 3 with size 3\n");
  // From its running snapshot (.808914) to the execution_error (.822281).
  EXPECT_EQ(n2->duration, Duration(13'367));
  EXPECT_EQ(n2->intervals.at(0).end_source, EndSource::kError);
  ASSERT_TRUE(p.error.has_value());
  EXPECT_EQ(p.error->node_id, "2");
  EXPECT_EQ(p.error->node_type, "ImageToMask");
  EXPECT_EQ(p.server_executed, Ids{"1"});
}

TEST(JobProfiler, InterruptedNodeIsNotCountedAsStarted) {
  const JobProfile p = profile_run(load_run("interrupt/run1"));
  EXPECT_EQ(p.outcome, Outcome::kInterrupted);
  const NodeProfile* n3 = p.find("3");
  EXPECT_EQ(n3->status, NodeStatus::kInterrupted);
  EXPECT_FALSE(n3->started_at.has_value());
  EXPECT_FALSE(n3->duration.has_value());
  EXPECT_EQ(n3->executions, 0u);
  EXPECT_FALSE(n3->sequence.has_value());
  // Node 2 was running when the POST arrived and ran to completion.
  EXPECT_EQ(p.find("2")->duration, Duration(3'449'310));
  ASSERT_TRUE(p.interrupted.has_value());
  EXPECT_EQ(p.interrupted->node_id, "3");
  EXPECT_EQ(p.server_executed, (Ids{"1", "2"}));
}

TEST(JobProfiler, BranchRunUsesExecutedOrFinishedWhicheverCameFirst) {
  const JobProfile p = profile_run(load_run("branch_two_outputs/run1"));
  const std::map<std::string, std::int64_t> want = {
      {"2", 23}, {"4", 2'898}, {"7", 754}, {"8", 1'346},
      {"1", 610}, {"3", 411}, {"5", 947}, {"6", 1'412}};
  for (const auto& [id, us] : want) EXPECT_EQ(p.find(id)->duration, Duration(us)) << id;
  EXPECT_EQ(p.find("8")->intervals.at(0).end_source, EndSource::kExecuted);
  EXPECT_EQ(p.find("5")->intervals.at(0).end_source, EndSource::kFinishedSnapshot);
  for (std::size_t i = 0; i < p.nodes.size(); ++i) EXPECT_EQ(p.nodes[i].sequence, i);
}

TEST(JobProfiler, ProgressSamplesAreCountedOnceAndPreviewsAttributed) {
  for (const char* name : {"ws_image_legacy_binary/run1", "ws_image_preview_metadata/run1"}) {
    SCOPED_TRACE(name);
    const JobProfile p = profile_run(load_run(name));
    const NodeProfile* n3 = p.find("3");
    ASSERT_EQ(n3->progress.size(), 2u);  // 0/2 and 1/2, each in progress_state and progress
    EXPECT_EQ(n3->progress[0].value, 0);
    EXPECT_EQ(n3->progress[0].max, 2);
    EXPECT_EQ(n3->progress[1].value, 1);
    EXPECT_EQ(n3->previews, 2u);
    EXPECT_EQ(n3->intervals.at(0).end_source, EndSource::kFinishedSnapshot);
  }
  const JobProfile legacy = profile_run(load_run("ws_image_legacy_binary/run1"));
  // The progress_state carrying 0/2 (.427530) came before the progress message (.428073).
  EXPECT_EQ(legacy.find("3")->progress[0].at, at_s(1795349673.427530));
}

TEST(JobProfiler, ProgressTextIsAttributedToItsNode) {
  const JobProfile p = profile_run(load_run("text_outputs/run1"));
  EXPECT_EQ(p.find("6")->progress_text, "width: 40, height: 30\n batch size: 1");
}

TEST(JobProfiler, StreamWithoutClientIdEndsIncompleteUntilHistoryIsMerged) {
  const RecordedRun run = load_run("no_client_id/run1");
  const JobProfile before = profile_run(run);
  EXPECT_EQ(before.outcome, Outcome::kIncomplete);
  EXPECT_TRUE(before.start_inferred);
  EXPECT_TRUE(before.completion_inferred);
  EXPECT_EQ(before.started_at, at_s(1795349713.509518));  // the first progress_state

  auto history = comfy::History::parse(test::read_file(run.dir / "history.json"));
  ASSERT_TRUE(history);
  JobProfiler profiler(ProfilerOptions{}, run.workflow);
  feed(profiler, run.events);
  profiler.close(run.events.back().received);
  profiler.on_history(history->entries.at(0));
  const JobProfile after = profiler.profile();
  EXPECT_EQ(after.outcome, Outcome::kSucceeded);
  EXPECT_TRUE(after.used_history);
  EXPECT_EQ(after.summary.executed_nodes, 8u);
  EXPECT_EQ(after.server_started_ms, 1795349713507);
  EXPECT_EQ(after.find("2")->duration, before.find("2")->duration);
}

TEST(JobProfiler, HistoryOnlyProfileUsesServerTimestamps) {
  {
    auto history = comfy::History::parse(
        test::read_file(test::fixtures_dir() / "slow_blur/run1/history.json"));
    ASSERT_TRUE(history);
    const JobProfile p = profile_history(history->entries.at(0));
    EXPECT_EQ(p.outcome, Outcome::kSucceeded);
    EXPECT_TRUE(p.graph_known);  // from the prompt stored in the entry
    EXPECT_EQ(p.execution_time, Duration((1795349666102 - 1795349659072) * 1000));
    EXPECT_EQ(p.summary.executed_nodes, 4u);
    for (const auto& n : p.nodes) {
      EXPECT_EQ(n.status, NodeStatus::kCompleted) << n.id;
      EXPECT_FALSE(n.duration.has_value()) << n.id;
    }
  }
  {
    auto history = comfy::History::parse(
        test::read_file(test::fixtures_dir() / "runtime_error/run1/history.json"));
    ASSERT_TRUE(history);
    const JobProfile p = profile_history(history->entries.at(0));
    EXPECT_EQ(p.outcome, Outcome::kFailed);
    EXPECT_EQ(p.find("1")->status, NodeStatus::kCompleted);
    EXPECT_EQ(p.find("2")->status, NodeStatus::kFailed);
    EXPECT_EQ(p.find("2")->error->exception_type, "IndexError");
    EXPECT_EQ(p.find("3")->status, NodeStatus::kPending);
    EXPECT_EQ(p.execution_time, Duration((1795349683821 - 1795349683799) * 1000));
  }
  {
    auto history = comfy::History::parse(
        test::read_file(test::fixtures_dir() / "runtime_error/run2/history.json"));
    ASSERT_TRUE(history);
    const JobProfile p = profile_history(history->entries.at(0));
    EXPECT_EQ(p.find("1")->status, NodeStatus::kCached);
    EXPECT_EQ(p.find("2")->status, NodeStatus::kFailed);
  }
}

TEST(JobProfiler, OldServerWithoutProgressStateOrSuccessInfersEnds) {
  // ComfyUI before 0.3.45 / mid-2024: no progress_state, no execution_success, progress
  // without a node id; completion only as `executing` with node null.
  Script s;
  s.at(0).execution_start().cached({});
  s.at(1).executing("1");
  s.at(101).executing("2");
  s.at(150).progress(std::nullopt, 1, 2);
  s.at(200).progress(std::nullopt, 2, 2);
  s.at(301).executing("3");
  s.at(351).executed("3");
  s.at(400).executing_end();
  const auto wf = parse_workflow(R"({
    "1": {"class_type": "EmptyImage", "inputs": {}},
    "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0]}},
    "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0]}}})");
  const JobProfile p = profile_trace(s.events(), {}, wf);
  EXPECT_EQ(p.outcome, Outcome::kSucceeded);
  EXPECT_FALSE(p.saw_progress_state);
  EXPECT_FALSE(p.saw_execution_success);
  EXPECT_EQ(p.find("1")->duration, from_ms(100));
  EXPECT_EQ(p.find("1")->intervals.at(0).end_source, EndSource::kNextNode);
  EXPECT_EQ(p.find("1")->intervals.at(0).start_source, StartSource::kExecuting);
  EXPECT_EQ(p.find("2")->duration, from_ms(200));
  EXPECT_EQ(p.find("2")->progress.size(), 2u);
  EXPECT_EQ(p.find("3")->duration, from_ms(50));
  EXPECT_EQ(p.find("3")->intervals.at(0).end_source, EndSource::kExecuted);
  EXPECT_EQ(p.completed_at, s.time(400));
  EXPECT_EQ(p.closed_at, s.time(400));
  EXPECT_EQ(p.summary.executed_nodes, 3u);
}

TEST(JobProfiler, OldServerLastNodeEndsWithThePrompt) {
  Script s;
  s.at(0).execution_start();
  s.at(0).executing("1");
  s.at(10).executing("2");
  s.at(30).executing_end();
  const JobProfile p = profile_trace(s.events());
  EXPECT_EQ(p.find("2")->duration, from_ms(20));
  EXPECT_EQ(p.find("2")->intervals.at(0).end_source, EndSource::kPromptEnd);
  EXPECT_FALSE(p.graph_known);
}

TEST(JobProfiler, LazyNodeStagedTwiceKeepsBothIntervals) {
  Script s;
  s.at(0).execution_start().cached({});
  s.at(1).running("X");
  s.at(1.01).executing("X");  // X asks for its lazy input and goes back to pending
  s.run("Y", 100, 200);
  s.at(210).executing("X");  // staged again: same "running" entry, a second `executing`
  s.at(300).finished("X");
  s.at(301).success();
  const JobProfile p = profile_trace(s.events());
  const NodeProfile* x = p.find("X");
  ASSERT_EQ(x->intervals.size(), 2u);
  EXPECT_EQ(x->intervals[0].start, s.time(1));
  EXPECT_EQ(x->intervals[0].end, s.time(100));  // when the executor moved on to Y
  EXPECT_EQ(x->intervals[0].end_source, EndSource::kNextNode);
  EXPECT_EQ(x->intervals[1].start, s.time(210));
  EXPECT_EQ(x->intervals[1].end, s.time(300));
  EXPECT_EQ(x->executions, 2u);
  EXPECT_EQ(x->duration, from_ms(99 + 90));
  EXPECT_EQ(x->status, NodeStatus::kCompleted);
  EXPECT_EQ(p.find("Y")->duration, from_ms(100));
}

TEST(JobProfiler, ReconnectFormOfExecutingDoesNotRestartTheNode) {
  Script s;
  s.at(0).execution_start().cached({});
  s.at(1).running("1");
  s.at(1.005).executing("1");
  // The socket reconnects with the same clientId: status, then {"node": "1"} alone.
  s.at(50).push(comfy::Executing{std::string("1"), std::nullopt, std::nullopt, {}});
  s.at(80).finished("1");
  s.at(81).success();
  const JobProfile p = profile_trace(s.events());
  const NodeProfile* n1 = p.find("1");
  ASSERT_EQ(n1->intervals.size(), 1u);
  EXPECT_EQ(n1->duration, from_ms(79));
  EXPECT_EQ(n1->executions, 1u);
}

TEST(JobProfiler, AsyncNodesOverlap) {
  Script s;
  s.at(0).execution_start().cached({});
  s.at(1).running("A");
  s.at(1.005).executing("A");  // an async node: the executor moves on while it waits
  s.run("B", 10, 50);
  s.at(90).executed("A");
  s.at(100).finished("A");  // no second `executing` for A
  s.at(101).success();
  const JobProfile p = profile_trace(s.events());
  EXPECT_EQ(p.find("A")->duration, from_ms(89));  // to its `executed`
  EXPECT_EQ(p.find("B")->duration, from_ms(40));
  EXPECT_EQ(p.find("A")->intervals.at(0).end_source, EndSource::kExecuted);
  EXPECT_LT(p.find("B")->started_at, p.find("A")->completed_at);
}

TEST(JobProfiler, ExpandedSubNodesFoldIntoTheirDisplayNode) {
  const auto wf = parse_workflow(R"({
    "4": {"class_type": "EmptyImage", "inputs": {}},
    "5": {"class_type": "MyGroupNode", "inputs": {"image": ["4", 0]}}})");
  Script s;
  s.at(0).execution_start().cached({"4"});
  s.at(1).running("5");
  s.at(1.005).executing("5");
  s.at(10).running("5.0.0.1", "5", "5");
  s.at(10.005).executing("5.0.0.1", "5");
  s.at(12).progress("5.0.0.1", 1, 4);
  s.at(40).finished("5.0.0.1");
  s.at(50).finished("5");
  s.at(51).success();
  const JobProfile p = profile_trace(s.events(), {}, wf);
  EXPECT_EQ(p.nodes.size(), 2u);  // no node "5.0.0.1" of its own
  const NodeProfile* n5 = p.find("5");
  EXPECT_EQ(n5->sub_nodes, Ids{"5.0.0.1"});
  EXPECT_EQ(n5->intervals.size(), 2u);
  EXPECT_EQ(n5->duration, from_ms(49));  // the union: the sub-node ran inside its parent
  EXPECT_EQ(n5->executions, 1u);
  EXPECT_EQ(n5->progress.size(), 1u);
  EXPECT_EQ(p.find("4")->status, NodeStatus::kCached);
}

TEST(JobProfiler, EventsBeforeThePostReplyAreBuffered) {
  const RecordedRun run = load_run("slow_blur/run1");
  const JobProfile direct = profile_run(run);
  ProfilerOptions options;  // prompt id unknown until the reply
  options.label = direct.label;
  options.backend = direct.backend;
  options.workflow = direct.workflow;
  JobProfiler profiler(options, run.workflow);
  // Another prompt's events on the same socket first (e.g. a broadcast of another client's).
  Script other("other-prompt", run.events.front().received);
  feed(profiler, other.execution_start().events());
  feed(profiler, run.events);
  profiler.set_prompt_id(direct.prompt_id);  // the reply arrives after every event
  profiler.on_submitted(*run.posted);         // and the submit time is recorded even later
  profiler.close(run.events.back().received);
  JobProfile late = profiler.profile();
  EXPECT_EQ(late.ignored_events, direct.ignored_events + 1);
  late.ignored_events = direct.ignored_events;
  EXPECT_EQ(late, direct);
}

TEST(JobProfiler, EventsOfOtherPromptsAreIgnored) {
  Script mine("mine");
  mine.at(0).execution_start().cached({});
  mine.run("1", 1, 10);
  Script theirs("theirs", mine.time(0));
  theirs.at(5).execution_start();
  theirs.run("1", 6, 9);
  JobProfiler profiler(ProfilerOptions{.prompt_id = "mine"});
  feed(profiler, theirs.events());
  feed(profiler, mine.events());
  const JobProfile p = profiler.profile();
  EXPECT_EQ(p.find("1")->duration, from_ms(9));
  EXPECT_EQ(p.ignored_events, theirs.events().size());
  EXPECT_EQ(p.outcome, Outcome::kRunning);
}

TEST(JobProfiler, SnapshotShowsTheRunningNode) {
  const RecordedRun run = load_run("slow_blur/run1");
  JobProfiler profiler(ProfilerOptions{.prompt_id = "2f458447-b648-49e7-a894-f582d043164c"},
                       run.workflow);
  // Up to and including node 2's `executing` (seq 9).
  for (const auto& e : run.events) {
    if (e.received > at_s(1795349659.076745)) break;
    profiler.on_event(std::get<comfy::Event>(e.event), e.received);
  }
  const TimePoint now = at_s(1795349661.076559);
  const JobProfile live = profiler.snapshot(now);
  EXPECT_EQ(live.outcome, Outcome::kRunning);
  const NodeProfile* n2 = live.find("2");
  EXPECT_EQ(n2->status, NodeStatus::kExecuting);
  EXPECT_EQ(n2->duration, from_ms(2000));
  EXPECT_FALSE(n2->completed_at.has_value());
  EXPECT_EQ(live.summary.executing_nodes, 1u);
  EXPECT_EQ(live.summary.pending_nodes, 2u);
  EXPECT_FALSE(profiler.profile().find("2")->duration.has_value());
  EXPECT_FALSE(profiler.done());
}

TEST(JobProfiler, InterruptedNodeThatReportedProgressRanPartially) {
  Script s;
  s.at(0).execution_start().cached({});
  s.run("1", 1, 5);
  s.at(6).running("2");
  s.at(6.005).executing("2");
  s.at(20).state("2", "running", 3, 20);
  s.at(20.001).progress("2", 3, 20);
  s.at(25).interrupted("2", {"1"});
  s.at(26).executing_end();
  const JobProfile p = profile_trace(s.events());
  const NodeProfile* n2 = p.find("2");
  EXPECT_EQ(n2->status, NodeStatus::kInterrupted);
  EXPECT_EQ(n2->duration, from_ms(19));
  EXPECT_EQ(n2->intervals.at(0).end_source, EndSource::kInterrupt);
  EXPECT_EQ(n2->progress.size(), 1u);
  EXPECT_EQ(p.summary.interrupted_nodes, 1u);
}

TEST(JobProfiler, LostStreamLeavesTheNodeExecutingAndTheRunIncomplete) {
  Script s;
  s.at(0).execution_start().cached({});
  s.run("1", 1, 5);
  s.at(6).running("2");
  s.at(6.005).executing("2");
  JobProfiler profiler(ProfilerOptions{.prompt_id = s.prompt_id()});
  feed(profiler, s.events());
  profiler.close(s.time(1000));
  const JobProfile p = profiler.profile();
  EXPECT_EQ(p.outcome, Outcome::kIncomplete);
  EXPECT_EQ(p.find("2")->status, NodeStatus::kExecuting);
  EXPECT_EQ(p.find("2")->intervals.at(0).end_source, EndSource::kStreamEnd);
  EXPECT_EQ(p.completed_at, s.time(6.005));
  EXPECT_TRUE(profiler.done());
}

TEST(JobProfiler, ReadsRecordingErrorsWithLineNumbers) {
  auto bad = read_ws_jsonl("{\"t\": 1.0, \"kind\": \"text\", \"msg\": {\"type\": \"status\", \"data\": {\"status\": {\"exec_info\": {\"queue_remaining\": 0}}}}}\n{\"kind\": \"text\"}\n");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("line 2"), std::string::npos) << bad.error().message;
  auto ok = read_ws_jsonl("\n");
  ASSERT_TRUE(ok);
  EXPECT_TRUE(ok->empty());
}

TEST(JobProfiler, PromptIdsInAStreamInOrder) {
  Script a("a");
  a.execution_start();
  Script b("b");
  b.execution_start();
  std::vector<TimedEvent> all = b.events();
  all.insert(all.end(), a.events().begin(), a.events().end());
  all.insert(all.end(), b.events().begin(), b.events().end());
  EXPECT_EQ(prompt_ids_in(all), (Ids{"b", "a"}));
}

}  // namespace
}  // namespace comfyfarm::profile
