// `comfyfarm profile`: runs a workflow on a ComfyUI server (or reads a recorded event log) and
// reports where the time went, node by node, with the server's RAM/VRAM sampled alongside.
#include "command.hpp"

#include "backend/backend_link.hpp"
#include "comfy/json_util.hpp"
#include "comfy/workflow.hpp"
#include "net/io_runtime.hpp"
#include "profile/chrome_trace.hpp"
#include "profile/csv_report.hpp"
#include "profile/job_profiler.hpp"
#include "profile/profile_aggregate.hpp"
#include "profile/profile_analysis.hpp"
#include "profile/profile_comparison.hpp"
#include "profile/profile_json.hpp"
#include "profile/text_report.hpp"
#include "profile/trace_reader.hpp"

#include <CLI/CLI.hpp>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>
#include <boost/json/value.hpp>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iostream>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace comfyfarm::app {

namespace {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;
using backend::BackendErrc;
using backend::BackendError;
using backend::BackendLink;

struct ProfileFlags {
  std::string server;
  std::string workflow;
  std::string from_trace;
  std::size_t runs = 1;
  bool vary_seed = false;
  std::string json_path;
  std::string csv_path;
  std::string trace_path;
  std::string compare_path;
  double sample_interval = 0.5;
  double timeout = 600.0;
  double threshold_percent = 10.0;
  double threshold_ms = 50.0;
};

/// A command-level failure: one line for stderr, and the exit code.
struct Failure {
  std::string message;
};

std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  for (auto& c : s) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return s;
}

std::string clip(std::string s, std::size_t max = 240) {
  s = one_line(std::move(s));
  if (s.size() > max) s = s.substr(0, max) + "...";
  return s;
}

int fail(const std::string& message) {
  std::cerr << "comfyfarm: error: " << one_line(message) << "\n";
  return 1;
}

profile::TimePoint to_time_point(std::chrono::system_clock::time_point t) {
  return std::chrono::time_point_cast<profile::Duration>(t);
}

profile::TimePoint now() { return to_time_point(std::chrono::system_clock::now()); }

std::optional<std::string> read_text(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read " + path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool write_text(const std::string& path, const std::string& text, std::string& error) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (out) out << text;
  if (!out) {
    error = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

/// Reads and validates the workflow; the error is one line (UI format gets the export hint).
std::optional<comfy::Workflow> load_workflow(const std::string& path, std::string& error) {
  auto text = read_text(path, error);
  if (!text) return std::nullopt;
  auto parsed = comfy::Workflow::parse(*text);
  if (parsed) return std::move(*parsed);
  const auto err = parsed.error();
  if (err.code() == comfy::WorkflowErrc::kUiFormat) {
    error = path +
            " is a workflow in ComfyUI's UI format (the editor's \"nodes\"/\"links\"), not the API "
            "format: in ComfyUI, export it with \"Save (API Format)\" (Workflow menu > Export "
            "(API); older versions: enable Dev mode in the settings) and pass that file";
    return std::nullopt;
  }
  error = path + " is not a valid API-format workflow: " + err.first().message;
  if (err.issues.size() > 1) error += " (and " + std::to_string(err.issues.size() - 1) + " more)";
  return std::nullopt;
}

std::string new_prompt_id(std::mt19937_64& rng) {
  const std::uint64_t a = rng();
  const std::uint64_t b = rng();
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08llx-%04llx-4%03llx-%04llx-%012llx",
                static_cast<unsigned long long>(a >> 32),
                static_cast<unsigned long long>((a >> 16) & 0xffff),
                static_cast<unsigned long long>(a & 0xfff),
                static_cast<unsigned long long>(((b >> 48) & 0x3fff) | 0x8000),
                static_cast<unsigned long long>(b & 0xffffffffffffULL));
  return buf;
}

/// The workflow with every literal seed/noise_seed input moved by `offset` (kept below 2^50 so
/// every server's range check accepts it).
json::object vary_seeds(const json::object& prompt, std::uint64_t offset) {
  json::object out = prompt;
  constexpr std::uint64_t kRange = std::uint64_t{1} << 50;
  for (auto& [id, node] : out) {
    if (!node.is_object()) continue;
    auto* inputs = node.as_object().if_contains("inputs");
    if (inputs == nullptr || !inputs->is_object()) continue;
    for (auto& [name, value] : inputs->as_object()) {
      if (name != "seed" && name != "noise_seed") continue;
      std::uint64_t seed = 0;
      if (value.is_uint64()) {
        seed = value.as_uint64();
      } else if (value.is_int64() && value.as_int64() >= 0) {
        seed = static_cast<std::uint64_t>(value.as_int64());
      } else {
        continue;  // a link or something odd: leave it
      }
      value = (seed % kRange + offset) % kRange;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// /system_stats sampling

struct DeviceUsage {
  std::string name;
  std::int64_t vram_total = 0;
  std::int64_t vram_free_min = std::numeric_limits<std::int64_t>::max();
  std::int64_t vram_used_peak = 0;
};

struct ResourceUsage {
  std::size_t samples = 0;
  std::size_t failed_samples = 0;
  std::int64_t ram_total = 0;
  std::optional<std::int64_t> ram_free_min;
  std::vector<DeviceUsage> devices;

  void add(const comfy::SystemStats& s) {
    ++samples;
    ram_total = s.system.ram_total;
    ram_free_min = ram_free_min ? std::min(*ram_free_min, s.system.ram_free) : s.system.ram_free;
    for (const auto& d : s.devices) {
      auto it = std::find_if(devices.begin(), devices.end(),
                             [&](const DeviceUsage& u) { return u.name == d.name; });
      if (it == devices.end()) {
        DeviceUsage fresh;
        fresh.name = d.name;
        devices.push_back(std::move(fresh));
        it = devices.end() - 1;
      }
      it->vram_total = d.vram_total;
      it->vram_free_min = std::min(it->vram_free_min, d.vram_free);
      it->vram_used_peak = std::max(it->vram_used_peak, d.vram_total - d.vram_free);
    }
  }
};

struct Sampler {
  explicit Sampler(asio::any_io_executor ex) : timer(std::move(ex)) {}
  asio::steady_timer timer;
  bool stop = false;
  bool running = true;
  ResourceUsage usage;
};

asio::awaitable<void> sample_loop(std::shared_ptr<BackendLink> link, std::shared_ptr<Sampler> s,
                                  std::chrono::milliseconds interval) {
  while (!s->stop) {
    auto stats = co_await link->system_stats();
    if (s->stop) break;
    if (stats) {
      s->usage.add(*stats);
    } else {
      ++s->usage.failed_samples;
    }
    s->timer.expires_after(interval);
    auto [ec] = co_await s->timer.async_wait(asio::as_tuple(asio::use_awaitable));
    (void)ec;
  }
  s->running = false;
}

// ---------------------------------------------------------------------------------------------
// One live run

struct RunResult {
  profile::JobProfile profile;
  ResourceUsage usage;
  std::optional<std::string> failure;           // one line: timeout, lost server
  std::optional<std::string> validation;        // several lines: the server rejected it
};

struct LiveContext {
  std::shared_ptr<BackendLink> link;
  comfy::Workflow workflow;
  std::string workflow_name;
  std::chrono::milliseconds timeout{};
  std::chrono::milliseconds sample_interval{};
};

std::string describe_validation(const BackendError& e) {
  std::string out = "the server rejected the workflow";
  if (!e.validation) return out + ": " + clip(e.message);
  const auto& v = *e.validation;
  out += ": " + clip(v.error.message.empty() ? v.error.type : v.error.message);
  if (!v.error.details.empty() && v.node_errors.empty()) out += ": " + clip(v.error.details);
  for (const auto& ne : v.node_errors) {
    for (const auto& info : ne.errors) {
      out += "\n  node " + ne.node_id;
      if (!ne.class_type.empty()) out += " (" + ne.class_type + ")";
      if (info.extra_info.is_object()) {
        if (const auto* in = info.extra_info.as_object().if_contains("input_name");
            in != nullptr && in->is_string()) {
          out += " input '" + std::string(in->as_string()) + "'";
        }
      }
      out += ": " + clip(info.message);
      if (!info.details.empty()) out += ": " + clip(info.details);
    }
  }
  return out;
}

/// Polls /history for the prompt until it is there or the deadline passes.
asio::awaitable<std::optional<comfy::HistoryEntry>> poll_history(
    std::shared_ptr<BackendLink> link, std::string prompt_id,
    std::chrono::steady_clock::time_point deadline) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  for (;;) {
    auto h = co_await link->history(prompt_id);
    if (h && h->has_value()) co_return std::move(**h);
    if (std::chrono::steady_clock::now() + 250ms >= deadline) co_return std::nullopt;
    timer.expires_after(250ms);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }
}

asio::awaitable<RunResult> run_once(std::shared_ptr<LiveContext> ctx, std::size_t index,
                                    std::string prompt_id, json::object prompt) {
  RunResult result;
  profile::ProfilerOptions options;
  options.prompt_id = prompt_id;
  options.label = "run " + std::to_string(index + 1);
  options.backend = ctx->link->base_url();
  options.workflow = ctx->workflow_name;
  profile::JobProfiler profiler(options, ctx->workflow);

  auto executor = co_await asio::this_coro::executor;
  auto sampler = std::make_shared<Sampler>(executor);
  asio::co_spawn(executor, sample_loop(ctx->link, sampler, ctx->sample_interval),
                 [](const std::exception_ptr& e) {
                   if (!e) return;
                   try {
                     std::rethrow_exception(e);
                   } catch (const std::exception& ex) {
                     spdlog::warn("profile: system_stats sampler failed: {}", ex.what());
                   }
                 });

  const auto deadline = std::chrono::steady_clock::now() + ctx->timeout;
  auto stream = co_await ctx->link->watch(prompt_id);
  profiler.on_submitted(now());
  auto submitted = co_await ctx->link->submit(prompt_id, std::move(prompt));
  if (!submitted) {
    const auto err = submitted.error();
    if (err.code == BackendErrc::kValidation) {
      result.validation = describe_validation(err);
    } else {
      result.failure = "POST /prompt to " + ctx->link->base_url() + " failed: " + clip(err.message);
    }
  } else {
    profiler.set_prompt_id(prompt_id);
    bool saw_end = false;  // `executing` with node null: the server is done with the prompt
    std::optional<std::chrono::steady_clock::time_point> done_since;
    bool need_history = false;
    while (!saw_end) {
      const auto t = std::chrono::steady_clock::now();
      if (t >= deadline) break;
      // After the terminal event, wait briefly for the closing `executing` null.
      if (done_since && t - *done_since > 1s) break;
      auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - t);
      wait = std::min<std::chrono::milliseconds>(wait, 1000ms);
      const std::chrono::milliseconds next_wait = std::max<std::chrono::milliseconds>(wait, 1ms);
      auto next = co_await stream->next(next_wait);
      if (!next) {
        const auto err = next.error();
        if (err.code == BackendErrc::kTimeout) continue;
        need_history = true;  // the link stopped
        break;
      }
      const auto at = to_time_point(next->received_at);
      if (const auto* ev = std::get_if<comfy::Event>(&next->event)) {
        profiler.on_event(*ev, at);
        if (const auto* ex = std::get_if<comfy::Executing>(ev);
            ex != nullptr && ex->is_end_of_prompt() &&
            (!ex->prompt_id || *ex->prompt_id == prompt_id)) {
          saw_end = true;
        }
      } else if (const auto* bin = std::get_if<comfy::BinaryEvent>(&next->event)) {
        profiler.on_binary(*bin, at);
      } else if (const auto* le = std::get_if<backend::LinkEvent>(&next->event)) {
        if (le->kind == backend::LinkEvent::Kind::kDisconnected) {
          spdlog::warn("profile: WebSocket lost ({}); reading /history", le->reason);
          need_history = true;
          break;
        }
      }
      if (profiler.done() && !done_since) done_since = std::chrono::steady_clock::now();
    }
    if (!profiler.done()) {
      // Lost socket or timeout: the history tells how it ended (events sent meanwhile are lost).
      const auto history_deadline =
          need_history ? deadline : std::chrono::steady_clock::now() + 2s;
      auto entry = co_await poll_history(ctx->link, prompt_id, history_deadline);
      if (entry) {
        profiler.on_history(*entry);
      } else {
        result.failure = "timed out after " +
                         std::to_string(ctx->timeout.count() / 1000) + " s waiting for prompt " +
                         prompt_id + " on " + ctx->link->base_url() +
                         (need_history ? " (the WebSocket was lost and /history never listed it)"
                                       : "");
        std::optional<std::string> target = prompt_id;
        auto interrupted = co_await ctx->link->interrupt(std::move(target));
        (void)interrupted;
      }
      if (!profiler.done()) profiler.close(now());
    }
  }

  sampler->stop = true;
  sampler->timer.cancel();
  result.usage = sampler->usage;
  // Let the sampler see the flag (a request in flight ends within the request timeout; it is
  // not waited for beyond 2 s, its late sample is discarded).
  {
    asio::steady_timer pause(executor);
    const auto sampler_deadline = std::chrono::steady_clock::now() + 2s;
    while (sampler->running && std::chrono::steady_clock::now() < sampler_deadline) {
      pause.expires_after(5ms);
      co_await pause.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }
  result.profile = profiler.profile();
  co_return result;
}

struct LiveOutcome {
  std::vector<RunResult> runs;
  std::optional<std::string> fatal;  // one line: nothing was run
};

asio::awaitable<LiveOutcome> run_live(std::shared_ptr<LiveContext> ctx, std::size_t runs,
                                      bool vary, std::chrono::milliseconds connect_timeout) {
  LiveOutcome out;
  // Reachability first, so an unreachable server is one line rather than a timeout.
  auto stats = co_await ctx->link->system_stats();
  if (!stats) {
    const auto err = stats.error();
    out.fatal = "cannot reach the ComfyUI server at " + ctx->link->base_url() + ": " +
                clip(err.message);
    co_return out;
  }
  ctx->link->start();
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto ws_deadline = std::chrono::steady_clock::now() + connect_timeout;
  while (!ctx->link->health().websocket_connected) {
    if (std::chrono::steady_clock::now() >= ws_deadline) {
      out.fatal = "cannot open the WebSocket of " + ctx->link->base_url() + "/ws: " +
                  clip(ctx->link->health().last_error);
      co_return out;
    }
    timer.expires_after(20ms);
    co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
  }

  std::mt19937_64 rng(std::random_device{}());
  const std::uint64_t seed_base = rng() % (std::uint64_t{1} << 40);
  const json::object& base = ctx->workflow.to_json().as_object();
  for (std::size_t i = 0; i < runs; ++i) {
    json::object prompt = vary ? vary_seeds(base, seed_base + i) : base;
    std::string id = new_prompt_id(rng);
    RunResult r = co_await run_once(ctx, i, std::move(id), std::move(prompt));
    const bool stop = r.failure.has_value() || r.validation.has_value();
    out.runs.push_back(std::move(r));
    if (stop) break;
  }
  co_return out;
}

// ---------------------------------------------------------------------------------------------
// Reporting

std::string gib(std::int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0));
  return buf;
}

std::string render_usage(const RunResult& r, double interval_s) {
  const auto& u = r.usage;
  std::ostringstream os;
  char iv[32];
  std::snprintf(iv, sizeof iv, "%g", interval_s);
  os << "Resources (" << r.profile.label << ", /system_stats every " << iv << " s, " << u.samples
     << " sample" << (u.samples == 1 ? "" : "s");
  if (u.failed_samples > 0) os << ", " << u.failed_samples << " failed";
  os << ")\n";
  if (u.samples == 0) {
    os << "  no sample\n";
    return os.str();
  }
  os << "  RAM   min free " << gib(*u.ram_free_min) << " of " << gib(u.ram_total) << "\n";
  for (const auto& d : u.devices) {
    os << "  VRAM  peak used " << gib(d.vram_used_peak) << " of " << gib(d.vram_total)
       << " (min free " << gib(d.vram_free_min) << ")  " << d.name << "\n";
  }
  return os.str();
}

json::value usage_to_json(const RunResult& r) {
  const auto& u = r.usage;
  json::object o;
  o["run"] = r.profile.label;
  o["prompt_id"] = r.profile.prompt_id;
  o["samples"] = u.samples;
  o["failed_samples"] = u.failed_samples;
  o["ram_total"] = u.ram_total;
  o["ram_free_min"] = u.ram_free_min ? json::value(*u.ram_free_min) : json::value(nullptr);
  json::array devs;
  for (const auto& d : u.devices) {
    json::object dv;
    dv["name"] = d.name;
    dv["vram_total"] = d.vram_total;
    dv["vram_used_peak"] = d.vram_used_peak;
    dv["vram_free_min"] = d.vram_free_min;
    devs.push_back(std::move(dv));
  }
  o["devices"] = std::move(devs);
  return o;
}

/// A failed or interrupted run, named plainly (node, class, exception type and message).
std::optional<std::string> describe_outcome(const profile::JobProfile& p) {
  using profile::Outcome;
  if (p.outcome == Outcome::kFailed && p.error) {
    const auto& e = *p.error;
    std::string s = p.label + ": node " + e.node_id;
    if (!e.node_type.empty()) s += " (" + e.node_type + ")";
    s += " raised " + (e.exception_type.empty() ? std::string("an error") : e.exception_type);
    if (!e.exception_message.empty()) s += ": " + clip(e.exception_message);
    return s;
  }
  if (p.outcome == Outcome::kFailed) return p.label + ": the prompt failed";
  if (p.outcome == Outcome::kInterrupted) {
    std::string s = p.label + ": the prompt was interrupted";
    if (p.interrupted) s += " at node " + p.interrupted->node_id + " (" + p.interrupted->node_type + ")";
    return s;
  }
  if (p.outcome == Outcome::kIncomplete || p.outcome == Outcome::kRunning ||
      p.outcome == Outcome::kNotStarted) {
    return p.label + ": the prompt did not finish (" + std::string(profile::to_string(p.outcome)) + ")";
  }
  return std::nullopt;
}

struct Reported {
  std::vector<RunResult> runs;
  bool live = false;
};

int report(const ProfileFlags& flags, const Reported& all) {
  // A run the server rejected never started: its errors say it all, it has no profile to show.
  Reported in;
  in.live = all.live;
  for (const auto& r : all.runs) {
    if (!r.validation) in.runs.push_back(r);
  }
  std::vector<profile::JobProfile> profiles;
  profiles.reserve(in.runs.size());
  for (const auto& r : in.runs) profiles.push_back(r.profile);

  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  profile::TextOptions text;
  text.color = tty;
  text.unicode = tty;
  const profile::AnalysisOptions analysis_options;

  int exit_code = 0;
  std::ostringstream out;
  for (std::size_t i = 0; i < in.runs.size(); ++i) {
    const auto analysis = profile::analyze(profiles[i], analysis_options);
    out << profile::render_text(profiles[i], analysis, text);
    if (in.live) out << render_usage(in.runs[i], flags.sample_interval);
    out << "\n";
  }
  if (profiles.size() > 1) {
    out << profile::render_text(profile::aggregate(profiles), text) << "\n";
  }

  std::optional<profile::ProfileComparison> comparison;
  if (!flags.compare_path.empty() && !profiles.empty()) {
    std::string error;
    auto text_in = read_text(flags.compare_path, error);
    if (!text_in) return fail(error);
    auto doc = comfy::parse_json(*text_in);
    if (!doc) return fail(flags.compare_path + " is not JSON: " + doc.error().message);
    auto baseline = profile::profiles_from_json(*doc);
    if (!baseline) {
      return fail(flags.compare_path + " is not a comfyfarm profile: " + baseline.error().message);
    }
    if (baseline->empty()) return fail(flags.compare_path + " holds no run");
    profile::CompareOptions co;
    co.threshold_percent = flags.threshold_percent;
    co.min_delta = profile::from_ms(flags.threshold_ms);
    comparison = profile::compare(baseline->back(), profiles.back(), co);
    out << profile::render_text(*comparison, text) << "\n";
  }
  std::cout << out.str() << std::flush;

  std::string error;
  if (!flags.json_path.empty() && !profiles.empty()) {
    json::value doc = profile::profile_set_to_json(profiles, analysis_options,
                                                   comparison ? &*comparison : nullptr);
    if (in.live && doc.is_object()) {
      json::object res;
      res["interval_s"] = flags.sample_interval;
      json::array runs;
      for (const auto& r : in.runs) runs.push_back(usage_to_json(r));
      res["runs"] = std::move(runs);
      doc.as_object()["system_stats"] = std::move(res);
    }
    if (!write_text(flags.json_path, profile::pretty_json(doc) + "\n", error)) return fail(error);
  }
  if (!flags.csv_path.empty() && !write_text(flags.csv_path, profile::render_csv(profiles), error)) {
    return fail(error);
  }
  if (!flags.trace_path.empty() &&
      !write_text(flags.trace_path, comfy::dumps(profile::render_chrome_trace(profiles)) + "\n",
                  error)) {
    return fail(error);
  }

  for (const auto& r : all.runs) {
    if (r.validation) {
      std::cerr << "comfyfarm: error: " << *r.validation << "\n";
      exit_code = 1;
    } else if (r.failure) {
      exit_code = fail(*r.failure);
    } else if (auto bad = describe_outcome(r.profile)) {
      exit_code = fail(*bad);
    }
  }
  if (comparison && comparison->has_regression()) {
    std::cerr << "comfyfarm: regression against " << flags.compare_path << ": "
              << comparison->regressions << " node(s) slower"
              << (comparison->execution_verdict == profile::Verdict::kRegression
                      ? ", execution time slower"
                      : "")
              << "\n";
    exit_code = 1;
  }
  return exit_code;
}

// ---------------------------------------------------------------------------------------------

int run_from_trace(const ProfileFlags& flags) {
  std::string error;
  std::optional<comfy::Workflow> workflow;
  if (!flags.workflow.empty()) {
    workflow = load_workflow(flags.workflow, error);
    if (!workflow) return fail(error);
  }
  auto text = read_text(flags.from_trace, error);
  if (!text) return fail(error);
  auto events = profile::read_ws_jsonl(*text);
  if (!events) return fail(flags.from_trace + ": " + events.error().message);
  const auto ids = profile::prompt_ids_in(*events);
  if (ids.empty()) return fail(flags.from_trace + " holds no event of any prompt");
  Reported rep;
  const std::string name =
      std::filesystem::path(flags.workflow.empty() ? flags.from_trace : flags.workflow)
          .filename()
          .string();
  for (std::size_t i = 0; i < ids.size(); ++i) {
    profile::ProfilerOptions options;
    options.prompt_id = ids[i];
    options.label = ids.size() == 1 ? "trace" : "trace prompt " + std::to_string(i + 1);
    options.backend = flags.from_trace;
    options.workflow = name;
    RunResult r;
    r.profile = profile::profile_trace(*events, options, workflow);
    rep.runs.push_back(std::move(r));
  }
  return report(flags, rep);
}

int run_profile(const ProfileFlags& flags) {
  // stderr is for failures; the link's connection notices are not.
  spdlog::set_level(spdlog::level::warn);
  if (!flags.from_trace.empty()) return run_from_trace(flags);
  if (flags.server.empty()) return fail("--server URL is required (or --from-trace FILE)");
  if (flags.workflow.empty()) return fail("--workflow FILE is required");

  std::string error;
  auto workflow = load_workflow(flags.workflow, error);
  if (!workflow) return fail(error);

  const auto timeout = std::chrono::milliseconds(std::llround(flags.timeout * 1000.0));
  const auto interval =
      std::chrono::milliseconds(std::max<long long>(10, std::llround(flags.sample_interval * 1000.0)));

  net::IoRuntime io(1);
  backend::BackendLinkOptions lo;
  lo.base_url = flags.server;
  while (!lo.base_url.empty() && lo.base_url.back() == '/') lo.base_url.pop_back();
  lo.connect_timeout = std::min<std::chrono::milliseconds>(timeout, 5s);
  lo.request_timeout = std::min<std::chrono::milliseconds>(timeout, 30s);
  lo.probe_interval = 1s;
  lo.probe_timeout = 1s;
  lo.reconnect_min = 50ms;
  lo.reconnect_max = 1s;
  lo.preview_metadata = true;
  auto created = BackendLink::create(io.executor(), lo);
  if (!created) return fail("--server " + flags.server + ": " + created.error().message);

  auto ctx = std::make_shared<LiveContext>(LiveContext{*created, *workflow,
                                                       std::filesystem::path(flags.workflow)
                                                           .filename()
                                                           .string(),
                                                       timeout, interval});
  auto fut = asio::co_spawn(io.executor(), run_live(ctx, flags.runs, flags.vary_seed, lo.connect_timeout),
                            asio::use_future);
  // Every wait inside has its own deadline; this one is the backstop.
  const auto backstop = timeout * static_cast<long long>(flags.runs) + 60s;
  if (fut.wait_for(backstop) != std::future_status::ready) {
    ctx->link->stop();
    io.stop();
    io.join();
    return fail("timed out after " + std::to_string(backstop.count() / 1000) + " s");
  }
  LiveOutcome outcome;
  std::optional<std::string> crash;
  try {
    outcome = fut.get();
  } catch (const std::exception& e) {
    crash = e.what();
  }
  ctx->link->stop();
  io.stop();
  io.join();
  ctx.reset();
  if (crash) return fail(*crash);
  if (outcome.fatal) return fail(*outcome.fatal);
  Reported rep;
  rep.runs = std::move(outcome.runs);
  rep.live = true;
  return report(flags, rep);
}

}  // namespace

CommandMain register_profile(CLI::App& root) {
  auto flags = std::make_shared<ProfileFlags>();
  CLI::App* cmd = root.add_subcommand(
      "profile",
      "Profile a workflow on a ComfyUI server (or a recorded event log): per-node times,\n"
      "cache hits, critical path, bottlenecks, RAM/VRAM; text report, JSON, CSV, Chrome trace.");
  cmd->add_option("--server", flags->server, "ComfyUI server base URL (http://host:port)");
  cmd->add_option("--workflow", flags->workflow, "API-format workflow JSON (\"Save (API Format)\")");
  cmd->add_option("--from-trace", flags->from_trace,
                  "analyse a recorded ws.jsonl offline instead of running (no --server)")
      ->excludes(cmd->get_option("--server"));
  cmd->add_option("--runs", flags->runs, "number of runs (the first cold, later ones warm)")
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000}));
  cmd->add_flag("--vary-seed", flags->vary_seed,
                "change every seed/noise_seed input per run so caching does not hide the work");
  cmd->add_option("--json", flags->json_path, "write the profiles (comfyfarm.profile-set/1) here");
  cmd->add_option("--csv", flags->csv_path, "write one CSV row per node per run here");
  cmd->add_option("--trace", flags->trace_path, "write a Chrome trace (Perfetto, chrome://tracing)");
  cmd->add_option("--compare", flags->compare_path,
                  "compare the last run with the last run of a previous --json output; exit 1 on "
                  "a regression");
  cmd->add_option("--threshold-percent", flags->threshold_percent,
                  "--compare: a change counts beyond this percent of the baseline")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--threshold-ms", flags->threshold_ms,
                  "--compare: ... and beyond this many milliseconds")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--sample-interval", flags->sample_interval,
                  "seconds between /system_stats samples")
      ->capture_default_str()
      ->check(CLI::Range(0.01, 3600.0));
  cmd->add_option("--timeout", flags->timeout, "seconds to wait for one run to finish")
      ->capture_default_str()
      ->check(CLI::Range(0.1, 86400.0));
  return [flags] { return run_profile(*flags); };
}

}  // namespace comfyfarm::app
