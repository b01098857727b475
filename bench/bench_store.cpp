// Durable job inserts into the SQLite store: one transaction per job, and the grouped commits
// of Store::submit (what POST /prompt will use), with synchronous=NORMAL and FULL.
#include "store/store.hpp"

#include <benchmark/benchmark.h>
#include <boost/json/parse.hpp>

#include <filesystem>
#include <future>
#include <random>
#include <thread>
#include <vector>

namespace {

using namespace comfyfarm;
using namespace comfyfarm::store;

store::NewJob make_job(std::string id, int seed) {
  NewJob j;
  j.id = std::move(id);
  j.workflow = boost::json::parse(
      R"({"3":{"class_type":"KSampler","inputs":{"seed":)" + std::to_string(seed) +
      R"(,"model":["4",0]}},"4":{"class_type":"CheckpointLoaderSimple","inputs":{"ckpt_name":"a.safetensors"}}})");
  j.client_id = "client-a";
  j.created_at = 1000;
  return j;
}

// A fresh database file per benchmark run, removed afterwards.
struct TempDb {
  std::filesystem::path dir;
  TempDb() {
    dir = std::filesystem::temp_directory_path() /
          ("comfyfarm-bench-store-" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(dir);
  }
  ~TempDb() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
};

StoreOptions options(benchmark::State& state) {
  StoreOptions o;
  o.synchronous = state.range(0) == 0 ? Synchronous::kNormal : Synchronous::kFull;
  return o;
}

void BM_InsertJobOneTransactionEach(benchmark::State& state) {
  TempDb db;
  auto s = Store::open(db.dir / "farm.db", options(state));
  if (!s) {
    state.SkipWithError(s.error().message.c_str());
    return;
  }
  int i = 0;
  for (auto _ : state) {
    auto r = (*s)->insert_job(make_job("j" + std::to_string(i), i % 4));
    if (!r) state.SkipWithError(r.error().message.c_str());
    ++i;
  }
  state.SetItemsProcessed(state.iterations());
}

// 4 client threads, each keeping 64 submissions in flight; an item is acknowledged only once
// its group transaction committed.
void BM_SubmitGroupCommit(benchmark::State& state) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 5000;
  for (auto _ : state) {
    state.PauseTiming();
    TempDb db;
    auto s = Store::open(db.dir / "farm.db", options(state));
    if (!s) {
      state.SkipWithError(s.error().message.c_str());
      return;
    }
    Store& store = **s;
    state.ResumeTiming();
    std::vector<std::thread> threads;
    std::atomic<int> failures{0};
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&store, &failures, t] {
        std::vector<std::future<Result<void>>> window;
        for (int i = 0; i < kPerThread; ++i) {
          window.push_back(store.submit(make_job(std::to_string(t) + "-" + std::to_string(i), i % 4)));
          if (window.size() == 64) {
            for (auto& f : window) failures += f.get() ? 0 : 1;
            window.clear();
          }
        }
        for (auto& f : window) failures += f.get() ? 0 : 1;
      });
    }
    for (auto& th : threads) th.join();
    if (failures.load() != 0) state.SkipWithError("a submission failed");
    state.PauseTiming();
    s->reset();
    state.ResumeTiming();
  }
  state.SetItemsProcessed(state.iterations() * kThreads * kPerThread);
}

BENCHMARK(BM_InsertJobOneTransactionEach)->Arg(0)->Arg(1)->ArgNames({"full_sync"})->Iterations(1000)->UseRealTime();
BENCHMARK(BM_SubmitGroupCommit)->Arg(0)->Arg(1)->ArgNames({"full_sync"})->Iterations(2)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
