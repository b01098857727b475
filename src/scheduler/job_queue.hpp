// JobQueue: bounded priority queue with FIFO within a priority, `front`, batches and delays.
#pragma once

#include "core/error.hpp"
#include "scheduler/types.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace comfyfarm::scheduler {

struct QueueItem {
  JobId id = 0;
  int priority = 0;
  bool front = false;
  std::string batch{};
  TimeMs ready_at_ms = 0;
  std::uint32_t group = 0;  ///< placement group (the Scheduler's interned affinity); 0: none
};

/// Order: higher priority first; within a priority, `front` items (latest front first, like
/// ComfyUI's negative numbers) then the rest in submission order. Items whose ready_at is in the
/// future wait in a delayed set until promote(now). Ready items are also indexed by group, in the
/// same order, so placement can find the first job of a checkpoint without scanning the queue.
/// Every operation is O(log n) (batch_items is O(n)).
class JobQueue {
 public:
  explicit JobQueue(std::size_t capacity) : capacity_(capacity) {}

  /// kAlreadyExists for a duplicate id, kResourceExhausted when full.
  [[nodiscard]] Result<void> push(QueueItem item, TimeMs now);
  /// Re-inserts an item keeping its original position in the order (retries keep their turn).
  [[nodiscard]] Result<void> requeue(JobId id, TimeMs ready_at_ms, TimeMs now);
  /// Removes a queued (ready or delayed) item; kNotFound otherwise.
  [[nodiscard]] Result<QueueItem> remove(JobId id);
  /// Moves delayed items whose time has come to the ready set.
  void promote(TimeMs now);
  /// Up to `limit` ready ids in order (call promote first).
  [[nodiscard]] std::vector<JobId> ready(std::size_t limit) const;
  /// The first ready id in order, if any.
  [[nodiscard]] std::optional<JobId> front() const;
  /// Up to `limit` ready ids of one group, in queue order.
  [[nodiscard]] std::vector<JobId> ready_in_group(std::uint32_t group, std::size_t limit) const;
  /// The first ready id of one group, if any.
  [[nodiscard]] std::optional<JobId> front_in_group(std::uint32_t group) const;
  /// Whether queued `a` comes before queued `b` in the order (both must be queued).
  [[nodiscard]] bool before(JobId a, JobId b) const;
  /// Ids of every queued item of a batch, in no particular order.
  [[nodiscard]] std::vector<JobId> batch_items(const std::string& batch) const;

  [[nodiscard]] bool contains(JobId id) const { return items_.contains(id); }
  [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }
  [[nodiscard]] std::size_t ready_size() const noexcept { return ready_.size(); }
  [[nodiscard]] std::size_t delayed_size() const noexcept { return delayed_.size(); }
  [[nodiscard]] std::size_t capacity() const noexcept { return capacity_; }
  [[nodiscard]] std::optional<TimeMs> next_ready_at() const;

 private:
  struct Key {
    std::int64_t neg_priority;
    std::int64_t seq;
    JobId id;
    auto operator<=>(const Key&) const = default;
  };
  struct Entry {
    QueueItem item;
    Key key;
    bool delayed;
  };
  void insert(Entry& e, TimeMs now);
  void insert_ready(const Entry& e);
  void erase_ready(const Entry& e);

  std::size_t capacity_;
  std::int64_t next_seq_ = 0;
  std::int64_t next_front_seq_ = -1;
  std::unordered_map<JobId, Entry> items_;
  std::set<Key> ready_;
  std::unordered_map<std::uint32_t, std::set<Key>> ready_by_group_;  // no empty sets
  std::set<std::pair<TimeMs, Key>> delayed_;
};

}  // namespace comfyfarm::scheduler
