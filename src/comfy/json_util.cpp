#include "comfy/json_util.hpp"

#include <boost/json/parser.hpp>
#include <boost/json/serialize.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <vector>

namespace comfyfarm::comfy {

namespace {

// Rewrites the NaN / Infinity / -Infinity tokens that Python's json.dumps can write, outside
// strings, as null. Returns false when there was nothing to rewrite.
bool rewrite_non_finite(std::string_view in, std::string& out) {
  bool changed = false;
  bool in_string = false;
  out.reserve(in.size() + 8);
  for (std::size_t i = 0; i < in.size(); ++i) {
    const char c = in[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < in.size()) {
        out += in[++i];
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    if (c == '"') in_string = true;
    std::size_t len = 0;
    if (in.substr(i, 3) == "NaN") len = 3;
    else if (in.substr(i, 8) == "Infinity") len = 8;
    else if (in.substr(i, 9) == "-Infinity") len = 9;
    if (len != 0) {
      out += "null";
      i += len - 1;
      changed = true;
      continue;
    }
    out += c;
  }
  return changed;
}

Result<json::value> parse_strict(std::string_view text) {
  json::parser p;
  boost::system::error_code ec;
  std::size_t n = p.write(text.data(), text.size(), ec);
  if (ec) {
    return fail(Errc::kInvalidArgument,
                "malformed JSON at byte " + std::to_string(n) + ": " + ec.message());
  }
  return p.release();
}

void dump_string(std::string& out, std::string_view s, bool ensure_ascii) {
  static constexpr char kHex[] = "0123456789abcdef";
  auto u16 = [&](unsigned cp) {
    out += "\\u";
    out += kHex[(cp >> 12) & 0xF];
    out += kHex[(cp >> 8) & 0xF];
    out += kHex[(cp >> 4) & 0xF];
    out += kHex[cp & 0xF];
  };
  out += '"';
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    switch (c) {
      case '"': out += "\\\""; continue;
      case '\\': out += "\\\\"; continue;
      case '\n': out += "\\n"; continue;
      case '\r': out += "\\r"; continue;
      case '\t': out += "\\t"; continue;
      case '\b': out += "\\b"; continue;
      case '\f': out += "\\f"; continue;
      default: break;
    }
    if (c < 0x20) {
      u16(c);
    } else if (c < 0x80 || !ensure_ascii) {
      out += static_cast<char>(c);
    } else {
      // Decode one UTF-8 sequence; escape as \uXXXX (surrogate pair above the BMP).
      unsigned cp = 0;
      std::size_t extra = 0;
      if ((c & 0xE0) == 0xC0) { cp = c & 0x1F; extra = 1; }
      else if ((c & 0xF0) == 0xE0) { cp = c & 0x0F; extra = 2; }
      else if ((c & 0xF8) == 0xF0) { cp = c & 0x07; extra = 3; }
      else { u16(c); continue; }
      if (i + extra >= s.size()) { u16(c); continue; }
      bool ok = true;
      for (std::size_t k = 1; k <= extra; ++k) {
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) { ok = false; break; }
        cp = (cp << 6) | (cc & 0x3F);
      }
      if (!ok) { u16(c); continue; }
      i += extra;
      if (cp >= 0x10000) {
        cp -= 0x10000;
        u16(0xD800 + (cp >> 10));
        u16(0xDC00 + (cp & 0x3FF));
      } else {
        u16(cp);
      }
    }
  }
  out += '"';
}

void dump_double(std::string& out, double d) {
  if (std::isnan(d)) { out += "NaN"; return; }
  if (std::isinf(d)) { out += d < 0 ? "-Infinity" : "Infinity"; return; }
  append_python_float(out, d);
}

void dump_value(std::string& out, const json::value& v, const DumpOptions& o) {
  switch (v.kind()) {
    case json::kind::null: out += "null"; return;
    case json::kind::bool_: out += v.get_bool() ? "true" : "false"; return;
    case json::kind::int64: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.get_int64());
      out.append(buf, r.ptr);
      return;
    }
    case json::kind::uint64: {
      char buf[24];
      auto r = std::to_chars(buf, buf + sizeof buf, v.get_uint64());
      out.append(buf, r.ptr);
      return;
    }
    case json::kind::double_: dump_double(out, v.get_double()); return;
    case json::kind::string: dump_string(out, v.get_string(), o.ensure_ascii); return;
    case json::kind::array: {
      out += '[';
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += o.spaced ? ", " : ",";
        first = false;
        dump_value(out, e, o);
      }
      out += ']';
      return;
    }
    case json::kind::object: {
      const auto& obj = v.get_object();
      out += '{';
      auto emit = [&](std::string_view key, const json::value& val, bool first) {
        if (!first) out += o.spaced ? ", " : ",";
        dump_string(out, key, o.ensure_ascii);
        out += o.spaced ? ": " : ":";
        dump_value(out, val, o);
      };
      if (o.sort_keys && obj.size() > 1) {
        std::vector<const json::key_value_pair*> items;
        items.reserve(obj.size());
        for (const auto& kv : obj) items.push_back(&kv);
        std::sort(items.begin(), items.end(),
                  [](auto* a, auto* b) { return a->key() < b->key(); });
        bool first = true;
        for (auto* kv : items) {
          emit(kv->key(), kv->value(), first);
          first = false;
        }
      } else {
        bool first = true;
        for (const auto& kv : obj) {
          emit(kv.key(), kv.value(), first);
          first = false;
        }
      }
      out += '}';
      return;
    }
  }
}

}  // namespace

Result<json::value> parse_json(std::string_view text) {
  auto r = parse_strict(text);
  if (r) return r;
  // Slow path only on failure: Python may have written NaN/Infinity.
  std::string fixed;
  if (!rewrite_non_finite(text, fixed)) return r;
  auto again = parse_strict(fixed);
  if (!again) return r;  // report the error in the text as given
  return again;
}

void append_python_float(std::string& out, double d) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view s(buf, static_cast<std::size_t>(res.ptr - buf));
  if (s.front() == '-') {
    out += '-';
    s.remove_prefix(1);
  }
  const std::size_t e_pos = s.find('e');
  std::string digits(1, s[0]);
  if (e_pos > 1) digits.append(s.substr(2, e_pos - 2));
  std::string_view exp_text = s.substr(e_pos + 1);
  const bool exp_negative = exp_text.front() == '-';
  if (exp_text.front() == '-' || exp_text.front() == '+') exp_text.remove_prefix(1);
  int exp = 0;
  std::from_chars(exp_text.data(), exp_text.data() + exp_text.size(), exp);
  if (exp_negative) exp = -exp;

  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const auto int_len = static_cast<std::size_t>(exp) + 1;
      if (digits.size() <= int_len) {
        out += digits;
        out.append(int_len - digits.size(), '0');
        out += ".0";
      } else {
        out.append(digits, 0, int_len);
        out += '.';
        out.append(digits, int_len);
      }
    } else {
      out += "0.";
      out.append(static_cast<std::size_t>(-exp - 1), '0');
      out += digits;
    }
    return;
  }
  out += digits[0];
  if (digits.size() > 1) {
    out += '.';
    out.append(digits, 1);
  }
  out += exp < 0 ? "e-" : "e+";
  const int abs_exp = exp < 0 ? -exp : exp;
  if (abs_exp < 10) out += '0';
  out += std::to_string(abs_exp);
}

std::string dumps(const json::value& v, const DumpOptions& options) {
  std::string out;
  dump_value(out, v, options);
  return out;
}

void dump_to(std::string& out, const json::value& v, const DumpOptions& options) {
  dump_value(out, v, options);
}

std::string canonical_json(const json::value& v) {
  return dumps(v, DumpOptions{.spaced = false, .sort_keys = true, .ensure_ascii = false});
}

std::string_view kind_name(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "boolean";
    case json::kind::int64:
    case json::kind::uint64: return "integer";
    case json::kind::double_: return "number";
    case json::kind::string: return "string";
    case json::kind::array: return "array";
    case json::kind::object: return "object";
  }
  return "unknown";
}

bool python_truthy(const json::value& v) noexcept {
  switch (v.kind()) {
    case json::kind::null: return false;
    case json::kind::bool_: return v.get_bool();
    case json::kind::int64: return v.get_int64() != 0;
    case json::kind::uint64: return v.get_uint64() != 0;
    case json::kind::double_: return v.get_double() != 0.0;
    case json::kind::string: return !v.get_string().empty();
    case json::kind::array: return !v.get_array().empty();
    case json::kind::object: return !v.get_object().empty();
  }
  return false;
}

}  // namespace comfyfarm::comfy
