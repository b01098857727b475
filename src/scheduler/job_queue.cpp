#include "scheduler/job_queue.hpp"

#include <string>

namespace comfyfarm::scheduler {

void JobQueue::insert(Entry& e, TimeMs now) {
  if (e.item.ready_at_ms > now) {
    e.delayed = true;
    delayed_.emplace(e.item.ready_at_ms, e.key);
  } else {
    e.delayed = false;
    ready_.insert(e.key);
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
    ready_.erase(e.key);
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
    ready_.erase(e.key);
  }
  QueueItem out = std::move(e.item);
  items_.erase(it);
  return out;
}

void JobQueue::promote(TimeMs now) {
  while (!delayed_.empty() && delayed_.begin()->first <= now) {
    const Key key = delayed_.begin()->second;
    delayed_.erase(delayed_.begin());
    items_.at(key.id).delayed = false;
    ready_.insert(key);
  }
}

std::vector<JobId> JobQueue::ready(std::size_t limit) const {
  std::vector<JobId> out;
  out.reserve(std::min(limit, ready_.size()));
  for (auto it = ready_.begin(); it != ready_.end() && out.size() < limit; ++it) out.push_back(it->id);
  return out;
}

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
