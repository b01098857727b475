// validate_prompt: ComfyUI's validate_prompt/validate_inputs (execution.py at 0.3.64, commit
// a125cd84), with the Python semantics they lean on (int(), float(), str(), bool(), ==, <, repr,
// dict lookups that raise) spelled out, so the bodies match a real server's byte for byte.
#include "comfy/prompt_validator.hpp"

#include "comfy/python_repr.hpp"

#include "comfy/workflow.hpp"

#include <boost/json/array.hpp>
#include <boost/json/string.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>

namespace comfyfarm::comfy {

namespace detail {

/// A class whose VALIDATE_INPUTS checks that a file exists: its min/max/list checks are skipped
/// for that input (ComfyUI skips them for every input the function takes).
struct FileRule {
  std::string_view class_type;
  std::string_view input;
  std::string_view noun;      ///< "Invalid <noun> file: <value>"
  std::string_view qualname;  ///< for the TypeError when the input is absent
  std::string_view file;      ///< where the check lives, for the traceback
  int line = 0;
  std::string_view func;
};

struct InputRef {
  const InputSpec* spec = nullptr;
  bool required = false;
};

/// What validation needs of one class, computed once.
struct ClassEntry {
  const NodeClassInfo* info = nullptr;
  const FileRule* file_rule = nullptr;
  std::vector<InputRef> inputs;  ///< required, then optional (a name in both counts as required)
};

struct NodeCatalogImpl {
  ObjectInfo info;
  std::unordered_map<std::string_view, ClassEntry> classes;
};

const NodeCatalogImpl& catalog_impl(const NodeCatalog& catalog) noexcept { return *catalog.impl_; }

}  // namespace detail

namespace {

using detail::ClassEntry;
using detail::FileRule;
using detail::InputRef;

// The file-backed inputs of ComfyUI's core nodes (nodes.py, comfy_extras) at 0.3.64.
constexpr std::array<FileRule, 6> kFileRules = {{
    {"LoadImage", "image", "image", "LoadImage.VALIDATE_INPUTS", "nodes.py", 1701,
     "VALIDATE_INPUTS"},
    {"LoadImageMask", "image", "image", "LoadImageMask.VALIDATE_INPUTS", "nodes.py", 1750,
     "VALIDATE_INPUTS"},
    {"LoadImageOutput", "image", "image", "LoadImage.VALIDATE_INPUTS", "nodes.py", 1701,
     "VALIDATE_INPUTS"},
    {"LoadLatent", "latent", "latent", "LoadLatent.VALIDATE_INPUTS", "nodes.py", 538,
     "VALIDATE_INPUTS"},
    {"LoadAudio", "audio", "audio", "LoadAudio.VALIDATE_INPUTS", "comfy_extras/nodes_audio.py",
     347, "VALIDATE_INPUTS"},
    {"LoadVideo", "file", "video", "LoadVideo.validate_inputs", "comfy_extras/nodes_video.py",
     200, "validate_inputs"},
}};

ClassEntry make_entry(const NodeClassInfo& info) {
  ClassEntry e;
  e.info = &info;
  for (const auto& rule : kFileRules) {
    if (rule.class_type == info.class_type) {
      e.file_rule = &rule;
      break;
    }
  }
  const std::size_t n = (info.required ? info.required->size() : 0) +
                        (info.optional ? info.optional->size() : 0);
  e.inputs.reserve(n);
  if (info.required) {
    for (const auto& spec : *info.required) e.inputs.push_back({&spec, true});
  }
  if (info.optional) {
    for (const auto& spec : *info.optional) {
      const bool dup = info.required && std::any_of(info.required->begin(), info.required->end(),
                                                    [&](const InputSpec& r) {
                                                      return r.name == spec.name;
                                                    });
      if (!dup) e.inputs.push_back({&spec, false});
    }
  }
  return e;
}

// ---------------------------------------------------------------------------------------------
// Python values: JSON read as the Python objects json.loads makes of it.

static_assert(std::numeric_limits<long double>::digits >= 64,
              "exact int/float comparisons need a 64-bit long double mantissa");

std::string_view py_type_name(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::null: return "NoneType";
    case json::kind::bool_: return "bool";
    case json::kind::int64:
    case json::kind::uint64: return "int";
    case json::kind::double_: return "float";
    case json::kind::string: return "str";
    case json::kind::array: return "list";
    case json::kind::object: return "dict";
  }
  return "object";
}

// bool, int and float as one exact number (long double holds every int64, uint64 and double).
std::optional<long double> py_number(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::bool_: return v.get_bool() ? 1.0L : 0.0L;
    case json::kind::int64: return static_cast<long double>(v.get_int64());
    case json::kind::uint64: return static_cast<long double>(v.get_uint64());
    case json::kind::double_: return static_cast<long double>(v.get_double());
    default: return std::nullopt;
  }
}

// Python's ==.
bool py_equal(const json::value& a, const json::value& b) {
  const auto na = py_number(a);
  const auto nb = py_number(b);
  if (na || nb) return na && nb && *na == *nb;
  if (a.kind() != b.kind()) return false;
  switch (a.kind()) {
    case json::kind::null: return true;
    case json::kind::string: return a.get_string() == b.get_string();
    case json::kind::array: {
      const auto& x = a.get_array();
      const auto& y = b.get_array();
      if (x.size() != y.size()) return false;
      for (std::size_t i = 0; i < x.size(); ++i) {
        if (!py_equal(x[i], y[i])) return false;
      }
      return true;
    }
    case json::kind::object: {
      const auto& x = a.get_object();
      const auto& y = b.get_object();
      if (x.size() != y.size()) return false;
      for (const auto& kv : x) {
        const json::value* other = y.if_contains(kv.key());
        if (other == nullptr || !py_equal(kv.value(), *other)) return false;
      }
      return true;
    }
    default: return false;
  }
}

/// A Python exception escaping validate_inputs: type name, str(exception), and the traceback
/// frames from the raising frame inwards (format_tb strings).
struct PyError {
  std::string type;
  std::string message;
  std::vector<std::string> frames;
};

std::string tb_frame(std::string_view file, int line, std::string_view func,
                     std::string_view code, int col = 0, int tildes = 0, int carets = 0) {
  std::string s = "  File \"ComfyUI/";
  s += file;
  s += "\", line ";
  s += std::to_string(line);
  s += ", in ";
  s += func;
  s += "\n    ";
  s += code;
  s += '\n';
  if (carets > 0) {
    s.append(static_cast<std::size_t>(col), ' ');
    s.append(static_cast<std::size_t>(tildes), '~');
    s.append(static_cast<std::size_t>(carets), '^');
    s += '\n';
  }
  return s;
}

// The lines of execution.py (0.3.64) where validation raises or catches.
std::string frame_inner_call() {
  return tb_frame("execution.py", 808, "validate_inputs",
                  "r = await validate_inputs(prompt_id, prompt, o_id, validated)", 8, 0, 57);
}
std::string frame_top_call() {
  return tb_frame("execution.py", 1010, "validate_prompt",
                  "m = await validate_inputs(prompt_id, prompt, o, validated)", 8, 0, 54);
}
std::string frame_inputs_key() {
  return tb_frame("execution.py", 730, "validate_inputs", "inputs = prompt[unique_id]['inputs']",
                  13, 17, 10);
}
std::string frame_contains() {
  return tb_frame("execution.py", 757, "validate_inputs", "if x not in inputs:", 7, 0, 15);
}
std::string frame_getitem() {
  return tb_frame("execution.py", 770, "validate_inputs", "val = inputs[x]", 10, 6, 3);
}
std::string frame_link_lookup() {
  return tb_frame("execution.py", 788, "validate_inputs",
                  "o_class_type = prompt[o_id]['class_type']", 19, 6, 6);
}
std::string frame_output_index() {
  return tb_frame("execution.py", 790, "validate_inputs", "received_type = r[val[1]]", 20, 1, 8);
}
std::string frame_bound(bool min) {
  return min ? tb_frame("execution.py", 869, "validate_inputs",
                        R"(if "min" in extra_info and val < extra_info["min"]:)", 31, 0, 23)
             : tb_frame("execution.py", 882, "validate_inputs",
                        R"(if "max" in extra_info and val > extra_info["max"]:)", 31, 0, 23);
}
std::string frame_custom_call() {
  constexpr std::string_view kCall =
      "await _async_map_node_over_list(prompt_id, unique_id, obj_class, input_filtered, "
      "validate_function_name, hidden_inputs=hidden_inputs)";
  return tb_frame("execution.py", 932, "validate_inputs",
                  std::string("ret = ") + std::string(kCall), 10, 0,
                  static_cast<int>(kCall.size()));
}

/// An exception in flight: null when validation returned normally. A pointer, so that the
/// recursive frames stay small.
using Raised = std::unique_ptr<PyError>;

[[gnu::noinline]] Raised raised(PyError e) { return std::make_unique<PyError>(std::move(e)); }

[[gnu::noinline]] Raised recursion_error() {
  return raised(
      PyError{"RecursionError", "maximum recursion depth exceeded", {frame_inner_call()}});
}

// Python's `a < b` / `a > b` as validate_inputs uses them for min and max.
std::variant<bool, PyError> py_compare(const json::value& a, const json::value& b, bool less,
                                       bool min_site) {
  const auto na = py_number(a);
  const auto nb = py_number(b);
  if (na && nb) return less ? *na < *nb : *na > *nb;
  if (a.is_string() && b.is_string()) {
    const std::string_view x = a.get_string();
    const std::string_view y = b.get_string();
    return less ? x < y : x > y;  // UTF-8 byte order is code point order
  }
  std::string msg = less ? "'<'" : "'>'";
  msg += " not supported between instances of '";
  msg += py_type_name(a);
  msg += "' and '";
  msg += py_type_name(b);
  msg += "'";
  return PyError{"TypeError", std::move(msg), {frame_bound(min_site)}};
}

// ---- literal conversion: int(), float(), str(), bool()

struct Conversion {
  std::optional<json::value> value;  ///< set on success
  std::string error;                 ///< str(exception) on failure
};

Conversion converted(json::value v) { return Conversion{std::move(v), {}}; }
Conversion conversion_error(std::string message) {
  return Conversion{std::nullopt, std::move(message)};
}

std::string_view py_strip(std::string_view s) noexcept {
  constexpr std::string_view kSpace = " \t\n\r\v\f\x1c\x1d\x1e\x1f";
  const auto b = s.find_first_not_of(kSpace);
  if (b == std::string_view::npos) return {};
  const auto e = s.find_last_not_of(kSpace);
  return s.substr(b, e - b + 1);
}

// Digits with single underscores between them (Python's numeric literal grammar), underscores
// removed; nullopt when the grammar is not met.
std::optional<std::string> py_digits(std::string_view s) {
  if (s.empty()) return std::nullopt;
  std::string out;
  out.reserve(s.size());
  bool prev_digit = false;
  for (const char c : s) {
    if (c >= '0' && c <= '9') {
      out += c;
      prev_digit = true;
    } else if (c == '_' && prev_digit) {
      prev_digit = false;
    } else {
      return std::nullopt;
    }
  }
  if (!prev_digit) return std::nullopt;
  return out;
}

json::value integral_double_value(long double v) {
  constexpr long double kTwo63 = 9223372036854775808.0L;
  constexpr long double kTwo64 = 18446744073709551616.0L;
  if (v >= -kTwo63 && v < kTwo63) return json::value(static_cast<std::int64_t>(v));
  if (v >= 0 && v < kTwo64) return json::value(static_cast<std::uint64_t>(v));
  // Python would keep an exact big integer; JSON numbers here stop at 64 bits.
  return json::value(static_cast<double>(v));
}

Conversion py_int_from_string(std::string_view original) {
  auto invalid = [&] {
    return conversion_error("invalid literal for int() with base 10: " + py_repr_str(original));
  };
  std::string_view s = py_strip(original);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  const auto digits = py_digits(s);
  if (!digits) return invalid();
  std::uint64_t magnitude = 0;
  const auto [ptr, ec] =
      std::from_chars(digits->data(), digits->data() + digits->size(), magnitude);
  if (ec == std::errc::result_out_of_range || ptr != digits->data() + digits->size()) {
    double approx = 0;
    std::from_chars(digits->data(), digits->data() + digits->size(), approx);
    return converted(json::value(negative ? -approx : approx));
  }
  if (!negative) return converted(integral_double_value(static_cast<long double>(magnitude)));
  return converted(integral_double_value(-static_cast<long double>(magnitude)));
}

Conversion py_int(const json::value& v) {
  switch (v.kind()) {
    case json::kind::bool_: return converted(json::value(std::int64_t{v.get_bool() ? 1 : 0}));
    case json::kind::int64:
    case json::kind::uint64: return converted(v);
    case json::kind::double_: {
      const double d = v.get_double();
      if (std::isnan(d)) return conversion_error("cannot convert float NaN to integer");
      if (std::isinf(d)) return conversion_error("cannot convert float infinity to integer");
      return converted(integral_double_value(std::trunc(static_cast<long double>(d))));
    }
    case json::kind::string: return py_int_from_string(v.get_string());
    default:
      return conversion_error(
          "int() argument must be a string, a bytes-like object or a real number, not '" +
          std::string(py_type_name(v)) + "'");
  }
}

Conversion py_float_from_string(std::string_view original) {
  auto invalid = [&] {
    return conversion_error("could not convert string to float: " + py_repr_str(original));
  };
  std::string_view s = py_strip(original);
  bool negative = false;
  if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
    negative = s.front() == '-';
    s.remove_prefix(1);
  }
  std::string lower(s);
  std::transform(lower.begin(), lower.end(), lower.begin(), [](char c) {
    return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
  });
  if (lower == "inf" || lower == "infinity") {
    const double inf = std::numeric_limits<double>::infinity();
    return converted(json::value(negative ? -inf : inf));
  }
  if (lower == "nan") return converted(json::value(std::numeric_limits<double>::quiet_NaN()));

  // [digits][.digits][e[+-]digits], at least one mantissa digit; underscores between digits.
  const std::size_t e_pos = lower.find('e');
  const std::string_view mantissa = std::string_view(lower).substr(0, e_pos);
  std::string clean;
  const std::size_t dot = mantissa.find('.');
  const std::string_view int_part = mantissa.substr(0, dot);
  const std::string_view frac_part =
      dot == std::string_view::npos ? std::string_view{} : mantissa.substr(dot + 1);
  if (int_part.empty() && frac_part.empty()) return invalid();
  std::size_t int_digits = 0;
  if (!int_part.empty()) {
    const auto d = py_digits(int_part);
    if (!d) return invalid();
    clean += *d;
    int_digits = d->size();
  }
  if (dot != std::string_view::npos) {
    clean += '.';
    if (!frac_part.empty()) {
      const auto d = py_digits(frac_part);
      if (!d) return invalid();
      clean += *d;
    }
  }
  long exponent = 0;
  if (e_pos != std::string::npos) {
    std::string_view e = std::string_view(lower).substr(e_pos + 1);
    bool e_negative = false;
    if (!e.empty() && (e.front() == '+' || e.front() == '-')) {
      e_negative = e.front() == '-';
      e.remove_prefix(1);
    }
    const auto d = py_digits(e);
    if (!d) return invalid();
    clean += 'e';
    if (e_negative) clean += '-';
    clean += *d;
    std::from_chars(d->data(), d->data() + d->size(), exponent);
    if (e_negative) exponent = -exponent;
  }
  double value = 0;
  const auto [ptr, ec] = std::from_chars(clean.data(), clean.data() + clean.size(), value);
  if (ptr != clean.data() + clean.size()) return invalid();
  if (ec == std::errc::result_out_of_range) {
    // Python rounds to infinity or to zero instead of failing.
    const bool overflow = exponent + static_cast<long>(int_digits) > 0;
    value = overflow ? std::numeric_limits<double>::infinity() : 0.0;
  }
  return converted(json::value(negative ? -value : value));
}

Conversion py_float(const json::value& v) {
  if (const auto n = py_number(v)) return converted(json::value(static_cast<double>(*n)));
  if (const auto* s = v.if_string()) return py_float_from_string(*s);
  return conversion_error("float() argument must be a string or a real number, not '" +
                          std::string(py_type_name(v)) + "'");
}

bool py_truth(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::null: return false;
    case json::kind::bool_: return v.get_bool();
    case json::kind::int64: return v.get_int64() != 0;
    case json::kind::uint64: return v.get_uint64() != 0;
    case json::kind::double_: return v.get_double() != 0.0;  // NaN is true
    case json::kind::string: return !v.get_string().empty();
    case json::kind::array: return !v.get_array().empty();
    case json::kind::object: return !v.get_object().empty();
  }
  return false;
}

// ---------------------------------------------------------------------------------------------
// Schema pieces as JSON and as Python text.

json::value slot_json(const TypeSlot& slot) {
  if (const auto* s = std::get_if<std::string>(&slot)) return json::string(*s);
  return std::get<json::array>(slot);
}

std::string slot_str(const TypeSlot& slot) {
  if (const auto* s = std::get_if<std::string>(&slot)) return *s;
  std::string out;
  append_py_repr_list(std::get<json::array>(slot), out);
  return out;
}

// input_config: (input_type, extra_info) with {} for a spec without options.
json::value input_config(const InputSpec& spec) {
  json::array a;
  a.reserve(2);
  a.push_back(slot_json(spec.type));
  if (spec.options) {
    a.push_back(*spec.options);
  } else {
    a.push_back(json::object());
  }
  return a;
}

std::vector<std::string_view> split_types(std::string_view s) {
  std::vector<std::string_view> out;
  while (true) {
    const auto comma = s.find(',');
    std::string_view part = s.substr(0, comma);
    const auto b = part.find_first_not_of(" \t\n\r\v\f");
    const auto e = part.find_last_not_of(" \t\n\r\v\f");
    out.push_back(b == std::string_view::npos ? std::string_view{} : part.substr(b, e - b + 1));
    if (comma == std::string_view::npos) break;
    s.remove_prefix(comma + 1);
  }
  return out;
}

// comfy_execution/validation.py validate_node_input (non-strict), with "*" matching anything
// like IO.ANY's __ne__ override.
[[gnu::noinline]] bool types_match(const TypeSlot& received, const TypeSlot& input) {
  const auto* r = std::get_if<std::string>(&received);
  const auto* i = std::get_if<std::string>(&input);
  if ((r != nullptr && *r == "*") || (i != nullptr && *i == "*")) return true;
  if (r == nullptr || i == nullptr) {
    if (r != nullptr || i != nullptr) return false;
    const auto& x = std::get<json::array>(received);
    const auto& y = std::get<json::array>(input);
    return x.size() == y.size() && std::equal(x.begin(), x.end(), y.begin(), py_equal);
  }
  if (*r == *i) return true;
  const auto rs = split_types(*r);
  const auto is = split_types(*i);
  for (const auto a : rs) {
    for (const auto b : is) {
      if (a == b) return true;
    }
  }
  return false;
}

ErrorInfo make_reason(std::string type, std::string message, std::string details,
                      json::object extra_info) {
  ErrorInfo e;
  e.type = std::move(type);
  e.message = std::move(message);
  e.details = std::move(details);
  e.extra_info = std::move(extra_info);
  return e;
}

ErrorInfo top_error(std::string type, std::string message, std::string details) {
  return make_reason(std::move(type), std::move(message), std::move(details), json::object());
}

json::array strings_json(const std::vector<std::string>& v) {
  json::array a;
  a.reserve(v.size());
  for (const auto& s : v) a.emplace_back(s);
  return a;
}

// ---------------------------------------------------------------------------------------------
// Reasons and exceptions. Kept out of line: validation recurses once per upstream node, and the
// recursive frames should hold pointers, not JSON under construction.

[[gnu::noinline]] void add_missing_input(std::vector<ErrorInfo>& errors, std::string_view name) {
  json::object extra;
  extra.emplace("input_name", name);
  errors.push_back(make_reason("required_input_missing", "Required input is missing",
                               std::string(name), std::move(extra)));
}

[[gnu::noinline]] PyError inputs_key_error() {
  return PyError{"KeyError", "'inputs'", {frame_inputs_key()}};
}

[[gnu::noinline]] PyError inputs_not_iterable(const json::value& inputs) {
  return PyError{"TypeError",
                 "argument of type '" + std::string(py_type_name(inputs)) + "' is not iterable",
                 {frame_contains()}};
}

[[gnu::noinline]] PyError inputs_not_subscriptable(const json::value& inputs) {
  return PyError{"TypeError",
                 inputs.is_array() ? "list indices must be integers or slices, not str"
                                   : "string indices must be integers, not 'str'",
                 {frame_getitem()}};
}

[[gnu::noinline]] void add_bad_link(std::vector<ErrorInfo>& errors, const InputSpec& spec,
                                    const json::value& val) {
  json::object extra;
  extra.emplace("input_name", spec.name);
  extra.emplace("input_config", input_config(spec));
  extra.emplace("received_value", val);
  errors.push_back(make_reason("bad_linked_input",
                               "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                               spec.name, std::move(extra)));
}

// prompt[o_id] for an id that is not a key.
[[gnu::noinline]] PyError link_lookup_error(const json::value& o_id) {
  if (o_id.is_array() || o_id.is_object()) {
    return PyError{"TypeError", "unhashable type: '" + std::string(py_type_name(o_id)) + "'",
                   {frame_link_lookup()}};
  }
  return PyError{"KeyError", py_repr(o_id), {frame_link_lookup()}};
}

// RETURN_TYPES[index] that fails; in_range tells an integer that is out of range.
[[gnu::noinline]] PyError output_index_error(const json::value& index, bool integer,
                                             bool too_big) {
  if (!integer) {
    return PyError{"TypeError",
                   "tuple indices must be integers or slices, not " +
                       std::string(py_type_name(index)),
                   {frame_output_index()}};
  }
  if (too_big) {
    return PyError{"IndexError", "cannot fit 'int' into an index-sized integer",
                   {frame_output_index()}};
  }
  return PyError{"IndexError", "tuple index out of range", {frame_output_index()}};
}

[[gnu::noinline]] void add_mismatch(std::vector<ErrorInfo>& errors, const InputSpec& spec,
                                    const TypeSlot& received, const json::value& val) {
  std::string details(spec.name);
  details += ", received_type(";
  details += slot_str(received);
  details += ") mismatch input_type(";
  details += slot_str(spec.type);
  details += ')';
  json::object extra;
  extra.emplace("input_name", spec.name);
  extra.emplace("input_config", input_config(spec));
  extra.emplace("received_type", slot_json(received));
  extra.emplace("linked_node", val);
  errors.push_back(make_reason("return_type_mismatch", "Return type mismatch between linked nodes",
                               std::move(details), std::move(extra)));
}

[[gnu::noinline]] std::vector<ErrorInfo> inner_exception_reasons(const InputSpec& spec,
                                                                 Raised raised_error,
                                                                 const json::value& val) {
  PyError& err = *raised_error;
  std::vector<std::string> frames;
  frames.reserve(err.frames.size() + 1);
  frames.push_back(frame_inner_call());
  for (auto& f : err.frames) frames.push_back(std::move(f));
  json::object extra;
  extra.emplace("input_name", spec.name);
  extra.emplace("input_config", input_config(spec));
  extra.emplace("exception_message", err.message);
  extra.emplace("exception_type", err.type);
  extra.emplace("traceback", strings_json(frames));
  extra.emplace("linked_node", val);
  std::vector<ErrorInfo> reasons;
  reasons.push_back(make_reason("exception_during_inner_validation",
                                "Exception when validating inner node", std::move(err.message),
                                std::move(extra)));
  return reasons;
}

// ---------------------------------------------------------------------------------------------
// The validator: one call's state.

constexpr int kMaxDepth = 1000;

class Validator {
 public:
  Validator(json::object& prompt, const ValidateOptions& options)
      : prompt_(prompt), options_(options) {
    states_.resize(prompt.size());
  }

  void set_class(std::size_t idx, const ClassEntry* cls) { states_[idx].cls = cls; }

  // Step 3 and 4, once every node has a known class and the outputs are chosen.
  ValidationOutcome run(const std::vector<std::size_t>& outputs);

 private:
  struct NodeState {
    const ClassEntry* cls = nullptr;
    bool in_progress = false;
    bool recorded = false;  ///< in Python's `validated` dict
    bool valid = false;
    std::vector<ErrorInfo> reasons;
  };

  std::string_view id_of(std::size_t idx) const { return (prompt_.begin() + idx)->key(); }

  [[gnu::noinline]] void record(std::size_t idx, bool valid, std::vector<ErrorInfo> reasons);
  Raised validate_node(std::size_t idx, int depth);
  Raised validate_body(std::size_t idx, int depth);
  Raised validate_link(const InputRef& in, const json::value& val, int depth,
                       std::vector<ErrorInfo>& errors, bool& valid);
  [[gnu::noinline]] Raised validate_literal(const InputRef& in, json::value& slot,
                                            const FileRule* rule, std::vector<ErrorInfo>& errors);
  [[gnu::noinline]] Raised validate_file(const ClassEntry& cls, const json::value& inputs,
                                         std::vector<ErrorInfo>& errors);

  json::object& prompt_;
  const ValidateOptions& options_;
  std::vector<NodeState> states_;
  std::vector<std::size_t> validated_order_;  ///< insertion order of Python's `validated`
};

void Validator::record(std::size_t idx, bool valid, std::vector<ErrorInfo> reasons) {
  NodeState& st = states_[idx];
  if (!st.recorded) {
    st.recorded = true;
    validated_order_.push_back(idx);
    st.valid = valid;
    st.reasons = std::move(reasons);
    return;
  }
  // Only a cycle records a node before its own validation ends. ComfyUI would overwrite (and
  // lose) the RecursionError; keeping both is the useful reading.
  st.valid = st.valid && valid;
  for (auto& r : reasons) st.reasons.push_back(std::move(r));
}

Raised Validator::validate_node(std::size_t idx, int depth) {
  NodeState& st = states_[idx];
  if (st.recorded) return nullptr;
  if (st.in_progress || depth >= kMaxDepth) return recursion_error();
  st.in_progress = true;
  auto err = validate_body(idx, depth);
  states_[idx].in_progress = false;
  return err;
}

Raised Validator::validate_body(std::size_t idx, int depth) {
  json::object& node = (prompt_.begin() + idx)->value().get_object();
  const ClassEntry& cls = *states_[idx].cls;
  auto inputs_it = node.find("inputs");
  if (inputs_it == node.end()) return raised(inputs_key_error());
  json::value& inputs = inputs_it->value();

  std::vector<ErrorInfo> errors;
  bool valid = true;
  for (const InputRef& in : cls.inputs) {
    const std::string_view name = in.spec->name;
    // `x not in inputs` and `inputs[x]` on whatever "inputs" holds.
    json::value* slot = nullptr;
    if (auto* obj = inputs.if_object()) {
      auto it = obj->find(name);
      if (it != obj->end()) slot = &it->value();
    } else {
      bool present = false;
      if (const auto* arr = inputs.if_array()) {
        present = std::any_of(arr->begin(), arr->end(), [&](const json::value& e) {
          return e.is_string() && e.get_string() == name;
        });
      } else if (const auto* str = inputs.if_string()) {
        present = std::string_view(*str).find(name) != std::string_view::npos;
      } else {
        return raised(inputs_not_iterable(inputs));
      }
      if (present) return raised(inputs_not_subscriptable(inputs));
    }
    if (slot == nullptr) {
      if (in.required) add_missing_input(errors, name);
      continue;
    }
    if (slot->is_array()) {
      if (auto err = validate_link(in, *slot, depth, errors, valid)) return err;
      continue;
    }
    if (auto err = validate_literal(in, *slot, cls.file_rule, errors)) return err;
  }
  if (cls.file_rule != nullptr) {
    if (auto err = validate_file(cls, inputs, errors)) return err;
  }
  const bool ok = valid && errors.empty();
  record(idx, ok, std::move(errors));
  return nullptr;
}

Raised Validator::validate_link(const InputRef& in, const json::value& val, int depth,
                                std::vector<ErrorInfo>& errors, bool& valid) {
  const json::array& link = val.get_array();
  if (link.size() != 2) {
    add_bad_link(errors, *in.spec, val);
    return nullptr;
  }
  // o_class_type = prompt[o_id]['class_type']
  const json::value& o_id = link[0];
  const json::string* o_key = o_id.if_string();
  const auto it = o_key != nullptr ? prompt_.find(*o_key) : prompt_.end();
  if (it == prompt_.end()) return raised(link_lookup_error(o_id));
  const auto o_idx = static_cast<std::size_t>(it - prompt_.begin());

  // received_type = RETURN_TYPES[val[1]], with Python's negative indexes.
  const std::vector<TypeSlot>& outputs = states_[o_idx].cls->info->output;
  const json::value& index = link[1];
  const bool integer = index.is_int64() || index.is_uint64() || index.is_bool();
  if (!integer) return raised(output_index_error(index, false, false));
  const long double n = static_cast<long double>(outputs.size());
  long double pos = *py_number(index);
  if (pos >= 9223372036854775808.0L) return raised(output_index_error(index, true, true));
  if (pos < 0) pos += n;
  if (pos < 0 || pos >= n) return raised(output_index_error(index, true, false));
  const TypeSlot& received = outputs[static_cast<std::size_t>(pos)];
  if (!types_match(received, in.spec->type)) {
    add_mismatch(errors, *in.spec, received, val);
    return nullptr;
  }
  if (auto err = validate_node(o_idx, depth + 1)) {
    valid = false;
    record(o_idx, false, inner_exception_reasons(*in.spec, std::move(err), val));
    return nullptr;
  }
  if (!states_[o_idx].valid) valid = false;
  return nullptr;
}

Raised Validator::validate_literal(const InputRef& in, json::value& slot, const FileRule* rule,
                                   std::vector<ErrorInfo>& errors) {
  const std::string_view name = in.spec->name;
  const InputSpec& spec = *in.spec;
  // {"__value__": [...]} carries a list literal (a bare list would be a link).
  if (auto* obj = slot.if_object()) {
    if (auto it = obj->find("__value__"); it != obj->end()) {
      json::value inner = std::move(it->value());
      slot = std::move(inner);
    }
  }
  if (const auto* type = std::get_if<std::string>(&spec.type)) {
    // Values already of the target type convert to themselves: no copy.
    Conversion conv;
    bool convert = false;
    if (*type == "INT") {
      convert = !slot.is_int64() && !slot.is_uint64();
      if (convert) conv = py_int(slot);
    } else if (*type == "FLOAT") {
      convert = !slot.is_double();
      if (convert) conv = py_float(slot);
    } else if (*type == "STRING") {
      convert = !slot.is_string();
      if (convert) conv = converted(json::value(json::string(py_str(slot))));
    } else if (*type == "BOOLEAN") {
      convert = !slot.is_bool();
      if (convert) conv = converted(json::value(py_truth(slot)));
    }
    if (convert) {
      if (!conv.value) {
        std::string details(name);
        details += ", ";
        append_py_str(slot, details);
        details += ", ";
        details += conv.error;
        json::object extra;
        extra.emplace("input_name", name);
        extra.emplace("input_config", input_config(spec));
        extra.emplace("received_value", slot);
        extra.emplace("exception_message", conv.error);
        errors.push_back(make_reason("invalid_input_type",
                                     "Failed to convert an input value to a " + *type + " value",
                                     std::move(details), std::move(extra)));
        return nullptr;
      }
      slot = std::move(*conv.value);
    }
  }
  if (rule != nullptr && rule->input == name) return nullptr;  // VALIDATE_INPUTS decides

  auto bound_error = [&](bool min, const json::value& bound) {
    std::string message = "Value ";
    append_py_str(slot, message);
    message += min ? " smaller than min of " : " bigger than max of ";
    append_py_str(bound, message);
    json::object extra;
    extra.emplace("input_name", name);
    extra.emplace("input_config", input_config(spec));
    extra.emplace("received_value", slot);
    errors.push_back(make_reason(min ? "value_smaller_than_min" : "value_bigger_than_max",
                                 std::move(message), std::string(name), std::move(extra)));
  };
  if (spec.options) {
    if (const json::value* min = spec.options->if_contains("min")) {
      auto lt = py_compare(slot, *min, true, true);
      if (auto* err = std::get_if<PyError>(&lt)) return raised(std::move(*err));
      if (std::get<bool>(lt)) {
        bound_error(true, *min);
        return nullptr;
      }
    }
    if (const json::value* max = spec.options->if_contains("max")) {
      auto gt = py_compare(slot, *max, false, false);
      if (auto* err = std::get_if<PyError>(&gt)) return raised(std::move(*err));
      if (std::get<bool>(gt)) {
        bound_error(false, *max);
        return nullptr;
      }
    }
  }
  if (const auto* options = std::get_if<json::array>(&spec.type)) {
    const bool found = std::any_of(options->begin(), options->end(),
                                   [&](const json::value& o) { return py_equal(slot, o); });
    if (!found) {
      std::string details(name);
      details += ": '";
      append_py_str(slot, details);
      details += "' not in ";
      json::object extra;
      extra.emplace("input_name", name);
      // Long lists (scanned model files) are not echoed back.
      if (options->size() > 20) {
        details += "(list of length " + std::to_string(options->size()) + ")";
        extra.emplace("input_config", nullptr);
      } else {
        append_py_repr_list(*options, details);
        extra.emplace("input_config", input_config(spec));
      }
      extra.emplace("received_value", slot);
      errors.push_back(make_reason("value_not_in_list", "Value not in list", std::move(details),
                                   std::move(extra)));
    }
  }
  return nullptr;
}

// VALIDATE_INPUTS(s, <input>) of a file loader: folder_paths.exists_annotated_filepath(value).
Raised Validator::validate_file(const ClassEntry& cls, const json::value& inputs,
                                std::vector<ErrorInfo>& errors) {
  const FileRule& rule = *cls.file_rule;
  const json::value* arg = nullptr;
  if (const auto* obj = inputs.if_object()) arg = obj->if_contains(rule.input);
  if (arg == nullptr) {
    return raised(PyError{
        "TypeError",
        std::string(rule.qualname) + "() missing 1 required positional argument: '" +
            std::string(rule.input) + "'",
        {frame_custom_call(),
         tb_frame("execution.py", 285, "_async_map_node_over_list", "await process_inputs({})"),
         tb_frame("execution.py", 277, "process_inputs", "result = f(**inputs)", 13, 0, 11)}});
  }
  // get_input_data passes None for a link: validation runs before anything executes.
  const bool is_link = arg->is_array() && arg->get_array().size() == 2 &&
                       arg->get_array()[0].is_string() &&
                       py_number(arg->get_array()[1]).has_value();
  if (is_link || !arg->is_string()) {
    const std::string type = is_link ? "NoneType" : std::string(py_type_name(*arg));
    const std::string code =
        "if not folder_paths.exists_annotated_filepath(" + std::string(rule.input) + "):";
    return raised(PyError{
        "AttributeError",
        "'" + type + "' object has no attribute 'endswith'",
        {frame_custom_call(),
         tb_frame("execution.py", 289, "_async_map_node_over_list",
                  "await process_inputs(input_dict, i)"),
         tb_frame("execution.py", 277, "process_inputs", "result = f(**inputs)", 13, 0, 11),
         tb_frame(rule.file, rule.line, rule.func, code, 11, 0,
                  static_cast<int>(code.size()) - 8),
         tb_frame("folder_paths.py", 205, "exists_annotated_filepath",
                  "name, base_dir = annotated_filepath(name)", 21, 0, 24),
         tb_frame("folder_paths.py", 177, "annotated_filepath", R"(if name.endswith("[output]"):)",
                  7, 0, 13)}});
  }
  const std::string_view value = arg->get_string();
  std::string_view folder = "input";
  std::string_view filename = value;
  // annotated_filepath strips the tag and the character before it (normally a space).
  auto strip_tag = [&](std::string_view tag, std::string_view folder_type) {
    if (!value.ends_with(tag)) return false;
    folder = folder_type;
    const std::size_t drop = std::min(value.size(), tag.size() + 1);
    filename = value.substr(0, value.size() - drop);
    return true;
  };
  if (!strip_tag("[output]", "output") && !strip_tag("[input]", "input")) {
    strip_tag("[temp]", "temp");
  }
  const bool exists = filename.empty() || !options_.file_exists ||
                      options_.file_exists(folder, filename);
  if (!exists) {
    std::string details(rule.input);
    details += " - Invalid ";
    details += rule.noun;
    details += " file: ";
    details += value;
    json::object extra;
    extra.emplace("input_name", rule.input);
    errors.push_back(make_reason("custom_validation_failed", "Custom validation failed for node",
                                 std::move(details), std::move(extra)));
  }
  return nullptr;
}

ValidationOutcome Validator::run(const std::vector<std::size_t>& outputs) {
  std::vector<std::size_t> good;
  std::vector<std::pair<std::size_t, std::vector<ErrorInfo>>> failed;
  std::vector<NodeError> node_errors;
  std::vector<std::size_t> node_error_pos(states_.size(), SIZE_MAX);

  for (const std::size_t o : outputs) {
    bool valid = false;
    std::vector<ErrorInfo> reasons;
    if (auto err = validate_node(o, 0)) {
      std::vector<std::string> frames;
      frames.reserve(err->frames.size() + 1);
      frames.push_back(frame_top_call());
      for (auto& f : err->frames) frames.push_back(std::move(f));
      json::object extra;
      extra.emplace("exception_type", err->type);
      extra.emplace("traceback", strings_json(frames));
      reasons.push_back(make_reason("exception_during_validation", "Exception when validating node",
                                    err->message, std::move(extra)));
      record(o, false, reasons);
    } else {
      valid = states_[o].valid;
      reasons = states_[o].reasons;
    }
    if (valid) {
      good.push_back(o);
      continue;
    }
    failed.emplace_back(o, std::move(reasons));
    // ComfyUI appends the failing output to every node recorded with reasons so far.
    for (const std::size_t n : validated_order_) {
      const NodeState& st = states_[n];
      if (st.valid || st.reasons.empty()) continue;
      if (node_error_pos[n] == SIZE_MAX) {
        node_error_pos[n] = node_errors.size();
        NodeError& e = node_errors.emplace_back();
        e.node_id = std::string(id_of(n));
        e.errors = st.reasons;
        e.class_type = st.cls->info->class_type;
      }
      node_errors[node_error_pos[n]].dependent_outputs.emplace_back(id_of(o));
    }
  }

  ValidationOutcome out;
  out.node_errors = std::move(node_errors);
  if (good.empty()) {
    std::string details;
    for (const auto& [o, reasons] : failed) {
      for (const auto& r : reasons) {
        if (!details.empty()) details += '\n';
        details += r.message;
        details += ": ";
        details += r.details;
      }
    }
    out.http_status = 400;
    PromptErrorResponse body;
    body.error = top_error("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                           std::move(details));
    body.node_errors = out.node_errors;
    out.error = std::move(body);
    return out;
  }
  out.ok = true;
  out.http_status = 200;
  out.outputs_to_execute.reserve(good.size());
  for (const std::size_t o : good) out.outputs_to_execute.emplace_back(id_of(o));
  return out;
}

ValidationOutcome rejected(int status, ErrorInfo error) {
  ValidationOutcome out;
  out.http_status = status;
  PromptErrorResponse body;
  body.error = std::move(error);
  out.error = std::move(body);
  return out;
}

std::string node_label(std::string_view id) {
  std::string s = "Node ID '#";
  s += id;
  s += '\'';
  return s;
}

// Steps 1 and 2 (every node's class, the outputs), then the validator. lookup(class_type)
// returns the class's entry or nullptr.
template <class Lookup>
ValidationOutcome validate_with(json::object prompt, const ValidateOptions& options,
                                Lookup&& lookup) {
  Validator validator(prompt, options);
  std::vector<std::size_t> outputs;
  std::size_t idx = 0;
  for (auto it = prompt.begin(); it != prompt.end(); ++it, ++idx) {
    const std::string_view id = it->key();
    const json::value& node = it->value();
    // `'class_type' not in prompt[x]`, then `prompt[x]['class_type']`, on whatever x holds.
    const json::value* class_type = nullptr;
    bool has_class_type = false;
    if (const auto* obj = node.if_object()) {
      class_type = obj->if_contains("class_type");
      has_class_type = class_type != nullptr;
    } else if (const auto* str = node.if_string()) {
      has_class_type = std::string_view(*str).find("class_type") != std::string_view::npos;
    } else if (const auto* arr = node.if_array()) {
      has_class_type = std::any_of(arr->begin(), arr->end(), [](const json::value& e) {
        return e.is_string() && e.get_string() == "class_type";
      });
    } else {
      return rejected(500, top_error("invalid_prompt",
                                     "Cannot execute because node '#" + std::string(id) +
                                         "' is a JSON " + std::string(kind_name(node)) +
                                         ", not an object.",
                                     node_label(id)));
    }
    if (!has_class_type) {
      return rejected(400, top_error("invalid_prompt",
                                     "Cannot execute because a node is missing the class_type "
                                     "property.",
                                     node_label(id)));
    }
    if (class_type == nullptr || class_type->is_array() || class_type->is_object()) {
      return rejected(500, top_error("invalid_prompt",
                                     "Cannot execute because node '#" + std::string(id) +
                                         "' is not an object with a string class_type.",
                                     node_label(id)));
    }
    const ClassEntry* cls = nullptr;
    if (const auto* name = class_type->if_string()) cls = lookup(std::string_view(*name));
    if (cls == nullptr) {
      return rejected(400, top_error("invalid_prompt",
                                     "Cannot execute because node " + py_str(*class_type) +
                                         " does not exist.",
                                     node_label(id)));
    }
    validator.set_class(idx, cls);
    if (cls->info->output_node) {
      const auto& targets = options.partial_execution_targets;
      if (!targets || std::find(targets->begin(), targets->end(), id) != targets->end()) {
        outputs.push_back(idx);
      }
    }
  }
  if (outputs.empty()) {
    return rejected(400, top_error("prompt_no_outputs", "Prompt has no outputs", ""));
  }
  ValidationOutcome out = validator.run(outputs);
  out.normalized_prompt = std::move(prompt);
  return out;
}

}  // namespace

NodeCatalog::NodeCatalog(ObjectInfo info) {
  auto impl = std::make_shared<detail::NodeCatalogImpl>();
  impl->info = std::move(info);
  impl->classes.reserve(impl->info.classes.size());
  for (const auto& c : impl->info.classes) impl->classes.try_emplace(c.class_type, make_entry(c));
  impl_ = std::move(impl);
}

const NodeClassInfo* NodeCatalog::find(std::string_view class_type) const noexcept {
  auto it = impl_->classes.find(class_type);
  return it != impl_->classes.end() ? it->second.info : nullptr;
}

const ObjectInfo& NodeCatalog::info() const noexcept { return impl_->info; }

ValidationOutcome validate_prompt(json::object prompt, const NodeCatalog& catalog,
                                  const ValidateOptions& options) {
  const auto& classes = detail::catalog_impl(catalog).classes;
  return validate_with(std::move(prompt), options,
                       [&](std::string_view class_type) -> const ClassEntry* {
                         auto it = classes.find(class_type);
                         return it != classes.end() ? &it->second : nullptr;
                       });
}

ValidationOutcome validate_prompt(json::object prompt, const ObjectInfo& info,
                                  const ValidateOptions& options) {
  // One entry per distinct class; reserved so the pointers handed out stay valid.
  std::vector<ClassEntry> entries;
  entries.reserve(prompt.size());
  return validate_with(std::move(prompt), options,
                       [&](std::string_view class_type) -> const ClassEntry* {
                         for (const auto& e : entries) {
                           if (e.info->class_type == class_type) return &e;
                         }
                         const NodeClassInfo* c = info.find(class_type);
                         if (c == nullptr) return nullptr;
                         entries.push_back(make_entry(*c));
                         return &entries.back();
                       });
}

PromptErrorResponse no_prompt_error() {
  PromptErrorResponse body;
  body.error = top_error("no_prompt", "No prompt provided", "No prompt provided");
  return body;
}

std::optional<PromptErrorResponse> ui_format_error(const json::object& prompt) {
  // Only the keys Workflow's detection looks at, without copying a UI graph's node list.
  json::object probe;
  if (const auto* v = prompt.if_contains("nodes"); v && v->is_array()) {
    probe.emplace("nodes", json::array());
  }
  if (const auto* v = prompt.if_contains("links"); v && v->is_array()) {
    probe.emplace("links", json::array());
  }
  if (const auto* v = prompt.if_contains("last_node_id"); v && !v->is_object()) {
    probe.emplace("last_node_id", *v);
  }
  if (probe.empty()) return std::nullopt;
  auto parsed = Workflow::from_json(json::value(std::move(probe)));
  if (parsed) return std::nullopt;
  const WorkflowError err = parsed.error();
  if (err.code() != WorkflowErrc::kUiFormat) return std::nullopt;
  json::object extra;
  extra.emplace("comfyfarm_error", to_string(WorkflowErrc::kUiFormat));
  PromptErrorResponse body;
  body.error = make_reason("invalid_prompt", "Cannot execute because " + err.first().message + ".",
                           "", std::move(extra));
  return body;
}

}  // namespace comfyfarm::comfy
