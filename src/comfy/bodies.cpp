#include "comfy/bodies.hpp"

#include "comfy/json_util.hpp"

#include <algorithm>
#include <initializer_list>
#include <type_traits>
#include <utility>

namespace comfyfarm::comfy {

namespace {

// ---------------------------------------------------------------------------------------------
// Reading a DOM into structs. A Path is a chain of stack frames, rendered only on error.

struct Path {
  const Path* parent = nullptr;
  std::string_view key;  ///< a field name, or empty for an index
  std::size_t index = 0;

  Path field(std::string_view k) const { return Path{this, k, 0}; }
  Path at(std::size_t i) const { return Path{this, {}, i}; }

  std::string str() const {
    std::vector<const Path*> chain;
    for (const Path* p = this; p != nullptr && p->parent != nullptr; p = p->parent) {
      chain.push_back(p);
    }
    std::string out;
    for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
      if ((*it)->key.empty()) {
        out += '[';
        out += std::to_string((*it)->index);
        out += ']';
      } else {
        if (!out.empty()) out += '.';
        out += (*it)->key;
      }
    }
    return out;
  }
};

// Reading context: the body's name, the error code for failures, and the first failure.
struct Ctx {
  Errc code;
  std::string_view body;
  std::optional<Error> error;

  bool fail(const Path& at, std::string_view problem) {
    if (error) return false;
    std::string msg(body);
    msg += ": ";
    const std::string where = at.str();
    if (!where.empty()) {
      msg += where;
      msg += ": ";
    }
    msg += problem;
    error = Error{code, std::move(msg)};
    return false;
  }
  bool expected(const Path& at, std::string_view what, const json::value& found) {
    std::string msg = "expected ";
    msg += what;
    msg += ", found ";
    msg += kind_name(found);
    return fail(at, msg);
  }
};

bool read(const json::value& v, std::string& out, Ctx& c, const Path& p) {
  if (!v.is_string()) return c.expected(p, "a string", v);
  out.assign(v.get_string().data(), v.get_string().size());
  return true;
}

bool read(const json::value& v, std::int64_t& out, Ctx& c, const Path& p) {
  if (v.is_int64()) {
    out = v.get_int64();
    return true;
  }
  if (v.is_uint64()) return c.fail(p, "integer out of int64 range");
  return c.expected(p, "an integer", v);
}

bool read(const json::value& v, bool& out, Ctx& c, const Path& p) {
  if (!v.is_bool()) return c.expected(p, "a boolean", v);
  out = v.get_bool();
  return true;
}

bool read(const json::value& v, Number& out, Ctx& c, const Path& p) {
  if (v.is_int64()) {
    out = v.get_int64();
    return true;
  }
  if (v.is_double()) {
    out = v.get_double();
    return true;
  }
  if (v.is_uint64()) return c.fail(p, "integer out of int64 range");
  return c.expected(p, "a number", v);
}

bool read(const json::value& v, json::value& out, Ctx&, const Path&) {
  out = v;
  return true;
}

bool read(const json::value& v, json::object& out, Ctx& c, const Path& p) {
  if (!v.is_object()) return c.expected(p, "an object", v);
  out = v.get_object();
  return true;
}

bool read(const json::value& v, TypeSlot& out, Ctx& c, const Path& p) {
  if (v.is_string()) {
    out.emplace<std::string>(v.get_string().data(), v.get_string().size());
    return true;
  }
  if (v.is_array()) {
    out.emplace<json::array>(v.get_array());
    return true;
  }
  return c.expected(p, "a type name or a list of values", v);
}

template <class T>
bool read(const json::value& v, std::vector<T>& out, Ctx& c, const Path& p) {
  if (!v.is_array()) return c.expected(p, "an array", v);
  const auto& arr = v.get_array();
  out.clear();
  out.reserve(arr.size());
  for (std::size_t i = 0; i < arr.size(); ++i) {
    T item{};
    if (!read(arr[i], item, c, p.at(i))) return false;
    out.push_back(std::move(item));
  }
  return true;
}

// An object's fields, read one by one; rest() collects the keys that were not asked for.
class Obj {
 public:
  Obj(const json::value& v, Ctx& c, const Path& p) : ctx_(c), path_(p) {
    if (v.is_object()) {
      obj_ = &v.get_object();
    } else {
      c.expected(p, "an object", v);
    }
  }
  explicit operator bool() const { return obj_ != nullptr; }

  template <class T>
  bool req(std::string_view key, T& out) {
    const json::value* v = find(key);
    if (v == nullptr) return ctx_.fail(path_, "missing field \"" + std::string(key) + "\"");
    return read(*v, out, ctx_, path_.field(key));
  }
  /// May be absent; null is an error (it would not survive re-encoding).
  template <class T>
  bool opt(std::string_view key, std::optional<T>& out) {
    const json::value* v = find(key);
    if (v == nullptr) {
      out.reset();
      return true;
    }
    return read(*v, out.emplace(), ctx_, path_.field(key));
  }
  /// Always present, may be null.
  template <class T>
  bool nullable(std::string_view key, std::optional<T>& out) {
    const json::value* v = find(key);
    if (v == nullptr) return ctx_.fail(path_, "missing field \"" + std::string(key) + "\"");
    if (v->is_null()) {
      out.reset();
      return true;
    }
    return read(*v, out.emplace(), ctx_, path_.field(key));
  }
  /// May be absent, may be null.
  template <class T>
  bool opt_nullable(std::string_view key, std::optional<std::optional<T>>& out) {
    const json::value* v = find(key);
    if (v == nullptr) {
      out.reset();
      return true;
    }
    auto& inner = out.emplace();
    if (v->is_null()) return true;
    return read(*v, inner.emplace(), ctx_, path_.field(key));
  }
  /// The raw value of a field (nullptr when absent), marked as read.
  const json::value* take(std::string_view key) { return find(key); }
  /// Copies the keys not read so far into `extra`.
  bool rest(json::object& extra) {
    extra.clear();
    for (const auto& kv : *obj_) {
      if (std::find(seen_.begin(), seen_.end(), std::string_view(kv.key())) == seen_.end()) {
        extra.emplace(kv.key(), kv.value());
      }
    }
    return true;
  }
  const json::object& object() const { return *obj_; }
  const Path& path() const { return path_; }
  Ctx& ctx() { return ctx_; }

 private:
  const json::value* find(std::string_view key) {
    seen_.push_back(key);
    return obj_->if_contains(key);
  }

  Ctx& ctx_;
  const Path& path_;
  const json::object* obj_ = nullptr;
  std::vector<std::string_view> seen_;
};

// ---------------------------------------------------------------------------------------------
// Writing. Each body is built in ComfyUI's key order, then its extra keys.

json::value number_json(const Number& n) {
  if (n.is_integer()) return json::value(n.as_int64());
  return json::value(n.as_double());
}

json::array strings_json(const std::vector<std::string>& list) {
  json::array arr;
  arr.reserve(list.size());
  for (const auto& s : list) arr.emplace_back(s);
  return arr;
}

json::value slot_json(const TypeSlot& slot) {
  if (const auto* s = std::get_if<std::string>(&slot)) return json::value(*s);
  return json::value(std::get<json::array>(slot));
}

void append_extra(json::object& o, const json::object& extra) {
  for (const auto& kv : extra) o.emplace(kv.key(), kv.value());
}

json::value optional_string_json(const std::optional<std::string>& s) {
  if (s) return json::value(*s);
  return nullptr;
}

// parse(text) for every body: parse_json, then T::from_json, with the body's error code.
template <class T>
Result<T> parse_body(std::string_view text, Errc code, std::string_view body) {
  auto v = parse_json(text);
  if (!v) return fail(code, std::string(body) + ": " + v.error().message);
  return T::from_json(*v);
}

template <class T, class F>
Result<T> read_body(const json::value& v, Errc code, std::string_view body, F&& reader) {
  Ctx c{code, body, std::nullopt};
  const Path root;
  T out{};
  if (!reader(v, out, c, root)) {
    if (!c.error) c.fail(root, "invalid body");
    return *c.error;
  }
  return out;
}

constexpr std::string_view kPromptRequestBody = "prompt request";
constexpr std::string_view kPromptResponseBody = "prompt response";
constexpr std::string_view kPromptErrorBody = "prompt error response";
constexpr std::string_view kQueueItemBody = "queue item";
constexpr std::string_view kQueueBody = "queue";
constexpr std::string_view kExecInfoBody = "exec_info";
constexpr std::string_view kHistoryBody = "history";
constexpr std::string_view kSystemStatsBody = "system_stats";
constexpr std::string_view kFeaturesBody = "features";
constexpr std::string_view kObjectInfoBody = "object_info";
constexpr std::string_view kErrorInfoBody = "error";

// ----- error bodies

bool read(const json::value& v, ErrorInfo& out, Ctx& c, const Path& p) {
  Obj o(v, c, p);
  return o && o.req("type", out.type) && o.req("message", out.message) &&
         o.req("details", out.details) && o.req("extra_info", out.extra_info) &&
         o.rest(out.extra);
}

bool read_node_errors(const json::value& v, std::vector<NodeError>& out, Ctx& c, const Path& p) {
  if (!v.is_object()) return c.expected(p, "an object", v);
  out.clear();
  for (const auto& kv : v.get_object()) {
    const Path at = p.field(kv.key());
    NodeError& e = out.emplace_back();
    e.node_id = kv.key();
    Obj o(kv.value(), c, at);
    if (!(o && o.req("errors", e.errors) && o.req("dependent_outputs", e.dependent_outputs) &&
          o.req("class_type", e.class_type) && o.rest(e.extra))) {
      return false;
    }
  }
  return true;
}

json::value node_errors_json(const std::vector<NodeError>& errors) {
  json::object o;
  for (const auto& e : errors) {
    json::object entry;
    json::array list;
    for (const auto& info : e.errors) list.push_back(info.to_json());
    entry.emplace("errors", std::move(list));
    entry.emplace("dependent_outputs", strings_json(e.dependent_outputs));
    entry.emplace("class_type", e.class_type);
    append_extra(entry, e.extra);
    o.emplace(e.node_id, std::move(entry));
  }
  return o;
}

// ----- queue

bool read(const json::value& v, QueueItem& out, Ctx& c, const Path& p) {
  constexpr std::string_view kShape = "[number, prompt_id, prompt, extra_data, outputs]";
  if (!v.is_array()) return c.expected(p, "a " + std::string(kShape) + " array", v);
  const auto& arr = v.get_array();
  if (arr.size() < 5) {
    return c.fail(p, "expected 5 elements " + std::string(kShape) + ", found " +
                         std::to_string(arr.size()));
  }
  if (!read(arr[0], out.number, c, p.at(0)) || !read(arr[1], out.prompt_id, c, p.at(1)) ||
      !read(arr[2], out.prompt, c, p.at(2)) || !read(arr[3], out.extra_data, c, p.at(3)) ||
      !read(arr[4], out.outputs_to_execute, c, p.at(4))) {
    return false;
  }
  out.extra_elements.clear();
  for (std::size_t i = 5; i < arr.size(); ++i) out.extra_elements.push_back(arr[i]);
  return true;
}

json::array queue_items_json(const std::vector<QueueItem>& items) {
  json::array arr;
  arr.reserve(items.size());
  for (const auto& item : items) arr.push_back(item.to_json());
  return arr;
}

// ----- history

bool read(const json::value& v, HistoryStatus& out, Ctx& c, const Path& p) {
  Obj o(v, c, p);
  if (!(o && o.req("status_str", out.status_str) && o.req("completed", out.completed))) {
    return false;
  }
  const json::value* messages = o.take("messages");
  if (messages == nullptr) return c.fail(p, "missing field \"messages\"");
  const Path mp = p.field("messages");
  if (!messages->is_array()) return c.expected(mp, "an array", *messages);
  out.messages.clear();
  const auto& arr = messages->get_array();
  out.messages.reserve(arr.size());
  for (std::size_t i = 0; i < arr.size(); ++i) {
    const Path at = mp.at(i);
    const auto* pair = arr[i].if_array();
    if (pair == nullptr || pair->size() != 2 || !(*pair)[0].is_string()) {
      return c.fail(at, "expected an [event_name, data] pair");
    }
    auto event = event_from_json((*pair)[0].get_string(), (*pair)[1]);
    if (!event) return c.fail(at, event.error().message);
    out.messages.push_back(std::move(*event));
  }
  return o.rest(out.extra);
}

json::value history_status_json(const HistoryStatus& s) {
  json::object o;
  o.emplace("status_str", s.status_str);
  o.emplace("completed", s.completed);
  json::array messages;
  messages.reserve(s.messages.size());
  for (const auto& e : s.messages) {
    json::array pair;
    pair.emplace_back(type_name(e));
    pair.push_back(event_data_to_json(e));
    messages.push_back(std::move(pair));
  }
  o.emplace("messages", std::move(messages));
  append_extra(o, s.extra);
  return o;
}

bool read_history_entry(const json::value& v, HistoryEntry& out, Ctx& c, const Path& p) {
  Obj o(v, c, p);
  return o && o.req("prompt", out.prompt) && o.req("outputs", out.outputs) &&
         o.opt("status", out.status) && o.opt("meta", out.meta) && o.rest(out.extra);
}

// ----- system stats

bool read(const json::value& v, SystemInfo& out, Ctx& c, const Path& p) {
  Obj o(v, c, p);
  return o && o.req("os", out.os) && o.req("ram_total", out.ram_total) &&
         o.req("ram_free", out.ram_free) && o.opt("comfyui_version", out.comfyui_version) &&
         o.opt_nullable("required_frontend_version", out.required_frontend_version) &&
         o.opt_nullable("installed_templates_version", out.installed_templates_version) &&
         o.opt_nullable("required_templates_version", out.required_templates_version) &&
         o.req("python_version", out.python_version) &&
         o.req("pytorch_version", out.pytorch_version) &&
         o.req("embedded_python", out.embedded_python) && o.opt("argv", out.argv) &&
         o.rest(out.extra);
}

bool read(const json::value& v, DeviceInfo& out, Ctx& c, const Path& p) {
  Obj o(v, c, p);
  return o && o.req("name", out.name) && o.req("type", out.type) &&
         o.nullable("index", out.index) && o.req("vram_total", out.vram_total) &&
         o.req("vram_free", out.vram_free) && o.req("torch_vram_total", out.torch_vram_total) &&
         o.req("torch_vram_free", out.torch_vram_free) && o.rest(out.extra);
}

void put_optional_nullable(json::object& o, std::string_view key,
                           const OptionalNullableString& value) {
  if (!value) return;
  o.emplace(key, optional_string_json(*value));
}

// ----- object info

bool read(const json::value& v, InputSpec& out, Ctx& c, const Path& p) {
  if (v.is_string()) {
    out.bare = true;
    out.type.emplace<std::string>(v.get_string().data(), v.get_string().size());
    return true;
  }
  if (!v.is_array()) return c.expected(p, "an input spec [type, options]", v);
  const auto& arr = v.get_array();
  if (arr.empty()) return c.fail(p, "expected an input spec [type, options], found []");
  out.bare = false;
  if (!read(arr[0], out.type, c, p.at(0))) return false;
  if (arr.size() >= 2) {
    if (!arr[1].is_object()) return c.expected(p.at(1), "an options object", arr[1]);
    out.options = arr[1].get_object();
  }
  for (std::size_t i = 2; i < arr.size(); ++i) out.extra_elements.push_back(arr[i]);
  return true;
}

json::value input_spec_json(const InputSpec& spec) {
  if (spec.bare && std::holds_alternative<std::string>(spec.type) && !spec.options &&
      spec.extra_elements.empty()) {
    return json::value(std::get<std::string>(spec.type));
  }
  json::array arr;
  arr.push_back(slot_json(spec.type));
  if (spec.options) arr.emplace_back(*spec.options);
  for (const auto& e : spec.extra_elements) arr.push_back(e);
  return arr;
}

bool read_input_group(const json::value& v, std::vector<InputSpec>& out, Ctx& c, const Path& p) {
  if (!v.is_object()) return c.expected(p, "an object", v);
  out.clear();
  for (const auto& kv : v.get_object()) {
    InputSpec& spec = out.emplace_back();
    spec.name = kv.key();
    if (!read(kv.value(), spec, c, p.field(kv.key()))) return false;
  }
  return true;
}

json::object input_group_json(const std::vector<InputSpec>& group) {
  json::object o;
  for (const auto& spec : group) o.emplace(spec.name, input_spec_json(spec));
  return o;
}

bool read(const json::value& v, InputOrder& out, Ctx& c, const Path& p) {
  Obj o(v, c, p);
  return o && o.opt("required", out.required) && o.opt("optional", out.optional) &&
         o.opt("hidden", out.hidden) && o.rest(out.extra);
}

json::value input_order_json(const InputOrder& order) {
  json::object o;
  if (order.required) o.emplace("required", strings_json(*order.required));
  if (order.optional) o.emplace("optional", strings_json(*order.optional));
  if (order.hidden) o.emplace("hidden", strings_json(*order.hidden));
  append_extra(o, order.extra);
  return o;
}

bool read_node_class(const json::value& v, NodeClassInfo& out, Ctx& c, const Path& p) {
  Obj o(v, c, p);
  if (!o) return false;
  const json::value* input = o.take("input");
  if (input == nullptr) return c.fail(p, "missing field \"input\"");
  const Path ip = p.field("input");
  Obj in(*input, c, ip);
  if (!in) return false;
  struct Group {
    std::string_view key;
    std::optional<std::vector<InputSpec>>* slot;
  };
  for (const Group& g : {Group{"required", &out.required}, Group{"optional", &out.optional},
                         Group{"hidden", &out.hidden}}) {
    const json::value* gv = in.take(g.key);
    if (gv == nullptr) {
      g.slot->reset();
    } else if (!read_input_group(*gv, g.slot->emplace(), c, ip.field(g.key))) {
      return false;
    }
  }
  in.rest(out.input_extra);
  return o.opt("input_order", out.input_order) && o.req("output", out.output) &&
         o.req("output_is_list", out.output_is_list) && o.req("output_name", out.output_name) &&
         o.req("name", out.name) && o.nullable("display_name", out.display_name) &&
         o.opt("description", out.description) && o.req("python_module", out.python_module) &&
         o.req("category", out.category) && o.req("output_node", out.output_node) &&
         o.rest(out.extra);
}

}  // namespace

// ===============================================================================================
// PromptRequest

Result<PromptRequest> PromptRequest::from_json(const json::value& body) {
  return read_body<PromptRequest>(
      body, Errc::kInvalidArgument, kPromptRequestBody,
      [](const json::value& v, PromptRequest& out, Ctx& c, const Path& p) {
        Obj o(v, c, p);
        return o && o.req("prompt", out.prompt) && o.opt("client_id", out.client_id) &&
               o.opt("prompt_id", out.prompt_id) && o.opt("number", out.number) &&
               o.opt("front", out.front) && o.opt("extra_data", out.extra_data) &&
               o.opt("partial_execution_targets", out.partial_execution_targets) &&
               o.rest(out.extra);
      });
}

Result<PromptRequest> PromptRequest::parse(std::string_view text) {
  return parse_body<PromptRequest>(text, Errc::kInvalidArgument, kPromptRequestBody);
}

json::value PromptRequest::to_json() const {
  json::object o;
  o.emplace("prompt", prompt);
  if (client_id) o.emplace("client_id", *client_id);
  if (prompt_id) o.emplace("prompt_id", *prompt_id);
  if (number) o.emplace("number", number_json(*number));
  if (front) o.emplace("front", *front);
  if (extra_data) o.emplace("extra_data", *extra_data);
  if (partial_execution_targets) {
    o.emplace("partial_execution_targets", strings_json(*partial_execution_targets));
  }
  append_extra(o, extra);
  return o;
}

// ===============================================================================================
// ErrorInfo, PromptResponse, PromptErrorResponse

Result<ErrorInfo> ErrorInfo::from_json(const json::value& body) {
  return read_body<ErrorInfo>(body, Errc::kProtocol, kErrorInfoBody,
                              [](const json::value& v, ErrorInfo& out, Ctx& c, const Path& p) {
                                return read(v, out, c, p);
                              });
}

json::value ErrorInfo::to_json() const {
  json::object o;
  o.emplace("type", type);
  o.emplace("message", message);
  o.emplace("details", details);
  o.emplace("extra_info", extra_info);
  append_extra(o, extra);
  return o;
}

Result<PromptResponse> PromptResponse::from_json(const json::value& body) {
  return read_body<PromptResponse>(
      body, Errc::kProtocol, kPromptResponseBody,
      [](const json::value& v, PromptResponse& out, Ctx& c, const Path& p) {
        Obj o(v, c, p);
        if (!(o && o.req("prompt_id", out.prompt_id) && o.req("number", out.number))) {
          return false;
        }
        const json::value* errors = o.take("node_errors");
        if (errors == nullptr) return c.fail(p, "missing field \"node_errors\"");
        return read_node_errors(*errors, out.node_errors, c, p.field("node_errors")) &&
               o.rest(out.extra);
      });
}

Result<PromptResponse> PromptResponse::parse(std::string_view text) {
  return parse_body<PromptResponse>(text, Errc::kProtocol, kPromptResponseBody);
}

json::value PromptResponse::to_json() const {
  json::object o;
  o.emplace("prompt_id", prompt_id);
  o.emplace("number", number_json(number));
  o.emplace("node_errors", node_errors_json(node_errors));
  append_extra(o, extra);
  return o;
}

Result<PromptErrorResponse> PromptErrorResponse::from_json(const json::value& body) {
  return read_body<PromptErrorResponse>(
      body, Errc::kProtocol, kPromptErrorBody,
      [](const json::value& v, PromptErrorResponse& out, Ctx& c, const Path& p) {
        Obj o(v, c, p);
        if (!(o && o.req("error", out.error))) return false;
        const json::value* errors = o.take("node_errors");
        if (errors == nullptr) return c.fail(p, "missing field \"node_errors\"");
        return read_node_errors(*errors, out.node_errors, c, p.field("node_errors")) &&
               o.rest(out.extra);
      });
}

Result<PromptErrorResponse> PromptErrorResponse::parse(std::string_view text) {
  return parse_body<PromptErrorResponse>(text, Errc::kProtocol, kPromptErrorBody);
}

json::value PromptErrorResponse::to_json() const {
  json::object o;
  o.emplace("error", error.to_json());
  o.emplace("node_errors", node_errors_json(node_errors));
  append_extra(o, extra);
  return o;
}

// ===============================================================================================
// Queue

Result<QueueItem> QueueItem::from_json(const json::value& body) {
  return read_body<QueueItem>(body, Errc::kProtocol, kQueueItemBody,
                              [](const json::value& v, QueueItem& out, Ctx& c, const Path& p) {
                                return read(v, out, c, p);
                              });
}

json::value QueueItem::to_json() const {
  json::array arr;
  arr.reserve(5 + extra_elements.size());
  arr.push_back(number_json(number));
  arr.emplace_back(prompt_id);
  arr.emplace_back(prompt);
  arr.emplace_back(extra_data);
  arr.emplace_back(strings_json(outputs_to_execute));
  for (const auto& e : extra_elements) arr.push_back(e);
  return arr;
}

Result<QueueSnapshot> QueueSnapshot::from_json(const json::value& body) {
  return read_body<QueueSnapshot>(
      body, Errc::kProtocol, kQueueBody,
      [](const json::value& v, QueueSnapshot& out, Ctx& c, const Path& p) {
        Obj o(v, c, p);
        return o && o.req("queue_running", out.running) &&
               o.req("queue_pending", out.pending) && o.rest(out.extra);
      });
}

Result<QueueSnapshot> QueueSnapshot::parse(std::string_view text) {
  return parse_body<QueueSnapshot>(text, Errc::kProtocol, kQueueBody);
}

json::value QueueSnapshot::to_json() const {
  json::object o;
  o.emplace("queue_running", queue_items_json(running));
  o.emplace("queue_pending", queue_items_json(pending));
  append_extra(o, extra);
  return o;
}

Result<ExecInfo> ExecInfo::from_json(const json::value& body) {
  return read_body<ExecInfo>(
      body, Errc::kProtocol, kExecInfoBody,
      [](const json::value& v, ExecInfo& out, Ctx& c, const Path& p) {
        Obj o(v, c, p);
        if (!o) return false;
        const json::value* info = o.take("exec_info");
        if (info == nullptr) return c.fail(p, "missing field \"exec_info\"");
        const Path ip = p.field("exec_info");
        Obj in(*info, c, ip);
        return in && in.req("queue_remaining", out.queue_remaining) && in.rest(out.extra);
      });
}

Result<ExecInfo> ExecInfo::parse(std::string_view text) {
  return parse_body<ExecInfo>(text, Errc::kProtocol, kExecInfoBody);
}

json::value ExecInfo::to_json() const {
  json::object info;
  info.emplace("queue_remaining", queue_remaining);
  append_extra(info, extra);
  json::object o;
  o.emplace("exec_info", std::move(info));
  return o;
}

// ===============================================================================================
// History

const HistoryEntry* History::find(std::string_view prompt_id) const noexcept {
  for (const auto& e : entries) {
    if (e.prompt_id == prompt_id) return &e;
  }
  return nullptr;
}

Result<History> History::from_json(const json::value& body) {
  return read_body<History>(body, Errc::kProtocol, kHistoryBody,
                            [](const json::value& v, History& out, Ctx& c, const Path& p) {
                              if (!v.is_object()) return c.expected(p, "an object", v);
                              out.entries.clear();
                              out.entries.reserve(v.get_object().size());
                              for (const auto& kv : v.get_object()) {
                                HistoryEntry& e = out.entries.emplace_back();
                                e.prompt_id = kv.key();
                                if (!read_history_entry(kv.value(), e, c, p.field(kv.key()))) {
                                  return false;
                                }
                              }
                              return true;
                            });
}

Result<History> History::parse(std::string_view text) {
  return parse_body<History>(text, Errc::kProtocol, kHistoryBody);
}

json::value History::to_json() const {
  json::object o;
  o.reserve(entries.size());
  for (const auto& e : entries) {
    json::object entry;
    entry.emplace("prompt", e.prompt.to_json());
    entry.emplace("outputs", e.outputs);
    if (e.status) entry.emplace("status", history_status_json(*e.status));
    if (e.meta) entry.emplace("meta", *e.meta);
    append_extra(entry, e.extra);
    o.emplace(e.prompt_id, std::move(entry));
  }
  return o;
}

// ===============================================================================================
// SystemStats, Features

Result<SystemStats> SystemStats::from_json(const json::value& body) {
  return read_body<SystemStats>(
      body, Errc::kProtocol, kSystemStatsBody,
      [](const json::value& v, SystemStats& out, Ctx& c, const Path& p) {
        Obj o(v, c, p);
        return o && o.req("system", out.system) && o.req("devices", out.devices) &&
               o.rest(out.extra);
      });
}

Result<SystemStats> SystemStats::parse(std::string_view text) {
  return parse_body<SystemStats>(text, Errc::kProtocol, kSystemStatsBody);
}

json::value SystemStats::to_json() const {
  json::object sys;
  sys.emplace("os", system.os);
  sys.emplace("ram_total", system.ram_total);
  sys.emplace("ram_free", system.ram_free);
  if (system.comfyui_version) sys.emplace("comfyui_version", *system.comfyui_version);
  put_optional_nullable(sys, "required_frontend_version", system.required_frontend_version);
  put_optional_nullable(sys, "installed_templates_version", system.installed_templates_version);
  put_optional_nullable(sys, "required_templates_version", system.required_templates_version);
  sys.emplace("python_version", system.python_version);
  sys.emplace("pytorch_version", system.pytorch_version);
  sys.emplace("embedded_python", system.embedded_python);
  if (system.argv) sys.emplace("argv", strings_json(*system.argv));
  append_extra(sys, system.extra);

  json::array devs;
  devs.reserve(devices.size());
  for (const auto& d : devices) {
    json::object dev;
    dev.emplace("name", d.name);
    dev.emplace("type", d.type);
    if (d.index) {
      dev.emplace("index", *d.index);
    } else {
      dev.emplace("index", nullptr);
    }
    dev.emplace("vram_total", d.vram_total);
    dev.emplace("vram_free", d.vram_free);
    dev.emplace("torch_vram_total", d.torch_vram_total);
    dev.emplace("torch_vram_free", d.torch_vram_free);
    append_extra(dev, d.extra);
    devs.push_back(std::move(dev));
  }

  json::object o;
  o.emplace("system", std::move(sys));
  o.emplace("devices", std::move(devs));
  append_extra(o, extra);
  return o;
}

Result<Features> Features::from_json(const json::value& body) {
  return read_body<Features>(
      body, Errc::kProtocol, kFeaturesBody,
      [](const json::value& v, Features& out, Ctx& c, const Path& p) {
        Obj o(v, c, p);
        return o && o.opt("supports_preview_metadata", out.supports_preview_metadata) &&
               o.opt("max_upload_size", out.max_upload_size) && o.rest(out.extra);
      });
}

Result<Features> Features::parse(std::string_view text) {
  return parse_body<Features>(text, Errc::kProtocol, kFeaturesBody);
}

json::value Features::to_json() const {
  json::object o;
  if (supports_preview_metadata) o.emplace("supports_preview_metadata", *supports_preview_metadata);
  if (max_upload_size) o.emplace("max_upload_size", number_json(*max_upload_size));
  append_extra(o, extra);
  return o;
}

// ===============================================================================================
// ObjectInfo

bool InputSpec::is_combo() const noexcept {
  if (std::holds_alternative<json::array>(type)) return true;
  return std::get<std::string>(type) == "COMBO";
}

const json::array* InputSpec::combo_choices() const noexcept {
  if (const auto* list = std::get_if<json::array>(&type)) return list;
  if (std::get<std::string>(type) != "COMBO" || !options) return nullptr;
  const json::value* choices = options->if_contains("options");
  return choices != nullptr ? choices->if_array() : nullptr;
}

std::vector<std::string_view> InputSpec::types() const {
  std::vector<std::string_view> out;
  if (std::holds_alternative<json::array>(type)) {
    out.emplace_back("COMBO");
    return out;
  }
  std::string_view rest = std::get<std::string>(type);
  while (true) {
    const auto comma = rest.find(',');
    out.push_back(rest.substr(0, comma));
    if (comma == std::string_view::npos) break;
    rest.remove_prefix(comma + 1);
  }
  return out;
}

std::span<const InputSpec> NodeClassInfo::required_inputs() const noexcept {
  if (!required) return {};
  return *required;
}

const InputSpec* NodeClassInfo::find_input(std::string_view input) const noexcept {
  for (const auto* group : {&required, &optional, &hidden}) {
    if (!*group) continue;
    for (const auto& spec : **group) {
      if (spec.name == input) return &spec;
    }
  }
  return nullptr;
}

const json::array* NodeClassInfo::combo_choices(std::string_view input) const noexcept {
  const InputSpec* spec = find_input(input);
  return spec != nullptr ? spec->combo_choices() : nullptr;
}

json::value NodeClassInfo::to_json() const {
  json::object in;
  if (required) in.emplace("required", input_group_json(*required));
  if (optional) in.emplace("optional", input_group_json(*optional));
  if (hidden) in.emplace("hidden", input_group_json(*hidden));
  append_extra(in, input_extra);

  json::object o;
  o.emplace("input", std::move(in));
  if (input_order) o.emplace("input_order", input_order_json(*input_order));
  json::array outputs;
  outputs.reserve(output.size());
  for (const auto& slot : output) outputs.push_back(slot_json(slot));
  o.emplace("output", std::move(outputs));
  json::array is_list;
  is_list.reserve(output_is_list.size());
  for (const bool b : output_is_list) is_list.emplace_back(b);
  o.emplace("output_is_list", std::move(is_list));
  o.emplace("output_name", strings_json(output_name));
  o.emplace("name", name);
  o.emplace("display_name", optional_string_json(display_name));
  if (description) o.emplace("description", *description);
  o.emplace("python_module", python_module);
  o.emplace("category", category);
  o.emplace("output_node", output_node);
  append_extra(o, extra);
  return o;
}

const NodeClassInfo* ObjectInfo::find(std::string_view class_type) const noexcept {
  for (const auto& c : classes) {
    if (c.class_type == class_type) return &c;
  }
  return nullptr;
}

Result<ObjectInfo> ObjectInfo::from_json(const json::value& body) {
  return read_body<ObjectInfo>(body, Errc::kProtocol, kObjectInfoBody,
                               [](const json::value& v, ObjectInfo& out, Ctx& c, const Path& p) {
                                 if (!v.is_object()) return c.expected(p, "an object", v);
                                 out.classes.clear();
                                 out.classes.reserve(v.get_object().size());
                                 for (const auto& kv : v.get_object()) {
                                   NodeClassInfo& info = out.classes.emplace_back();
                                   info.class_type = kv.key();
                                   if (!read_node_class(kv.value(), info, c, p.field(kv.key()))) {
                                     return false;
                                   }
                                 }
                                 return true;
                               });
}

Result<ObjectInfo> ObjectInfo::parse(std::string_view text) {
  return parse_body<ObjectInfo>(text, Errc::kProtocol, kObjectInfoBody);
}

json::value ObjectInfo::to_json() const {
  json::object o;
  o.reserve(classes.size());
  for (const auto& c : classes) o.emplace(c.class_type, c.to_json());
  return o;
}

}  // namespace comfyfarm::comfy
