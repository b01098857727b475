#include "profile/text_report.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace comfyfarm::profile {

namespace {

constexpr std::string_view kReset = "\x1b[0m";
constexpr std::string_view kBold = "\x1b[1m";
constexpr std::string_view kDim = "\x1b[2m";
constexpr std::string_view kRed = "\x1b[31m";
constexpr std::string_view kGreen = "\x1b[32m";
constexpr std::string_view kYellow = "\x1b[33m";
constexpr std::string_view kCyan = "\x1b[36m";

// Columns a string takes on a terminal: UTF-8 code points (no wide characters in our output
// except what users put in titles, which is close enough).
std::size_t display_width(std::string_view s) {
  std::size_t w = 0;
  for (unsigned char c : s) w += (c & 0xC0) != 0x80 ? 1 : 0;
  return w;
}

class Style {
 public:
  explicit Style(const TextOptions& o) : o_(o) {}
  std::string paint(std::string_view text, std::string_view code) const {
    if (!o_.color || code.empty()) return std::string(text);
    return std::string(code) + std::string(text) + std::string(kReset);
  }
  std::string heading(std::string_view text) const { return paint(text, kBold); }
  std::string rule(bool heavy) const {
    std::string out;
    const std::string_view unit = o_.unicode ? (heavy ? "═" : "─") : (heavy ? "=" : "-");
    for (std::size_t i = 0; i < o_.width; ++i) out += unit;
    return out;
  }
  std::string_view arrow() const { return o_.unicode ? " → " : " -> "; }
  std::string_view bullet() const { return o_.unicode ? "•" : "*"; }
  std::string_view times() const { return o_.unicode ? "×" : "x"; }
  const TextOptions& options() const { return o_; }

 private:
  const TextOptions& o_;
};

struct Cell {
  std::string text;
  std::string_view color{};
};

class Table {
 public:
  enum class Align { kLeft, kRight };
  explicit Table(std::vector<std::pair<std::string, Align>> columns)
      : columns_(std::move(columns)) {}
  void add(std::vector<Cell> cells) { rows_.push_back(std::move(cells)); }
  bool empty() const { return rows_.empty(); }

  void render(std::string& out, const Style& style, std::size_t indent = 2) const {
    std::vector<std::size_t> widths(columns_.size(), 0);
    for (std::size_t c = 0; c < columns_.size(); ++c) widths[c] = display_width(columns_[c].first);
    for (const auto& row : rows_) {
      for (std::size_t c = 0; c < row.size() && c < widths.size(); ++c) {
        widths[c] = std::max(widths[c], display_width(row[c].text));
      }
    }
    auto line = [&](const std::vector<Cell>& cells, bool header) {
      std::string s(indent, ' ');
      for (std::size_t c = 0; c < columns_.size(); ++c) {
        const std::string_view text = c < cells.size() ? std::string_view(cells[c].text) : "";
        const std::size_t pad = widths[c] - display_width(text);
        const bool last = c + 1 == columns_.size();
        std::string painted = header ? style.paint(text, kDim)
                                     : style.paint(text, c < cells.size() ? cells[c].color : "");
        if (columns_[c].second == Align::kRight) {
          s.append(pad, ' ');
          s += painted;
        } else {
          s += painted;
          if (!last) s.append(pad, ' ');
        }
        if (!last) s += "  ";
      }
      while (!s.empty() && s.back() == ' ') s.pop_back();
      out += s;
      out += '\n';
    };
    std::vector<Cell> header;
    for (const auto& [name, align] : columns_) header.push_back(Cell{name, {}});
    line(header, true);
    for (const auto& row : rows_) line(row, false);
  }

 private:
  std::vector<std::pair<std::string, Align>> columns_;
  std::vector<std::vector<Cell>> rows_;
};

using Align = Table::Align;

std::string ms(Duration d) { return fmt::format("{:.2f} ms", to_ms(d)); }
std::string ms_opt(const std::optional<Duration>& d) { return d ? ms(*d) : std::string("-"); }
std::string pct(double share) { return fmt::format("{:.1f}%", share * 100.0); }

std::string_view status_color(NodeStatus s) {
  switch (s) {
    case NodeStatus::kCompleted: return kGreen;
    case NodeStatus::kCached: return kDim;
    case NodeStatus::kFailed: return kRed;
    case NodeStatus::kInterrupted: return kYellow;
    case NodeStatus::kExecuting: return kCyan;
    case NodeStatus::kPending: return kDim;
  }
  return {};
}

std::string first_line(std::string_view s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.remove_suffix(1);
  const auto nl = s.find('\n');
  return std::string(nl == std::string_view::npos ? s : s.substr(0, nl));
}

std::string number(double v) {
  if (v == static_cast<double>(static_cast<long long>(v))) {
    return fmt::format("{}", static_cast<long long>(v));
  }
  return fmt::format("{:.2f}", v);
}

void kv(std::string& out, std::string_view key, std::string_view value) {
  out += fmt::format("  {:<18}{}\n", key, value);
}

}  // namespace

std::string render_text(const JobProfile& p, const ProfileAnalysis& a, const TextOptions& options) {
  const Style st(options);
  std::string out;
  std::string title = "PROFILE";
  if (!p.label.empty()) title += "  " + p.label;
  std::string context;
  if (!p.workflow.empty()) context += p.workflow;
  if (!p.backend.empty()) context += (context.empty() ? "" : " on ") + p.backend;
  if (!context.empty()) title += "  (" + context + ")";
  out += st.heading(title) + "\n" + st.rule(true) + "\n";

  kv(out, "Prompt ID", p.prompt_id.empty() ? "-" : p.prompt_id);
  std::string outcome(to_string(p.outcome));
  std::string_view outcome_color = p.outcome == Outcome::kSucceeded ? kGreen
                                   : p.outcome == Outcome::kFailed   ? kRed
                                                                     : kYellow;
  if (p.error) {
    const NodeProfile* n = p.find(p.error->node_id);
    outcome += fmt::format(": node [{}] {} raised {}: {}", p.error->node_id,
                           n && !n->class_type.empty() ? n->class_type : p.error->node_type,
                           p.error->exception_type, first_line(p.error->exception_message));
  } else if (p.interrupted) {
    outcome += fmt::format(" before node [{}] {} ran", p.interrupted->node_id,
                           p.interrupted->node_type);
  }
  kv(out, "Outcome", st.paint(outcome, outcome_color));
  kv(out, "Queue wait", ms_opt(p.queue_time));
  kv(out, "Execution", ms_opt(p.execution_time) + (p.completion_inferred ? "  (end inferred)" : ""));
  kv(out, "Total", ms_opt(p.total_duration));
  if (p.server_started_ms && p.server_completed_ms) {
    kv(out, "Server clock",
       fmt::format("{} ms from execution_start to the end", *p.server_completed_ms - *p.server_started_ms));
  }
  if (p.delivery_lag_spread) {
    kv(out, "Delivery jitter",
       fmt::format("{} (spread of receive time - server timestamp)", ms(*p.delivery_lag_spread)));
  }
  out += "\n";

  const auto& s = p.summary;
  std::string counts = fmt::format("{} total, {} executed, {} cached, {} failed", s.total_nodes,
                                   s.executed_nodes, s.cached_nodes, s.failed_nodes);
  if (s.interrupted_nodes) counts += fmt::format(", {} interrupted", s.interrupted_nodes);
  if (s.executing_nodes) counts += fmt::format(", {} executing", s.executing_nodes);
  if (s.pending_nodes) counts += fmt::format(", {} not run", s.pending_nodes);
  kv(out, "Nodes", counts);
  if (a.graph_known) {
    std::string path;
    for (const auto& id : a.critical_path.nodes) {
      if (!path.empty()) path += st.arrow();
      path += id;
    }
    kv(out, "Critical path",
       ms(a.critical_path.length) + (path.empty() ? std::string() : "  " + path));
    kv(out, "Speedup bound", fmt::format("{:.2f}{}   (sum of node times / critical path)",
                                         a.speedup_bound, st.times()));
    kv(out, "Parallelizability", fmt::format("{:.1f}%", a.parallelizability));
  } else {
    kv(out, "Critical path", "unknown (no workflow graph)");
  }
  kv(out, "Node time", fmt::format("{} in {} node(s); {} between nodes", ms(a.node_time),
                                   a.ran_nodes, ms(a.unaccounted)));
  kv(out, "Average / median", ms(a.average_node_time) + " / " + ms(a.median_node_time));
  kv(out, "Model loading", pct(a.model_loading.share) + "   Sampling " + pct(a.sampling.share) +
                               "   VAE decode " + pct(a.vae_decode.share));
  kv(out, "Cache hits", pct(a.cache_hit_ratio));

  if (!s.slowest_nodes.empty()) {
    out += "\n" + st.heading("Slowest nodes") + "\n";
    Table t({{"#", Align::kRight},
             {"Node", Align::kLeft},
             {"Class", Align::kLeft},
             {"Title", Align::kLeft},
             {"Duration", Align::kRight},
             {"Share", Align::kRight}});
    std::size_t i = 0;
    for (const auto& n : s.slowest_nodes) {
      const double share = a.node_time.count() > 0 ? static_cast<double>(n.duration.count()) /
                                                         static_cast<double>(a.node_time.count())
                                                   : 0.0;
      t.add({{std::to_string(++i)}, {n.node_id}, {n.class_type}, {n.title}, {ms(n.duration)},
             {pct(share)}});
    }
    t.render(out, st);
  }

  if (!a.bottlenecks.empty()) {
    out += "\n" + st.heading("Bottlenecks") + "\n";
    for (const auto& b : a.bottlenecks) {
      const std::string_view color = b.severity == Severity::kCritical ? kRed : kYellow;
      out += fmt::format("  {} [{}] {}  ({})\n", st.bullet(), b.node_id, b.class_type,
                         st.paint(to_string(b.severity), color));
      out += "      Reason: " + b.reason + "\n";
      out += "      Impact: " + b.impact + "\n";
    }
  }

  if (!a.by_class.empty()) {
    out += "\n" + st.heading("Time by class type") + "\n";
    Table t({{"Class", Align::kLeft},
             {"Ran", Align::kRight},
             {"Cached", Align::kRight},
             {"Total", Align::kRight},
             {"Average", Align::kRight},
             {"Share", Align::kRight}});
    for (const auto& c : a.by_class) {
      t.add({{c.class_type}, {std::to_string(c.executed)}, {std::to_string(c.cached)},
             {ms(c.total)}, {c.executed ? ms(c.average) : std::string("-")}, {pct(c.share)}});
    }
    t.render(out, st);
  }

  if (!s.progress_nodes.empty()) {
    out += "\n" + st.heading("Progress") + "\n";
    for (const auto& id : s.progress_nodes) {
      const NodeProfile* n = p.find(id);
      if (!n) continue;
      std::string values;
      const std::size_t shown = std::min(n->progress.size(), options.max_progress_values);
      for (std::size_t i = 0; i < n->progress.size(); ++i) {
        if (i >= shown && i + 1 < n->progress.size()) {
          if (i == shown) values += ", ...";
          continue;
        }
        if (!values.empty()) values += ", ";
        values += number(n->progress[i].value) + "/" + number(n->progress[i].max);
      }
      std::string rate;
      for (const auto& r : a.step_rates) {
        if (r.node_id == id) rate = fmt::format("  ({:.2f} steps/s)", r.steps_per_second);
      }
      out += fmt::format("  [{}] {}  {} sample(s): {}{}\n", id, n->class_type, n->progress.size(),
                         values, rate);
    }
  }

  if (options.all_nodes && !p.nodes.empty()) {
    out += "\n" + st.heading("All nodes") + "  " +
           st.paint("(start: ms after execution start; * on the critical path)", kDim) + "\n";
    Table t({{"#", Align::kRight},
             {"Node", Align::kLeft},
             {"Class", Align::kLeft},
             {"Title", Align::kLeft},
             {"Status", Align::kLeft},
             {"Start", Align::kRight},
             {"Duration", Align::kRight},
             {"Notes", Align::kLeft}});
    for (const auto& n : p.nodes) {
      std::string start = "-";
      if (n.started_at && p.started_at) {
        start = fmt::format("+{:.2f}", to_ms(*n.started_at - *p.started_at));
      }
      std::vector<std::string> notes;
      if (n.executions > 1) notes.push_back(fmt::format("ran {}{}", n.executions, st.times()));
      if (!n.sub_nodes.empty()) notes.push_back(fmt::format("{} sub-node(s)", n.sub_nodes.size()));
      if (n.has_output) notes.push_back(n.cached ? "output replayed" : "output");
      if (n.previews) notes.push_back(fmt::format("{} preview(s)", n.previews));
      if (n.error) notes.push_back(n.error->exception_type + ": " + first_line(n.error->exception_message));
      if (n.status == NodeStatus::kInterrupted && !n.started_at) notes.push_back("never ran");
      std::string joined;
      for (const auto& x : notes) joined += (joined.empty() ? "" : "; ") + x;
      const bool critical = std::find(a.critical_path.nodes.begin(), a.critical_path.nodes.end(),
                                      n.id) != a.critical_path.nodes.end();
      t.add({{n.sequence ? std::to_string(*n.sequence + 1) : std::string("-")},
             {n.id + (critical ? "*" : "")},
             {n.class_type},
             {n.title},
             {std::string(to_string(n.status)), status_color(n.status)},
             {start},
             {ms_opt(n.duration)},
             {joined}});
    }
    t.render(out, st);
  }

  if (!a.recommendations.empty()) {
    out += "\n" + st.heading("Recommendations") + "\n";
    for (const auto& r : a.recommendations) out += fmt::format("  {} {}\n", st.bullet(), r.text);
  }
  out += st.rule(true) + "\n";
  return out;
}

std::string render_text(const ProfileAggregate& a, const TextOptions& options) {
  const Style st(options);
  std::string out;
  out += st.heading(fmt::format("AGGREGATE  {} run(s): {} succeeded, {} failed", a.runs,
                                a.succeeded, a.failed)) +
         "\n" + st.rule(true) + "\n";
  Table totals({{"", Align::kLeft},
                {"p50", Align::kRight},
                {"p95", Align::kRight},
                {"max", Align::kRight},
                {"min", Align::kRight}});
  auto add_stats = [&](std::string name, const DurationStats& s) {
    if (s.count == 0) return;
    totals.add({{std::move(name)}, {ms(s.p50)}, {ms(s.p95)}, {ms(s.max)}, {ms(s.min)}});
  };
  add_stats("Execution", a.execution_time);
  add_stats("Total", a.total_duration);
  add_stats("Queue wait", a.queue_time);
  totals.render(out, st);
  out += "\n";
  kv(out, "Cold (first run)", ms_opt(a.cold_execution_time));
  kv(out, "Warm p50", ms_opt(a.warm_execution_p50));
  kv(out, "Cache hits", pct(a.cache_hit_ratio));
  out += "\n" + st.heading("Per node") + "  " +
         st.paint("(times over the runs in which the node ran)", kDim) + "\n";
  Table t({{"Node", Align::kLeft},
           {"Class", Align::kLeft},
           {"Ran", Align::kRight},
           {"Cached", Align::kRight},
           {"p50", Align::kRight},
           {"p95", Align::kRight},
           {"max", Align::kRight},
           {"Cold", Align::kRight},
           {"Warm p50", Align::kRight}});
  for (const auto& n : a.nodes) {
    const bool any = n.duration.count > 0;
    t.add({{n.node_id},
           {n.class_type},
           {std::to_string(n.runs_executed)},
           {std::to_string(n.runs_cached)},
           {any ? ms(n.duration.p50) : "-"},
           {any ? ms(n.duration.p95) : "-"},
           {any ? ms(n.duration.max) : "-"},
           {ms_opt(n.cold)},
           {ms_opt(n.warm_p50)}});
  }
  t.render(out, st);
  out += st.rule(true) + "\n";
  return out;
}

std::string render_text(const ProfileComparison& c, const TextOptions& options) {
  const Style st(options);
  std::string out;
  out += st.heading("COMPARISON  " + (c.current_prompt_id.empty() ? "-" : c.current_prompt_id) +
                    " vs baseline " +
                    (c.baseline_prompt_id.empty() ? "-" : c.baseline_prompt_id)) +
         "\n" + st.rule(true) + "\n";
  kv(out, "Threshold", fmt::format("{:.0f}% and {}", c.options.threshold_percent, ms(c.options.min_delta)));
  auto verdict_color = [](Verdict v) -> std::string_view {
    switch (v) {
      case Verdict::kRegression: return kRed;
      case Verdict::kImprovement: return kGreen;
      case Verdict::kUnchanged: return {};
      default: return kYellow;
    }
  };
  if (c.baseline_execution && c.current_execution) {
    kv(out, "Execution",
       fmt::format("{} -> {}  ({:+.2f} ms, {:+.1f}%)  ", ms(*c.baseline_execution),
                   ms(*c.current_execution), to_ms(c.execution_delta), c.execution_delta_percent) +
           st.paint(to_string(c.execution_verdict), verdict_color(c.execution_verdict)));
  }
  out += "\n";
  Table t({{"Node", Align::kLeft},
           {"Class", Align::kLeft},
           {"Baseline", Align::kRight},
           {"Current", Align::kRight},
           {"Delta", Align::kRight},
           {"Delta %", Align::kRight},
           {"Verdict", Align::kLeft}});
  for (const auto& d : c.nodes) {
    const bool both = d.baseline && d.current;
    t.add({{d.node_id},
           {d.class_type},
           {ms_opt(d.baseline)},
           {ms_opt(d.current)},
           {both ? fmt::format("{:+.2f} ms", to_ms(d.delta)) : std::string("-")},
           {both && *d.baseline > Duration::zero() ? fmt::format("{:+.1f}%", d.delta_percent)
                                                   : std::string("-")},
           {std::string(to_string(d.verdict)), verdict_color(d.verdict)}});
  }
  t.render(out, st);
  out += "\n";
  const std::string result = fmt::format("{} regression(s), {} improvement(s){}", c.regressions,
                                         c.improvements,
                                         c.execution_verdict == Verdict::kRegression
                                             ? "; total execution regressed"
                                             : "");
  kv(out, "Result", st.paint(result, c.has_regression() ? kRed : kGreen));
  out += st.rule(true) + "\n";
  return out;
}

}  // namespace comfyfarm::profile
