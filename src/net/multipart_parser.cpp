#include "net/multipart_parser.hpp"

#include "net/http_types.hpp"

#include <algorithm>

namespace comfyfarm::net {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The value of `key` in a header parameter list ("form-data; name=\"a\"; filename=\"b\"").
std::optional<std::string> header_param(std::string_view header, std::string_view key) {
  // Split at ';' outside quotes.
  std::vector<std::string_view> items;
  bool quoted = false;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= header.size(); ++i) {
    if (i < header.size() && header[i] == '"') quoted = !quoted;
    if (i == header.size() || (header[i] == ';' && !quoted)) {
      items.push_back(trim(header.substr(start, i - start)));
      start = i + 1;
    }
  }
  for (std::string_view item : items) {
    auto eq = item.find('=');
    if (eq == std::string_view::npos || !iequals(trim(item.substr(0, eq)), key)) continue;
    std::string_view v = trim(item.substr(eq + 1));
    if (v.size() >= 2 && v.front() == '"' && v.back() == '"') {
      std::string out;
      for (std::size_t i = 1; i + 1 < v.size(); ++i) {
        if (v[i] == '\\' && i + 2 < v.size()) ++i;
        out += v[i];
      }
      return out;
    }
    return std::string(v);
  }
  return std::nullopt;
}

}  // namespace

Result<std::vector<FormPart>> parse_multipart(std::string_view content_type,
                                              std::string_view body) {
  auto semi = content_type.find(';');
  if (!iequals(trim(content_type.substr(0, semi)), "multipart/form-data")) {
    return fail(Errc::kInvalidArgument, "expected Content-Type multipart/form-data");
  }
  auto boundary = header_param(content_type, "boundary");
  if (!boundary || boundary->empty() || boundary->size() > 200) {
    return fail(Errc::kInvalidArgument, "multipart body without a valid boundary");
  }
  const std::string delimiter = "--" + *boundary;
  std::vector<FormPart> parts;
  std::size_t pos = body.find(delimiter);
  if (pos == std::string_view::npos) return fail(Errc::kInvalidArgument, "multipart boundary not found");
  for (;;) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") return parts;  // the closing delimiter
    if (body.substr(pos, 2) != "\r\n") return fail(Errc::kInvalidArgument, "malformed multipart delimiter line");
    pos += 2;
    const std::size_t headers_end = body.find("\r\n\r\n", pos);
    if (headers_end == std::string_view::npos) {
      return fail(Errc::kInvalidArgument, "multipart part without a header end");
    }
    FormPart part;
    std::string_view headers = body.substr(pos, headers_end - pos);
    bool has_disposition = false;
    while (!headers.empty()) {
      auto eol = headers.find("\r\n");
      std::string_view line = headers.substr(0, eol);
      headers = eol == std::string_view::npos ? std::string_view() : headers.substr(eol + 2);
      auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      auto name = trim(line.substr(0, colon));
      auto value = trim(line.substr(colon + 1));
      if (iequals(name, "Content-Disposition")) {
        has_disposition = true;
        part.name = header_param(value, "name").value_or("");
        part.filename = header_param(value, "filename");
      } else if (iequals(name, "Content-Type")) {
        part.content_type = std::string(value);
      }
    }
    if (!has_disposition) return fail(Errc::kInvalidArgument, "multipart part without Content-Disposition");
    const std::size_t data_start = headers_end + 4;
    const std::size_t next = body.find("\r\n" + delimiter, data_start);
    if (next == std::string_view::npos) {
      return fail(Errc::kInvalidArgument, "multipart body is truncated (no closing boundary)");
    }
    part.data = std::string(body.substr(data_start, next - data_start));
    parts.push_back(std::move(part));
    pos = next + 2;
  }
}

const FormPart* find_part(const std::vector<FormPart>& parts, std::string_view name) {
  auto it = std::find_if(parts.begin(), parts.end(), [&](const FormPart& p) { return p.name == name; });
  return it == parts.end() ? nullptr : &*it;
}

}  // namespace comfyfarm::net
