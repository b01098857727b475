// JsonReader: a pull reader over JSON text for the ComfyUI message codecs. It reads exactly what
// the caller asks for, without building a DOM, and keeps the first error with its byte offset.
#pragma once

#include <boost/json/value.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::comfy::detail {

namespace json = boost::json;

/// What the next token is, from its first byte (for "expected X, found Y" messages).
enum class TokenKind { kEnd, kObject, kArray, kString, kNumber, kBool, kNull, kInvalid };

/// A JSON number as it was written. Integers (no fraction, no exponent) that fit int64 are kInt64,
/// larger ones up to UINT64_MAX kUint64; everything else (fractions, exponents, NaN, Infinity,
/// integers beyond 64 bits) is kDouble, like Boost.JSON.
struct ReadNumber {
  enum class Kind { kInt64, kUint64, kDouble };
  Kind kind = Kind::kInt64;
  std::int64_t i = 0;   ///< valid for kInt64
  std::uint64_t u = 0;  ///< valid for kUint64
  double d = 0.0;       ///< always valid (the value as a double)
};

/// Pull reader. All read_* functions skip leading whitespace, return false on failure and then
/// leave the reader failed (every later call fails too). Accepts the non-standard tokens NaN,
/// Infinity and -Infinity that Python's json.dumps writes, as doubles. Strings are validated as
/// UTF-8 and unescaped; lone surrogate escapes are rejected (as Boost.JSON does).
///
/// Objects and arrays are iterated with a caller-held `first` flag:
///
///     if (!r.begin_object()) return false;
///     std::string_view key;
///     for (bool first = true; r.next_member(first, key);) { ...read the value... }
///     if (r.failed()) return false;
class JsonReader {
 public:
  static constexpr int kMaxDepth = 64;

  explicit JsonReader(std::string_view text) noexcept
      : begin_(text.data()), p_(text.data()), end_(text.data() + text.size()) {}

  /// The kind of the next token (skips whitespace).
  TokenKind peek() noexcept;
  /// True when only whitespace is left.
  bool at_end() noexcept;

  bool begin_object();
  /// Reads the next key and the ':' after it. Returns false at the closing '}' (consumed) or on
  /// failure. The key views either the text or an internal buffer that the next key overwrites.
  bool next_member(bool& first, std::string_view& key);
  bool begin_array();
  /// Returns true when another element follows (not yet read), false at ']' or on failure.
  bool next_element(bool& first);

  bool read_string(std::string& out);
  /// Reads a string as a view: into the text when it has no escapes, else into `scratch`.
  bool read_string_view(std::string_view& out, std::string& scratch);
  bool read_number(ReadNumber& out);
  bool read_int64(std::int64_t& out);
  bool read_bool(bool& out);
  bool read_null();
  /// Reads any value into a DOM (default storage). Integers that fit int64 are int64, larger
  /// ones up to UINT64_MAX uint64, others double; like Boost.JSON, duplicate keys keep the last.
  bool read_value(json::value& out);
  /// Skips one value and returns its raw text.
  bool skip_value(std::string_view& raw);
  bool read_string_array(std::vector<std::string>& out);

  bool failed() const noexcept { return failed_; }
  /// The failure: "<context>: <problem> at byte N", the context naming the field path.
  std::string error_message() const;
  /// Records a failure: "<problem> at byte <offset>". Returns false.
  bool fail(std::string problem);
  /// Fails with "expected <what>, found <kind of the next token>".
  bool fail_expected(std::string_view what);
  /// While unwinding after a failure, prepends a path segment (a field name or index) to the
  /// context. Returns false so that callers can `return r.in(name);`.
  bool in(std::string_view segment);
  std::size_t offset() const noexcept { return static_cast<std::size_t>(p_ - begin_); }

 private:
  void skip_ws() noexcept;
  bool read_string_raw(std::string_view& out, std::string& scratch);
  bool parse_value(json::value& out, int depth);
  bool skip(int depth);
  bool literal(std::string_view word);

  const char* begin_;
  const char* p_;
  const char* end_;
  bool failed_ = false;
  std::string problem_;
  std::string context_;
  std::string key_scratch_;
  std::string value_scratch_;
};

/// Returns a short word for a token kind ("string", "number", ...).
std::string_view token_kind_name(TokenKind kind) noexcept;

}  // namespace comfyfarm::comfy::detail
