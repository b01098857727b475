// Python's str() and repr() of JSON-decoded values, for the texts ComfyUI builds with them:
// validation details ("ckpt_name: 'x' not in ['a', 'b']"), execution_error current_inputs,
// PreviewAny outputs.
#pragma once

#include <boost/json/array.hpp>
#include <boost/json/value.hpp>

#include <string>
#include <string_view>

namespace comfyfarm::comfy {

/// repr() of the Python object json.loads makes of `v`: 'text' with Python's quoting and
/// escapes, True/False/None, [a, b], {'k': v}, floats as repr(float).
[[nodiscard]] std::string py_repr(const boost::json::value& v);
/// str(): a string is itself, anything else its repr.
[[nodiscard]] std::string py_str(const boost::json::value& v);
/// repr() of a str.
[[nodiscard]] std::string py_repr_str(std::string_view s);

void append_py_repr(const boost::json::value& v, std::string& out);
void append_py_str(const boost::json::value& v, std::string& out);
void append_py_repr_str(std::string_view s, std::string& out);
/// repr() of a list: [a, b].
void append_py_repr_list(const boost::json::array& a, std::string& out);
/// repr(float), including nan, inf and -inf.
void append_py_float(std::string& out, double d);

}  // namespace comfyfarm::comfy
