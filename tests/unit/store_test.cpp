#include "store/store.hpp"

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <array>
#include <atomic>
#include <boost/json/parse.hpp>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <future>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "support/test_support.hpp"

namespace comfyfarm::store {
namespace {

namespace json = boost::json;
using test::TempDir;

json::value workflow(int seed) {
  return json::parse(
      R"({"3":{"class_type":"KSampler","inputs":{"seed":)" + std::to_string(seed) +
      R"(,"model":["4",0]}},"4":{"class_type":"CheckpointLoaderSimple","inputs":{"ckpt_name":"a.safetensors"}}})");
}

NewJob make_job(std::string id, int seed = 1, std::int64_t at = 1000) {
  NewJob j;
  j.id = std::move(id);
  j.workflow = workflow(seed);
  j.client_id = "client-a";
  j.created_at = at;
  return j;
}

std::unique_ptr<Store> open_ok(const std::filesystem::path& p, const StoreOptions& o = {}) {
  auto s = Store::open(p, o);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
  return s ? std::move(*s) : nullptr;
}

std::string bytes_of(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(JobState, NamesRoundTrip) {
  for (auto s : {JobState::kQueued, JobState::kDispatched, JobState::kRunning, JobState::kSucceeded,
                 JobState::kFailed, JobState::kCancelled}) {
    EXPECT_EQ(parse_job_state(to_string(s)), s);
  }
  EXPECT_FALSE(parse_job_state("bogus"));
  EXPECT_TRUE(is_terminal(JobState::kFailed));
  EXPECT_FALSE(is_terminal(JobState::kRunning));
}

TEST(Store, OpensFreshDatabaseAtCurrentSchema) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  ASSERT_TRUE(s);
  auto v = s->schema_version();
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, Store::kSchemaVersion);
}

TEST(Store, InsertAndGetJobKeepsEveryField) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  ASSERT_TRUE(s);
  NewJob j = make_job("p-1", 7, 1234);
  j.priority = 5;
  j.batch_id = "book-1";
  j.max_attempts = 4;
  j.number = 42;
  j.front = true;
  j.metadata = json::parse(R"({"page":3})");
  j.extra_data = json::parse(R"({"extra_pnginfo":{"x":1}})");
  ASSERT_TRUE(s->insert_job(j));
  auto got = s->get_job("p-1");
  ASSERT_TRUE(got) << got.error().message;
  EXPECT_EQ(got->id, "p-1");
  EXPECT_EQ(got->workflow, j.workflow);
  EXPECT_EQ(got->workflow_hash.size(), 32u);
  EXPECT_EQ(got->client_id, "client-a");
  EXPECT_EQ(got->priority, 5);
  EXPECT_EQ(got->batch_id, "book-1");
  EXPECT_EQ(got->state, JobState::kQueued);
  EXPECT_EQ(got->attempts, 0);
  EXPECT_EQ(got->retry_count, 0);
  EXPECT_EQ(got->max_attempts, 4);
  EXPECT_EQ(got->created_at, 1234);
  EXPECT_EQ(got->updated_at, 1234);
  EXPECT_FALSE(got->last_attempted_at);
  EXPECT_TRUE(got->last_error.is_null());
  EXPECT_FALSE(got->needs_regeneration);
  EXPECT_EQ(got->metadata, j.metadata);
  EXPECT_EQ(got->extra_data, j.extra_data);
  EXPECT_EQ(got->number, 42);
  EXPECT_TRUE(got->front);
}

TEST(Store, GetUnknownJobIsNotFound) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  auto got = s->get_job("nope");
  ASSERT_FALSE(got);
  EXPECT_EQ(got.error().code, Errc::kNotFound);
}

TEST(Store, DuplicateIdIsAlreadyExists) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  ASSERT_TRUE(s->insert_job(make_job("p-1")));
  auto r = s->insert_job(make_job("p-1", 2));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kAlreadyExists);
  EXPECT_EQ(s->get_job("p-1")->workflow, workflow(1));  // the first one is kept
}

TEST(Store, EmptyIdIsInvalid) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  auto r = s->insert_job(make_job(""));
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kInvalidArgument);
}

TEST(Store, IdenticalWorkflowsAreStoredOnce) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(s->insert_job(make_job("p-" + std::to_string(i), 1)));
  ASSERT_TRUE(s->insert_job(make_job("other", 2)));
  EXPECT_EQ(*s->workflow_count(), 2);
  EXPECT_EQ(s->get_job("p-3")->workflow_hash, s->get_job("p-7")->workflow_hash);
  EXPECT_NE(s->get_job("p-3")->workflow_hash, s->get_job("other")->workflow_hash);
}

TEST(Store, InsertJobsIsAllOrNothing) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  ASSERT_TRUE(s->insert_jobs({make_job("a"), make_job("b"), make_job("c")}));
  auto r = s->insert_jobs({make_job("d"), make_job("a")});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kAlreadyExists);
  EXPECT_EQ(s->get_job("d").error().code, Errc::kNotFound);
  EXPECT_EQ(s->list_jobs({})->jobs.size(), 3u);
}

TEST(Store, ListJobsFiltersAndPaginatesInCreatedOrder) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  for (int i = 0; i < 10; ++i) {
    NewJob j = make_job("j" + std::to_string(i), i, 1000 + i);
    j.batch_id = i % 2 == 0 ? "even" : "odd";
    j.client_id = i < 5 ? "c1" : "c2";
    ASSERT_TRUE(s->insert_job(j));
  }
  ASSERT_TRUE(s->transition("j4", JobState::kQueued, JobState::kDispatched, 2000));

  JobFilter f;
  f.limit = 4;
  std::vector<std::string> ids;
  for (;;) {
    auto page = s->list_jobs(f);
    ASSERT_TRUE(page);
    for (const auto& j : page->jobs) ids.push_back(j.id);
    if (!page->next_after_seq) break;
    f.after_seq = *page->next_after_seq;
  }
  EXPECT_EQ(ids,
            (std::vector<std::string>{"j0", "j1", "j2", "j3", "j4", "j5", "j6", "j7", "j8", "j9"}));

  JobFilter by_batch;
  by_batch.batch_id = "odd";
  EXPECT_EQ(s->list_jobs(by_batch)->jobs.size(), 5u);
  JobFilter by_client;
  by_client.client_id = "c2";
  by_client.batch_id = "even";
  auto c = s->list_jobs(by_client);
  ASSERT_EQ(c->jobs.size(), 2u);
  EXPECT_EQ(c->jobs[0].id, "j6");
  JobFilter by_state;
  by_state.state = JobState::kDispatched;
  auto d = s->list_jobs(by_state);
  ASSERT_EQ(d->jobs.size(), 1u);
  EXPECT_EQ(d->jobs[0].id, "j4");
  EXPECT_FALSE(d->next_after_seq);
}

TEST(Store, TransitionIsCompareAndSet) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  ASSERT_TRUE(s->insert_job(make_job("p")));
  TransitionFields f;
  f.backend_id = "gpu-1";
  f.last_attempted_at = 1500;
  f.attempts = 1;
  ASSERT_TRUE(s->transition("p", JobState::kQueued, JobState::kDispatched, 1500, f));
  auto again = s->transition("p", JobState::kQueued, JobState::kDispatched, 1600);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code, Errc::kFailedPrecondition);
  EXPECT_NE(again.error().message.find("dispatched"), std::string::npos);

  auto missing = s->transition("nope", JobState::kQueued, JobState::kRunning, 1);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code, Errc::kNotFound);

  TransitionFields fail_fields;
  fail_fields.last_error = json::parse(R"({"class":"workflow_invalid","message":"bad node"})");
  fail_fields.needs_regeneration = true;
  fail_fields.retry_count = 2;
  ASSERT_TRUE(s->transition("p", JobState::kDispatched, JobState::kFailed, 1700, fail_fields));

  auto j = s->get_job("p");
  EXPECT_EQ(j->state, JobState::kFailed);
  EXPECT_EQ(j->backend_id, "gpu-1");
  EXPECT_EQ(j->attempts, 1);
  EXPECT_EQ(j->retry_count, 2);
  EXPECT_EQ(j->last_attempted_at, 1500);
  EXPECT_EQ(j->updated_at, 1700);
  EXPECT_TRUE(j->needs_regeneration);
  EXPECT_EQ(j->last_error.at("class"), "workflow_invalid");

  auto t = s->transitions("p");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->size(), 2u);
  EXPECT_EQ((*t)[0].from, JobState::kQueued);
  EXPECT_EQ((*t)[0].to, JobState::kDispatched);
  EXPECT_EQ((*t)[0].at, 1500);
  EXPECT_EQ((*t)[1].to, JobState::kFailed);

  // Regenerating: back to queued with more attempts; fields not given keep their values.
  TransitionFields again_fields;
  again_fields.max_attempts = 6;
  again_fields.needs_regeneration = false;
  ASSERT_TRUE(s->transition("p", JobState::kFailed, JobState::kQueued, 1800, again_fields));
  auto k = s->get_job("p");
  EXPECT_EQ(k->max_attempts, 6);
  EXPECT_FALSE(k->needs_regeneration);
  EXPECT_EQ(k->retry_count, 2);
  EXPECT_EQ(k->attempts, 1);
}

TEST(Store, RecordAttemptInsertsThenUpdates) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  ASSERT_TRUE(s->insert_job(make_job("p")));
  AttemptRecord a{"p", 1, "gpu-1", 2000, std::nullopt, "", nullptr};
  ASSERT_TRUE(s->record_attempt(a));
  a.ended_at = 2500;
  a.outcome = "oom";
  a.error = json::parse(R"({"class":"oom"})");
  ASSERT_TRUE(s->record_attempt(a));
  ASSERT_TRUE(s->record_attempt({"p", 2, "gpu-2", 3000, 3400, "succeeded", nullptr}));
  auto list = s->attempts("p");
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].outcome, "oom");
  EXPECT_EQ((*list)[0].ended_at, 2500);
  EXPECT_EQ((*list)[0].error.at("class"), "oom");
  EXPECT_EQ((*list)[1].backend_id, "gpu-2");
  EXPECT_TRUE((*list)[1].error.is_null());
  auto j = s->get_job("p");
  EXPECT_EQ(j->attempts, 2);
  EXPECT_EQ(j->last_attempted_at, 3000);

  auto bad = s->record_attempt({"nope", 1, "gpu", 1, std::nullopt, "", nullptr});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, Errc::kNotFound);
}

TEST(Store, OutputsAndProfile) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  ASSERT_TRUE(s->insert_job(make_job("p")));
  ASSERT_TRUE(s->add_outputs("p", {{"9", "img_0001.png", "", "output", "gpu-1"},
                                   {"9", "img_0002.png", "sub", "output", "gpu-1"}}));
  auto outs = s->outputs("p");
  ASSERT_TRUE(outs);
  ASSERT_EQ(outs->size(), 2u);
  EXPECT_EQ((*outs)[1].filename, "img_0002.png");
  EXPECT_EQ((*outs)[1].subfolder, "sub");
  EXPECT_EQ(s->add_outputs("nope", {{"9", "x.png", "", "output", ""}}).error().code,
            Errc::kNotFound);

  EXPECT_EQ(s->get_profile("p").error().code, Errc::kNotFound);
  ASSERT_TRUE(s->set_profile("p", json::parse(R"({"total_ms":12})")));
  ASSERT_TRUE(s->set_profile("p", json::parse(R"({"total_ms":13})")));
  EXPECT_EQ(s->get_profile("p")->at("total_ms"), 13);
  EXPECT_EQ(s->set_profile("nope", json::object{}).error().code, Errc::kNotFound);
}

TEST(Store, ResultIsKeptPerJob) {
  TempDir dir;
  const auto path = dir.path() / "farm.db";
  {
    auto s = open_ok(path);
    ASSERT_TRUE(s->insert_job(make_job("p")));
    EXPECT_EQ(s->get_result("p").error().code, Errc::kNotFound);
    ASSERT_TRUE(s->set_result("p", json::parse(R"({"status":{"status_str":"error"}})")));
    ASSERT_TRUE(s->set_result("p", json::parse(R"({"status":{"status_str":"success"}})")));
    EXPECT_EQ(s->set_result("nope", json::object{}).error().code, Errc::kNotFound);
  }
  auto s = open_ok(path);
  EXPECT_EQ(s->get_result("p")->at("status").at("status_str"), "success");
}

TEST(Store, MaxNumberIsTheHighestOrMinusOne) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  EXPECT_EQ(*s->max_number(), -1);
  for (const auto& [id, n] : {std::pair{"a", 3}, std::pair{"b", 7}, std::pair{"c", -2}}) {
    auto j = make_job(id);
    j.number = n;
    ASSERT_TRUE(s->insert_job(j));
  }
  EXPECT_EQ(*s->max_number(), 7);
}

TEST(Store, RecentResultsAreTheLastEndedOldestFirst) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  for (int i = 0; i < 5; ++i) {
    const std::string id = "r" + std::to_string(i);
    ASSERT_TRUE(s->insert_job(make_job(id, i, 1000)));
    if (i == 4) continue;  // still queued: not ended, not listed even with a result
    // They end in the order r2, r0, r3, r1.
    const std::int64_t ended = 2000 + std::array<int, 4>{2, 4, 1, 3}[static_cast<std::size_t>(i)];
    ASSERT_TRUE(s->set_result(id, json::object{{"n", i}}));
    ASSERT_TRUE(s->transition(id, JobState::kQueued, i == 1 ? JobState::kFailed : JobState::kSucceeded, ended));
  }
  ASSERT_TRUE(s->set_result("r4", json::object{{"n", 4}}));
  auto all = s->recent_results(10);
  ASSERT_TRUE(all) << all.error().message;
  std::vector<std::string> ids;
  for (const auto& [id, v] : *all) ids.push_back(id);
  EXPECT_EQ(ids, (std::vector<std::string>{"r2", "r0", "r3", "r1"}));
  EXPECT_EQ(all->front().second.at("n"), 2);
  auto last2 = s->recent_results(2);
  ASSERT_TRUE(last2);
  ASSERT_EQ(last2->size(), 2u);
  EXPECT_EQ((*last2)[0].first, "r3");
  EXPECT_EQ((*last2)[1].first, "r1");
}

TEST(Store, VersionOneDatabaseIsMigrated) {
  TempDir dir;
  const auto path = dir.path() / "farm.db";
  { ASSERT_TRUE(open_ok(path)); }
  {
    // Turn the file back into a version-1 database: no job_results table.
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "DROP TABLE job_results; UPDATE schema_version SET version = 1",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = open_ok(path);
  EXPECT_EQ(*s->schema_version(), Store::kSchemaVersion);
  ASSERT_TRUE(s->insert_job(make_job("p")));
  EXPECT_TRUE(s->set_result("p", json::object{{"ok", true}}));
}

TEST(Store, SubmitWithCallbackRunsItOnceAfterCommit) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  std::promise<Result<void>> done;
  std::atomic<int> calls{0};
  s->submit(make_job("cb"), [&](Result<void> r) {
    ++calls;
    done.set_value(std::move(r));
  });
  ASSERT_TRUE(done.get_future().get());
  // The job is readable from another call once the callback has run: it was committed.
  EXPECT_EQ(s->get_job("cb")->id, "cb");
  std::promise<Result<void>> dup;
  s->submit(make_job("cb"), [&](Result<void> r) { dup.set_value(std::move(r)); });
  auto r = dup.get_future().get();
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Errc::kAlreadyExists);
  EXPECT_EQ(calls.load(), 1);
}

TEST(Store, BackgroundCheckpointCopiesTheWalIntoTheDatabase) {
  TempDir dir;
  const auto path = dir.path() / "farm.db";
  StoreOptions o;
  o.checkpoint_interval = std::chrono::milliseconds(10);
  auto s = open_ok(path, o);
  const auto before = std::filesystem::file_size(path);
  std::vector<NewJob> jobs;
  for (int i = 0; i < 500; ++i) jobs.push_back(make_job("ck-" + std::to_string(i), i));
  ASSERT_TRUE(s->insert_jobs(jobs));
  // Commits write only the WAL (auto-checkpoint is off); the checkpointer thread then copies
  // the pages into the database file, which grows.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::filesystem::file_size(path) <= before && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_GT(std::filesystem::file_size(path), before);
  s.reset();
  // Closing truncates the WAL.
  const auto wal = std::filesystem::path(path.string() + "-wal");
  EXPECT_TRUE(!std::filesystem::exists(wal) || std::filesystem::file_size(wal) == 0);
  EXPECT_EQ(open_ok(path)->list_jobs({})->jobs.size(), 100u);  // one page of the default limit
}

TEST(Store, BackendsCrud) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  BackendRecord b{"gpu-1", "http://10.0.0.1:8188", "up", false, 100, json::parse(R"({"depth":2})")};
  ASSERT_TRUE(s->add_backend(b));
  EXPECT_EQ(s->add_backend(b).error().code, Errc::kAlreadyExists);
  ASSERT_TRUE(s->add_backend({"gpu-2", "http://10.0.0.2:8188", "down", false, 200, nullptr}));
  b.drained = true;
  b.state = "draining";
  ASSERT_TRUE(s->update_backend(b));
  auto got = s->get_backend("gpu-1");
  ASSERT_TRUE(got);
  EXPECT_TRUE(got->drained);
  EXPECT_EQ(got->state, "draining");
  EXPECT_EQ(got->settings.at("depth"), 2);
  auto all = s->list_backends();
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].id, "gpu-2");
  ASSERT_TRUE(s->remove_backend("gpu-2"));
  EXPECT_EQ(s->remove_backend("gpu-2").error().code, Errc::kNotFound);
  EXPECT_EQ(s->get_backend("gpu-2").error().code, Errc::kNotFound);
  EXPECT_EQ(s->update_backend({"zzz", "", "", false, 0, nullptr}).error().code, Errc::kNotFound);
}

TEST(Store, UnfinishedJobsAreQueuedDispatchedRunning) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  for (const char* id : {"a", "b", "c", "d", "e"}) ASSERT_TRUE(s->insert_job(make_job(id)));
  ASSERT_TRUE(s->transition("b", JobState::kQueued, JobState::kDispatched, 1));
  ASSERT_TRUE(s->transition("c", JobState::kQueued, JobState::kRunning, 1));
  ASSERT_TRUE(s->transition("d", JobState::kQueued, JobState::kSucceeded, 1));
  ASSERT_TRUE(s->transition("e", JobState::kQueued, JobState::kCancelled, 1));
  auto u = s->unfinished_jobs();
  ASSERT_TRUE(u);
  std::vector<std::string> ids;
  for (const auto& j : *u) ids.push_back(j.id);
  EXPECT_EQ(ids, (std::vector<std::string>{"a", "b", "c"}));
}

TEST(Store, ReopenKeepsEverything) {
  TempDir dir;
  const auto path = dir.path() / "farm.db";
  {
    auto s = open_ok(path);
    ASSERT_TRUE(s->insert_job(make_job("a")));
    ASSERT_TRUE(s->insert_job(make_job("b", 2)));
    ASSERT_TRUE(s->submit(make_job("c", 3)).get());
    ASSERT_TRUE(s->transition("a", JobState::kQueued, JobState::kRunning, 5));
    ASSERT_TRUE(s->record_attempt({"a", 1, "gpu-1", 5, std::nullopt, "", nullptr}));
    ASSERT_TRUE(s->add_outputs("a", {{"9", "o.png", "", "output", "gpu-1"}}));
    ASSERT_TRUE(s->set_profile("a", json::parse(R"({"x":1})")));
    ASSERT_TRUE(s->add_backend({"gpu-1", "http://h:1", "up", true, 1, nullptr}));
  }
  auto s = open_ok(path);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->get_job("a")->state, JobState::kRunning);
  EXPECT_EQ(s->get_job("b")->workflow, workflow(2));
  EXPECT_EQ(s->get_job("c")->workflow, workflow(3));
  EXPECT_EQ(s->attempts("a")->size(), 1u);
  EXPECT_EQ(s->outputs("a")->size(), 1u);
  EXPECT_EQ(s->get_profile("a")->at("x"), 1);
  EXPECT_TRUE(s->get_backend("gpu-1")->drained);
  EXPECT_EQ(s->transitions("a")->size(), 1u);
  EXPECT_EQ(s->unfinished_jobs()->size(), 3u);
  EXPECT_EQ(*s->schema_version(), Store::kSchemaVersion);
}

TEST(Store, GarbageFileIsRefusedAndLeftUntouched) {
  TempDir dir;
  const auto path = dir.path() / "farm.db";
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage.push_back(static_cast<char>((i * 131 + 7) % 256));
  {
    std::ofstream out(path, std::ios::binary);
    out << garbage;
  }
  auto s = Store::open(path);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find(path.string()), std::string::npos) << s.error().message;
  EXPECT_EQ(s.error().code, Errc::kFailedPrecondition);
  EXPECT_EQ(bytes_of(path), garbage);
  EXPECT_FALSE(std::filesystem::exists(path.string() + "-wal"));
}

TEST(Store, CorruptSqliteFileIsRefusedAndLeftUntouched) {
  TempDir dir;
  const auto path = dir.path() / "farm.db";
  {
    auto s = open_ok(path);
    std::vector<NewJob> jobs;
    for (int i = 0; i < 500; ++i) jobs.push_back(make_job("j" + std::to_string(i), i));
    ASSERT_TRUE(s->insert_jobs(jobs));
  }
  // Checkpointed on close: the pages are in the main file. Smash everything after page 1.
  std::string bytes = bytes_of(path);
  ASSERT_GT(bytes.size(), 8192u);
  for (std::size_t i = 4096; i < bytes.size(); ++i) bytes[i] = static_cast<char>(0xA5);
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << bytes;
  }
  auto s = Store::open(path);
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find(path.string()), std::string::npos) << s.error().message;
  EXPECT_EQ(bytes_of(path), bytes);
}

TEST(Store, NewerSchemaVersionIsRefused) {
  TempDir dir;
  const auto path = dir.path() / "farm.db";
  { ASSERT_TRUE(open_ok(path)); }
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "UPDATE schema_version SET version = 99", nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  auto s = Store::open(path);
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code, Errc::kFailedPrecondition);
  EXPECT_NE(s.error().message.find("99"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find(path.string()), std::string::npos);
}

TEST(Store, DirectoryPathIsRefused) {
  TempDir dir;
  auto s = Store::open(dir.path());
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find(dir.path().string()), std::string::npos);
}

TEST(Store, SubmitReportsDuplicateOnlyForThatJob) {
  TempDir dir;
  auto s = open_ok(dir.path() / "farm.db");
  ASSERT_TRUE(s->insert_job(make_job("dup")));
  auto f1 = s->submit(make_job("x1"));
  auto f2 = s->submit(make_job("dup"));
  auto f3 = s->submit(make_job("x2"));
  EXPECT_TRUE(f1.get());
  auto r2 = f2.get();
  ASSERT_FALSE(r2);
  EXPECT_EQ(r2.error().code, Errc::kAlreadyExists);
  EXPECT_TRUE(f3.get());
  EXPECT_EQ(s->list_jobs({})->jobs.size(), 3u);
}

TEST(Store, ConcurrentSubmitsAreCommittedExactlyOnce) {
  TempDir dir;
  const auto path = dir.path() / "farm.db";
  constexpr int kThreads = 4;
  constexpr int kPerThread = 500;
  {
    auto s = open_ok(path);
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          // Every thread also tries one id of thread 0: exactly one of those wins.
          auto r = s->submit(make_job("t" + std::to_string(t) + "-" + std::to_string(i), i));
          if (r.get()) ++ok;
        }
        if (s->submit(make_job("t0-0")).get()) ++ok;
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(ok.load(), kThreads * kPerThread);
  }
  auto s = open_ok(path);
  JobFilter f;
  f.limit = 100000;
  auto page = s->list_jobs(f);
  ASSERT_TRUE(page);
  EXPECT_EQ(page->jobs.size(), static_cast<std::size_t>(kThreads * kPerThread));
  std::set<std::string> ids;
  for (const auto& j : page->jobs) ids.insert(j.id);
  EXPECT_EQ(ids.size(), static_cast<std::size_t>(kThreads * kPerThread));
}

}  // namespace
}  // namespace comfyfarm::store
