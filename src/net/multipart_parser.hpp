// Reads a multipart/form-data body (RFC 7578), as browsers and ComfyUI clients send to
// /upload/image.
#pragma once

#include "core/error.hpp"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::net {

struct FormPart {
  std::string name;                     ///< the form field name
  std::optional<std::string> filename;  ///< set for file parts
  std::string content_type;             ///< of the part; empty when not given
  std::string data;
};

/// Splits a multipart/form-data body. `content_type` is the request's Content-Type header (the
/// boundary is read from it). kInvalidArgument names what is malformed.
[[nodiscard]] Result<std::vector<FormPart>> parse_multipart(std::string_view content_type,
                                                            std::string_view body);

/// The first part called `name`, or nullptr.
const FormPart* find_part(const std::vector<FormPart>& parts, std::string_view name);

}  // namespace comfyfarm::net
