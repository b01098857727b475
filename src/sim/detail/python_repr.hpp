// Python-style text of values, for the fields where ComfyUI shows str()/repr() of Python objects:
// execution_error.current_inputs, PreviewAny's text, and torch's tensor printing.
#pragma once

#include "comfy/python_repr.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <span>
#include <string>

namespace comfyfarm::sim::detail {

namespace json = boost::json;

/// repr() and str() of JSON-decoded Python values (shared with the prompt validator).
using comfy::py_repr;
using comfy::py_str;

/// How torch prints a float tensor of this shape whose values depend only on the index along
/// the last dimension (values[i % values.size()]): "tensor([[[[0.0706, 0.2039, 0.3373], ...".
/// Follows torch's defaults: precision 4, summarised to 3 edge items when it has more than 1000
/// elements, lines of at most 80 characters.
[[nodiscard]] std::string torch_repr(std::span<const std::int64_t> shape,
                                     std::span<const double> values);

/// A CPython-looking object repr with a stable fake address: "<comfy.sd.VAE object at 0x7f...>".
[[nodiscard]] std::string object_repr(std::string_view qualified_type, std::uint64_t salt);

}  // namespace comfyfarm::sim::detail
