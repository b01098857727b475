#include "scheduler/job_queue.hpp"

#include <algorithm>
#include <string>

namespace comfyfarm::scheduler {

void JobQueue::insert_ready(const Entry& e) {
  ready_.insert(e.key);
  ready_by_group_[e.item.group].insert(e.key);
}

void JobQueue::erase_ready(const Entry& e) {
  ready_.erase(e.key);
  auto g = ready_by_group_.find(e.item.group);
  if (g == ready_by_group_.end()) return;
  g->second.erase(e.key);
  if (g->second.empty()) ready_by_group_.erase(g);
}

void JobQueue::insert(Entry& e, TimeMs now) {
  if (e.item.ready_at_ms > now) {
    e.delayed = true;
    delayed_.emplace(e.item.ready_at_ms, e.key);
  } else {
    e.delayed = false;
    insert_ready(e);
  }
}

Result<void> JobQueue::push(QueueItem item, TimeMs now) {
  if (items_.contains(item.id)) {
    return fail(Errc::kAlreadyExists, "job " + std::to_string(item.id) + " is already queued");
  }
  if (items_.size() >= capacity_) {
    return fail(Errc::kResourceExhausted,
                "job queue is full (" + std::to_string(capacity_) + " jobs)");
  }
  const std::int64_t seq = item.front ? next_front_seq_-- : next_seq_++;
  Key key{-static_cast<std::int64_t>(item.priority), seq, item.id};
  const JobId id = item.id;
  auto [it, inserted] = items_.emplace(id, Entry{std::move(item), key, false});
  insert(it->second, now);
  return {};
}

Result<void> JobQueue::requeue(JobId id, TimeMs ready_at_ms, TimeMs now) {
  auto it = items_.find(id);
  if (it == items_.end()) return fail(Errc::kNotFound, "job " + std::to_string(id) + " is not queued");
  Entry& e = it->second;
  if (e.delayed) {
    delayed_.erase({e.item.ready_at_ms, e.key});
  } else {
    erase_ready(e);
  }
  e.item.ready_at_ms = ready_at_ms;
  insert(e, now);
  return {};
}

Result<QueueItem> JobQueue::remove(JobId id) {
  auto it = items_.find(id);
  if (it == items_.end()) return fail(Errc::kNotFound, "job " + std::to_string(id) + " is not queued");
  Entry& e = it->second;
  if (e.delayed) {
    delayed_.erase({e.item.ready_at_ms, e.key});
  } else {
    erase_ready(e);
  }
  QueueItem out = std::move(e.item);
  items_.erase(it);
  return out;
}

void JobQueue::promote(TimeMs now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    const Key key = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    Entry& e = items_.at(key.id);
    e.delayed = false;
    insert_ready(e);
  }
}

std::vector<JobId> JobQueue::ready(std::size_t limit) const {
  std::vector<JobId> out;
  out.reserve(std::min(limit, ready_.size()));
  for (auto it = ready_.begin(); it != ready_.end() && out.size() < limit; ++it) out.push_back(it->id);
  return out;
}

std::optional<JobId> JobQueue::front() const {
  if (ready_.empty()) return std::nullopt;
  return ready_.begin()->id;
}

std::vector<JobId> JobQueue::ready_in_group(std::uint32_t group, std::size_t limit) const {
  std::vector<JobId> out;
  auto g = ready_by_group_.find(group);
  if (g == ready_by_group_.end()) return out;
  out.reserve(std::min(limit, g->second.size()));
  for (auto it = g->second.begin(); it != g->second.end() && out.size() < limit; ++it) out.push_back(it->id);
  return out;
}

std::optional<JobId> JobQueue::front_in_group(std::uint32_t group) const {
  auto g = ready_by_group_.find(group);
  if (g == ready_by_group_.end()) return std::nullopt;
  return g->second.begin()->id;
}

bool JobQueue::before(JobId a, JobId b) const { return items_.at(a).key < items_.at(b).key; }

std::vector<JobId> JobQueue::batch_items(const std::string& batch) const {
  std::vector<JobId> out;
  for (const auto& [id, e] : items_) {
    if (e.item.batch == batch) out.push_back(id);
  }
  return out;
}

std::optional<TimeMs> JobQueue::next_ready_at() const {
  if (delayed_.empty()) return std::nullopt;
  return delayed_.begin()->first;
}

}  // namespace comfyfarm::scheduler
