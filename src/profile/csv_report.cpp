#include "profile/csv_report.hpp"
#include "core/csv.hpp"

#include "profile/profile_analysis.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <string_view>

namespace comfyfarm::profile {

namespace {

void field(std::string& out, std::string_view s) { append_csv_field(out, s); }

std::string ms3(Duration d) { return fmt::format("{:.3f}", to_ms(d)); }

}  // namespace

std::string render_csv(std::span<const JobProfile> runs) {
  std::string out =
      "run,prompt_id,backend,node_id,class_type,title,status,cached,sequence,start_offset_ms,"
      "end_offset_ms,duration_ms,executions,progress_samples,previews,on_critical_path,error\r\n";
  for (std::size_t r = 0; r < runs.size(); ++r) {
    const JobProfile& p = runs[r];
    const CriticalPath cp = critical_path(p);
    for (const auto& n : p.nodes) {
      const bool critical = std::find(cp.nodes.begin(), cp.nodes.end(), n.id) != cp.nodes.end();
      std::string error;
      if (n.error) {
        error = n.error->exception_type + ": " + n.error->exception_message;
        while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
      }
      const std::string cells[] = {
          p.label.empty() ? std::to_string(r + 1) : p.label,
          p.prompt_id,
          p.backend,
          n.id,
          n.class_type,
          n.title,
          std::string(to_string(n.status)),
          n.cached ? "true" : "false",
          n.sequence ? std::to_string(*n.sequence) : std::string(),
          n.started_at && p.started_at ? ms3(*n.started_at - *p.started_at) : std::string(),
          n.completed_at && p.started_at ? ms3(*n.completed_at - *p.started_at) : std::string(),
          n.duration ? ms3(*n.duration) : std::string(),
          std::to_string(n.executions),
          std::to_string(n.progress.size()),
          std::to_string(n.previews),
          critical ? "true" : "false",
          error,
      };
      bool first = true;
      for (const auto& c : cells) {
        if (!first) out += ',';
        first = false;
        field(out, c);
      }
      out += "\r\n";
    }
  }
  return out;
}

}  // namespace comfyfarm::profile
