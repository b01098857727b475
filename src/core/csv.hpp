// CSV fields as RFC 4180 writes them (what spreadsheets and Python's csv module read back).
#pragma once

#include <string>
#include <string_view>

namespace comfyfarm {

/// Appends `field` to `out`, in double quotes (inner quotes doubled) when it holds a comma, a
/// quote or a line break, as it is otherwise.
inline void append_csv_field(std::string& out, std::string_view field) {
  if (field.find_first_of(",\"\r\n") == std::string_view::npos) {
    out += field;
    return;
  }
  out += '"';
  for (char c : field) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

}  // namespace comfyfarm
