// MultipartForm: builds a multipart/form-data body (RFC 7578), as ComfyUI's /upload/image reads.
#pragma once

#include <string>
#include <string_view>

namespace comfyfarm::backend {

class MultipartForm {
 public:
  /// `boundary` must not occur in any part; the default is long and random-looking enough for
  /// image bytes, and add_file checks it anyway.
  explicit MultipartForm(std::string boundary = "comfyfarm-boundary-7f3a9c2e51d84b06a1");

  void add_field(std::string_view name, std::string_view value);
  /// False when the boundary occurs inside `bytes` (the caller picks another boundary).
  bool add_file(std::string_view name, std::string_view filename, std::string_view content_type,
                std::string_view bytes);
  /// The finished body (adds the closing boundary).
  std::string finish() &&;
  /// "multipart/form-data; boundary=..."
  std::string content_type() const;

 private:
  void begin_part(std::string_view disposition, std::string_view content_type);
  std::string boundary_;
  std::string body_;
};

}  // namespace comfyfarm::backend
