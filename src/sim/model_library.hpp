// ModelLibrary: the model files a simulated server has (folder, name, size, family), read from
// data (data/sim/models.json plus user files); feeds /models, the loaders' combos and the VRAM
// model.
#pragma once

#include "core/error.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::sim {

namespace json = boost::json;

/// One model file.
struct ModelFile {
  std::string folder{};    ///< ComfyUI model folder: "checkpoints", "loras", "vae", ...
  std::string filename{};  ///< as listed by /models/{folder} and accepted by the loader's combo
  std::string kind{};      ///< "checkpoint", "lora", ... (informational)
  std::string arch{};      ///< model family for arch_factors ("sd15", "sdxl", ...); may be empty
  std::uint64_t size_bytes = 0;  ///< on disk: what a load reads
  std::uint64_t vram_bytes = 0;  ///< resident in VRAM once loaded (fp16 weights)
  double scale = 0.0;            ///< upscale factor of an upscale model; 0 when not one

  /// "folder/filename": the VRAM model's key for this file.
  [[nodiscard]] std::string key() const { return folder + "/" + filename; }
  friend bool operator==(const ModelFile&, const ModelFile&) = default;
};

/// Model files by folder, plus per-folder defaults for files listed by name only. Immutable
/// once a server runs; safe to share.
class ModelLibrary {
 public:
  /// Parses a models file (schema in docs/sim-model.md); Errc::kInvalidArgument naming the entry.
  [[nodiscard]] static Result<ModelLibrary> parse(std::string_view json_text);
  [[nodiscard]] static Result<ModelLibrary> from_json(const json::value& doc);
  /// The built-in list (data/sim/models.json, compiled in).
  [[nodiscard]] static Result<ModelLibrary> load_default();

  /// Adds other's files and folder defaults; a file with the same folder and name is replaced.
  void merge(const ModelLibrary& other);
  /// Adds or replaces one file.
  void add(ModelFile file);
  /// Removes every file (folder defaults stay): for a --models list that replaces the default.
  void clear_files() { files_.clear(); }

  [[nodiscard]] const ModelFile* find(std::string_view folder,
                                      std::string_view filename) const noexcept;
  /// find(), or a file of that name with the folder's default size and family (a file a user
  /// listed by name only, or one the library does not know).
  [[nodiscard]] ModelFile resolve(std::string_view folder, std::string_view filename) const;
  /// File names in a folder, sorted (what ComfyUI's folder_paths.get_filename_list returns).
  [[nodiscard]] std::vector<std::string> files(std::string_view folder) const;
  /// Folders that have files or defaults, sorted.
  [[nodiscard]] std::vector<std::string> folders() const;
  [[nodiscard]] std::span<const ModelFile> all() const noexcept { return files_; }

 private:
  std::vector<ModelFile> files_;
  std::map<std::string, ModelFile, std::less<>> folder_defaults_;
};

}  // namespace comfyfarm::sim
