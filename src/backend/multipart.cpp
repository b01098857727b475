#include "backend/multipart.hpp"

namespace comfyfarm::backend {

namespace {
// Quotes a form-data parameter value; '"' and CR/LF cannot appear in one, so they are
// percent-escaped as browsers do.
std::string quote(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += "%22";
    else if (c == '\r') out += "%0D";
    else if (c == '\n') out += "%0A";
    else out += c;
  }
  out += '"';
  return out;
}
}  // namespace

MultipartForm::MultipartForm(std::string boundary) : boundary_(std::move(boundary)) {}

void MultipartForm::begin_part(std::string_view disposition, std::string_view content_type) {
  body_ += "--";
  body_ += boundary_;
  body_ += "\r\nContent-Disposition: form-data; ";
  body_ += disposition;
  body_ += "\r\n";
  if (!content_type.empty()) {
    body_ += "Content-Type: ";
    body_ += content_type;
    body_ += "\r\n";
  }
  body_ += "\r\n";
}

void MultipartForm::add_field(std::string_view name, std::string_view value) {
  begin_part("name=" + quote(name), {});
  body_ += value;
  body_ += "\r\n";
}

bool MultipartForm::add_file(std::string_view name, std::string_view filename,
                             std::string_view content_type, std::string_view bytes) {
  if (bytes.find(boundary_) != std::string_view::npos) return false;
  begin_part("name=" + quote(name) + "; filename=" + quote(filename),
             content_type.empty() ? "application/octet-stream" : content_type);
  body_ += bytes;
  body_ += "\r\n";
  return true;
}

std::string MultipartForm::finish() && {
  body_ += "--";
  body_ += boundary_;
  body_ += "--\r\n";
  return std::move(body_);
}

std::string MultipartForm::content_type() const {
  return "multipart/form-data; boundary=" + boundary_;
}

}  // namespace comfyfarm::backend
