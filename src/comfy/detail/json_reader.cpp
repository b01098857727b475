#include "comfy/detail/json_reader.hpp"

#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <system_error>

namespace comfyfarm::comfy::detail {

namespace {

// Bytes that can be copied as they are inside a string: printable ASCII except '"' and '\\'.
constexpr std::array<bool, 256> make_plain_table() {
  std::array<bool, 256> t{};
  for (int c = 0x20; c < 0x80; ++c) t[static_cast<std::size_t>(c)] = true;
  t['"'] = false;
  t['\\'] = false;
  return t;
}
constexpr std::array<bool, 256> kPlain = make_plain_table();

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Exact powers of ten for the fast decimal path (exactly representable up to 1e22).
constexpr std::array<double, 16> kPow10 = {1e0, 1e1, 1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                           1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15};

// Length of the valid UTF-8 sequence starting at p (its first byte >= 0x80), or 0.
std::size_t utf8_sequence(const unsigned char* p, const unsigned char* end) noexcept {
  const unsigned c0 = p[0];
  auto cont = [&](std::size_t k, unsigned lo, unsigned hi) {
    return p + k < end && p[k] >= lo && p[k] <= hi;
  };
  if (c0 < 0xC2) return 0;
  if (c0 < 0xE0) return cont(1, 0x80, 0xBF) ? 2 : 0;
  if (c0 < 0xF0) {
    const unsigned lo = c0 == 0xE0 ? 0xA0 : 0x80;
    const unsigned hi = c0 == 0xED ? 0x9F : 0xBF;
    return cont(1, lo, hi) && cont(2, 0x80, 0xBF) ? 3 : 0;
  }
  if (c0 < 0xF5) {
    const unsigned lo = c0 == 0xF0 ? 0x90 : 0x80;
    const unsigned hi = c0 == 0xF4 ? 0x8F : 0xBF;
    return cont(1, lo, hi) && cont(2, 0x80, 0xBF) && cont(3, 0x80, 0xBF) ? 4 : 0;
  }
  return 0;
}

void append_utf8(std::string& out, unsigned cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string_view token_kind_name(TokenKind kind) noexcept {
  switch (kind) {
    case TokenKind::kEnd: return "end of input";
    case TokenKind::kObject: return "object";
    case TokenKind::kArray: return "array";
    case TokenKind::kString: return "string";
    case TokenKind::kNumber: return "number";
    case TokenKind::kBool: return "boolean";
    case TokenKind::kNull: return "null";
    case TokenKind::kInvalid: return "invalid token";
  }
  return "invalid token";
}

void JsonReader::skip_ws() noexcept {
  while (p_ < end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
}

TokenKind JsonReader::peek() noexcept {
  skip_ws();
  if (p_ == end_) return TokenKind::kEnd;
  switch (*p_) {
    case '{': return TokenKind::kObject;
    case '[': return TokenKind::kArray;
    case '"': return TokenKind::kString;
    case 't':
    case 'f': return TokenKind::kBool;
    case 'n': return TokenKind::kNull;
    case '-':
    case 'N':
    case 'I': return TokenKind::kNumber;
    default: return is_digit(*p_) ? TokenKind::kNumber : TokenKind::kInvalid;
  }
}

bool JsonReader::at_end() noexcept {
  skip_ws();
  return p_ == end_;
}

bool JsonReader::fail(std::string problem) {
  if (failed_) return false;
  failed_ = true;
  problem_ = std::move(problem);
  problem_ += " at byte ";
  problem_ += std::to_string(offset());
  return false;
}

bool JsonReader::fail_expected(std::string_view what) {
  if (failed_) return false;
  std::string msg = "expected ";
  msg += what;
  msg += ", found ";
  msg += token_kind_name(peek());
  return fail(std::move(msg));
}

bool JsonReader::in(std::string_view segment) {
  if (context_.empty()) {
    context_ = segment;
  } else {
    std::string joined(segment);
    if (context_.front() != '[') joined += '.';
    joined += context_;
    context_ = std::move(joined);
  }
  return false;
}

std::string JsonReader::error_message() const {
  if (context_.empty()) return problem_;
  return context_ + ": " + problem_;
}

bool JsonReader::literal(std::string_view word) {
  if (static_cast<std::size_t>(end_ - p_) >= word.size() &&
      std::string_view(p_, word.size()) == word) {
    p_ += word.size();
    return true;
  }
  return fail("invalid literal");
}

bool JsonReader::begin_object() {
  if (failed_) return false;
  skip_ws();
  if (p_ < end_ && *p_ == '{') {
    ++p_;
    return true;
  }
  return fail_expected("an object");
}

bool JsonReader::next_member(bool& first, std::string_view& key) {
  if (failed_) return false;
  skip_ws();
  if (p_ == end_) return fail("unterminated object");
  if (*p_ == '}') {
    ++p_;
    return false;
  }
  if (!first) {
    if (*p_ != ',') return fail("expected ',' or '}' in object");
    ++p_;
    skip_ws();
  }
  first = false;
  if (p_ == end_ || *p_ != '"') return fail("expected a string key");
  if (!read_string_raw(key, key_scratch_)) return false;
  skip_ws();
  if (p_ == end_ || *p_ != ':') return fail("expected ':' after key");
  ++p_;
  return true;
}

bool JsonReader::begin_array() {
  if (failed_) return false;
  skip_ws();
  if (p_ < end_ && *p_ == '[') {
    ++p_;
    return true;
  }
  return fail_expected("an array");
}

bool JsonReader::next_element(bool& first) {
  if (failed_) return false;
  skip_ws();
  if (p_ == end_) return fail("unterminated array");
  if (*p_ == ']') {
    ++p_;
    return false;
  }
  if (!first) {
    if (*p_ != ',') return fail("expected ',' or ']' in array");
    ++p_;
    skip_ws();
    if (p_ < end_ && *p_ == ']') return fail("trailing ',' in array");
  }
  first = false;
  return true;
}

bool JsonReader::read_string_raw(std::string_view& out, std::string& scratch) {
  // Precondition: *p_ == '"'.
  const char* start = ++p_;
  const auto* end = reinterpret_cast<const unsigned char*>(end_);
  // Phase 1: no escape seen yet, the string can be a view into the text.
  while (true) {
    while (p_ < end_ && kPlain[static_cast<unsigned char>(*p_)]) ++p_;
    if (p_ == end_) return fail("unterminated string");
    const auto c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      out = std::string_view(start, static_cast<std::size_t>(p_ - start));
      ++p_;
      return true;
    }
    if (c == '\\') break;
    if (c < 0x20) return fail("control character in string");
    const std::size_t n = utf8_sequence(reinterpret_cast<const unsigned char*>(p_), end);
    if (n == 0) return fail("invalid UTF-8 in string");
    p_ += n;
  }
  // Phase 2: unescape into scratch.
  scratch.assign(start, static_cast<std::size_t>(p_ - start));
  while (true) {
    const char* run = p_;
    while (p_ < end_ && kPlain[static_cast<unsigned char>(*p_)]) ++p_;
    scratch.append(run, static_cast<std::size_t>(p_ - run));
    if (p_ == end_) return fail("unterminated string");
    const auto c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      ++p_;
      out = scratch;
      return true;
    }
    if (c < 0x20) return fail("control character in string");
    if (c >= 0x80) {
      const std::size_t n = utf8_sequence(reinterpret_cast<const unsigned char*>(p_), end);
      if (n == 0) return fail("invalid UTF-8 in string");
      scratch.append(p_, n);
      p_ += n;
      continue;
    }
    // A backslash.
    if (end_ - p_ < 2) return fail("unterminated string");
    const char e = p_[1];
    p_ += 2;
    switch (e) {
      case '"': scratch += '"'; continue;
      case '\\': scratch += '\\'; continue;
      case '/': scratch += '/'; continue;
      case 'b': scratch += '\b'; continue;
      case 'f': scratch += '\f'; continue;
      case 'n': scratch += '\n'; continue;
      case 'r': scratch += '\r'; continue;
      case 't': scratch += '\t'; continue;
      case 'u': break;
      default: p_ -= 2; return fail("invalid escape in string");
    }
    auto read_hex4 = [&](unsigned& cp) {
      if (end_ - p_ < 4) return false;
      cp = 0;
      for (int k = 0; k < 4; ++k) {
        const int h = hex_digit(p_[k]);
        if (h < 0) return false;
        cp = (cp << 4) | static_cast<unsigned>(h);
      }
      p_ += 4;
      return true;
    };
    unsigned cp = 0;
    if (!read_hex4(cp)) return fail("invalid \\u escape in string");
    if (cp >= 0xDC00 && cp <= 0xDFFF) return fail("lone trailing surrogate in string");
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      unsigned lo = 0;
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') {
        return fail("lone leading surrogate in string");
      }
      p_ += 2;
      if (!read_hex4(lo)) return fail("invalid \\u escape in string");
      if (lo < 0xDC00 || lo > 0xDFFF) return fail("lone leading surrogate in string");
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
    }
    append_utf8(scratch, cp);
  }
}

bool JsonReader::read_string(std::string& out) {
  if (failed_) return false;
  skip_ws();
  if (p_ == end_ || *p_ != '"') return fail_expected("a string");
  std::string_view v;
  if (!read_string_raw(v, value_scratch_)) return false;
  out.assign(v.data(), v.size());
  return true;
}

bool JsonReader::read_string_view(std::string_view& out, std::string& scratch) {
  if (failed_) return false;
  skip_ws();
  if (p_ == end_ || *p_ != '"') return fail_expected("a string");
  return read_string_raw(out, scratch);
}

bool JsonReader::read_number(ReadNumber& out) {
  if (failed_) return false;
  skip_ws();
  if (p_ == end_) return fail_expected("a number");
  const char* start = p_;
  bool neg = false;
  if (*p_ == 'N') {
    if (!literal("NaN")) return false;
    out = ReadNumber{ReadNumber::Kind::kDouble, 0, 0, std::numeric_limits<double>::quiet_NaN()};
    return true;
  }
  if (*p_ == '-') {
    neg = true;
    ++p_;
  }
  if (p_ < end_ && *p_ == 'I') {
    if (!literal("Infinity")) return false;
    const double inf = std::numeric_limits<double>::infinity();
    out = ReadNumber{ReadNumber::Kind::kDouble, 0, 0, neg ? -inf : inf};
    return true;
  }
  if (p_ == end_ || !is_digit(*p_)) {
    p_ = start;
    return peek() == TokenKind::kNumber ? fail("invalid number") : fail_expected("a number");
  }
  std::uint64_t mantissa = 0;
  bool overflow = false;
  if (*p_ == '0') {
    ++p_;
    if (p_ < end_ && is_digit(*p_)) return fail("leading zero in number");
  } else {
    while (p_ < end_ && is_digit(*p_)) {
      const auto d = static_cast<std::uint64_t>(*p_ - '0');
      if (mantissa > (std::numeric_limits<std::uint64_t>::max() - d) / 10) overflow = true;
      if (!overflow) mantissa = mantissa * 10 + d;
      ++p_;
    }
  }
  int frac_digits = 0;
  bool has_exp = false;
  if (p_ < end_ && *p_ == '.') {
    ++p_;
    if (p_ == end_ || !is_digit(*p_)) return fail("expected a digit after '.' in number");
    while (p_ < end_ && is_digit(*p_)) {
      const auto d = static_cast<std::uint64_t>(*p_ - '0');
      if (mantissa > (std::numeric_limits<std::uint64_t>::max() - d) / 10) overflow = true;
      if (!overflow) mantissa = mantissa * 10 + d;
      ++frac_digits;
      ++p_;
    }
  }
  if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
    has_exp = true;
    ++p_;
    if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
    if (p_ == end_ || !is_digit(*p_)) return fail("expected a digit in the exponent of a number");
    while (p_ < end_ && is_digit(*p_)) ++p_;
  }
  if (frac_digits == 0 && !has_exp && !overflow) {
    if (!neg && mantissa <= static_cast<std::uint64_t>(INT64_MAX)) {
      out = ReadNumber{ReadNumber::Kind::kInt64, static_cast<std::int64_t>(mantissa), 0,
                       static_cast<double>(mantissa)};
      return true;
    }
    if (neg && mantissa <= static_cast<std::uint64_t>(INT64_MAX) + 1) {
      // -(2^63) is representable; negate in unsigned arithmetic to avoid overflow.
      const auto i = static_cast<std::int64_t>(~mantissa + 1);
      out = ReadNumber{ReadNumber::Kind::kInt64, i, 0, static_cast<double>(i)};
      return true;
    }
    if (!neg) {
      out = ReadNumber{ReadNumber::Kind::kUint64, 0, mantissa, static_cast<double>(mantissa)};
      return true;
    }
  }
  out.kind = ReadNumber::Kind::kDouble;
  // Exact fast path: both operands are exact doubles, so the quotient is correctly rounded.
  if (!overflow && !has_exp && frac_digits > 0 && mantissa < (std::uint64_t{1} << 53) &&
      frac_digits < static_cast<int>(kPow10.size())) {
    const double v = static_cast<double>(mantissa) / kPow10[static_cast<std::size_t>(frac_digits)];
    out.d = neg ? -v : v;
    return true;
  }
  double v = 0.0;
  const auto [ptr, ec] = std::from_chars(start, p_, v);
  if (ec == std::errc::result_out_of_range) {
    // Like Boost.JSON: overflow reads as infinity; underflow as zero.
    bool tiny = false;
    for (const char* q = start; q < p_; ++q) {
      if ((*q == 'e' || *q == 'E') && q + 1 < p_ && q[1] == '-') tiny = true;
    }
    v = tiny ? 0.0 : std::numeric_limits<double>::infinity();
    if (neg) v = -v;
  } else if (ec != std::errc() || ptr != p_) {
    return fail("invalid number");
  }
  out.d = v;
  return true;
}

bool JsonReader::read_int64(std::int64_t& out) {
  if (failed_) return false;
  if (peek() != TokenKind::kNumber) return fail_expected("an integer");
  const char* start = p_;
  ReadNumber n;
  if (!read_number(n)) return false;
  if (n.kind != ReadNumber::Kind::kInt64) {
    p_ = start;
    return fail(n.kind == ReadNumber::Kind::kUint64 ? "integer out of int64 range"
                                                    : "expected an integer, found a float");
  }
  out = n.i;
  return true;
}

bool JsonReader::read_bool(bool& out) {
  if (failed_) return false;
  if (peek() != TokenKind::kBool) return fail_expected("a boolean");
  if (*p_ == 't') {
    if (!literal("true")) return false;
    out = true;
  } else {
    if (!literal("false")) return false;
    out = false;
  }
  return true;
}

bool JsonReader::read_null() {
  if (failed_) return false;
  if (peek() != TokenKind::kNull) return fail_expected("null");
  return literal("null");
}

bool JsonReader::read_value(json::value& out) {
  if (failed_) return false;
  return parse_value(out, 0);
}

bool JsonReader::parse_value(json::value& out, int depth) {
  if (depth > kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth));
  switch (peek()) {
    case TokenKind::kObject: {
      ++p_;
      json::object& obj = out.emplace_object();
      std::string_view key;
      for (bool first = true; next_member(first, key);) {
        // obj[key] copies the key before the value is parsed (which may reuse key_scratch_).
        if (!parse_value(obj[key], depth + 1)) return false;
      }
      return !failed_;
    }
    case TokenKind::kArray: {
      ++p_;
      json::array& arr = out.emplace_array();
      for (bool first = true; next_element(first);) {
        arr.emplace_back(nullptr);
        if (!parse_value(arr.back(), depth + 1)) return false;
      }
      return !failed_;
    }
    case TokenKind::kString: {
      std::string_view v;
      if (!read_string_raw(v, value_scratch_)) return false;
      out.emplace_string().assign(v.data(), v.size());
      return true;
    }
    case TokenKind::kNumber: {
      ReadNumber n;
      if (!read_number(n)) return false;
      switch (n.kind) {
        case ReadNumber::Kind::kInt64: out = n.i; break;
        case ReadNumber::Kind::kUint64: out = n.u; break;
        case ReadNumber::Kind::kDouble: out = n.d; break;
      }
      return true;
    }
    case TokenKind::kBool: {
      bool b = false;
      if (!read_bool(b)) return false;
      out = b;
      return true;
    }
    case TokenKind::kNull:
      if (!literal("null")) return false;
      out = nullptr;
      return true;
    case TokenKind::kEnd: return fail("unexpected end of input");
    case TokenKind::kInvalid: return fail("invalid token");
  }
  return fail("invalid token");
}

bool JsonReader::skip(int depth) {
  if (depth > kMaxDepth) return fail("nesting deeper than " + std::to_string(kMaxDepth));
  switch (peek()) {
    case TokenKind::kObject: {
      ++p_;
      std::string_view key;
      for (bool first = true; next_member(first, key);) {
        if (!skip(depth + 1)) return false;
      }
      return !failed_;
    }
    case TokenKind::kArray: {
      ++p_;
      for (bool first = true; next_element(first);) {
        if (!skip(depth + 1)) return false;
      }
      return !failed_;
    }
    case TokenKind::kString: {
      std::string_view v;
      return read_string_raw(v, value_scratch_);
    }
    case TokenKind::kNumber: {
      ReadNumber n;
      return read_number(n);
    }
    case TokenKind::kBool: {
      bool b = false;
      return read_bool(b);
    }
    case TokenKind::kNull: return literal("null");
    case TokenKind::kEnd: return fail("unexpected end of input");
    case TokenKind::kInvalid: return fail("invalid token");
  }
  return fail("invalid token");
}

bool JsonReader::skip_value(std::string_view& raw) {
  if (failed_) return false;
  skip_ws();
  const char* start = p_;
  if (!skip(0)) return false;
  raw = std::string_view(start, static_cast<std::size_t>(p_ - start));
  return true;
}

bool JsonReader::read_string_array(std::vector<std::string>& out) {
  if (!begin_array()) return false;
  out.clear();
  for (bool first = true; next_element(first);) {
    out.emplace_back();
    if (!read_string(out.back())) {
      std::string index = "[";
      index += std::to_string(out.size() - 1);
      index += ']';
      return in(index);
    }
  }
  return !failed_;
}

}  // namespace comfyfarm::comfy::detail
