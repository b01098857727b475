// Request, Response and Headers: the HTTP types handlers and clients see. Plain values, no Beast,
// so a module that serves or calls HTTP does not pay for Beast's headers.
#pragma once

#include "core/error.hpp"

#include <boost/json/fwd.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace comfyfarm::net {

enum class Method { kGet, kHead, kPost, kPut, kDelete, kOptions, kPatch, kOther };

/// "GET", "POST", ...; "OTHER" for kOther.
std::string_view to_string(Method method) noexcept;
/// Parses a request method (case-sensitive, as on the wire); unknown ones give kOther.
Method parse_method(std::string_view text) noexcept;

/// ASCII case-insensitive equality, as HTTP header names compare.
bool iequals(std::string_view a, std::string_view b) noexcept;

/// Header fields in arrival order. Names compare case-insensitively; a name may repeat.
class Headers {
 public:
  using Field = std::pair<std::string, std::string>;

  Headers() = default;
  Headers(std::initializer_list<Field> fields) : fields_(fields) {}

  /// The first value of `name`, if any. The view lives as long as the field is not modified.
  std::optional<std::string_view> get(std::string_view name) const;
  bool contains(std::string_view name) const { return get(name).has_value(); }
  /// Replaces every field called `name` by one field.
  void set(std::string name, std::string value);
  /// Appends a field, keeping existing ones of the same name.
  void add(std::string name, std::string value);
  /// Removes every field called `name`; returns how many were removed.
  std::size_t erase(std::string_view name);

  auto begin() const { return fields_.begin(); }
  auto end() const { return fields_.end(); }
  std::size_t size() const { return fields_.size(); }
  bool empty() const { return fields_.empty(); }

 private:
  std::vector<Field> fields_;
};

/// Decoded query parameters (`a=1&b=x%20y+z` gives a="1", b="x y z"), in order, repeats kept.
class QueryParams {
 public:
  using Param = std::pair<std::string, std::string>;

  /// The first value of `name`; "" for a key without '=' (`?flag`).
  std::optional<std::string_view> get(std::string_view name) const;
  bool contains(std::string_view name) const { return get(name).has_value(); }
  /// Every value of `name`, in order.
  std::vector<std::string_view> get_all(std::string_view name) const;

  void add(std::string name, std::string value) {
    params_.emplace_back(std::move(name), std::move(value));
  }
  auto begin() const { return params_.begin(); }
  auto end() const { return params_.end(); }
  std::size_t size() const { return params_.size(); }
  bool empty() const { return params_.empty(); }

 private:
  std::vector<Param> params_;
};

/// Parses a raw query string (without the '?'), percent-decoding keys and values and reading '+'
/// as a space. A malformed escape gives kInvalidArgument.
[[nodiscard]] Result<QueryParams> parse_query(std::string_view raw_query);

/// Percent-decodes one path segment ('+' stays '+'). A malformed escape gives kInvalidArgument.
[[nodiscard]] Result<std::string> decode_path_segment(std::string_view raw_segment);

/// One HTTP request as a handler sees it. The server fills every field; the router sets
/// `path_params`. Handlers may move the body out.
struct Request {
  Method method = Method::kGet;
  std::string method_name;   ///< as sent ("GET"; the verb itself for kOther)
  std::string target;        ///< the raw request-target, e.g. "/history/abc?max_items=5"
  std::string path;          ///< the raw (percent-encoded) path part of the target
  std::string query_string;  ///< the raw query part, without '?'; empty when there is none
  unsigned version = 11;     ///< 11 for HTTP/1.1, 10 for HTTP/1.0
  Headers headers;
  std::string body;
  std::string remote_address;  ///< the peer as "HOST:PORT"
  std::vector<std::pair<std::string, std::string>> path_params;  ///< decoded `{name}` captures

  /// A path parameter by name ("/history/{prompt_id}" -> param("prompt_id")).
  std::optional<std::string_view> param(std::string_view name) const;
  /// The decoded query; kInvalidArgument when malformed.
  [[nodiscard]] Result<QueryParams> query() const { return parse_query(query_string); }
  /// One decoded query parameter; nullopt when absent or when the query is malformed.
  std::optional<std::string> query_param(std::string_view name) const;
};

/// One HTTP response. The server adds Content-Length, Connection and Server; anything else a
/// handler wants (Content-Type, Allow, Location, caching) goes in `headers`.
struct Response {
  int status = 200;
  Headers headers;
  std::string body;

  /// A JSON body (serialized) with Content-Type application/json.
  static Response json(const boost::json::value& value, int status = 200);
  /// A text body with the given Content-Type.
  static Response text(std::string body, int status = 200,
                       std::string content_type = "text/plain; charset=utf-8");
  /// A response without a body.
  static Response empty(int status = 204);
};

}  // namespace comfyfarm::net
