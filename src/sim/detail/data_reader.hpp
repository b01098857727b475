// Small strict readers for the simulator's own data files (timing.json, models.json): every error
// names the file and the field path, and unknown keys are refused so that typos do not pass.
#pragma once

#include "comfy/json_util.hpp"
#include "core/error.hpp"

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

namespace comfyfarm::sim::detail {

namespace json = boost::json;

class DataReader {
 public:
  explicit DataReader(std::string file) : file_(std::move(file)) {}

  [[nodiscard]] Error error(std::string_view path, std::string_view what) const {
    std::string m = file_;
    m += ": ";
    if (!path.empty()) {
      m += path;
      m += ": ";
    }
    m += what;
    return fail(Errc::kInvalidArgument, std::move(m));
  }

  [[nodiscard]] Error expected(std::string_view path, std::string_view what,
                               const json::value& found) const {
    return error(
        path, "expected " + std::string(what) + ", found " + std::string(comfy::kind_name(found)));
  }

  /// Fails on a key outside `allowed` ("comment" is always allowed).
  [[nodiscard]] Result<void> only_keys(const json::object& o, std::string_view path,
                                       std::initializer_list<std::string_view> allowed) const {
    for (const auto& kv : o) {
      const std::string_view key = kv.key();
      if (key == "comment") continue;
      bool ok = false;
      for (const auto a : allowed) ok = ok || a == key;
      if (!ok) return error(path, "unknown key \"" + std::string(key) + "\"");
    }
    return {};
  }

  [[nodiscard]] Result<void> number(const json::object& o, std::string_view key,
                                    std::string_view path, double& out) const {
    const auto* v = o.if_contains(key);
    if (v == nullptr) return {};
    if (v->is_int64()) {
      out = static_cast<double>(v->get_int64());
    } else if (v->is_uint64()) {
      out = static_cast<double>(v->get_uint64());
    } else if (v->is_double()) {
      out = v->get_double();
    } else {
      return expected(join(path, key), "a number", *v);
    }
    if (!(out >= 0.0)) return error(join(path, key), "must not be negative");
    return {};
  }

  [[nodiscard]] Result<void> bytes(const json::object& o, std::string_view key,
                                   std::string_view path, std::uint64_t& out) const {
    double d = -1.0;
    if (o.if_contains(key) == nullptr) return {};
    if (auto r = number(o, key, path, d); !r) return r;
    out = static_cast<std::uint64_t>(d);
    return {};
  }

  [[nodiscard]] Result<void> string(const json::object& o, std::string_view key,
                                    std::string_view path, std::string& out) const {
    const auto* v = o.if_contains(key);
    if (v == nullptr) return {};
    if (!v->is_string()) return expected(join(path, key), "a string", *v);
    out = std::string(v->get_string());
    return {};
  }

  [[nodiscard]] Result<void> boolean(const json::object& o, std::string_view key,
                                     std::string_view path, bool& out) const {
    const auto* v = o.if_contains(key);
    if (v == nullptr) return {};
    if (!v->is_bool()) return expected(join(path, key), "true or false", *v);
    out = v->get_bool();
    return {};
  }

  [[nodiscard]] static std::string join(std::string_view path, std::string_view key) {
    std::string p(path);
    if (!p.empty()) p += '.';
    p += key;
    return p;
  }

 private:
  std::string file_;
};

}  // namespace comfyfarm::sim::detail
