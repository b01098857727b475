#include "net/http_types.hpp"

#include <boost/json/serialize.hpp>
#include <boost/json/value.hpp>
#include <boost/url/encoding_opts.hpp>
#include <boost/url/parse_query.hpp>
#include <boost/url/params_encoded_view.hpp>
#include <boost/url/pct_string_view.hpp>

#include <algorithm>

namespace comfyfarm::net {

std::string_view to_string(Method method) noexcept {
  switch (method) {
    case Method::kGet: return "GET";
    case Method::kHead: return "HEAD";
    case Method::kPost: return "POST";
    case Method::kPut: return "PUT";
    case Method::kDelete: return "DELETE";
    case Method::kOptions: return "OPTIONS";
    case Method::kPatch: return "PATCH";
    case Method::kOther: return "OTHER";
  }
  return "OTHER";
}

Method parse_method(std::string_view text) noexcept {
  if (text == "GET") return Method::kGet;
  if (text == "HEAD") return Method::kHead;
  if (text == "POST") return Method::kPost;
  if (text == "PUT") return Method::kPut;
  if (text == "DELETE") return Method::kDelete;
  if (text == "OPTIONS") return Method::kOptions;
  if (text == "PATCH") return Method::kPatch;
  return Method::kOther;
}

bool iequals(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    auto lower = [](char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::optional<std::string_view> Headers::get(std::string_view name) const {
  for (const auto& [key, value] : fields_) {
    if (iequals(key, name)) return std::string_view(value);
  }
  return std::nullopt;
}

void Headers::set(std::string name, std::string value) {
  erase(name);
  fields_.emplace_back(std::move(name), std::move(value));
}

void Headers::add(std::string name, std::string value) {
  fields_.emplace_back(std::move(name), std::move(value));
}

std::size_t Headers::erase(std::string_view name) {
  const auto before = fields_.size();
  std::erase_if(fields_, [&](const Field& f) { return iequals(f.first, name); });
  return before - fields_.size();
}

std::optional<std::string_view> QueryParams::get(std::string_view name) const {
  for (const auto& [key, value] : params_) {
    if (key == name) return std::string_view(value);
  }
  return std::nullopt;
}

std::vector<std::string_view> QueryParams::get_all(std::string_view name) const {
  std::vector<std::string_view> out;
  for (const auto& [key, value] : params_) {
    if (key == name) out.emplace_back(value);
  }
  return out;
}

Result<QueryParams> parse_query(std::string_view raw_query) {
  QueryParams out;
  if (raw_query.empty()) return out;
  auto parsed = boost::urls::parse_query(raw_query);
  if (!parsed) {
    return fail(Errc::kInvalidArgument, "malformed query string: " + parsed.error().message());
  }
  boost::urls::encoding_opts opts;
  opts.space_as_plus = true;
  for (const auto& param : *parsed) {
    std::string value;
    if (param.has_value) value = param.value.decode(opts);
    out.add(param.key.decode(opts), std::move(value));
  }
  return out;
}

Result<std::string> decode_path_segment(std::string_view raw_segment) {
  auto pct = boost::urls::make_pct_string_view(raw_segment);
  if (!pct) {
    return fail(Errc::kInvalidArgument, "malformed percent-encoding in path segment '" +
                                            std::string(raw_segment) + "'");
  }
  return pct->decode();
}

std::optional<std::string_view> Request::param(std::string_view name) const {
  for (const auto& [key, value] : path_params) {
    if (key == name) return std::string_view(value);
  }
  return std::nullopt;
}

std::optional<std::string> Request::query_param(std::string_view name) const {
  auto params = query();
  if (!params) return std::nullopt;
  auto value = params->get(name);
  if (!value) return std::nullopt;
  return std::string(*value);
}

Response Response::json(const boost::json::value& value, int status) {
  Response res;
  res.status = status;
  res.headers.set("Content-Type", "application/json");
  res.body = boost::json::serialize(value);
  return res;
}

Response Response::text(std::string body, int status, std::string content_type) {
  Response res;
  res.status = status;
  res.headers.set("Content-Type", std::move(content_type));
  res.body = std::move(body);
  return res;
}

Response Response::empty(int status) {
  Response res;
  res.status = status;
  return res;
}

}  // namespace comfyfarm::net
