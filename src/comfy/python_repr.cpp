#include "comfy/python_repr.hpp"

#include "comfy/json_util.hpp"

#include <cmath>

namespace comfyfarm::comfy {

namespace json = boost::json;

namespace {
// Python's str.isprintable() for a non-ASCII code point, close enough for file names: separators
// (Zs, Zl, Zp), format characters (Cf), C1 controls and private use are not printable.
bool py_printable(char32_t cp) noexcept {
  if (cp <= 0xA0) return false;  // C1 controls and NO-BREAK SPACE (callers pass cp >= 0x80)
  if (cp == 0xAD || cp == 0x061C || cp == 0x180E || cp == 0x1680) return false;
  if (cp >= 0x2000 && cp <= 0x200F) return false;
  if (cp >= 0x2028 && cp <= 0x202F) return false;
  if (cp >= 0x205F && cp <= 0x206F) return false;
  if (cp == 0x3000 || cp == 0xFEFF) return false;
  if (cp >= 0xFFF9 && cp <= 0xFFFB) return false;
  if (cp >= 0xE000 && cp <= 0xF8FF) return false;
  if (cp >= 0xF0000) return false;
  return true;
}

void append_hex(std::string& out, char32_t cp, int width) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (int shift = (width - 1) * 4; shift >= 0; shift -= 4) {
    out += kHex[(cp >> shift) & 0xF];
  }
}

}  // namespace

// Python's repr(float): the shortest round-trip digits, fixed notation for exponents -4..15,
// otherwise d.ddde+XX.
void append_py_float(std::string& out, double d) {
  if (std::isnan(d)) {
    out += "nan";
  } else if (std::isinf(d)) {
    out += d < 0 ? "-inf" : "inf";
  } else {
    append_python_float(out, d);
  }
}

// Python's repr(str).
void append_py_repr_str(std::string_view s, std::string& out) {
  const bool has_single = s.find('\'') != std::string_view::npos;
  const bool has_double = s.find('"') != std::string_view::npos;
  const char quote = has_single && !has_double ? '"' : '\'';
  out += quote;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      if (c == static_cast<unsigned char>(quote) || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c == '\t') {
        out += "\\t";
      } else if (c == '\n') {
        out += "\\n";
      } else if (c == '\r') {
        out += "\\r";
      } else if (c < 0x20 || c == 0x7F) {
        out += "\\x";
        append_hex(out, c, 2);
      } else {
        out += static_cast<char>(c);
      }
      continue;
    }
    std::size_t extra = 0;
    char32_t cp = 0;
    if ((c & 0xE0) == 0xC0) {
      cp = c & 0x1F;
      extra = 1;
    } else if ((c & 0xF0) == 0xE0) {
      cp = c & 0x0F;
      extra = 2;
    } else if ((c & 0xF8) == 0xF0) {
      cp = c & 0x07;
      extra = 3;
    }
    if (extra == 0 || i + extra >= s.size()) {
      // Not UTF-8 (boost.json only hands out valid UTF-8; kept total anyway).
      out += "\\x";
      append_hex(out, c, 2);
      continue;
    }
    for (std::size_t k = 1; k <= extra; ++k) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    }
    if (py_printable(cp)) {
      out.append(s.substr(i, extra + 1));
    } else if (cp < 0x100) {
      out += "\\x";
      append_hex(out, cp, 2);
    } else if (cp < 0x10000) {
      out += "\\u";
      append_hex(out, cp, 4);
    } else {
      out += "\\U";
      append_hex(out, cp, 8);
    }
    i += extra;
  }
  out += quote;
}

// Python's str(): strings as they are, everything else as repr.
void append_py_str(const json::value& v, std::string& out) {
  if (const auto* s = v.if_string()) {
    out.append(s->data(), s->size());
  } else {
    append_py_repr(v, out);
  }
}

void append_py_repr(const json::value& v, std::string& out) {
  switch (v.kind()) {
    case json::kind::null: out += "None"; return;
    case json::kind::bool_: out += v.get_bool() ? "True" : "False"; return;
    case json::kind::int64: out += std::to_string(v.get_int64()); return;
    case json::kind::uint64: out += std::to_string(v.get_uint64()); return;
    case json::kind::double_: append_py_float(out, v.get_double()); return;
    case json::kind::string: append_py_repr_str(v.get_string(), out); return;
    case json::kind::array: append_py_repr_list(v.get_array(), out); return;
    case json::kind::object: {
      out += '{';
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ", ";
        first = false;
        append_py_repr_str(kv.key(), out);
        out += ": ";
        append_py_repr(kv.value(), out);
      }
      out += '}';
      return;
    }
  }
}

std::string py_str(const json::value& v) {
  std::string out;
  append_py_str(v, out);
  return out;
}

std::string py_repr(const json::value& v) {
  std::string out;
  append_py_repr(v, out);
  return out;
}

std::string py_repr_str(std::string_view s) {
  std::string out;
  append_py_repr_str(s, out);
  return out;
}

void append_py_repr_list(const json::array& a, std::string& out) {
  out += '[';
  bool first = true;
  for (const auto& e : a) {
    if (!first) out += ", ";
    first = false;
    append_py_repr(e, out);
  }
  out += ']';
}


}  // namespace comfyfarm::comfy
