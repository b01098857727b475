#include "profile/trace_reader.hpp"

#include "comfy/json_util.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <set>
#include <utility>

namespace comfyfarm::profile {

namespace json = boost::json;

namespace {

Error line_error(std::size_t line, std::string_view what) {
  return fail(Errc::kInvalidArgument,
              "ws.jsonl line " + std::to_string(line) + ": " + std::string(what));
}

Result<comfy::BinaryEvent> binary_from_line(const json::object& o, std::size_t line) {
  const auto* type = o.if_contains("event_type");
  if (!type || !type->is_int64()) return line_error(line, "binary frame without event_type");
  switch (type->as_int64()) {
    case 1: {
      comfy::PreviewImage img;
      if (const auto* f = o.if_contains("image_format"); f && f->is_int64()) {
        img.format = static_cast<comfy::ImageFormat>(f->as_int64());
      }
      return comfy::BinaryEvent(std::move(img));
    }
    case 3: {
      comfy::ProgressText text;
      if (const auto* id = o.if_contains("text_node_id"); id && id->is_string()) {
        text.node_id = std::string(id->get_string());
      }
      if (const auto* s = o.if_contains("text"); s && s->is_string()) {
        text.text = std::string(s->get_string());
      }
      return comfy::BinaryEvent(std::move(text));
    }
    case 4: {
      comfy::PreviewImageWithMetadata img;
      if (const auto* m = o.if_contains("metadata"); m && m->is_object()) {
        img.metadata = m->get_object();
      }
      return comfy::BinaryEvent(std::move(img));
    }
    default: {
      comfy::UnknownBinary unknown;
      unknown.type = static_cast<std::uint32_t>(type->as_int64());
      return comfy::BinaryEvent(std::move(unknown));
    }
  }
}

}  // namespace

Result<std::vector<TimedEvent>> read_ws_jsonl(std::string_view text) {
  std::vector<TimedEvent> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string_view::npos) continue;
    auto parsed = comfy::parse_json(line);
    if (!parsed) return line_error(line_no, parsed.error().message);
    if (!parsed->is_object()) return line_error(line_no, "not a JSON object");
    const json::object& o = parsed->get_object();
    if (const auto* dir = o.if_contains("dir"); dir && dir->is_string() && dir->get_string() == "send") {
      continue;
    }
    const auto* t = o.if_contains("t");
    if (!t || !t->is_number()) return line_error(line_no, "no receive time \"t\"");
    const TimePoint received = from_epoch_seconds(t->to_number<double>());
    const auto* kind = o.if_contains("kind");
    if (kind && kind->is_string() && kind->get_string() == "binary") {
      auto bin = binary_from_line(o, line_no);
      if (!bin) return bin.error();
      out.push_back(TimedEvent{received, std::move(*bin)});
      continue;
    }
    const auto* msg = o.if_contains("msg");
    if (!msg || !msg->is_object()) return line_error(line_no, "no \"msg\" object");
    const auto* type = msg->get_object().if_contains("type");
    if (!type || !type->is_string()) return line_error(line_no, "msg without a string \"type\"");
    const auto* data = msg->get_object().if_contains("data");
    static const json::value kNull;
    auto event = comfy::event_from_json(type->get_string(), data ? *data : kNull);
    if (!event) return line_error(line_no, event.error().message);
    out.push_back(TimedEvent{received, std::move(*event)});
  }
  return out;
}

std::vector<std::string> prompt_ids_in(std::span<const TimedEvent> events) {
  std::vector<std::string> out;
  std::set<std::string, std::less<>> seen;
  for (const auto& e : events) {
    auto id = std::visit([](const auto& ev) { return comfy::prompt_id_of(ev); }, e.event);
    if (id && !seen.contains(*id)) {
      seen.emplace(*id);
      out.emplace_back(*id);
    }
  }
  return out;
}

void feed(JobProfiler& profiler, std::span<const TimedEvent> events) {
  for (const auto& e : events) {
    if (const auto* ev = std::get_if<comfy::Event>(&e.event)) {
      profiler.on_event(*ev, e.received);
    } else {
      profiler.on_binary(std::get<comfy::BinaryEvent>(e.event), e.received);
    }
  }
}

JobProfile profile_trace(std::span<const TimedEvent> events, ProfilerOptions options,
                         std::optional<comfy::Workflow> workflow,
                         std::optional<TimePoint> submitted) {
  if (!options.prompt_id) {
    auto ids = prompt_ids_in(events);
    if (!ids.empty()) options.prompt_id = std::move(ids.front());
  }
  JobProfiler profiler(std::move(options), std::move(workflow));
  if (submitted) profiler.on_submitted(*submitted);
  feed(profiler, events);
  if (!events.empty()) profiler.close(events.back().received);
  return profiler.profile();
}

JobProfile profile_history(const comfy::HistoryEntry& entry, ProfilerOptions options,
                           std::optional<comfy::Workflow> workflow) {
  if (!options.prompt_id) options.prompt_id = entry.prompt_id;
  JobProfiler profiler(std::move(options), std::move(workflow));
  profiler.on_history(entry);
  return profiler.profile();
}

}  // namespace comfyfarm::profile
