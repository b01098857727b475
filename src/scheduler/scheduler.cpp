#include "scheduler/scheduler.hpp"

#include <algorithm>
#include <tuple>

namespace comfyfarm::scheduler {
namespace {
std::string backend_name(BackendId id) { return "backend " + std::to_string(id); }
std::string job_name(JobId id) { return "job " + std::to_string(id); }
}  // namespace

Scheduler::Scheduler(SchedulerConfig config)
    : config_(std::move(config)), queue_(config_.queue_capacity), retry_(config_.retry) {
  strings_.emplace("", 0);  // 0 means "none"
}

std::uint32_t Scheduler::intern(const std::string& s) {
  auto [it, inserted] = strings_.emplace(s, static_cast<std::uint32_t>(strings_.size()));
  return it->second;
}

void Scheduler::refresh_free(BackendView& b) {
  if (has_room(b)) {
    free_.insert(b.id);
  } else {
    free_.erase(b.id);
  }
}

Result<void> Scheduler::add_backend(const BackendSpec& spec) {
  if (backends_.contains(spec.id)) return comfyfarm::fail(Errc::kAlreadyExists, backend_name(spec.id) + " exists");
  BackendView b;
  b.id = spec.id;
  b.depth = std::max<std::size_t>(spec.depth, 1);
  b.speed = spec.speed_hint > 0 ? spec.speed_hint : 1.0;
  auto& stored = backends_.emplace(spec.id, std::move(b)).first->second;
  refresh_free(stored);
  return set_capabilities(spec.id, spec.class_types, spec.model_files);
}

Result<void> Scheduler::set_capabilities(BackendId id, const std::vector<std::string>& class_types,
                                         const std::vector<std::string>& model_files) {
  auto it = backends_.find(id);
  if (it == backends_.end()) return comfyfarm::fail(Errc::kNotFound, "no " + backend_name(id));
  it->second.has.clear();
  for (const auto& c : class_types) it->second.has.insert(intern("c:" + c));
  for (const auto& m : model_files) it->second.has.insert(intern("m:" + m));
  return {};
}

Result<void> Scheduler::set_up(BackendId id, bool up) {
  auto it = backends_.find(id);
  if (it == backends_.end()) return comfyfarm::fail(Errc::kNotFound, "no " + backend_name(id));
  it->second.up = up;
  refresh_free(it->second);
  return {};
}

Result<void> Scheduler::set_draining(BackendId id, bool draining) {
  auto it = backends_.find(id);
  if (it == backends_.end()) return comfyfarm::fail(Errc::kNotFound, "no " + backend_name(id));
  it->second.draining = draining;
  refresh_free(it->second);
  return {};
}

Result<void> Scheduler::cache_cleared(BackendId id) {
  auto it = backends_.find(id);
  if (it == backends_.end()) return comfyfarm::fail(Errc::kNotFound, "no " + backend_name(id));
  it->second.previous_affinity = 0;
  return {};
}

const BackendView* Scheduler::backend(BackendId id) const {
  auto it = backends_.find(id);
  return it == backends_.end() ? nullptr : &it->second;
}

Result<void> Scheduler::submit(const JobSpec& spec, TimeMs now) {
  if (jobs_.contains(spec.id)) return comfyfarm::fail(Errc::kAlreadyExists, job_name(spec.id) + " exists");
  auto pushed = queue_.push(QueueItem{spec.id, spec.priority, spec.front, spec.batch, spec.ready_at_ms}, now);
  if (!pushed) return pushed.error();
  Job j;
  for (const auto& c : spec.class_types) j.needs.push_back(intern("c:" + c));
  for (const auto& m : spec.model_files) j.needs.push_back(intern("m:" + m));
  std::sort(j.needs.begin(), j.needs.end());
  j.needs.erase(std::unique(j.needs.begin(), j.needs.end()), j.needs.end());
  j.affinity = spec.affinity_key.empty() ? 0 : intern("a:" + spec.affinity_key);
  j.structure = spec.structural_hash.empty() ? 0 : intern("s:" + spec.structural_hash);
  j.cost_ms = spec.cost_ms > 0 ? spec.cost_ms : 1.0;
  j.priority = spec.priority;
  j.batch = spec.batch;
  jobs_.emplace(spec.id, std::move(j));
  return {};
}

Result<void> Scheduler::cancel(JobId id) {
  auto removed = queue_.remove(id);
  if (!removed) return removed.error();
  jobs_.erase(id);
  return {};
}

bool Scheduler::fits(const BackendView& b, const Job& j) const {
  if (j.has_avoid && j.avoid == b.id) return false;
  if (j.structure != 0 && b.blocked.contains(j.structure)) return false;
  return std::all_of(j.needs.begin(), j.needs.end(), [&](std::uint32_t n) { return b.has.contains(n); });
}

BackendView* Scheduler::pick(const Job& j) {
  BackendView* best = nullptr;
  switch (config_.policy) {
    case PlacementPolicy::kAffinity: {
      // (affinity miss, expected finish, last used, id): smaller is better.
      std::tuple<int, double, std::uint64_t, BackendId> best_key{};
      for (BackendId id : free_) {
        BackendView& b = backends_.at(id);
        if (!fits(b, j)) continue;
        const int miss = (j.affinity != 0 && b.previous_affinity == j.affinity) ? 0 : 1;
        const double finish = (b.outstanding_cost_ms + j.cost_ms) / b.speed;
        std::tuple key{miss, finish, b.last_used, b.id};
        if (best == nullptr || key < best_key) {
          best = &b;
          best_key = key;
        }
      }
      return best;
    }
    case PlacementPolicy::kRoundRobin: {
      if (free_.empty()) return nullptr;
      auto start = rr_started_ ? free_.upper_bound(rr_last_) : free_.begin();
      for (std::size_t n = 0; n < free_.size(); ++n, ++start) {
        if (start == free_.end()) start = free_.begin();
        BackendView& b = backends_.at(*start);
        if (fits(b, j)) return &b;
      }
      return nullptr;
    }
    case PlacementPolicy::kLeastQueue: {
      for (BackendId id : free_) {
        BackendView& b = backends_.at(id);
        if (!fits(b, j)) continue;
        if (best == nullptr || b.in_flight.size() < best->in_flight.size()) best = &b;
      }
      return best;
    }
  }
  return nullptr;
}

std::vector<Assignment> Scheduler::decide(TimeMs now) {
  queue_.promote(now);
  std::vector<Assignment> out;
  if (free_.empty() || queue_.ready_size() == 0) return out;
  std::size_t slots = 0;
  for (BackendId id : free_) {
    const auto& b = backends_.at(id);
    slots += b.depth - b.in_flight.size();
  }
  const auto candidates = queue_.ready(std::max(config_.lookahead, 2 * slots));
  const int top_priority = jobs_.at(candidates.front()).priority;
  // Pass 0 (affinity policy only): jobs of the top priority whose best backend already holds
  // their loaders go first, so a freed slot takes a cache hit from the window rather than the
  // head job's model load. Pass 1: everything else in queue order.
  for (int pass = config_.policy == PlacementPolicy::kAffinity ? 0 : 1; pass < 2; ++pass)
  for (JobId id : candidates) {
    if (free_.empty()) break;
    if (!queue_.contains(id)) continue;
    Job& j = jobs_.at(id);
    if (pass == 0 && j.priority != top_priority) continue;
    BackendView* b = pick(j);
    if (b == nullptr) continue;
    if (pass == 0 && (j.affinity == 0 || b->previous_affinity != j.affinity)) continue;
    auto removed = queue_.remove(id);
    (void)removed;
    j.running = true;
    j.on = b->id;
    j.has_avoid = false;
    b->in_flight.push_back(id);
    b->outstanding_cost_ms += j.cost_ms;
    b->last_used = ++assign_counter_;
    if (j.affinity != 0) b->previous_affinity = j.affinity;
    rr_last_ = b->id;
    rr_started_ = true;
    ++running_;
    refresh_free(*b);
    out.push_back(Assignment{id, b->id});
  }
  return out;
}

void Scheduler::release(BackendView& b, JobId id, double cost_ms) {
  auto it = std::find(b.in_flight.begin(), b.in_flight.end(), id);
  if (it != b.in_flight.end()) b.in_flight.erase(it);
  b.outstanding_cost_ms = std::max(0.0, b.outstanding_cost_ms - cost_ms);
  if (b.in_flight.empty()) b.outstanding_cost_ms = 0;
  --running_;
  refresh_free(b);
}

Result<void> Scheduler::complete(JobId id, BackendId backend_id, double run_ms, TimeMs /*now*/) {
  auto jt = jobs_.find(id);
  if (jt == jobs_.end() || !jt->second.running || jt->second.on != backend_id) {
    return comfyfarm::fail(Errc::kNotFound, job_name(id) + " is not running on " + backend_name(backend_id));
  }
  BackendView& b = backends_.at(backend_id);
  const double cost = jt->second.cost_ms;
  if (run_ms > 0) {
    const double sample = cost / run_ms;
    b.speed = config_.speed_alpha * sample + (1.0 - config_.speed_alpha) * b.speed;
  }
  ++b.jobs_completed;
  release(b, id, cost);
  jobs_.erase(jt);
  return {};
}

Result<FailureOutcome> Scheduler::fail(JobId id, BackendId backend_id, FailureClass failure, TimeMs now) {
  auto jt = jobs_.find(id);
  if (jt == jobs_.end() || !jt->second.running || jt->second.on != backend_id) {
    return comfyfarm::fail(Errc::kNotFound, job_name(id) + " is not running on " + backend_name(backend_id));
  }
  Job& j = jt->second;
  BackendView& b = backends_.at(backend_id);
  FailureOutcome outcome;
  outcome.attempt = ++j.attempts;
  outcome.decision = retry_.decide(failure, j.attempts);
  const auto& d = outcome.decision;
  release(b, id, j.cost_ms);
  j.running = false;
  if (d.block_backend && j.structure != 0) b.blocked.insert(j.structure);
  if (d.free_backend) b.previous_affinity = 0;
  if (!d.retry) {
    jobs_.erase(jt);
    return outcome;
  }
  j.has_avoid = d.avoid_backend;
  j.avoid = backend_id;
  auto pushed = queue_.push(QueueItem{id, j.priority, false, j.batch, now + d.delay_ms}, now);
  if (!pushed) {
    jobs_.erase(jt);
    return pushed.error();
  }
  return outcome;
}

Result<std::vector<std::pair<JobId, FailureOutcome>>> Scheduler::backend_lost(BackendId id, TimeMs now) {
  auto it = backends_.find(id);
  if (it == backends_.end()) return comfyfarm::fail(Errc::kNotFound, "no " + backend_name(id));
  it->second.up = false;
  it->second.previous_affinity = 0;
  const auto held = it->second.in_flight;
  std::vector<std::pair<JobId, FailureOutcome>> out;
  for (JobId j : held) {
    auto r = fail(j, id, FailureClass::kBackendLost, now);
    if (r) out.emplace_back(j, *r);
  }
  refresh_free(it->second);
  return out;
}

}  // namespace comfyfarm::scheduler
