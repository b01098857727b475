#include "profile/job_profiler.hpp"

#include <boost/json/value.hpp>

#include <algorithm>
#include <utility>

namespace comfyfarm::profile {

namespace {

constexpr std::size_t kAfterWorkflow = std::size_t{1} << 40;

template <class... Ts>
struct Overloaded : Ts... {
  using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// ComfyUI's progress registry starts every node at the floats 0.0/1.0; a snapshot carrying
// exactly that is a start (or a restart), not a progress update.
bool is_start_marker(const comfy::Number& value, const comfy::Number& max) noexcept {
  return !value.is_integer() && !max.is_integer() && value.as_double() == 0.0 &&
         max.as_double() == 1.0;
}

std::string_view string_field(const boost::json::object& o, std::string_view key) noexcept {
  const auto* v = o.if_contains(key);
  if (v && v->is_string()) return v->get_string();
  return {};
}

}  // namespace

JobProfiler::JobProfiler(ProfilerOptions options, std::optional<comfy::Workflow> workflow)
    : options_(std::move(options)), prompt_id_(options_.prompt_id) {
  if (workflow) adopt_workflow(*workflow);
}

void JobProfiler::adopt_workflow(const comfy::Workflow& workflow) {
  workflow_ = workflow;
  const auto nodes = workflow.nodes();
  nodes_.reserve(nodes_.size() + nodes.size());
  units_.reserve(nodes.size());
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    const comfy::Node& node = nodes[i];
    const std::uint32_t n = node_for(node.id);
    NodeState& ns = nodes_[n];
    ns.in_workflow = true;
    ns.order = i;
    ns.p.class_type = std::string(node.class_type);
    ns.p.title = node.title ? std::string(*node.title) : std::string();
    ns.p.inputs_from.clear();
    if (auto preds = workflow.predecessors(node.id)) {
      for (auto id : *preds) ns.p.inputs_from.emplace_back(id);
    }
  }
}

void JobProfiler::set_prompt_id(std::string_view prompt_id) {
  if (prompt_id_) return;
  prompt_id_ = std::string(prompt_id);
  replay_buffer();
}

void JobProfiler::on_submitted(TimePoint sent) noexcept {
  if (!queued_at_) queued_at_ = sent;
}

void JobProfiler::replay_buffer() {
  auto buffered = std::move(buffer_);
  buffer_.clear();
  for (const auto& [t, ev] : buffered) {
    std::visit(Overloaded{[&](const comfy::Event& e) { on_event(e, t); },
                          [&](const comfy::BinaryEvent& e) { on_binary(e, t); }},
               ev);
  }
}

void JobProfiler::adopt_first_buffered_prompt() {
  for (const auto& [t, ev] : buffer_) {
    std::optional<std::string_view> id =
        std::visit([](const auto& e) { return comfy::prompt_id_of(e); }, ev);
    if (id) {
      set_prompt_id(*id);
      return;
    }
  }
}

bool JobProfiler::accepts(std::optional<std::string_view> event_prompt) {
  if (event_prompt) {
    if (*event_prompt != *prompt_id_) {
      ++ignored_;
      return false;
    }
    return true;
  }
  // No prompt id (reconnect form of executing, old progress, type 1/3 frames): ours only while
  // our prompt runs, since a server runs one prompt at a time.
  if (first_event_at_ && !terminal_) return true;
  ++ignored_;
  return false;
}

void JobProfiler::on_event(const comfy::Event& event, TimePoint received) {
  if (std::holds_alternative<comfy::Status>(event) ||
      std::holds_alternative<comfy::FeatureFlags>(event)) {
    return;
  }
  if (!prompt_id_) {
    if (buffer_.size() >= options_.max_buffered_events) {
      ++dropped_;
    } else {
      buffer_.emplace_back(received, Buffered(std::in_place_index<0>, event));
    }
    return;
  }
  if (!accepts(comfy::prompt_id_of(event))) return;
  apply(event, received);
}

void JobProfiler::on_binary(const comfy::BinaryEvent& event, TimePoint received) {
  if (!prompt_id_) {
    if (buffer_.size() >= options_.max_buffered_events) {
      ++dropped_;
    } else {
      buffer_.emplace_back(received, Buffered(std::in_place_index<1>, event));
    }
    return;
  }
  if (!accepts(comfy::prompt_id_of(event))) return;
  if (terminal_) {
    ++ignored_;
    return;
  }
  apply_binary(event, received);
}

std::uint32_t JobProfiler::node_for(std::string_view id) {
  if (auto it = node_index_.find(id); it != node_index_.end()) return it->second;
  const auto n = static_cast<std::uint32_t>(nodes_.size());
  NodeState ns;
  ns.p.id = std::string(id);
  ns.order = kAfterWorkflow + nodes_.size();
  nodes_.push_back(std::move(ns));
  node_index_.emplace(std::string(id), n);
  return n;
}

std::uint32_t JobProfiler::unit_for(std::string_view raw, std::string_view hint1,
                                    std::string_view hint2) {
  if (auto it = unit_index_.find(raw); it != unit_index_.end()) return it->second;
  auto known = [&](std::string_view id) { return !id.empty() && node_index_.contains(id); };
  std::string_view display = raw;
  if (!known(raw)) {
    if (known(hint1)) {
      display = hint1;
    } else if (known(hint2)) {
      display = hint2;
    } else if (!hint1.empty()) {
      display = hint1;
    } else if (!hint2.empty()) {
      display = hint2;
    }
  }
  const std::uint32_t n = node_for(display);
  if (display != raw) nodes_[n].p.sub_nodes.emplace_back(raw);
  const auto u = static_cast<std::uint32_t>(units_.size());
  Unit unit;
  unit.id = std::string(raw);
  unit.node = n;
  units_.push_back(std::move(unit));
  unit_index_.emplace(std::string(raw), u);
  return u;
}

std::optional<std::uint32_t> JobProfiler::current_unit() const {
  if (open_units_.empty()) return std::nullopt;
  return open_units_.back();
}

void JobProfiler::close_unit(std::uint32_t u, TimePoint end, EndSource source) {
  Unit& un = units_[u];
  if (!un.open) return;
  NodeState& ns = nodes_[un.node];
  ns.p.intervals.push_back(
      NodeInterval{un.open_start, std::max(end, un.open_start), un.open_source, source, un.id});
  un.open = false;
  std::erase(open_units_, u);
}

void JobProfiler::discard_open(std::uint32_t u) {
  Unit& un = units_[u];
  if (!un.open) return;
  un.open = false;
  std::erase(open_units_, u);
}

void JobProfiler::start(std::uint32_t u, TimePoint t, StartSource source) {
  {
    Unit& un = units_[u];
    if (un.open) {
      if (source != StartSource::kExecuting) return;  // a second running snapshot: same run
      if (!un.open_has_executing) {  // the `executing` that follows the running snapshot
        un.open_has_executing = true;
        return;
      }
      // Staged again (lazy inputs): the first stage ended when the executor moved on.
      close_unit(u, un.first_other_start.value_or(t), EndSource::kNextNode);
    }
  }
  // Other units still open: on servers without progress_state the executor is sequential, so
  // they ended now; otherwise they may be async nodes that keep running (their own finished
  // snapshot closes them), and we only note when the executor moved on.
  for (std::size_t i = 0; i < open_units_.size();) {
    const std::uint32_t o = open_units_[i];
    if (!saw_progress_state_) {
      close_unit(o, t, EndSource::kNextNode);  // erases open_units_[i]
      continue;
    }
    Unit& other = units_[o];
    if (!other.first_other_start) other.first_other_start = t;
    other.executed_at.reset();
    ++i;
  }
  Unit& un = units_[u];
  NodeState& ns = nodes_[un.node];
  ns.cached = false;  // it runs after all
  un.open = true;
  un.open_has_executing = source == StartSource::kExecuting;
  un.open_progress = false;
  un.open_start = t;
  un.open_source = source;
  un.first_other_start.reset();
  un.executed_at.reset();
  open_units_.push_back(u);
}

void JobProfiler::finish(std::uint32_t u, TimePoint t) {
  Unit& un = units_[u];
  NodeState& ns = nodes_[un.node];
  if (un.open) {
    if (un.executed_at && *un.executed_at <= t) {
      close_unit(u, *un.executed_at, EndSource::kExecuted);
    } else {
      close_unit(u, t, EndSource::kFinishedSnapshot);
    }
  } else if (ns.p.intervals.empty() && !ns.failed) {
    ns.cached = true;  // a cached output node's replay (listed or not by execution_cached)
  }
}

void JobProfiler::on_executed(std::uint32_t u, TimePoint t) {
  Unit& un = units_[u];
  NodeState& ns = nodes_[un.node];
  ns.p.has_output = true;
  if (un.open) {
    if (saw_progress_state_) {
      un.executed_at = t;  // the finished snapshot follows; the earlier of the two is the end
    } else {
      close_unit(u, t, EndSource::kExecuted);
    }
  } else if (ns.p.intervals.empty() && !ns.failed) {
    ns.cached = true;
  }
}

void JobProfiler::add_sample(std::uint32_t u, TimePoint t, double value, double max) {
  Unit& un = units_[u];
  if (value == un.last_value && max == un.last_max) return;  // the same update, second message
  un.last_value = value;
  un.last_max = max;
  if (un.open) un.open_progress = true;
  nodes_[un.node].p.progress.push_back(ProgressSample{t, value, max});
}

void JobProfiler::mark_cached(std::string_view id) {
  const std::uint32_t n = node_for(id);
  NodeState& ns = nodes_[n];
  if (ns.p.intervals.empty()) {
    for (auto u : open_units_) {
      if (units_[u].node == n) return;
    }
    ns.cached = true;
  }
}

void JobProfiler::mark_ran(const std::vector<std::string>& ids) {
  for (const auto& id : ids) {
    NodeState& ns = nodes_[node_for(id)];
    if (ns.p.intervals.empty() && !ns.failed) {
      ns.cached = false;
      ns.ran_untimed = true;
    }
  }
}

void JobProfiler::lag_sample(TimePoint t, std::optional<std::int64_t> server_ms) {
  if (!server_ms) return;
  const std::int64_t lag = t.time_since_epoch().count() - *server_ms * 1000;
  lag_min_us_ = lag_min_us_ ? std::min(*lag_min_us_, lag) : lag;
  lag_max_us_ = lag_max_us_ ? std::max(*lag_max_us_, lag) : lag;
}

void JobProfiler::close_open_units(TimePoint t, EndSource fallback) {
  while (!open_units_.empty()) {
    const std::uint32_t u = open_units_.front();
    Unit& un = units_[u];
    if (un.executed_at && *un.executed_at <= t) {
      close_unit(u, *un.executed_at, EndSource::kExecuted);
    } else {
      if (outcome_ == Outcome::kFailed || outcome_ == Outcome::kInterrupted) {
        NodeState& ns = nodes_[un.node];
        if (!ns.failed) ns.interrupted = true;  // stopped by the end of the prompt
      }
      close_unit(u, t, fallback);
    }
  }
}

void JobProfiler::end_prompt(Outcome outcome, TimePoint t, std::optional<std::int64_t> server_ms) {
  if (terminal_) return;
  terminal_ = true;
  outcome_ = outcome;
  completed_at_ = t;
  if (server_ms) server_completed_ms_ = server_ms;
  close_open_units(t, EndSource::kPromptEnd);
}

void JobProfiler::apply(const comfy::Event& event, TimePoint t) {
  if (terminal_) {
    const auto* ex = std::get_if<comfy::Executing>(&event);
    if (ex && ex->is_end_of_prompt()) {
      if (!closed_at_) closed_at_ = t;
      ++events_;
    } else {
      ++ignored_;
    }
    return;
  }
  ++events_;
  if (!first_event_at_) first_event_at_ = t;
  last_event_at_ = t;
  if (outcome_ == Outcome::kNotStarted || outcome_ == Outcome::kIncomplete) {
    outcome_ = Outcome::kRunning;
  }

  std::visit(
      Overloaded{
          [&](const comfy::ExecutionStart& e) {
            if (!started_at_) started_at_ = t;
            if (!server_started_ms_) server_started_ms_ = e.timestamp;
            lag_sample(t, e.timestamp);
          },
          [&](const comfy::ExecutionCached& e) {
            for (const auto& id : e.nodes) mark_cached(id);
            lag_sample(t, e.timestamp);
          },
          [&](const comfy::Executing& e) {
            if (e.is_end_of_prompt()) {
              closed_at_ = t;
              end_prompt(Outcome::kSucceeded, t, std::nullopt);
              return;
            }
            const std::string_view display =
                e.display_node ? std::string_view(*e.display_node) : std::string_view();
            const std::uint32_t u = unit_for(*e.node, display, {});
            if (!e.prompt_id) {
              // Reconnect form: it names the node running now, not a new stage of it. Events
              // sent while the socket was down are lost, so a node not yet seen starts late.
              if (!units_[u].open) start(u, t, StartSource::kExecuting);
              return;
            }
            start(u, t, StartSource::kExecuting);
          },
          [&](const comfy::Progress& e) {
            std::optional<std::uint32_t> u;
            if (e.node) {
              u = unit_for(*e.node, {}, {});
            } else {
              u = current_unit();
            }
            if (u) add_sample(*u, t, e.value.as_double(), e.max.as_double());
          },
          [&](const comfy::ProgressState& e) {
            saw_progress_state_ = true;
            for (std::size_t i = 0; i < e.nodes.size(); ++i) {
              const comfy::NodeProgress& entry = e.nodes[i];
              Wire state = Wire::kAbsent;
              if (entry.state == "running") {
                state = Wire::kRunning;
              } else if (entry.state == "finished") {
                state = Wire::kFinished;
              } else if (entry.state == "error") {
                state = Wire::kError;
              } else if (entry.state == "pending") {
                state = Wire::kPending;
              }
              SnapshotEntry* cache = nullptr;
              if (i < last_snapshot_.size() && last_snapshot_[i].id == entry.node_id) {
                cache = &last_snapshot_[i];
                if (cache->state == state && cache->value == entry.value &&
                    cache->max == entry.max) {
                  continue;  // unchanged since the last snapshot
                }
              } else {
                const std::uint32_t u =
                    unit_for(entry.node_id, entry.real_node_id, entry.display_node_id);
                if (i >= last_snapshot_.size()) last_snapshot_.resize(i + 1);
                cache = &last_snapshot_[i];
                cache->id = entry.node_id;
                cache->unit = u;
              }
              cache->state = state;
              cache->value = entry.value;
              cache->max = entry.max;
              const std::uint32_t u = cache->unit;
              Unit& un = units_[u];
              const double v = entry.value.as_double();
              const double m = entry.max.as_double();
              switch (state) {
                case Wire::kRunning:
                  if (un.wire != Wire::kRunning) {
                    un.wire = Wire::kRunning;
                    start(u, t, StartSource::kRunningSnapshot);
                    units_[u].last_value = v;
                    units_[u].last_max = m;
                  } else if (is_start_marker(entry.value, entry.max)) {
                    un.last_value = v;
                    un.last_max = m;
                  } else {
                    add_sample(u, t, v, m);
                  }
                  break;
                case Wire::kFinished:
                  if (un.wire != Wire::kFinished) {
                    un.wire = Wire::kFinished;
                    finish(u, t);
                  }
                  break;
                case Wire::kError:
                  if (un.wire != Wire::kError) {
                    un.wire = Wire::kError;
                    nodes_[un.node].failed = true;
                    close_unit(u, t, EndSource::kError);
                  }
                  break;
                case Wire::kPending:
                case Wire::kAbsent:
                  break;
              }
            }
          },
          [&](const comfy::Executed& e) {
            const std::string_view display =
                e.display_node ? std::string_view(*e.display_node) : std::string_view();
            on_executed(unit_for(e.node, display, {}), t);
          },
          [&](const comfy::ExecutionSuccess& e) {
            saw_execution_success_ = true;
            lag_sample(t, e.timestamp);
            end_prompt(Outcome::kSucceeded, t, e.timestamp);
          },
          [&](const comfy::ExecutionError& e) {
            const std::uint32_t u = unit_for(e.node_id, {}, {});
            NodeState& ns = nodes_[units_[u].node];
            if (ns.p.class_type.empty()) ns.p.class_type = e.node_type;
            if (e.exception_type == "ExecutionBlocked") {
              // Not terminal: the node's output was blocked and execution goes on.
              ns.p.error = NodeFailure{e.exception_type, e.exception_message};
              return;
            }
            lag_sample(t, e.timestamp);
            ns.failed = true;
            ns.cached = false;
            ns.p.error = NodeFailure{e.exception_type, e.exception_message};
            close_unit(u, t, EndSource::kError);
            error_ = PromptFailure{e.node_id, e.node_type, e.exception_type, e.exception_message};
            server_executed_ = e.executed;
            mark_ran(e.executed);
            end_prompt(Outcome::kFailed, t, e.timestamp);
          },
          [&](const comfy::ExecutionInterrupted& e) {
            lag_sample(t, e.timestamp);
            const std::uint32_t u = unit_for(e.node_id, {}, {});
            NodeState& ns = nodes_[units_[u].node];
            if (ns.p.class_type.empty()) ns.p.class_type = e.node_type;
            ns.interrupted = true;
            if (units_[u].open) {
              // The named node got `executing` but, unless it reported progress, its function
              // never ran (protocol §7.6): it is not counted as started.
              if (units_[u].open_progress) {
                close_unit(u, t, EndSource::kInterrupt);
              } else {
                discard_open(u);
              }
            }
            interrupted_ = PromptFailure{e.node_id, e.node_type, {}, {}};
            server_executed_ = e.executed;
            mark_ran(e.executed);
            end_prompt(Outcome::kInterrupted, t, e.timestamp);
          },
          [](const comfy::Status&) {}, [](const comfy::FeatureFlags&) {},
          [](const comfy::Unknown&) {}},
      event);
}

void JobProfiler::apply_binary(const comfy::BinaryEvent& event, TimePoint t) {
  ++events_;
  last_event_at_ = t;
  std::visit(Overloaded{[&](const comfy::PreviewImageWithMetadata& e) {
                          const std::string_view raw = string_field(e.metadata, "node_id");
                          if (raw.empty()) return;
                          const std::uint32_t u =
                              unit_for(raw, string_field(e.metadata, "real_node_id"),
                                       string_field(e.metadata, "display_node_id"));
                          ++nodes_[units_[u].node].p.previews;
                        },
                        [&](const comfy::PreviewImage&) {
                          if (auto u = current_unit()) ++nodes_[units_[*u].node].p.previews;
                        },
                        [&](const comfy::ProgressText& e) {
                          const std::uint32_t u = unit_for(e.node_id, {}, {});
                          nodes_[units_[u].node].p.progress_text = e.text;
                        },
                        [](const comfy::UnknownBinary&) {}},
             event);
}

void JobProfiler::on_history(const comfy::HistoryEntry& entry) {
  if (!prompt_id_) set_prompt_id(entry.prompt_id);
  if (*prompt_id_ != entry.prompt_id) {
    ++ignored_;
    return;
  }
  used_history_ = true;
  if (!workflow_) {
    if (auto wf = comfy::Workflow::from_json(boost::json::value(entry.prompt.prompt))) {
      adopt_workflow(*wf);
    }
  }
  if (!entry.status) return;
  const bool live = first_event_at_.has_value();
  std::optional<TimePoint> t = last_event_at_;
  for (const comfy::Event& msg : entry.status->messages) {
    const bool is_terminal = std::holds_alternative<comfy::ExecutionSuccess>(msg) ||
                             std::holds_alternative<comfy::ExecutionError>(msg) ||
                             std::holds_alternative<comfy::ExecutionInterrupted>(msg);
    if (live) {
      // The stream's receive times stay the clock; history only adds missing facts.
      if (const auto* s = std::get_if<comfy::ExecutionStart>(&msg)) {
        if (!server_started_ms_) server_started_ms_ = s->timestamp;
      } else if (const auto* c = std::get_if<comfy::ExecutionCached>(&msg)) {
        for (const auto& id : c->nodes) mark_cached(id);
      } else if (is_terminal && !terminal_) {
        completion_inferred_ = true;
        apply(msg, *last_event_at_);
      }
      continue;
    }
    // History only: the server's timestamps are the clock (ms resolution).
    std::optional<std::int64_t> ts = std::visit(
        [](const auto& e) -> std::optional<std::int64_t> {
          if constexpr (requires { e.timestamp; }) {
            return e.timestamp;
          } else {
            return std::nullopt;
          }
        },
        msg);
    if (ts) t = from_epoch_ms(*ts);
    if (!t) continue;
    apply(msg, *t);
  }
  if (!live && outcome_ == Outcome::kSucceeded) {
    // No per-node events: every node the outputs needed and the cache did not serve ran.
    std::vector<std::string> ran;
    std::vector<std::string> stack(entry.prompt.outputs_to_execute.begin(),
                                   entry.prompt.outputs_to_execute.end());
    if (stack.empty()) {
      for (const auto& kv : entry.outputs) stack.emplace_back(kv.key());
    }
    std::vector<bool> seen(nodes_.size(), false);
    while (!stack.empty()) {
      const std::string id = std::move(stack.back());
      stack.pop_back();
      const std::uint32_t n = node_for(id);
      if (n >= seen.size()) seen.resize(n + 1, false);
      if (seen[n]) continue;
      seen[n] = true;
      if (nodes_[n].cached) continue;  // its inputs were not needed either
      ran.push_back(id);
      for (const auto& p : nodes_[n].p.inputs_from) stack.push_back(p);
    }
    mark_ran(ran);
  }
  if (!live) closed_ = true;
}

void JobProfiler::close(TimePoint at) {
  if (!prompt_id_) adopt_first_buffered_prompt();
  if (closed_) return;
  closed_ = true;
  if (terminal_ || !first_event_at_) return;
  outcome_ = Outcome::kIncomplete;
  completion_inferred_ = true;
  const TimePoint end = last_event_at_.value_or(at);
  completed_at_ = end;
  while (!open_units_.empty()) {
    const std::uint32_t u = open_units_.front();
    if (units_[u].executed_at) {
      close_unit(u, *units_[u].executed_at, EndSource::kExecuted);
    } else {
      close_unit(u, end, EndSource::kStreamEnd);
    }
  }
}

JobProfile JobProfiler::profile() const {
  if (!prompt_id_ && !buffer_.empty()) {
    JobProfiler copy = *this;
    copy.adopt_first_buffered_prompt();
    return copy.build(std::nullopt);
  }
  return build(std::nullopt);
}

JobProfile JobProfiler::snapshot(TimePoint now) const {
  if (!prompt_id_ && !buffer_.empty()) {
    JobProfiler copy = *this;
    copy.adopt_first_buffered_prompt();
    return copy.build(now);
  }
  return build(now);
}

JobProfile JobProfiler::build(std::optional<TimePoint> now) const {
  JobProfile p;
  p.prompt_id = prompt_id_.value_or(std::string());
  p.label = options_.label;
  p.backend = options_.backend;
  p.workflow = options_.workflow;
  p.outcome = outcome_;
  p.queued_at = queued_at_;
  p.started_at = started_at_ ? started_at_ : first_event_at_;
  p.start_inferred = !started_at_ && first_event_at_.has_value();
  p.completed_at = completed_at_;
  p.closed_at = closed_at_;
  p.completion_inferred = completion_inferred_;
  if (p.started_at && queued_at_) {
    p.queue_time = std::max(Duration::zero(), *p.started_at - *queued_at_);
  }
  const std::optional<TimePoint> end = completed_at_ ? completed_at_ : now;
  if (end && p.started_at) {
    p.execution_time = std::max(Duration::zero(), *end - *p.started_at);
    const TimePoint from =
        (queued_at_ && *queued_at_ < *p.started_at) ? *queued_at_ : *p.started_at;
    p.total_duration = std::max(Duration::zero(), *end - from);
  }
  p.server_started_ms = server_started_ms_;
  p.server_completed_ms = server_completed_ms_;
  if (lag_min_us_ && lag_max_us_) p.delivery_lag_spread = Duration(*lag_max_us_ - *lag_min_us_);
  p.graph_known = workflow_.has_value();
  p.saw_progress_state = saw_progress_state_;
  p.saw_execution_success = saw_execution_success_;
  p.used_history = used_history_;
  p.error = error_;
  p.interrupted = interrupted_;
  p.server_executed = server_executed_;
  p.events = events_;
  p.ignored_events = ignored_;
  p.dropped_events = dropped_;

  struct Keyed {
    NodeProfile node;
    std::size_t order;
  };
  std::vector<Keyed> out;
  out.reserve(nodes_.size());
  for (std::uint32_t i = 0; i < nodes_.size(); ++i) {
    const NodeState& ns = nodes_[i];
    NodeProfile np = ns.p;
    std::sort(np.intervals.begin(), np.intervals.end(),
              [](const NodeInterval& a, const NodeInterval& b) { return a.start < b.start; });
    std::optional<TimePoint> open_start;
    std::size_t open_own = 0;
    for (auto u : open_units_) {
      if (units_[u].node != i) continue;
      open_start = open_start ? std::min(*open_start, units_[u].open_start) : units_[u].open_start;
      if (units_[u].id == np.id) ++open_own;
    }
    np.executions = open_own;
    for (const auto& iv : np.intervals) {
      if (iv.unit == np.id) ++np.executions;
    }
    const bool stream_cut =
        !np.intervals.empty() && np.intervals.back().end_source == EndSource::kStreamEnd;
    if (ns.failed) {
      np.status = NodeStatus::kFailed;
    } else if (ns.interrupted) {
      np.status = NodeStatus::kInterrupted;
    } else if (open_start || stream_cut) {
      np.status = NodeStatus::kExecuting;
    } else if (!np.intervals.empty() || ns.ran_untimed) {
      np.status = NodeStatus::kCompleted;
    } else if (ns.cached) {
      np.status = NodeStatus::kCached;
    } else {
      np.status = NodeStatus::kPending;
    }
    np.cached = ns.cached && np.intervals.empty() && !open_start && !ns.ran_untimed;
    if (!np.intervals.empty()) {
      np.started_at = np.intervals.front().start;
      TimePoint last = np.intervals.front().end;
      for (const auto& iv : np.intervals) last = std::max(last, iv.end);
      np.completed_at = last;
    }
    if (open_start) {
      np.started_at = np.started_at ? std::min(*np.started_at, *open_start) : *open_start;
      np.completed_at.reset();
    }
    if (open_start && now) {
      std::vector<NodeInterval> all = np.intervals;
      all.push_back(NodeInterval{*open_start, std::max(*now, *open_start),
                                 StartSource::kRunningSnapshot, EndSource::kStreamEnd, np.id});
      np.duration = union_length(std::move(all));
    } else if (!np.intervals.empty()) {
      np.duration = union_length(np.intervals);
    } else if (np.cached) {
      np.duration = Duration::zero();
    }
    out.push_back(Keyed{std::move(np), ns.order});
  }
  std::stable_sort(out.begin(), out.end(), [](const Keyed& a, const Keyed& b) {
    const bool as = a.node.started_at.has_value();
    const bool bs = b.node.started_at.has_value();
    if (as != bs) return as;
    if (as) return *a.node.started_at < *b.node.started_at;
    return a.order < b.order;
  });
  p.nodes.reserve(out.size());
  std::size_t seq = 0;
  for (auto& k : out) {
    if (k.node.started_at) k.node.sequence = seq++;
    p.nodes.push_back(std::move(k.node));
  }
  summarize(p);
  return p;
}

}  // namespace comfyfarm::profile
