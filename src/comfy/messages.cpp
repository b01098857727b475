#include "comfy/messages.hpp"

#include "comfy/detail/json_reader.hpp"
#include "comfy/json_util.hpp"

#include <array>
#include <cassert>
#include <charconv>
#include <tuple>
#include <type_traits>
#include <utility>

namespace comfyfarm::comfy {

namespace {

using detail::JsonReader;
using detail::ReadNumber;
using detail::TokenKind;

// ---------------------------------------------------------------------------------------------
// Field tables: one per message struct, in ComfyUI's key order. The same table drives decoding
// and encoding, so the key order of the wire lives in one place.

enum class Presence {
  kRequired,  ///< present and not null
  kOptional,  ///< may be absent (std::optional); never null on the wire
  kNullable,  ///< always present, may be null (std::optional: nullopt <=> null)
};

template <class S, class T>
struct Field {
  std::string_view name;
  T S::*member;
  Presence presence;
};

template <class S, class T>
constexpr Field<S, T> field(std::string_view name, T S::*member,
                            Presence presence = Presence::kRequired) {
  return {name, member, presence};
}

template <class S>
struct Schema;

template <>
struct Schema<ExecutionStart> {
  static constexpr std::string_view kType = "execution_start";
  static constexpr auto kFields =
      std::make_tuple(field("prompt_id", &ExecutionStart::prompt_id),
                      field("timestamp", &ExecutionStart::timestamp, Presence::kOptional));
};

template <>
struct Schema<ExecutionCached> {
  static constexpr std::string_view kType = "execution_cached";
  static constexpr auto kFields =
      std::make_tuple(field("nodes", &ExecutionCached::nodes),
                      field("prompt_id", &ExecutionCached::prompt_id),
                      field("timestamp", &ExecutionCached::timestamp, Presence::kOptional));
};

template <>
struct Schema<Executing> {
  static constexpr std::string_view kType = "executing";
  static constexpr auto kFields =
      std::make_tuple(field("node", &Executing::node, Presence::kNullable),
                      field("display_node", &Executing::display_node, Presence::kOptional),
                      field("prompt_id", &Executing::prompt_id, Presence::kOptional));
};

template <>
struct Schema<Progress> {
  static constexpr std::string_view kType = "progress";
  static constexpr auto kFields =
      std::make_tuple(field("value", &Progress::value), field("max", &Progress::max),
                      field("prompt_id", &Progress::prompt_id, Presence::kOptional),
                      field("node", &Progress::node, Presence::kOptional));
};

template <>
struct Schema<NodeProgress> {
  static constexpr auto kFields = std::make_tuple(
      field("value", &NodeProgress::value), field("max", &NodeProgress::max),
      field("state", &NodeProgress::state), field("node_id", &NodeProgress::node_id),
      field("prompt_id", &NodeProgress::prompt_id),
      field("display_node_id", &NodeProgress::display_node_id),
      field("parent_node_id", &NodeProgress::parent_node_id, Presence::kNullable),
      field("real_node_id", &NodeProgress::real_node_id));
};

template <>
struct Schema<ProgressState> {
  static constexpr std::string_view kType = "progress_state";
  static constexpr auto kFields = std::make_tuple(field("prompt_id", &ProgressState::prompt_id),
                                                  field("nodes", &ProgressState::nodes));
};

template <>
struct Schema<Executed> {
  static constexpr std::string_view kType = "executed";
  static constexpr auto kFields =
      std::make_tuple(field("node", &Executed::node),
                      field("display_node", &Executed::display_node, Presence::kOptional),
                      field("output", &Executed::output), field("prompt_id", &Executed::prompt_id));
};

template <>
struct Schema<ExecutionSuccess> {
  static constexpr std::string_view kType = "execution_success";
  static constexpr auto kFields =
      std::make_tuple(field("prompt_id", &ExecutionSuccess::prompt_id),
                      field("timestamp", &ExecutionSuccess::timestamp, Presence::kOptional));
};

template <>
struct Schema<ExecutionError> {
  static constexpr std::string_view kType = "execution_error";
  static constexpr auto kFields = std::make_tuple(
      field("prompt_id", &ExecutionError::prompt_id), field("node_id", &ExecutionError::node_id),
      field("node_type", &ExecutionError::node_type),
      field("executed", &ExecutionError::executed),
      field("exception_message", &ExecutionError::exception_message),
      field("exception_type", &ExecutionError::exception_type),
      field("traceback", &ExecutionError::traceback),
      field("current_inputs", &ExecutionError::current_inputs),
      field("current_outputs", &ExecutionError::current_outputs),
      field("timestamp", &ExecutionError::timestamp, Presence::kOptional));
};

template <>
struct Schema<ExecutionInterrupted> {
  static constexpr std::string_view kType = "execution_interrupted";
  static constexpr auto kFields = std::make_tuple(
      field("prompt_id", &ExecutionInterrupted::prompt_id),
      field("node_id", &ExecutionInterrupted::node_id),
      field("node_type", &ExecutionInterrupted::node_type),
      field("executed", &ExecutionInterrupted::executed),
      field("timestamp", &ExecutionInterrupted::timestamp, Presence::kOptional));
};

template <class T>
struct IsOptional : std::false_type {};
template <class T>
struct IsOptional<std::optional<T>> : std::true_type {};

// ---------------------------------------------------------------------------------------------
// Decoding.

bool decode_node_progress_map(JsonReader& r, std::vector<NodeProgress>& out);

bool read_field(JsonReader& r, std::string& out) { return r.read_string(out); }
bool read_field(JsonReader& r, std::int64_t& out) { return r.read_int64(out); }
bool read_field(JsonReader& r, std::vector<std::string>& out) { return r.read_string_array(out); }
bool read_field(JsonReader& r, json::value& out) { return r.read_value(out); }
bool read_field(JsonReader& r, std::vector<NodeProgress>& out) {
  return decode_node_progress_map(r, out);
}
bool read_field(JsonReader& r, Number& out) {
  ReadNumber n;
  if (!r.read_number(n)) return false;
  switch (n.kind) {
    case ReadNumber::Kind::kInt64: out = n.i; return true;
    case ReadNumber::Kind::kUint64: return r.fail("integer out of int64 range");
    case ReadNumber::Kind::kDouble: out = n.d; return true;
  }
  return false;
}

template <class S, class T>
bool read_member(JsonReader& r, S& s, const Field<S, T>& f) {
  T& slot = s.*(f.member);
  if constexpr (IsOptional<T>::value) {
    if (f.presence == Presence::kNullable && r.peek() == TokenKind::kNull) {
      slot.reset();
      return r.read_null();
    }
    slot.emplace();
    return read_field(r, *slot);
  } else {
    return read_field(r, slot);
  }
}

// Checks beyond the field types.
template <class S>
bool check_decoded(JsonReader&, const S&) {
  return true;
}
template <>
bool check_decoded(JsonReader& r, const Executed& e) {
  if (e.output.is_object() || e.output.is_null()) return true;
  std::string msg = "expected an object or null, found ";
  msg += kind_name(e.output);
  r.fail(std::move(msg));
  return r.in("output");
}

// Reads one object into S through its field table. Unknown keys go to S::extra.
template <class S>
bool decode_fields(JsonReader& r, S& out) {
  constexpr auto& fields = Schema<S>::kFields;
  constexpr std::size_t kCount = std::tuple_size_v<std::remove_cvref_t<decltype(fields)>>;
  static_assert(kCount <= 32);
  std::uint32_t seen = 0;
  if (!r.begin_object()) return false;
  std::string_view key;
  for (bool first = true; r.next_member(first, key);) {
    bool matched = false;
    bool ok = true;
    [&]<std::size_t... I>(std::index_sequence<I...>) {
      (void)((key == std::get<I>(fields).name &&
              (matched = true, seen |= 1u << I,
               ok = read_member(r, out, std::get<I>(fields)) || r.in(std::get<I>(fields).name),
               true)) ||
             ...);
    }(std::make_index_sequence<kCount>{});
    if (!matched) {
      // The key may view the reader's key buffer, which nested reads reuse: copy it first.
      std::string name(key);
      if (!r.read_value(out.extra[name])) return r.in(name);
    }
    if (!ok) return false;
  }
  if (r.failed()) return false;
  bool ok = true;
  [&]<std::size_t... I>(std::index_sequence<I...>) {
    (void)((std::get<I>(fields).presence != Presence::kOptional && (seen & (1u << I)) == 0 &&
            (ok = r.fail("missing field \"" + std::string(std::get<I>(fields).name) + "\""),
             true)) ||
           ...);
  }(std::make_index_sequence<kCount>{});
  return ok && check_decoded(r, out);
}

bool decode_node_progress_map(JsonReader& r, std::vector<NodeProgress>& out) {
  out.clear();
  if (!r.begin_object()) return false;
  std::string_view key_view;
  for (bool first = true; r.next_member(first, key_view);) {
    const std::string key(key_view);
    NodeProgress& node = out.emplace_back();
    if (!decode_fields(r, node)) return r.in(key);
    if (node.node_id != key) {
      r.fail("key differs from its node_id \"" + node.node_id + "\"");
      return r.in(key);
    }
  }
  return !r.failed();
}

bool decode_status(JsonReader& r, Status& out) {
  if (!r.begin_object()) return false;
  bool have_status = false;
  std::string_view key;
  for (bool first = true; r.next_member(first, key);) {
    if (key == "status") {
      // {"exec_info": {"queue_remaining": N}}; other keys at these two levels are not kept.
      bool have_remaining = false;
      if (!r.begin_object()) return r.in("status");
      std::string_view k1;
      for (bool f1 = true; r.next_member(f1, k1);) {
        if (k1 == "exec_info") {
          if (!r.begin_object()) return r.in("status.exec_info");
          std::string_view k2;
          for (bool f2 = true; r.next_member(f2, k2);) {
            if (k2 == "queue_remaining") {
              if (!r.read_int64(out.queue_remaining)) {
                return r.in("status.exec_info.queue_remaining");
              }
              have_remaining = true;
            } else {
              std::string_view skipped;
              if (!r.skip_value(skipped)) return r.in("status.exec_info");
            }
          }
          if (r.failed()) return r.in("status.exec_info");
        } else {
          std::string_view skipped;
          if (!r.skip_value(skipped)) return r.in("status");
        }
      }
      if (r.failed()) return r.in("status");
      if (!have_remaining) {
        r.fail("missing field \"queue_remaining\"");
        return r.in("status.exec_info");
      }
      have_status = true;
    } else if (key == "sid") {
      if (!r.read_string(out.sid.emplace())) return r.in("sid");
    } else {
      std::string name(key);
      if (!r.read_value(out.extra[name])) return r.in(name);
    }
  }
  if (r.failed()) return false;
  if (!have_status) return r.fail("missing field \"status\"");
  return true;
}

enum class Kind : std::uint8_t {
  kStatus,
  kExecutionStart,
  kExecutionCached,
  kExecuting,
  kProgress,
  kProgressState,
  kExecuted,
  kExecutionSuccess,
  kExecutionError,
  kExecutionInterrupted,
  kFeatureFlags,
  kUnknown,
};

Kind kind_of(std::string_view type) noexcept {
  // Most frequent first.
  if (type == "progress_state") return Kind::kProgressState;
  if (type == "executing") return Kind::kExecuting;
  if (type == "progress") return Kind::kProgress;
  if (type == "status") return Kind::kStatus;
  if (type == "executed") return Kind::kExecuted;
  if (type == "execution_start") return Kind::kExecutionStart;
  if (type == "execution_cached") return Kind::kExecutionCached;
  if (type == "execution_success") return Kind::kExecutionSuccess;
  if (type == "execution_error") return Kind::kExecutionError;
  if (type == "execution_interrupted") return Kind::kExecutionInterrupted;
  if (type == "feature_flags") return Kind::kFeatureFlags;
  return Kind::kUnknown;
}

// Decodes the "data" value of a message of the given type into `out`.
bool decode_data(JsonReader& r, std::string_view type, Event& out) {
  switch (kind_of(type)) {
    case Kind::kStatus: return decode_status(r, out.emplace<Status>());
    case Kind::kExecutionStart: return decode_fields(r, out.emplace<ExecutionStart>());
    case Kind::kExecutionCached: return decode_fields(r, out.emplace<ExecutionCached>());
    case Kind::kExecuting: return decode_fields(r, out.emplace<Executing>());
    case Kind::kProgress: return decode_fields(r, out.emplace<Progress>());
    case Kind::kProgressState: return decode_fields(r, out.emplace<ProgressState>());
    case Kind::kExecuted: return decode_fields(r, out.emplace<Executed>());
    case Kind::kExecutionSuccess: return decode_fields(r, out.emplace<ExecutionSuccess>());
    case Kind::kExecutionError: return decode_fields(r, out.emplace<ExecutionError>());
    case Kind::kExecutionInterrupted:
      return decode_fields(r, out.emplace<ExecutionInterrupted>());
    case Kind::kFeatureFlags: {
      auto& flags = out.emplace<FeatureFlags>();
      if (r.peek() != TokenKind::kObject) return r.fail_expected("an object");
      json::value v;
      if (!r.read_value(v)) return false;
      flags.flags = std::move(v.get_object());
      return true;
    }
    case Kind::kUnknown: {
      auto& unknown = out.emplace<Unknown>();
      unknown.type.assign(type.data(), type.size());
      return r.read_value(unknown.data);
    }
  }
  return false;
}

Error protocol_error(std::string_view type, const JsonReader& r) {
  std::string msg(type);
  msg += ": ";
  msg += r.error_message();
  return fail(Errc::kProtocol, std::move(msg));
}

// ---------------------------------------------------------------------------------------------
// Encoding: Python json.dumps text (", " and ": " separators, ASCII-only strings).

void write_string(std::string& out, std::string_view s) {
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u >= 0x80 || c == '"' || c == '\\') {
      // Rare: let json_util escape it exactly as Python does.
      dump_to(out, json::value(json::string_view(s.data(), s.size())));
      return;
    }
  }
  out += '"';
  out.append(s.data(), s.size());
  out += '"';
}

void write_int(std::string& out, std::int64_t v) {
  char buf[24];
  const auto r = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, r.ptr);
}

void write_key(std::string& out, std::string_view name, bool& first) {
  if (!first) out += ", ";
  first = false;
  write_string(out, name);
  out += ": ";
}

void write_object_members(std::string& out, const json::object& obj, bool& first) {
  for (const auto& kv : obj) {
    write_key(out, kv.key(), first);
    dump_to(out, kv.value());
  }
}

void write_object(std::string& out, const json::object& obj) {
  out += '{';
  bool first = true;
  write_object_members(out, obj, first);
  out += '}';
}

void write_value(std::string& out, const std::string& s) { write_string(out, s); }
void write_value(std::string& out, std::int64_t v) { write_int(out, v); }
void write_value(std::string& out, const json::value& v) { dump_to(out, v); }
void write_value(std::string& out, const Number& n) {
  if (n.is_integer()) {
    write_int(out, n.as_int64());
  } else {
    dump_to(out, json::value(n.as_double()));
  }
}
void write_value(std::string& out, const std::vector<std::string>& list) {
  out += '[';
  bool first = true;
  for (const auto& s : list) {
    if (!first) out += ", ";
    first = false;
    write_string(out, s);
  }
  out += ']';
}

template <class S>
void encode_fields(std::string& out, const S& s);

void write_value(std::string& out, const std::vector<NodeProgress>& nodes) {
  out += '{';
  bool first = true;
  for (const auto& node : nodes) {
    write_key(out, node.node_id, first);
    encode_fields(out, node);
  }
  out += '}';
}

template <class S, class T>
void write_member(std::string& out, const S& s, const Field<S, T>& f, bool& first) {
  const T& slot = s.*(f.member);
  if constexpr (IsOptional<T>::value) {
    if (!slot) {
      if (f.presence == Presence::kOptional) return;
      write_key(out, f.name, first);
      out += "null";
      return;
    }
    write_key(out, f.name, first);
    write_value(out, *slot);
  } else {
    write_key(out, f.name, first);
    write_value(out, slot);
  }
}

template <class S>
void encode_fields(std::string& out, const S& s) {
  out += '{';
  bool first = true;
  std::apply([&](const auto&... f) { (write_member(out, s, f, first), ...); }, Schema<S>::kFields);
  write_object_members(out, s.extra, first);
  out += '}';
}

void encode_status(std::string& out, const Status& s) {
  out += R"({"status": {"exec_info": {"queue_remaining": )";
  write_int(out, s.queue_remaining);
  out += "}}";
  bool first = false;
  if (s.sid) {
    write_key(out, "sid", first);
    write_string(out, *s.sid);
  }
  write_object_members(out, s.extra, first);
  out += '}';
}

void encode_data(std::string& out, const Event& event) {
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, Status>) {
          encode_status(out, e);
        } else if constexpr (std::is_same_v<T, FeatureFlags>) {
          write_object(out, e.flags);
        } else if constexpr (std::is_same_v<T, Unknown>) {
          dump_to(out, e.data);
        } else {
          encode_fields(out, e);
        }
      },
      event);
}

// ---------------------------------------------------------------------------------------------
// Binary frames.

std::uint32_t read_be32(const std::uint8_t* p) noexcept {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) |
         std::uint32_t{p[3]};
}

void write_be32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  out.push_back(static_cast<std::uint8_t>(v >> 24));
  out.push_back(static_cast<std::uint8_t>(v >> 16));
  out.push_back(static_cast<std::uint8_t>(v >> 8));
  out.push_back(static_cast<std::uint8_t>(v));
}

Error truncated(std::string_view what, std::size_t have, std::size_t need) {
  return fail(Errc::kProtocol, std::string(what) + ": " + std::to_string(have) +
                                   " bytes, shorter than its " + std::to_string(need) +
                                   "-byte header");
}

}  // namespace

// -----------------------------------------------------------------------------------------------

std::string_view type_name(const Event& event) noexcept {
  return std::visit(
      [](const auto& e) -> std::string_view {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, Status>) {
          return "status";
        } else if constexpr (std::is_same_v<T, FeatureFlags>) {
          return "feature_flags";
        } else if constexpr (std::is_same_v<T, Unknown>) {
          return e.type;
        } else {
          return Schema<T>::kType;
        }
      },
      event);
}

std::optional<std::string_view> prompt_id_of(const Event& event) noexcept {
  return std::visit(
      [](const auto& e) -> std::optional<std::string_view> {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, Status> || std::is_same_v<T, FeatureFlags>) {
          return std::nullopt;
        } else if constexpr (std::is_same_v<T, Unknown>) {
          if (const auto* obj = e.data.if_object()) {
            if (const auto* id = obj->if_contains("prompt_id"); id && id->is_string()) {
              return std::string_view(id->get_string());
            }
          }
          return std::nullopt;
        } else if constexpr (IsOptional<decltype(e.prompt_id)>::value) {
          if (!e.prompt_id) return std::nullopt;
          return std::string_view(*e.prompt_id);
        } else {
          return std::string_view(e.prompt_id);
        }
      },
      event);
}

Result<Event> decode_event(std::string_view text) {
  JsonReader r(text);
  std::string type_buffer;
  std::string_view type;
  std::string_view data_raw;
  bool have_type = false;
  bool have_data = false;
  bool decoded = false;
  Event event;
  if (!r.begin_object()) return fail(Errc::kProtocol, "message: " + r.error_message());
  std::string_view key;
  for (bool first = true; r.next_member(first, key);) {
    if (key == "type") {
      if (!r.read_string_view(type, type_buffer)) {
        r.in("type");
        return fail(Errc::kProtocol, "message: " + r.error_message());
      }
      have_type = true;
    } else if (key == "data") {
      have_data = true;
      if (have_type) {
        if (!decode_data(r, type, event)) return protocol_error(type, r);
        decoded = true;
      } else if (!r.skip_value(data_raw)) {
        r.in("data");
        return fail(Errc::kProtocol, "message: " + r.error_message());
      }
    } else {
      // Envelope keys besides type and data are not part of the protocol; they are skipped.
      std::string_view skipped;
      if (!r.skip_value(skipped)) return fail(Errc::kProtocol, "message: " + r.error_message());
    }
  }
  if (r.failed()) return fail(Errc::kProtocol, "message: " + r.error_message());
  if (!r.at_end()) {
    r.fail("unexpected text after the message");
    return fail(Errc::kProtocol, "message: " + r.error_message());
  }
  if (!have_type) return fail(Errc::kProtocol, "message: missing field \"type\"");
  if (!have_data) {
    return fail(Errc::kProtocol, std::string(type) + ": missing field \"data\"");
  }
  if (!decoded) {
    // "data" came before "type" (not ComfyUI's order, but valid JSON): decode it now.
    JsonReader data_reader(data_raw);
    if (!decode_data(data_reader, type, event)) return protocol_error(type, data_reader);
  }
  return event;
}

Result<Event> decode_event_data(std::string_view type, std::string_view data_text) {
  JsonReader r(data_text);
  Event event;
  if (!decode_data(r, type, event)) return protocol_error(type, r);
  if (!r.at_end()) {
    r.fail("unexpected text after the data");
    return protocol_error(type, r);
  }
  return event;
}

Result<Event> event_from_json(std::string_view type, const json::value& data) {
  return decode_event_data(type, dumps(data));
}

void encode_event_to(std::string& out, const Event& event) {
  out += R"({"type": )";
  write_string(out, type_name(event));
  out += R"(, "data": )";
  encode_data(out, event);
  out += '}';
}

std::string encode_event(const Event& event) {
  std::string out;
  out.reserve(256);
  encode_event_to(out, event);
  return out;
}

json::value event_data_to_json(const Event& event) {
  std::string text;
  encode_data(text, event);
  JsonReader r(text);
  json::value v;
  [[maybe_unused]] const bool ok = r.read_value(v);
  assert(ok && "the encoder writes valid JSON");
  return v;
}

// -----------------------------------------------------------------------------------------------

Result<BinaryEvent> decode_binary(std::span<const std::uint8_t> frame) {
  const std::size_t size = frame.size();
  if (size < 4) {
    return fail(Errc::kProtocol, "binary frame: " + std::to_string(size) +
                                     " bytes, shorter than the 4-byte event type");
  }
  const std::uint8_t* p = frame.data();
  const std::uint32_t type = read_be32(p);
  switch (type) {
    case 1: {
      if (size < 8) return truncated("preview image frame (type 1)", size, 8);
      PreviewImage out;
      out.format = static_cast<ImageFormat>(read_be32(p + 4));
      out.image.assign(p + 8, p + size);
      return BinaryEvent(std::move(out));
    }
    case 3: {
      if (size < 8) return truncated("progress text frame (type 3)", size, 8);
      const std::uint32_t n = read_be32(p + 4);
      if (n > size - 8) {
        return fail(Errc::kProtocol, "progress text frame (type 3): node id length " +
                                         std::to_string(n) + " exceeds the " +
                                         std::to_string(size - 8) + " bytes left");
      }
      ProgressText out;
      out.node_id.assign(reinterpret_cast<const char*>(p + 8), n);
      out.text.assign(reinterpret_cast<const char*>(p + 8 + n), size - 8 - n);
      return BinaryEvent(std::move(out));
    }
    case 4: {
      if (size < 8) return truncated("preview with metadata frame (type 4)", size, 8);
      const std::uint32_t m = read_be32(p + 4);
      if (m > size - 8) {
        return fail(Errc::kProtocol, "preview with metadata frame (type 4): metadata length " +
                                         std::to_string(m) + " exceeds the " +
                                         std::to_string(size - 8) + " bytes left");
      }
      JsonReader r(std::string_view(reinterpret_cast<const char*>(p + 8), m));
      json::value meta;
      if (r.peek() != TokenKind::kObject) r.fail_expected("an object");
      if (!r.failed() && r.read_value(meta) && !r.at_end()) {
        r.fail("unexpected text after the metadata");
      }
      if (r.failed()) {
        return fail(Errc::kProtocol,
                    "preview with metadata frame (type 4): metadata: " + r.error_message());
      }
      PreviewImageWithMetadata out;
      out.metadata = std::move(meta.get_object());
      out.image.assign(p + 8 + m, p + size);
      return BinaryEvent(std::move(out));
    }
    default: {
      UnknownBinary out;
      out.type = type;
      out.payload.assign(p + 4, p + size);
      return BinaryEvent(std::move(out));
    }
  }
}

Result<BinaryEvent> decode_binary(std::string_view frame) {
  return decode_binary(std::span<const std::uint8_t>(
      reinterpret_cast<const std::uint8_t*>(frame.data()), frame.size()));
}

std::vector<std::uint8_t> encode_binary(const BinaryEvent& event) {
  std::vector<std::uint8_t> out;
  std::visit(
      [&](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, PreviewImage>) {
          out.reserve(8 + e.image.size());
          write_be32(out, 1);
          write_be32(out, static_cast<std::uint32_t>(e.format));
          out.insert(out.end(), e.image.begin(), e.image.end());
        } else if constexpr (std::is_same_v<T, ProgressText>) {
          out.reserve(8 + e.node_id.size() + e.text.size());
          write_be32(out, 3);
          write_be32(out, static_cast<std::uint32_t>(e.node_id.size()));
          out.insert(out.end(), e.node_id.begin(), e.node_id.end());
          out.insert(out.end(), e.text.begin(), e.text.end());
        } else if constexpr (std::is_same_v<T, PreviewImageWithMetadata>) {
          std::string meta;
          write_object(meta, e.metadata);
          out.reserve(8 + meta.size() + e.image.size());
          write_be32(out, 4);
          write_be32(out, static_cast<std::uint32_t>(meta.size()));
          out.insert(out.end(), meta.begin(), meta.end());
          out.insert(out.end(), e.image.begin(), e.image.end());
        } else {
          out.reserve(4 + e.payload.size());
          write_be32(out, e.type);
          out.insert(out.end(), e.payload.begin(), e.payload.end());
        }
      },
      event);
  return out;
}

json::object make_preview_metadata(std::string_view node_id, std::string_view prompt_id,
                                   std::string_view display_node_id,
                                   std::optional<std::string_view> parent_node_id,
                                   std::string_view real_node_id, std::string_view image_type) {
  json::object meta;
  meta.reserve(6);
  meta.emplace("node_id", node_id);
  meta.emplace("prompt_id", prompt_id);
  meta.emplace("display_node_id", display_node_id);
  if (parent_node_id) {
    meta.emplace("parent_node_id", *parent_node_id);
  } else {
    meta.emplace("parent_node_id", nullptr);
  }
  meta.emplace("real_node_id", real_node_id);
  meta.emplace("image_type", image_type);
  return meta;
}

std::optional<std::string_view> prompt_id_of(const BinaryEvent& event) noexcept {
  if (const auto* preview = std::get_if<PreviewImageWithMetadata>(&event)) {
    if (const auto* id = preview->metadata.if_contains("prompt_id"); id && id->is_string()) {
      return std::string_view(id->get_string());
    }
  }
  return std::nullopt;
}

std::optional<ClientHello> parse_client_hello(std::string_view text) {
  auto parsed = parse_json(text);
  if (!parsed || !parsed->is_object()) return std::nullopt;
  ClientHello hello;
  const auto& obj = parsed->get_object();
  const auto* type = obj.if_contains("type");
  hello.feature_flags = type != nullptr && type->is_string() && type->get_string() == "feature_flags";
  if (const auto* data = obj.if_contains("data"); hello.feature_flags && data != nullptr && data->is_object()) {
    const auto* flag = data->get_object().if_contains("supports_preview_metadata");
    hello.preview_metadata = flag != nullptr && flag->is_bool() && flag->get_bool();
  }
  return hello;
}

}  // namespace comfyfarm::comfy
