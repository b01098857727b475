#include "profile/profile_analysis.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <functional>
#include <map>
#include <string>
#include <unordered_map>
#include <utility>

namespace comfyfarm::profile {

namespace {

bool ran(const NodeProfile& n) noexcept {
  return !n.cached && n.duration.has_value() &&
         (n.status == NodeStatus::kCompleted || n.status == NodeStatus::kFailed ||
          n.status == NodeStatus::kInterrupted || n.status == NodeStatus::kExecuting);
}

Duration weight(const NodeProfile& n) noexcept { return ran(n) ? *n.duration : Duration::zero(); }

std::string node_label(const NodeProfile& n) {
  std::string s = "[" + n.id + "]";
  if (!n.class_type.empty()) s += " " + n.class_type;
  if (!n.title.empty() && n.title != n.class_type) s += " \"" + n.title + "\"";
  return s;
}

double percent(double share) { return share * 100.0; }

std::string ms(Duration d) { return fmt::format("{:.2f} ms", to_ms(d)); }

bool contains(const std::vector<std::string>& v, std::string_view s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

struct Graph {
  std::unordered_map<std::string_view, std::size_t> index;
  std::vector<std::vector<std::size_t>> preds;
  std::vector<std::vector<std::size_t>> succs;
  std::vector<std::size_t> topo;  // every node, predecessors first
};

Graph build_graph(const JobProfile& profile) {
  Graph g;
  const auto& nodes = profile.nodes;
  for (std::size_t i = 0; i < nodes.size(); ++i) g.index.emplace(nodes[i].id, i);
  g.preds.resize(nodes.size());
  g.succs.resize(nodes.size());
  std::vector<std::size_t> indegree(nodes.size(), 0);
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& p : nodes[i].inputs_from) {
      auto it = g.index.find(p);
      if (it == g.index.end() || it->second == i) continue;
      if (std::find(g.preds[i].begin(), g.preds[i].end(), it->second) != g.preds[i].end()) {
        continue;
      }
      g.preds[i].push_back(it->second);
      g.succs[it->second].push_back(i);
      ++indegree[i];
    }
  }
  // Kahn's algorithm, taking the ready node earliest in `nodes` (deterministic).
  std::vector<bool> done(nodes.size(), false);
  for (std::size_t round = 0; round < nodes.size(); ++round) {
    std::size_t pick = nodes.size();
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      if (!done[i] && indegree[i] == 0) {
        pick = i;
        break;
      }
    }
    if (pick == nodes.size()) break;  // a cycle (malformed input): the rest follow below
    done[pick] = true;
    g.topo.push_back(pick);
    for (auto s : g.succs[pick]) --indegree[s];
  }
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (!done[i]) g.topo.push_back(i);
  }
  return g;
}

CriticalPath longest_path(const JobProfile& profile, const Graph& g) {
  const auto& nodes = profile.nodes;
  CriticalPath cp;
  if (!profile.graph_known) {
    for (const auto& n : nodes) cp.length += weight(n);
    return cp;
  }
  if (nodes.empty()) return cp;
  std::vector<Duration> dist(nodes.size(), Duration::zero());
  std::vector<std::size_t> best(nodes.size(), nodes.size());
  std::vector<bool> placed(nodes.size(), false);
  for (auto v : g.topo) {
    Duration in = Duration::zero();
    for (auto p : g.preds[v]) {
      if (!placed[p]) continue;  // only inside a cycle
      if (best[v] == nodes.size() || dist[p] > in || (dist[p] == in && p < best[v])) {
        in = dist[p];
        best[v] = p;
      }
    }
    dist[v] = in + weight(nodes[v]);
    placed[v] = true;
  }
  std::size_t end = 0;
  for (std::size_t i = 1; i < nodes.size(); ++i) {
    if (dist[i] > dist[end]) end = i;
  }
  cp.length = dist[end];
  if (cp.length == Duration::zero()) return cp;  // nothing ran
  std::vector<std::string> path;
  // Walk back while the chain still has cost: leading nodes that weigh nothing (cached or
  // unrun sources) are left out, so the path starts at the first node that ran.
  for (std::size_t v = end; v != nodes.size() && dist[v] > Duration::zero(); v = best[v]) {
    path.push_back(nodes[v].id);
    if (path.size() > nodes.size()) break;
  }
  std::reverse(path.begin(), path.end());
  cp.nodes = std::move(path);
  return cp;
}

std::size_t pending_downstream(const JobProfile& profile, const Graph& g, std::size_t from) {
  std::vector<bool> seen(profile.nodes.size(), false);
  std::vector<std::size_t> stack = g.succs[from];
  std::size_t count = 0;
  while (!stack.empty()) {
    const auto v = stack.back();
    stack.pop_back();
    if (seen[v]) continue;
    seen[v] = true;
    if (profile.nodes[v].status == NodeStatus::kPending) ++count;
    for (auto s : g.succs[v]) stack.push_back(s);
  }
  return count;
}

CategoryTime category(const JobProfile& profile, Duration node_time,
                      const std::function<bool(std::string_view)>& member) {
  CategoryTime c;
  std::vector<const NodeProfile*> in;
  for (const auto& n : profile.nodes) {
    if (ran(n) && member(n.class_type)) {
      c.total += *n.duration;
      in.push_back(&n);
    }
  }
  std::stable_sort(in.begin(), in.end(), [](const NodeProfile* a, const NodeProfile* b) {
    return *a->duration > *b->duration;
  });
  for (const auto* n : in) c.nodes.push_back(n->id);
  if (node_time > Duration::zero()) {
    c.share = static_cast<double>(c.total.count()) / static_cast<double>(node_time.count());
  }
  return c;
}

std::string describe_nodes(const JobProfile& profile, const std::vector<std::string>& ids,
                           std::size_t max) {
  std::string out;
  for (std::size_t i = 0; i < ids.size() && i < max; ++i) {
    if (!out.empty()) out += ", ";
    const NodeProfile* n = profile.find(ids[i]);
    out += n ? (n->class_type.empty() ? n->id : n->class_type + " [" + n->id + "]") : ids[i];
  }
  if (ids.size() > max) out += fmt::format(" and {} more", ids.size() - max);
  return out;
}

std::string trim_message(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ' || s.back() == '\r')) {
    s.remove_suffix(1);
  }
  const auto nl = s.find('\n');
  return std::string(nl == std::string_view::npos ? s : s.substr(0, nl));
}

}  // namespace

std::string_view to_string(BottleneckKind k) noexcept {
  return k == BottleneckKind::kFailed ? "failed" : "slow";
}

std::string_view to_string(Severity s) noexcept {
  switch (s) {
    case Severity::kCritical: return "critical";
    case Severity::kHigh: return "high";
    case Severity::kMedium: return "medium";
  }
  return "medium";
}

bool is_loader_class(std::string_view c) noexcept {
  return c.ends_with("Loader") || c.ends_with("LoaderSimple") || c.ends_with("LoaderModelOnly");
}

bool is_sampler_class(std::string_view c) noexcept {
  return c.starts_with("KSampler") || c.starts_with("SamplerCustom");
}

bool is_vae_decode_class(std::string_view c) noexcept { return c.starts_with("VAEDecode"); }

CriticalPath critical_path(const JobProfile& profile) {
  return longest_path(profile, build_graph(profile));
}

ProfileAnalysis analyze(const JobProfile& profile, const AnalysisOptions& options) {
  ProfileAnalysis a;
  a.graph_known = profile.graph_known;
  const Graph g = build_graph(profile);

  std::vector<Duration> times;
  std::vector<NodeInterval> all_intervals;
  std::size_t cached = 0;
  for (const auto& n : profile.nodes) {
    if (n.cached) ++cached;
    if (!ran(n)) continue;
    times.push_back(*n.duration);
    a.node_time += *n.duration;
    all_intervals.insert(all_intervals.end(), n.intervals.begin(), n.intervals.end());
  }
  a.ran_nodes = times.size();
  if (profile.execution_time && !all_intervals.empty()) {
    a.unaccounted =
        std::max(Duration::zero(), *profile.execution_time - union_length(std::move(all_intervals)));
  }
  if (!times.empty()) {
    a.average_node_time = a.node_time / static_cast<long>(times.size());
    std::sort(times.begin(), times.end());
    const std::size_t m = times.size() / 2;
    a.median_node_time = times.size() % 2 ? times[m] : (times[m - 1] + times[m]) / 2;
  }
  if (cached + a.ran_nodes > 0) {
    a.cache_hit_ratio = static_cast<double>(cached) / static_cast<double>(cached + a.ran_nodes);
  }

  a.critical_path = longest_path(profile, g);
  if (a.graph_known && a.critical_path.length > Duration::zero()) {
    a.speedup_bound = static_cast<double>(a.node_time.count()) /
                      static_cast<double>(a.critical_path.length.count());
    a.parallelizability = 100.0 * (1.0 - 1.0 / a.speedup_bound);
    if (a.parallelizability < 1e-9) a.parallelizability = 0.0;
  }
  auto on_path = [&](std::string_view id) { return contains(a.critical_path.nodes, id); };
  auto share_of = [&](Duration d) {
    return a.node_time > Duration::zero()
               ? static_cast<double>(d.count()) / static_cast<double>(a.node_time.count())
               : 0.0;
  };

  // Bottlenecks: failed nodes first, then nodes at >= factor x the average, slowest first.
  for (std::size_t i = 0; i < profile.nodes.size(); ++i) {
    const NodeProfile& n = profile.nodes[i];
    if (n.status != NodeStatus::kFailed) continue;
    Bottleneck b;
    b.node_id = n.id;
    b.class_type = n.class_type;
    b.title = n.title;
    b.kind = BottleneckKind::kFailed;
    b.severity = Severity::kCritical;
    b.duration = weight(n);
    b.share = share_of(b.duration);
    b.on_critical_path = on_path(n.id);
    if (n.error) {
      b.reason = fmt::format("Failed with {}: {}", n.error->exception_type,
                             trim_message(n.error->exception_message));
    } else {
      b.reason = "Failed";
    }
    const std::size_t blocked = a.graph_known ? pending_downstream(profile, g, i) : 0;
    b.impact = blocked > 0
                   ? fmt::format("Stopped the run: {} downstream node(s) did not run", blocked)
                   : std::string("Stopped the run");
    a.bottlenecks.push_back(std::move(b));
  }
  std::vector<const NodeProfile*> slow;
  if (a.ran_nodes >= 2 && a.average_node_time > Duration::zero()) {
    for (const auto& n : profile.nodes) {
      if (ran(n) && n.status != NodeStatus::kFailed &&
          static_cast<double>(n.duration->count()) >=
              options.bottleneck_factor * static_cast<double>(a.average_node_time.count())) {
        slow.push_back(&n);
      }
    }
  }
  std::stable_sort(slow.begin(), slow.end(), [](const NodeProfile* x, const NodeProfile* y) {
    return *x->duration > *y->duration;
  });
  for (const NodeProfile* n : slow) {
    Bottleneck b;
    b.node_id = n->id;
    b.class_type = n->class_type;
    b.title = n->title;
    b.kind = BottleneckKind::kSlow;
    b.duration = *n->duration;
    b.share = share_of(b.duration);
    b.on_critical_path = on_path(n->id);
    b.severity = b.share >= 0.5 ? Severity::kCritical
                 : b.on_critical_path ? Severity::kHigh
                                      : Severity::kMedium;
    b.reason = fmt::format("Execution time ({}) is {:.1f}x the average ({})", ms(b.duration),
                           static_cast<double>(b.duration.count()) /
                               static_cast<double>(a.average_node_time.count()),
                           ms(a.average_node_time));
    if (b.on_critical_path) {
      b.impact = fmt::format(
          "{:.1f}% of node time, on the critical path: the run cannot be shorter than this node",
          percent(b.share));
    } else if (a.graph_known) {
      b.impact = fmt::format(
          "{:.1f}% of node time, off the critical path: running it beside the path would hide it",
          percent(b.share));
    } else {
      b.impact = fmt::format("{:.1f}% of node time", percent(b.share));
    }
    a.bottlenecks.push_back(std::move(b));
  }

  // Time by class type.
  std::map<std::string, ClassStats> classes;
  for (const auto& n : profile.nodes) {
    const std::string key = n.class_type.empty() ? std::string("(unknown)") : n.class_type;
    ClassStats& c = classes[key];
    c.class_type = key;
    if (n.cached) ++c.cached;
    if (ran(n)) {
      ++c.executed;
      c.total += *n.duration;
    }
  }
  for (auto& [name, c] : classes) {
    if (c.executed > 0) c.average = c.total / static_cast<long>(c.executed);
    c.share = share_of(c.total);
    a.by_class.push_back(c);
  }
  std::stable_sort(a.by_class.begin(), a.by_class.end(),
                   [](const ClassStats& x, const ClassStats& y) { return x.total > y.total; });

  a.model_loading = category(profile, a.node_time, [&](std::string_view c) {
    return is_loader_class(c) || contains(options.loader_classes, c);
  });
  a.sampling = category(profile, a.node_time, [&](std::string_view c) {
    return is_sampler_class(c) || contains(options.sampler_classes, c);
  });
  a.vae_decode = category(profile, a.node_time, is_vae_decode_class);

  for (const auto& n : profile.nodes) {
    if (n.progress.size() < 2) continue;
    const auto& first = n.progress.front();
    const auto& last = n.progress.back();
    const Duration dt = last.at - first.at;
    if (dt <= Duration::zero()) continue;
    a.step_rates.push_back(StepRate{
        n.id, (last.value - first.value) / (static_cast<double>(dt.count()) / 1e6),
        n.progress.size()});
  }

  // Recommendations, most actionable first.
  auto recommend = [&](std::string code, std::string text) {
    a.recommendations.push_back(Recommendation{std::move(code), std::move(text)});
  };
  if (profile.error) {
    const NodeProfile* n = profile.find(profile.error->node_id);
    recommend("failed",
              fmt::format("Node {} failed with {}: {}. Fix its inputs; a failed node is never "
                          "cached, so a re-run fails the same way.",
                          n ? node_label(*n) : "[" + profile.error->node_id + "]",
                          profile.error->exception_type,
                          trim_message(profile.error->exception_message)));
  }
  if (profile.interrupted) {
    recommend("interrupted",
              fmt::format("The run was interrupted before node [{}] ran; its timings cover only "
                          "the nodes that finished.",
                          profile.interrupted->node_id));
  }
  if (profile.outcome == Outcome::kIncomplete) {
    recommend("incomplete",
              "The event stream ended without a terminal event (prompt submitted without a "
              "client_id, or the socket was lost): merge GET /history/{prompt_id} for the outcome.");
  }
  if (a.ran_nodes + cached > 0 && cached > 0 && a.cache_hit_ratio >= options.mostly_cached_ratio) {
    recommend("mostly_cached",
              fmt::format("The run was mostly cached ({} of {} nodes): its times do not show the "
                          "cost of a cold run. Change an input (e.g. the seed) to measure the work.",
                          cached, cached + a.ran_nodes));
  }
  if (a.model_loading.share >= options.loader_share_hint && a.model_loading.total > Duration::zero()) {
    recommend("model_loading",
              fmt::format("Model loading ({}) is {:.0f}% of this run: route the job to a backend "
                          "that already has the model loaded (ComfyUI reuses only the previous "
                          "prompt's models).",
                          describe_nodes(profile, a.model_loading.nodes, 3),
                          percent(a.model_loading.share)));
  }
  if (a.vae_decode.share >= options.vae_share_hint && a.vae_decode.total > a.sampling.total) {
    recommend("vae_decode",
              fmt::format("VAE decode dominates at this resolution ({:.0f}% of node time): try "
                          "VAEDecodeTiled, a smaller resolution, or a faster VAE.",
                          percent(a.vae_decode.share)));
  }
  if (a.sampling.share >= options.sampler_share_hint) {
    recommend("sampling",
              fmt::format("Sampling is {:.0f}% of this run: fewer steps, a faster sampler or "
                          "scheduler, or a faster GPU are the levers that matter.",
                          percent(a.sampling.share)));
  }
  if (a.graph_known && a.speedup_bound >= options.parallel_speedup_hint) {
    recommend("parallel_branches",
              fmt::format("Independent branches: run in parallel (e.g. split across backends), "
                          "the nodes would take {} instead of {} (speedup bound {:.2f}x).",
                          ms(a.critical_path.length), ms(a.node_time), a.speedup_bound));
  }
  std::size_t slow_count = 0;
  for (const auto& b : a.bottlenecks) slow_count += b.kind == BottleneckKind::kSlow ? 1 : 0;
  if (slow_count > 0) {
    const Bottleneck* top = nullptr;
    for (const auto& b : a.bottlenecks) {
      if (b.kind == BottleneckKind::kSlow) {
        top = &b;
        break;
      }
    }
    const NodeProfile* n = profile.find(top->node_id);
    recommend("bottleneck",
              fmt::format("Address the {} bottleneck(s): {} alone is {:.0f}% of node time.",
                          slow_count, n ? node_label(*n) : top->node_id, percent(top->share)));
  }
  if (profile.queue_time && profile.execution_time &&
      *profile.queue_time > *profile.execution_time && *profile.queue_time > Duration(1'000'000)) {
    recommend("queue_wait",
              fmt::format("The job waited {} in the queue, longer than it ran ({}): add backends "
                          "or route it to an idle one.",
                          ms(*profile.queue_time), ms(*profile.execution_time)));
  }
  if (profile.delivery_lag_spread && *profile.delivery_lag_spread > options.jitter_hint) {
    recommend("timing_jitter",
              fmt::format("Event delivery varied by {} during this run (the server's event loop "
                          "was held up): per-node times can be off by that much.",
                          ms(*profile.delivery_lag_spread)));
  }
  if (a.ran_nodes > 0 && !profile.saw_progress_state) {
    recommend("old_server",
              "The server sends no progress_state (ComfyUI < 0.3.45): node ends were inferred "
              "from the next node's start, which adds the executor's own time to each node.");
  }
  if (!a.graph_known && a.ran_nodes > 1) {
    recommend("no_graph",
              "No workflow graph was given: the critical path and speedup bound are unknown.");
  }
  return a;
}

}  // namespace comfyfarm::profile
