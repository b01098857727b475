// JSON helpers shared by the ComfyUI codecs: tolerant parsing and Python-compatible serialization.
#pragma once

#include "core/error.hpp"

#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace comfyfarm::comfy {

namespace json = boost::json;

/// Parses JSON text. ComfyUI is a Python server whose `json.dumps` can emit the non-standard
/// tokens NaN, Infinity and -Infinity; those are accepted and read as null. Integers above
/// INT64_MAX up to UINT64_MAX stay exact (uint64). The error names the byte offset.
[[nodiscard]] Result<json::value> parse_json(std::string_view text);

struct DumpOptions {
  bool spaced = true;     ///< Python's default separators ", " and ": " (false: "," and ":")
  bool sort_keys = false; ///< sort object keys (byte order), recursively
  bool ensure_ascii = true; ///< escape non-ASCII as \uXXXX like Python's default
};

/// Serializes like Python's `json.dumps` with default arguments (what ComfyUI puts on the wire):
/// spaced separators, ASCII-only output, floats in their shortest round-trip form with a
/// trailing ".0" for integral values (1.0, not 1E0), non-finite floats as NaN/Infinity.
[[nodiscard]] std::string dumps(const json::value& v, const DumpOptions& options = {});

/// Appends the serialization of v to out (no intermediate string).
void dump_to(std::string& out, const json::value& v, const DumpOptions& options = {});

/// Appends a finite double as Python's repr() writes it: the shortest digits that read back
/// the same value, positional notation for exponents in [-4, 16) with at least one fractional
/// digit ("1.0", "0.0001", "1e-05", "1e+16").
void append_python_float(std::string& out, double d);

/// Compact, key-sorted, UTF-8 serialization: the canonical form that content hashes are taken of.
[[nodiscard]] std::string canonical_json(const json::value& v);

/// The kind of a JSON value as a short word for error messages ("object", "array", "string", ...).
[[nodiscard]] std::string_view kind_name(const json::value& v) noexcept;

/// Python's truthiness of a JSON value: null, false, 0, "", [] and {} are false.
[[nodiscard]] bool python_truthy(const json::value& v) noexcept;

}  // namespace comfyfarm::comfy
