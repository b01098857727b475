// Time as the profiler sees it: receive timestamps on the caller's wall clock, microseconds.
#pragma once

#include <chrono>
#include <cmath>
#include <cstdint>

namespace comfyfarm::profile {

/// Durations are kept in microseconds: the resolution of the recorded receive times, and the
/// unit of the Chrome trace event format.
using Duration = std::chrono::microseconds;

/// A receive (or submit) time on the caller's wall clock (system_clock), microseconds since the
/// Unix epoch. The module never reads a clock: callers stamp events when they arrive.
using TimePoint = std::chrono::sys_time<Duration>;

/// Epoch seconds as a double (the "t" of a recorded ws.jsonl line), rounded to the microsecond.
[[nodiscard]] inline TimePoint from_epoch_seconds(double seconds) noexcept {
  return TimePoint(Duration(std::llround(seconds * 1e6)));
}

/// Epoch milliseconds (ComfyUI's server `timestamp`).
[[nodiscard]] inline TimePoint from_epoch_ms(std::int64_t ms) noexcept {
  return TimePoint(Duration(ms * 1000));
}

/// Epoch milliseconds with microsecond fraction, for JSON.
[[nodiscard]] inline double to_epoch_ms(TimePoint t) noexcept {
  return static_cast<double>(t.time_since_epoch().count()) / 1000.0;
}

/// Epoch milliseconds (a JSON number, possibly fractional) back to a TimePoint.
[[nodiscard]] inline TimePoint from_epoch_ms_double(double ms) noexcept {
  return TimePoint(Duration(std::llround(ms * 1000.0)));
}

/// A duration in milliseconds (fractional).
[[nodiscard]] inline double to_ms(Duration d) noexcept {
  return static_cast<double>(d.count()) / 1000.0;
}

[[nodiscard]] inline Duration from_ms(double ms) noexcept { return Duration(std::llround(ms * 1000.0)); }

}  // namespace comfyfarm::profile
