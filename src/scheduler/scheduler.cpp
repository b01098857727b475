#include "scheduler/scheduler.hpp"

#include <algorithm>
#include <limits>
#include <tuple>

namespace comfyfarm::scheduler {
namespace {
std::string backend_name(BackendId id) { return "backend " + std::to_string(id); }
std::string job_name(JobId id) { return "job " + std::to_string(id); }

// Jobs of one group examined for one backend before giving up on the group (capability filters
// rarely differ inside a checkpoint group; this only bounds the pathological case).
constexpr std::size_t kGroupScan = 16;
// The tail list-scheduling costs ready jobs x backends per decide(); above this it is skipped.
constexpr std::size_t kTailBudget = std::size_t{1} << 16;
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

// ---- group accounting -------------------------------------------------------------------------

double Scheduler::drain_ms(const Group& g) {
  return g.capacity > 0 ? g.queued_cost / g.capacity : std::numeric_limits<double>::infinity();
}

void Scheduler::group_changed(std::uint32_t id, const Group& before) {
  if (before.queued > 0) by_drain_.erase(DrainKey{-drain_ms(before), id});
  auto it = groups_.find(id);
  if (it == groups_.end()) return;
  const Group& g = it->second;
  if (g.queued > 0) {
    by_drain_.insert(DrainKey{-drain_ms(g), id});
  } else if (g.members == 0) {
    groups_.erase(it);
  }
}

void Scheduler::add_queued(std::uint32_t group, double cost_ms, int sign) {
  Group& g = groups_[group];
  const Group before = g;
  if (sign > 0) {
    g.queued_cost += cost_ms;
    ++g.queued;
  } else {
    g.queued_cost -= cost_ms;
    --g.queued;
    if (g.queued == 0) g.queued_cost = 0;  // no drift once empty
  }
  group_changed(group, before);
}

// Counts the backend's speed in the group of its previous prompt while it can take work.
void Scheduler::recount(BackendView& b) {
  const std::uint32_t group = (b.up && !b.draining) ? b.previous_affinity : 0;
  if (group == b.counted_group && (group == 0 || b.speed == b.counted_speed)) return;
  if (b.counted_group != 0) {
    Group& g = groups_[b.counted_group];
    const Group before = g;
    g.capacity -= b.counted_speed;
    if (--g.members == 0) g.capacity = 0;
    group_changed(b.counted_group, before);
  }
  b.counted_group = group;
  b.counted_speed = group != 0 ? b.speed : 0;
  if (group != 0) {
    Group& g = groups_[group];
    const Group before = g;
    g.capacity += b.counted_speed;
    ++g.members;
    group_changed(group, before);
  }
}

// ---- backends ---------------------------------------------------------------------------------

Result<void> Scheduler::add_backend(const BackendSpec& spec) {
  if (backends_.contains(spec.id)) return comfyfarm::fail(Errc::kAlreadyExists, backend_name(spec.id) + " exists");
  BackendView b;
  b.id = spec.id;
  b.depth = std::max<std::size_t>(spec.depth, 1);
  b.speed = spec.speed_hint > 0 ? spec.speed_hint : 1.0;
  b.load_ms = std::max(0.0, config_.model_load_ms);
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
  recount(it->second);
  refresh_free(it->second);
  return {};
}

Result<void> Scheduler::set_draining(BackendId id, bool draining) {
  auto it = backends_.find(id);
  if (it == backends_.end()) return comfyfarm::fail(Errc::kNotFound, "no " + backend_name(id));
  it->second.draining = draining;
  recount(it->second);
  refresh_free(it->second);
  return {};
}

Result<void> Scheduler::cache_cleared(BackendId id) {
  auto it = backends_.find(id);
  if (it == backends_.end()) return comfyfarm::fail(Errc::kNotFound, "no " + backend_name(id));
  it->second.previous_affinity = 0;
  recount(it->second);
  return {};
}

const BackendView* Scheduler::backend(BackendId id) const {
  auto it = backends_.find(id);
  return it == backends_.end() ? nullptr : &it->second;
}

// ---- jobs -------------------------------------------------------------------------------------

Result<void> Scheduler::submit(const JobSpec& spec, TimeMs now) {
  if (jobs_.contains(spec.id)) return comfyfarm::fail(Errc::kAlreadyExists, job_name(spec.id) + " exists");
  Job j;
  for (const auto& c : spec.class_types) j.needs.push_back(intern("c:" + c));
  for (const auto& m : spec.model_files) j.needs.push_back(intern("m:" + m));
  std::sort(j.needs.begin(), j.needs.end());
  j.needs.erase(std::unique(j.needs.begin(), j.needs.end()), j.needs.end());
  j.needs.shrink_to_fit();
  j.affinity = spec.affinity_key.empty() ? 0 : intern("a:" + spec.affinity_key);
  j.structure = spec.structural_hash.empty() ? 0 : intern("s:" + spec.structural_hash);
  j.cost_ms = spec.cost_ms > 0 ? spec.cost_ms : 1.0;
  j.priority = spec.priority;
  j.batch = spec.batch;
  auto pushed = queue_.push(QueueItem{spec.id, spec.priority, spec.front, spec.batch, spec.ready_at_ms, j.affinity}, now);
  if (!pushed) return pushed.error();
  add_queued(j.affinity, j.cost_ms, +1);
  jobs_.emplace(spec.id, std::move(j));
  return {};
}

Result<void> Scheduler::cancel(JobId id) {
  auto removed = queue_.remove(id);
  if (!removed) return removed.error();
  auto jt = jobs_.find(id);
  add_queued(jt->second.affinity, jt->second.cost_ms, -1);
  jobs_.erase(jt);
  return {};
}

bool Scheduler::fits_ignoring_avoid(const BackendView& b, const Job& j) const {
  if (j.structure != 0 && b.blocked.contains(j.structure)) return false;
  return std::all_of(j.needs.begin(), j.needs.end(), [&](std::uint32_t n) { return b.has.contains(n); });
}

bool Scheduler::fits(const BackendView& b, const Job& j) const {
  if (!fits_ignoring_avoid(b, j)) return false;
  if (!j.has_avoid || j.avoid != b.id) return true;
  // Avoiding the backend that failed the job is a preference: when no other live backend
  // could take the job, the same one gets it again rather than leaving it queued forever.
  for (const auto& [id, other] : backends_) {
    if (id != b.id && other.up && !other.draining && fits_ignoring_avoid(other, j)) return false;
  }
  return true;
}

bool Scheduler::placeable(JobId id) const {
  const auto jt = jobs_.find(id);
  if (jt == jobs_.end()) return false;
  for (const auto& [bid, b] : backends_) {
    if (!b.draining && fits_ignoring_avoid(b, jt->second)) return true;
  }
  return false;
}

double Scheduler::expected_finish(const BackendView& b, const Job& j, TimeMs now) const {
  const double start = b.in_flight.empty() ? static_cast<double>(now)
                                           : std::max(static_cast<double>(now), b.expected_free_ms);
  return start + (needs_load(b, j) ? b.load_ms : 0.0) + j.cost_ms / b.speed;
}

void Scheduler::recompute_expected_free(BackendView& b, TimeMs now) {
  const auto t_now = static_cast<double>(now);
  if (b.in_flight.empty()) {
    b.expected_free_ms = t_now;
    return;
  }
  double t = static_cast<double>(b.head_started_ms);
  bool head = true;
  for (JobId id : b.in_flight) {
    const Job& j = jobs_.at(id);
    t += (j.load_expected ? b.load_ms : 0.0) + j.cost_ms / b.speed;
    if (head) t = std::max(t, t_now);  // a head running late ends no earlier than now
    head = false;
  }
  b.expected_free_ms = t;
}

void Scheduler::assign(JobId id, Job& j, BackendView& b, TimeMs now, std::vector<Assignment>& out) {
  // Fairness: count how often the head of the queue is passed over by a backend it fits.
  if (auto head = queue_.front(); head && *head != id && fits(b, jobs_.at(*head))) {
    if (*head == bypassed_head_) {
      ++head_bypasses_;
    } else {
      bypassed_head_ = *head;
      head_bypasses_ = 1;
    }
  }
  auto removed = queue_.remove(id);
  (void)removed;
  add_queued(j.affinity, j.cost_ms, -1);
  double start = static_cast<double>(now);
  if (b.in_flight.empty()) {
    b.head_started_ms = now;
  } else {
    start = std::max(start, b.expected_free_ms);
  }
  j.load_expected = needs_load(b, j);
  b.expected_free_ms = start + (j.load_expected ? b.load_ms : 0.0) + j.cost_ms / b.speed;
  j.running = true;
  j.on = b.id;
  j.has_avoid = false;
  b.in_flight.push_back(id);
  b.outstanding_cost_ms += j.cost_ms;
  b.last_used = ++assign_counter_;
  if (j.affinity != 0) b.previous_affinity = j.affinity;
  recount(b);
  rr_last_ = b.id;
  rr_started_ = true;
  ++running_;
  refresh_free(b);
  out.push_back(Assignment{id, b.id});
}

BackendView* Scheduler::pick(const Job& j) {
  BackendView* best = nullptr;
  switch (config_.policy) {
    case PlacementPolicy::kAffinity:
      return nullptr;  // decide_affinity() places these
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
  if (config_.policy == PlacementPolicy::kAffinity) return decide_affinity(now);
  queue_.promote(now);
  std::vector<Assignment> out;
  if (free_.empty() || queue_.ready_size() == 0) return out;
  std::size_t slots = 0;
  for (BackendId id : free_) {
    const auto& b = backends_.at(id);
    slots += b.depth - b.in_flight.size();
  }
  for (JobId id : queue_.ready(std::max(config_.lookahead, 2 * slots))) {
    if (free_.empty()) break;
    Job& j = jobs_.at(id);
    BackendView* b = pick(j);
    if (b != nullptr) assign(id, j, *b, now, out);
  }
  return out;
}

// ---- kAffinity --------------------------------------------------------------------------------

BackendView* Scheduler::earliest_free_backend(const Job& j, TimeMs now) {
  BackendView* best = nullptr;
  std::tuple<double, std::uint64_t, BackendId> best_key{};
  for (BackendId id : free_) {
    BackendView& b = backends_.at(id);
    if (!fits(b, j)) continue;
    std::tuple key{expected_finish(b, j, now), b.last_used, b.id};
    if (best == nullptr || key < best_key) {
      best = &b;
      best_key = key;
    }
  }
  return best;
}

std::optional<JobId> Scheduler::first_fitting(std::uint32_t group, const BackendView& b,
                                              int top_priority) const {
  // The common case (the group's first job fits) without building a list.
  const auto first = queue_.front_in_group(group);
  if (!first) return std::nullopt;
  {
    const Job& j = jobs_.at(*first);
    if (j.priority != top_priority) return std::nullopt;
    if (fits(b, j)) return first;
  }
  for (JobId id : queue_.ready_in_group(group, kGroupScan)) {
    const Job& j = jobs_.at(id);
    if (j.priority != top_priority) return std::nullopt;  // a group is in priority order
    if (fits(b, j)) return id;
  }
  return std::nullopt;
}

std::optional<JobId> Scheduler::hit_for(const BackendView& b, int top_priority) const {
  std::optional<JobId> own;
  if (b.previous_affinity != 0) own = first_fitting(b.previous_affinity, b, top_priority);
  const std::optional<JobId> loaderless = first_fitting(0, b, top_priority);
  if (own && loaderless) return queue_.before(*own, *loaderless) ? own : loaderless;
  return own ? own : loaderless;
}

std::uint32_t Scheduler::lagging_group(std::uint32_t except, int top_priority) const {
  std::size_t examined = 0;
  for (const auto& [neg_drain, group] : by_drain_) {
    if (++examined > config_.lookahead) break;
    if (group == except || group == 0) continue;
    const auto first = queue_.front_in_group(group);
    if (first && jobs_.at(*first).priority == top_priority) return group;
  }
  return 0;
}

bool Scheduler::decide_tail(TimeMs now, std::vector<Assignment>& out) {
  struct Slot {
    BackendView* b;
    double free_at;
    std::uint32_t affinity;
  };
  std::vector<Slot> start;
  for (auto& [id, b] : backends_) {
    if (!b.up || b.draining) continue;
    const double free_at = b.in_flight.empty() ? static_cast<double>(now)
                                               : std::max(static_cast<double>(now), b.expected_free_ms);
    start.push_back(Slot{&b, free_at, b.previous_affinity});
  }
  const std::vector<JobId> ready = queue_.ready(config_.tail_jobs);
  if (start.empty() || ready.size() * start.size() > kTailBudget) return false;
  // Highest priority first, then longest first (LPT); ties keep queue order.
  std::vector<std::pair<JobId, const Job*>> order;
  order.reserve(ready.size());
  for (JobId id : ready) order.emplace_back(id, &jobs_.at(id));
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) {
    return std::tie(b.second->priority, b.second->cost_ms) < std::tie(a.second->priority, a.second->cost_ms);
  });

  // One list-scheduling plan: each job to the slot where it finishes first, except that a slot
  // that already holds its loaders is preferred while it finishes by `cap` (plain earliest
  // finish loads checkpoints that a slightly later backend already holds).
  struct Plan {
    std::vector<std::size_t> slot_of;  // per job in `order`; npos: fits nowhere
    double makespan = 0;
    std::size_t loads = 0;
  };
  constexpr std::size_t npos = static_cast<std::size_t>(-1);
  auto plan = [&](double cap) {
    Plan p;
    p.slot_of.assign(order.size(), npos);
    std::vector<Slot> slots = start;
    for (std::size_t k = 0; k < order.size(); ++k) {
      const Job& j = *order[k].second;
      std::size_t best = npos, best_hit = npos;
      double best_finish = 0, best_hit_finish = 0;
      for (std::size_t i = 0; i < slots.size(); ++i) {
        const Slot& s = slots[i];
        if (!fits(*s.b, j)) continue;
        const bool load = j.affinity != 0 && s.affinity != j.affinity;
        const double finish = s.free_at + (load ? s.b->load_ms : 0.0) + j.cost_ms / s.b->speed;
        if (best == npos || finish < best_finish) {
          best = i;
          best_finish = finish;
        }
        if (!load && finish <= cap && (best_hit == npos || finish < best_hit_finish)) {
          best_hit = i;
          best_hit_finish = finish;
        }
      }
      if (best_hit != npos) {
        best = best_hit;
        best_finish = best_hit_finish;
      }
      if (best == npos) continue;
      Slot& s = slots[best];
      if (j.affinity != 0 && s.affinity != j.affinity) ++p.loads;
      s.free_at = best_finish;
      if (j.affinity != 0) s.affinity = j.affinity;
      p.slot_of[k] = best;
      p.makespan = std::max(p.makespan, best_finish);
    }
    return p;
  };
  Plan chosen = plan(-std::numeric_limits<double>::infinity());
  for (int round = 0; round < 2; ++round) {
    Plan p = plan(chosen.makespan);
    if (std::tie(p.makespan, p.loads) >= std::tie(chosen.makespan, chosen.loads)) break;
    chosen = std::move(p);
  }

  // Only what a backend would start next (as many jobs as it has room for) is sent now, in the
  // plan's order; the rest waits for a later decide(), when the estimates are fresher. (Sending a
  // backend's share in queue order instead measured worse: the plan is redone at every decide()
  // and longest-first only works when the long jobs are committed first.)
  std::vector<std::size_t> taken(start.size(), 0);
  std::vector<std::pair<JobId, BackendView*>> now_sent;
  for (std::size_t k = 0; k < order.size(); ++k) {
    const std::size_t i = chosen.slot_of[k];
    if (i == npos) continue;
    BackendView& b = *start[i].b;
    const std::size_t room = has_room(b) ? b.depth - b.in_flight.size() : 0;
    if (taken[i] < room) {
      ++taken[i];
      now_sent.emplace_back(order[k].first, &b);
    }
  }
  for (const auto& [id, b] : now_sent) assign(id, jobs_.at(id), *b, now, out);
  return true;
}

std::vector<Assignment> Scheduler::decide_affinity(TimeMs now) {
  queue_.promote(now);
  std::vector<Assignment> out;
  if (free_.empty() || queue_.ready_size() == 0) return out;
  // 1. Fairness: the head has been passed over long enough (the tail's reordering included).
  if (const JobId head = *queue_.front(); bypassed_head_ == head && head_bypasses_ >= config_.lookahead) {
    Job& j = jobs_.at(head);
    if (BackendView* b = earliest_free_backend(j, now)) {
      assign(head, j, *b, now, out);
      head_bypasses_ = 0;
    }
  }
  if (free_.empty() || queue_.ready_size() == 0) return out;
  if (queue_.ready_size() <= config_.tail_jobs && decide_tail(now, out)) return out;

  // Free backends that may still have a hit at `hits_for` priority: within one call the queue
  // only shrinks, so a backend without a hit keeps none until its group or the priority changes.
  std::set<BackendId> may_hit = free_;
  int hits_for = std::numeric_limits<int>::min();
  while (!free_.empty() && queue_.ready_size() > 0) {
    const JobId head = *queue_.front();
    Job& head_job = jobs_.at(head);
    const int top = head_job.priority;
    if (top != hits_for) {
      may_hit = free_;
      hits_for = top;
    }

    // 1. Fairness, as above.
    if (bypassed_head_ == head && head_bypasses_ >= config_.lookahead) {
      if (BackendView* b = earliest_free_backend(head_job, now)) {
        assign(head, head_job, *b, now, out);
        head_bypasses_ = 0;
        may_hit.insert(b->id);
        continue;
      }
    }

    // 2. Hits: a backend keeps its loaders, unless its group can spare it for a lagging one.
    bool placed = false;
    for (auto it = may_hit.begin(); it != may_hit.end();) {
      BackendView& b = backends_.at(*it);
      const auto hit = has_room(b) ? hit_for(b, top) : std::nullopt;
      if (!hit) {
        it = may_hit.erase(it);
        continue;
      }
      JobId chosen = *hit;
      if (config_.rebalance && b.previous_affinity != 0 && jobs_.at(chosen).affinity == b.previous_affinity) {
        const std::uint32_t lag = lagging_group(b.previous_affinity, top);
        if (lag != 0) {
          const Group& own = groups_.at(b.previous_affinity);
          const Group& other = groups_.at(lag);
          const double own_after = own.members > 1 && own.capacity - b.counted_speed > 0
                                       ? own.queued_cost / (own.capacity - b.counted_speed)
                                       : std::numeric_limits<double>::infinity();
          const double other_after = (other.queued_cost + b.speed * b.load_ms) / (other.capacity + b.speed);
          if (other_after > own_after + b.load_ms) {
            if (auto moved = first_fitting(lag, b, top)) chosen = *moved;
          }
        }
      }
      assign(chosen, jobs_.at(chosen), b, now, out);
      placed = true;
      break;
    }
    if (placed) continue;

    // 3. Misses: the group that will drain last takes the free backend finishing its job first.
    std::size_t examined = 0;
    for (const auto& [neg_drain, group] : by_drain_) {
      if (examined >= config_.lookahead) break;
      for (JobId id : queue_.ready_in_group(group, kGroupScan)) {
        ++examined;
        Job& j = jobs_.at(id);
        if (j.priority != top) break;
        if (BackendView* b = earliest_free_backend(j, now)) {
          assign(id, j, *b, now, out);
          may_hit.insert(b->id);
          placed = true;
          break;
        }
      }
      if (placed) break;  // assign() changed by_drain_
    }
    if (placed) continue;

    // 4. Anything else in queue order (jobs of lower priority when the top ones fit nowhere).
    for (JobId id : queue_.ready(config_.lookahead)) {
      Job& j = jobs_.at(id);
      if (BackendView* b = earliest_free_backend(j, now)) {
        assign(id, j, *b, now, out);
        may_hit.insert(b->id);
        placed = true;
        break;
      }
    }
    if (!placed) break;
  }
  return out;
}

// ---- outcomes ---------------------------------------------------------------------------------

void Scheduler::release(BackendView& b, JobId id, double cost_ms, TimeMs now) {
  auto it = std::find(b.in_flight.begin(), b.in_flight.end(), id);
  if (it != b.in_flight.end()) {
    if (it == b.in_flight.begin()) b.head_started_ms = now;  // the next one starts now
    b.in_flight.erase(it);
  }
  b.outstanding_cost_ms = std::max(0.0, b.outstanding_cost_ms - cost_ms);
  if (b.in_flight.empty()) b.outstanding_cost_ms = 0;
  --running_;
  recompute_expected_free(b, now);
  refresh_free(b);
}

Result<void> Scheduler::complete(JobId id, BackendId backend_id, double run_ms, TimeMs now) {
  auto jt = jobs_.find(id);
  if (jt == jobs_.end() || !jt->second.running || jt->second.on != backend_id) {
    return comfyfarm::fail(Errc::kNotFound, job_name(id) + " is not running on " + backend_name(backend_id));
  }
  BackendView& b = backends_.at(backend_id);
  const Job& j = jt->second;
  if (run_ms > 0) {
    const double sample = j.cost_ms / run_ms;
    b.speed = config_.speed_alpha * sample + (1.0 - config_.speed_alpha) * b.speed;
    // What the prompt took beyond its run time, when it loaded a checkpoint, is the load.
    if (j.load_expected && !b.in_flight.empty() && b.in_flight.front() == id) {
      const double load = static_cast<double>(now - b.head_started_ms) - run_ms;
      if (load >= 0) {
        b.load_ms = b.load_measured ? config_.speed_alpha * load + (1.0 - config_.speed_alpha) * b.load_ms : load;
        b.load_measured = true;
      }
    }
  }
  ++b.jobs_completed;
  const double cost = j.cost_ms;
  jobs_.erase(jt);
  release(b, id, cost, now);
  recount(b);
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
  j.running = false;
  release(b, id, j.cost_ms, now);
  if (d.block_backend && j.structure != 0) b.blocked.insert(j.structure);
  if (d.free_backend) {
    b.previous_affinity = 0;
    recount(b);
  }
  if (!d.retry) {
    jobs_.erase(jt);
    return outcome;
  }
  j.has_avoid = d.avoid_backend;
  j.avoid = backend_id;
  j.load_expected = false;
  auto pushed = queue_.push(QueueItem{id, j.priority, false, j.batch, now + d.delay_ms, j.affinity}, now);
  if (!pushed) {
    jobs_.erase(jt);
    return pushed.error();
  }
  add_queued(j.affinity, j.cost_ms, +1);
  return outcome;
}

Result<std::vector<std::pair<JobId, FailureOutcome>>> Scheduler::backend_lost(BackendId id, TimeMs now) {
  auto it = backends_.find(id);
  if (it == backends_.end()) return comfyfarm::fail(Errc::kNotFound, "no " + backend_name(id));
  it->second.up = false;
  it->second.previous_affinity = 0;
  recount(it->second);
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
