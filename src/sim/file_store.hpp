// FileStore: one simulated server's input/, output/ and temp/ folders, with ComfyUI's rules for
// GET /view, POST /upload/image and /upload/mask, and the writing of output images.
#pragma once

#include "core/error.hpp"
#include "net/http_types.hpp"
#include "net/multipart_parser.hpp"

#include <boost/json/object.hpp>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::sim {

/// What the server knows of a file in the input folder (LoadImage's size and IS_CHANGED).
struct InputFileInfo {
  std::string name{};      ///< relative to input/, '/'-separated ("sub/a.png")
  std::int64_t width = 0;  ///< 0 when the size could not be read (not PNG/JPEG)
  std::int64_t height = 0;
  std::string fingerprint{};  ///< changes when the bytes change
};

/// An output counter found on disk: `<subfolder>/<filename>_NNNNN_.png` in output/.
struct ExistingCounter {
  std::string subfolder{};
  std::string filename{};
  std::uint32_t next = 1;
};

/// A reply of /view or /upload: a status and, for 200, the body and its type.
struct FileReply {
  int status = 200;
  std::string body{};
  std::string content_type{};
  std::string disposition_name{};               ///< /view: the Content-Disposition file name
  std::optional<InputFileInfo> stored_input{};  ///< /upload into input/: the file now there
};

/// Every function blocks on the file system: call them through run_blocking on one thread (the
/// process's file pool), which also serializes uploads that race for the same name. The object
/// holds only paths, so it may be copied to the pool.
class FileStore {
 public:
  /// Creates root/{input,output,temp}; temp/ is emptied, as ComfyUI does at start.
  [[nodiscard]] static Result<FileStore> create(std::filesystem::path root);

  [[nodiscard]] const std::filesystem::path& root() const noexcept { return root_; }
  /// input/, output/ or temp/ for "input", "output", "temp"; nullopt for any other type.
  [[nodiscard]] std::optional<std::filesystem::path> folder(std::string_view type) const;

  /// GET /view with ComfyUI's checks: filename missing 404; empty, absolute or with ".." 400;
  /// a " [input]"/" [output]"/" [temp]" suffix overrides type; unknown type 400; a subfolder
  /// escaping its folder 403; no such file 404. The file is served as stored (no preview
  /// re-encoding, no channel extraction).
  [[nodiscard]] FileReply view(const net::QueryParams& query) const;

  /// POST /upload/image (mask=false) or /upload/mask: ComfyUI's image_upload (type input,
  /// temp or output; a subfolder; overwrite; a same-content file is reused; otherwise
  /// "name (1).ext"...). The mask variant checks original_ref and stores the uploaded mask as
  /// the result (the alpha channel is not composed onto the original).
  [[nodiscard]] FileReply upload(const std::vector<net::FormPart>& parts, bool mask) const;

  /// Writes an output image (type "output" or "temp"); kInvalidArgument when the path escapes
  /// the folder, kUnavailable on an I/O error.
  [[nodiscard]] Result<void> write(std::string_view type, std::string_view subfolder,
                                   std::string_view filename,
                                   const std::vector<std::uint8_t>& bytes) const;

  /// True when `relative` names a file in the folder of `type` (validation of LoadImage).
  [[nodiscard]] bool exists(std::string_view type, std::string_view relative) const;

  /// Every file under input/, with sizes and fingerprints.
  [[nodiscard]] std::vector<InputFileInfo> scan_inputs() const;
  /// Output counters already used on disk, so saving continues after them.
  [[nodiscard]] std::vector<ExistingCounter> scan_output_counters() const;

  /// Reads a file's image size and fingerprint from its bytes.
  [[nodiscard]] static InputFileInfo describe(std::string name, std::string_view bytes);
  /// True for the file names LoadImage lists (image extensions).
  [[nodiscard]] static bool is_image_name(std::string_view name);
  /// The Content-Type /view sends for a file name (Python's mimetypes, with HTML, JS and CSS
  /// forced to application/octet-stream).
  [[nodiscard]] static std::string content_type_for(std::string_view filename);

 private:
  explicit FileStore(std::filesystem::path root) : root_(std::move(root)) {}
  std::filesystem::path root_;
};

}  // namespace comfyfarm::sim
