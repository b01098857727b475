#include "scheduler/retry_policy.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>

namespace comfyfarm::scheduler {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Result<int> parse_int(std::string_view text, int lo, int hi, std::string_view what) {
  text = trim(text);
  int v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || p != text.data() + text.size() || v < lo || v > hi) {
    return fail(Errc::kInvalidArgument, std::string(what) + ": expected an integer in [" +
                                            std::to_string(lo) + ", " + std::to_string(hi) +
                                            "], got '" + std::string(text) + "'");
  }
  return v;
}

Result<TimeMs> parse_seconds(std::string_view text) {
  text = trim(text);
  double v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || p != text.data() + text.size() || !std::isfinite(v) ||
      v < 0 || v > 86'400) {
    return fail(Errc::kInvalidArgument,
                "retry backoff: expected seconds in [0, 86400], got '" + std::string(text) + "'");
  }
  return static_cast<TimeMs>(std::llround(v * 1000.0));
}

}  // namespace

Result<int> parse_max_retries(std::string_view text) {
  auto r = parse_int(text, 0, 100, "max retries");
  if (!r) return r.error();
  return *r + 1;
}

Result<int> parse_max_attempts(std::string_view text) {
  return parse_int(text, 1, 101, "max attempts");
}

Result<std::vector<TimeMs>> parse_backoff_seconds(std::string_view text) {
  std::vector<TimeMs> out;
  while (true) {
    const auto comma = text.find(',');
    auto v = parse_seconds(text.substr(0, comma));
    if (!v) return v.error();
    out.push_back(*v);
    if (comma == std::string_view::npos) break;
    text.remove_prefix(comma + 1);
  }
  if (out.size() == 1) {
    const TimeMs base = out[0];
    for (int i = 1; i < 8; ++i) out.push_back(std::min<TimeMs>(out.back() * 2, 3'600'000));
    if (base == 0) out.assign(1, 0);
  }
  return out;
}

RetryPolicy::RetryPolicy(RetryConfig config) : config_(std::move(config)), state_(config_.seed) {
  if (config_.backoff_ms.empty()) config_.backoff_ms.push_back(0);
  config_.max_attempts = std::max(config_.max_attempts, 1);
}

std::uint64_t RetryPolicy::next_random() {
  std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

TimeMs RetryPolicy::backoff_cap(int attempt) const {
  const auto n = config_.backoff_ms.size();
  const auto i = static_cast<std::size_t>(std::max(attempt, 1) - 1);
  return config_.backoff_ms[std::min(i, n - 1)];
}

RetryDecision RetryPolicy::decide(FailureClass failure, int attempt) {
  RetryDecision d;
  switch (failure) {
    case FailureClass::kWorkflowInvalid:
      d.needs_regeneration = true;
      return d;
    case FailureClass::kBackendIncompatible:
      d.block_backend = true;
      d.avoid_backend = true;
      break;
    case FailureClass::kOom:
      d.free_backend = true;
      d.avoid_backend = true;  // another GPU may have the memory; this one after /free if none
      break;
    case FailureClass::kBackendLost:
      d.avoid_backend = true;
      break;
    case FailureClass::kTransient:
      break;
  }
  if (attempt >= config_.max_attempts) return d;
  d.retry = true;
  // Placement problems (wrong backend, lost backend) retry at once elsewhere; failures that may
  // recur on the same backend back off: full jitter, uniform in [0, cap].
  if (failure == FailureClass::kOom || failure == FailureClass::kTransient) {
    const TimeMs cap = backoff_cap(attempt);
    d.delay_ms = cap <= 0 ? 0 : static_cast<TimeMs>(next_random() % static_cast<std::uint64_t>(cap + 1));
  }
  return d;
}

}  // namespace comfyfarm::scheduler
