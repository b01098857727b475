// FileNamer: the names ComfyUI gives saved and previewed images ("<prefix>_00001_.png",
// "ComfyUI_temp_abcde_00001_.png"), with per-prefix counters and per-node random temp prefixes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

namespace comfyfarm::sim {

/// One entry of a ui "images" list, as /view takes it.
struct ImageRef {
  std::string filename{};
  std::string subfolder{};
  std::string type{};  ///< "output" or "temp"
  friend bool operator==(const ImageRef&, const ImageRef&) = default;
};

/// Deterministic for a given seed and call order. Not thread-safe.
class FileNamer {
 public:
  explicit FileNamer(std::uint64_t seed) : rng_(seed) {}

  /// Names for `count` images saved under filename_prefix into folder `type` ("output" or
  /// "temp"): ComfyUI's get_save_image_path. A "/" in the prefix makes a subfolder; %width% and
  /// %height% are replaced, as is %batch_num% per image. Counters continue per prefix.
  [[nodiscard]] std::vector<ImageRef> next_names(std::string_view type,
                                                 std::string_view filename_prefix,
                                                 std::int64_t width, std::int64_t height,
                                                 std::size_t count);
  /// PreviewImage's "_temp_<5 letters>" suffix of the node object (node_id, class_type): chosen
  /// at random when the object is created, kept while the node stays in consecutive prompts.
  [[nodiscard]] const std::string& temp_suffix(std::string_view node_id,
                                               std::string_view class_type);
  /// Drops node objects the new prompt does not keep (ComfyUI's objects cache clean_unused).
  void retain_objects(
      const std::function<bool(std::string_view node_id, std::string_view class_type)>& keep);
  /// The next counter for a prefix (a server that finds files on disk continues after them).
  void set_next_counter(std::string_view type, std::string_view subfolder,
                        std::string_view filename, std::uint32_t next);

 private:
  std::mt19937_64 rng_;
  std::map<std::tuple<std::string, std::string, std::string>, std::uint32_t> counters_;
  std::map<std::pair<std::string, std::string>, std::string> temp_suffixes_;
};

}  // namespace comfyfarm::sim
