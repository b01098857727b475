#include "profile/profile_comparison.hpp"

#include <cmath>
#include <cstdlib>

namespace comfyfarm::profile {

namespace {

bool ran(const NodeProfile& n) noexcept {
  return !n.cached && n.duration.has_value() &&
         (n.status == NodeStatus::kCompleted || n.status == NodeStatus::kFailed ||
          n.status == NodeStatus::kInterrupted);
}

Verdict judge(Duration base, Duration cur, const CompareOptions& o, double& pct) {
  const Duration delta = cur - base;
  pct = base > Duration::zero()
            ? 100.0 * static_cast<double>(delta.count()) / static_cast<double>(base.count())
            : 0.0;
  const bool beyond_abs = std::llabs(delta.count()) >= o.min_delta.count();
  const bool beyond_pct = base > Duration::zero() ? std::fabs(pct) >= o.threshold_percent
                                                  : delta != Duration::zero();
  if (!beyond_abs || !beyond_pct) return Verdict::kUnchanged;
  return delta > Duration::zero() ? Verdict::kRegression : Verdict::kImprovement;
}

}  // namespace

std::string_view to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::kUnchanged: return "unchanged";
    case Verdict::kRegression: return "regression";
    case Verdict::kImprovement: return "improvement";
    case Verdict::kCacheChanged: return "cache_changed";
    case Verdict::kStatusChanged: return "status_changed";
    case Verdict::kAdded: return "added";
    case Verdict::kRemoved: return "removed";
  }
  return "unchanged";
}

ProfileComparison compare(const JobProfile& baseline, const JobProfile& current,
                          const CompareOptions& options) {
  ProfileComparison c;
  c.baseline_prompt_id = baseline.prompt_id;
  c.current_prompt_id = current.prompt_id;
  c.options = options;
  c.baseline_execution = baseline.execution_time;
  c.current_execution = current.execution_time;
  if (baseline.execution_time && current.execution_time) {
    c.execution_delta = *current.execution_time - *baseline.execution_time;
    c.execution_verdict =
        judge(*baseline.execution_time, *current.execution_time, options, c.execution_delta_percent);
  }
  auto add = [&](const NodeProfile* b, const NodeProfile* n) {
    NodeDelta d;
    const NodeProfile& any = b ? *b : *n;
    d.node_id = any.id;
    d.class_type = any.class_type;
    d.title = any.title;
    if (b) {
      d.baseline_status = b->status;
      if (ran(*b) || b->cached) d.baseline = b->duration;
    }
    if (n) {
      d.current_status = n->status;
      if (ran(*n) || n->cached) d.current = n->duration;
    }
    if (d.baseline && d.current) {
      d.delta = *d.current - *d.baseline;
      if (*d.baseline > Duration::zero()) {
        d.delta_percent = 100.0 * static_cast<double>(d.delta.count()) /
                          static_cast<double>(d.baseline->count());
      }
    }
    if (!b) {
      d.verdict = Verdict::kAdded;
    } else if (!n) {
      d.verdict = Verdict::kRemoved;
    } else if (b->cached != n->cached) {
      d.verdict = Verdict::kCacheChanged;
    } else if (b->status != n->status) {
      d.verdict = Verdict::kStatusChanged;
    } else if (d.baseline && d.current) {
      d.verdict = judge(*d.baseline, *d.current, options, d.delta_percent);
    }
    if (d.verdict == Verdict::kRegression) ++c.regressions;
    if (d.verdict == Verdict::kImprovement) ++c.improvements;
    c.nodes.push_back(std::move(d));
  };
  for (const auto& b : baseline.nodes) add(&b, current.find(b.id));
  for (const auto& n : current.nodes) {
    if (!baseline.find(n.id)) add(nullptr, &n);
  }
  return c;
}

}  // namespace comfyfarm::profile
