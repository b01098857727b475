// RetryPolicy: what to do after a failed attempt, with capped backoff and full jitter.
#pragma once

#include "core/error.hpp"
#include "scheduler/types.hpp"

#include <cstdint>
#include <string_view>
#include <vector>

namespace comfyfarm::scheduler {

struct RetryConfig {
  int max_attempts = 3;                                  ///< attempts in all, first included
  std::vector<TimeMs> backoff_ms{15'000, 45'000, 90'000}; ///< cap of the delay before retry n
  std::uint64_t seed = 1;
};

struct RetryDecision {
  bool retry = false;
  bool needs_regeneration = false;  ///< workflow_invalid: the client must change the workflow
  bool block_backend = false;       ///< block the failing backend for this structural hash
  bool free_backend = false;        ///< send /free to the failing backend first (oom)
  bool avoid_backend = false;       ///< the next attempt must go elsewhere
  TimeMs delay_ms = 0;              ///< not eligible before now + delay_ms
};

/// Parses COMFY_MAX_RETRIES-style text (retries after the first attempt, "0".."100") into
/// max_attempts = retries + 1.
[[nodiscard]] Result<int> parse_max_retries(std::string_view text);
/// Parses --max-attempts text ("1".."101").
[[nodiscard]] Result<int> parse_max_attempts(std::string_view text);
/// Parses COMFY_RETRY_BACKOFF_SEC / --retry-backoff text: "15,45,90" (one cap per retry, the last
/// one repeated) or "15" (a base doubled per retry, capped at 3600 s). Seconds, decimals allowed.
[[nodiscard]] Result<std::vector<TimeMs>> parse_backoff_seconds(std::string_view text);

/// Deterministic for a given seed and sequence of calls.
class RetryPolicy {
 public:
  explicit RetryPolicy(RetryConfig config = {});

  /// `attempt` is the attempt that failed, 1-based.
  [[nodiscard]] RetryDecision decide(FailureClass failure, int attempt);
  /// Cap of the delay before the retry that follows failed attempt `attempt` (1-based).
  [[nodiscard]] TimeMs backoff_cap(int attempt) const;
  [[nodiscard]] const RetryConfig& config() const noexcept { return config_; }

 private:
  std::uint64_t next_random();  // splitmix64: the same numbers on every standard library

  RetryConfig config_;
  std::uint64_t state_;
};

}  // namespace comfyfarm::scheduler
