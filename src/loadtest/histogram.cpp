#include "loadtest/histogram.hpp"

#include <algorithm>
#include <cmath>

namespace comfyfarm::loadtest {

namespace {

constexpr int kMinExp = -10;  // 2^-10 ms ~ 0.000977 ms <= kLowestMs
constexpr int kMaxExp = 23;   // the top power of two: [2^23, 2^24) ms
constexpr std::size_t kSub = static_cast<std::size_t>(LatencyHistogram::kSubBuckets);
constexpr std::size_t kBucketCount = static_cast<std::size_t>(kMaxExp - kMinExp + 1) * kSub;

static_assert(LatencyHistogram::kHighestMs == static_cast<double>(1 << (kMaxExp + 1)));

}  // namespace

std::size_t LatencyHistogram::bucket_index(double ms) noexcept {
  const double v = std::max(ms, kLowestMs);
  if (!(v < kHighestMs)) return kBucketCount - 1;
  int e = 0;
  const double m = std::frexp(v, &e);  // v = m * 2^e, m in [0.5, 1): v in [2^(e-1), 2^e)
  const int k = e - 1;
  // v / 2^k = 2m exactly, (2m - 1) * kSubBuckets exactly: no rounding before the floor.
  const auto sub = static_cast<std::size_t>(std::floor((2.0 * m - 1.0) * kSubBuckets));
  return static_cast<std::size_t>(k - kMinExp) * kSub + std::min(sub, kSub - 1);
}

double LatencyHistogram::bucket_midpoint(std::size_t index) noexcept {
  const int k = static_cast<int>(index / kSub) + kMinExp;
  const double sub = static_cast<double>(index % kSub);
  return std::ldexp(1.0 + (sub + 0.5) / kSubBuckets, k);
}

void LatencyHistogram::record(double ms) {
  if (std::isnan(ms)) return;
  if (ms < 0) ms = 0;
  if (buckets_.empty()) buckets_.assign(kBucketCount, 0);
  ++buckets_[bucket_index(ms)];
  if (count_ == 0) {
    min_ = max_ = ms;
  } else {
    min_ = std::min(min_, ms);
    max_ = std::max(max_, ms);
  }
  ++count_;
  sum_ += ms;
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  if (other.count_ == 0) return;
  if (buckets_.empty()) buckets_.assign(kBucketCount, 0);
  for (std::size_t i = 0; i < kBucketCount; ++i) buckets_[i] += other.buckets_[i];
  if (count_ == 0) {
    min_ = other.min_;
    max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  count_ += other.count_;
  sum_ += other.sum_;
}

void LatencyHistogram::clear() {
  buckets_.clear();
  count_ = 0;
  min_ = max_ = sum_ = 0;
}

double LatencyHistogram::min() const noexcept { return count_ == 0 ? 0 : min_; }
double LatencyHistogram::max() const noexcept { return count_ == 0 ? 0 : max_; }
double LatencyHistogram::mean() const noexcept {
  return count_ == 0 ? 0 : sum_ / static_cast<double>(count_);
}

double LatencyHistogram::percentile(double p) const {
  if (count_ == 0) return 0;
  if (std::isnan(p) || p < 0) p = 0;
  if (p > 100) p = 100;
  // p * count / 100 rather than p / 100 * count: exact for integral p; the epsilon keeps a
  // product like 990.0000000000001 from moving to the next rank.
  const double x = p * static_cast<double>(count_) / 100.0;
  std::uint64_t rank = 1;
  if (x > 1) rank = static_cast<std::uint64_t>(std::ceil(x - 1e-9));
  rank = std::clamp<std::uint64_t>(rank, 1, count_);
  if (rank == 1) return min_;
  if (rank == count_) return max_;
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < buckets_.size(); ++i) {
    seen += buckets_[i];
    if (seen >= rank) return std::clamp(bucket_midpoint(i), min_, max_);
  }
  return max_;  // not reached: the buckets hold count_ values
}

}  // namespace comfyfarm::loadtest
