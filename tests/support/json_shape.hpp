// Structural comparison of JSON values for golden tests: same keys in the same order, same JSON
// types (1 is not 1.0), same values except under keys whose values differ between any two runs
// (ids, clocks, file names).
#pragma once

#include <boost/json/value.hpp>

#include <set>
#include <string>
#include <vector>

namespace comfyfarm::test {

struct ShapeOptions {
  /// Keys whose values are not compared (only their JSON type; arrays under them may differ in
  /// length).
  std::set<std::string> ignore_values{};
  /// Keys whose object value may list its keys in another order.
  std::set<std::string> unordered_objects{};
};

/// "integer", "float", "string", "object", ... (integers of either signedness are one kind).
std::string json_kind(const boost::json::value& v);

/// Appends one line per difference between `want` (the recording) and `got` to `diffs`. `path`
/// names the position for the messages; `key` is the object key `want` sits under ("" at the
/// top).
void compare_shape(const boost::json::value& want, const boost::json::value& got,
                   const std::string& path, const std::string& key, const ShapeOptions& options,
                   std::vector<std::string>& diffs);

/// The differences as indented lines, for a test failure message.
std::string join_lines(const std::vector<std::string>& lines);

}  // namespace comfyfarm::test
