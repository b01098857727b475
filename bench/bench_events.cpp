// Decode/encode throughput of ComfyUI WebSocket messages, on real frames taken from the
// recordings in shared/fixtures/comfyui-real (first occurrence of each kind, sorted file order).
// Baselines: Boost.JSON DOM parse of the same text, fresh and with a reused parser.
#include "comfy/json_util.hpp"
#include "comfy/messages.hpp"

#include <benchmark/benchmark.h>
#include <boost/json/monotonic_resource.hpp>
#include <boost/json/parse.hpp>
#include <boost/json/parser.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
using namespace comfyfarm::comfy;

struct Sample {
  std::string name;
  std::string text;  ///< the frame as ComfyUI sent it (Python json.dumps text)
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The first recorded frame for which pick() returns true, over every ws*.jsonl in sorted order.
std::vector<Sample> load_samples() {
  const fs::path root = fs::path(COMFYFARM_SHARED_DIR) / "fixtures" / "comfyui-real";
  std::vector<fs::path> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.starts_with("ws") && e.path().extension() == ".jsonl") {
      files.push_back(e.path());
    }
  }
  std::sort(files.begin(), files.end());

  struct Want {
    std::string name;
    std::function<bool(const json::value& msg)> pick;
  };
  auto nodes_of = [](const json::value& m) { return m.at("data").at("nodes").as_object().size(); };
  auto type_is = [](std::string_view t) {
    return [t](const json::value& m) { return m.at("type").as_string() == t; };
  };
  const std::vector<Want> wants = {
      {"progress", type_is("progress")},
      {"executing", [](const json::value& m) {
         return m.at("type") == "executing" && !m.at("data").at("node").is_null();
       }},
      {"executing_end", [](const json::value& m) {
         return m.at("type") == "executing" && m.at("data").at("node").is_null();
       }},
      {"status", type_is("status")},
      {"executed", type_is("executed")},
      {"progress_state_1node", [&](const json::value& m) {
         return m.at("type") == "progress_state" && nodes_of(m) == 1;
       }},
      {"progress_state_8nodes", [&](const json::value& m) {
         return m.at("type") == "progress_state" && nodes_of(m) == 8;
       }},
      {"execution_error", type_is("execution_error")},
  };

  std::vector<Sample> out;
  for (const auto& want : wants) {
    bool found = false;
    for (const auto& f : files) {
      std::istringstream in(read_file(f));
      for (std::string line; !found && std::getline(in, line);) {
        auto v = parse_json(line);
        if (!v || v.value().at("kind") != "text") continue;
        const json::value& msg = v.value().at("msg");
        if (want.pick(msg)) {
          out.push_back({want.name, dumps(msg)});
          found = true;
        }
      }
      if (found) break;
    }
    if (!found) std::fprintf(stderr, "bench_events: no recorded frame for %s\n", want.name.c_str());
  }
  return out;
}

void set_counters(benchmark::State& state, const Sample& s) {
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * s.text.size()));
  state.SetLabel(std::to_string(s.text.size()) + " B");
}

void decode(benchmark::State& state, const Sample& s) {
  for (auto _ : state) {
    auto e = decode_event(s.text);
    if (!e) state.SkipWithError(e.error().message.c_str());
    benchmark::DoNotOptimize(e);
  }
  set_counters(state, s);
}

void encode(benchmark::State& state, const Sample& s) {
  const Event event = decode_event(s.text).value();
  std::string out;
  for (auto _ : state) {
    out.clear();
    encode_event_to(out, event);
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, s);
}

void encode_fresh(benchmark::State& state, const Sample& s) {
  const Event event = decode_event(s.text).value();
  for (auto _ : state) {
    std::string out = encode_event(event);
    benchmark::DoNotOptimize(out.data());
  }
  set_counters(state, s);
}

// Baseline: a Boost.JSON DOM of the same text, nothing typed.
void boost_parse(benchmark::State& state, const Sample& s) {
  for (auto _ : state) {
    json::value v = json::parse(s.text);
    benchmark::DoNotOptimize(v);
  }
  set_counters(state, s);
}

// Baseline: Boost.JSON with a reused parser and a reused monotonic buffer.
void boost_parse_reused(benchmark::State& state, const Sample& s) {
  unsigned char buffer[16384];
  json::parser p;
  for (auto _ : state) {
    json::monotonic_resource mr(buffer, sizeof buffer);
    p.reset(&mr);
    p.write(s.text);
    json::value v = p.release();
    benchmark::DoNotOptimize(v);
  }
  set_counters(state, s);
}

void decode_binary_preview(benchmark::State& state) {
  PreviewImageWithMetadata preview;
  preview.metadata = make_preview_metadata("3", "a7434fe7-d5d7-446c-9f79-1bca36a29b32", "3",
                                           std::nullopt, "3", "image/png");
  preview.image.assign(232, 0x89);  // 405-byte frame, as recorded
  const std::vector<std::uint8_t> frame = encode_binary(preview);
  for (auto _ : state) {
    auto e = decode_binary(frame);
    benchmark::DoNotOptimize(e);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetLabel(std::to_string(frame.size()) + " B");
}

}  // namespace

int main(int argc, char** argv) {
  static const std::vector<Sample> samples = load_samples();
  if (samples.empty()) {
    std::fprintf(stderr, "bench_events: no recordings found under %s\n", COMFYFARM_SHARED_DIR);
    return 1;
  }
  for (const auto& s : samples) {
    benchmark::RegisterBenchmark(("BM_DecodeEvent/" + s.name).c_str(), decode, s);
  }
  for (const auto& s : samples) {
    benchmark::RegisterBenchmark(("BM_EncodeEvent/" + s.name).c_str(), encode, s);
  }
  for (const auto& s : samples) {
    benchmark::RegisterBenchmark(("BM_EncodeEventFresh/" + s.name).c_str(), encode_fresh, s);
  }
  for (const auto& s : samples) {
    benchmark::RegisterBenchmark(("BM_BoostJsonParse/" + s.name).c_str(), boost_parse, s);
  }
  for (const auto& s : samples) {
    benchmark::RegisterBenchmark(("BM_BoostJsonParseReused/" + s.name).c_str(),
                                 boost_parse_reused, s);
  }
  benchmark::RegisterBenchmark("BM_DecodeBinary/preview_with_metadata", decode_binary_preview);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
