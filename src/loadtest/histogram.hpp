// LatencyHistogram: percentiles of durations with a bounded relative error, in constant memory.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace comfyfarm::loadtest {

/// Log-linear buckets (the HdrHistogram layout): values in milliseconds from kLowestMs (0.001 ms)
/// to kHighestMs (2^24 ms, about 4.7 hours), each power of two [2^k, 2^(k+1)) split into
/// kSubBuckets equal buckets (sub-bucket floor((v / 2^k - 1) * kSubBuckets)).
///
/// Error bound: percentiles use the nearest rank (rank = ceil(p / 100 * count), at least 1: the
/// smallest recorded value with at least p % of the values at or below it). The reported value is
/// the midpoint of the bucket holding that rank's value, clamped to [min, max]; rank 1 and rank
/// count give the exact min and max. A bucket in [2^k, 2^(k+1)) is 2^k / kSubBuckets wide, so the
/// midpoint is within 2^k / (2 * kSubBuckets) of any value in it, which is at least 2^k: the
/// reported percentile is within kRelativeError (1/256, under 0.4 %) of the exact nearest-rank
/// value. Outside the range the bound does not hold: values under kLowestMs count as kLowestMs,
/// values at or above kHighestMs in the top bucket (their percentiles are then clamped to max).
/// min/max/mean are exact. Memory: 34 * kSubBuckets counters (34 KiB), allocated on the first
/// record(), so an empty histogram costs nothing.
class LatencyHistogram {
 public:
  static constexpr int kSubBuckets = 128;
  /// Half a bucket's width relative to its lower edge: 1 / (2 * kSubBuckets) < 0.4%.
  static constexpr double kRelativeError = 1.0 / (2.0 * kSubBuckets);
  /// The covered range: [2^-10, 2^24) ms; kLowestMs is where values are floored.
  static constexpr double kLowestMs = 0.001;
  static constexpr double kHighestMs = 16777216.0;

  /// Records one value (ms). Negative values count as 0, NaN is ignored.
  void record(double ms);
  void merge(const LatencyHistogram& other);
  void clear();

  [[nodiscard]] std::uint64_t count() const noexcept { return count_; }
  [[nodiscard]] double min() const noexcept;   ///< 0 when empty
  [[nodiscard]] double max() const noexcept;   ///< 0 when empty
  [[nodiscard]] double mean() const noexcept;  ///< 0 when empty
  /// The p-th percentile (p in [0, 100], clamped; nearest rank); 0 when empty.
  [[nodiscard]] double percentile(double p) const;

 private:
  static std::size_t bucket_index(double ms) noexcept;
  static double bucket_midpoint(std::size_t index) noexcept;

  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  double min_ = 0;
  double max_ = 0;
  double sum_ = 0;
};

}  // namespace comfyfarm::loadtest
