#include "sim/file_namer.hpp"

#include <cstdio>
#include <utility>

namespace comfyfarm::sim {

namespace {

void replace_all(std::string& s, std::string_view from, std::string_view to) {
  for (std::size_t pos = s.find(from); pos != std::string::npos;
       pos = s.find(from, pos + to.size())) {
    s.replace(pos, from.size(), to);
  }
}

}  // namespace

std::vector<ImageRef> FileNamer::next_names(std::string_view type, std::string_view filename_prefix,
                                            std::int64_t width, std::int64_t height,
                                            std::size_t count) {
  std::string prefix(filename_prefix);
  replace_all(prefix, "%width%", std::to_string(width));
  replace_all(prefix, "%height%", std::to_string(height));
  std::string subfolder;
  std::string filename = prefix;
  if (const auto slash = prefix.find_last_of('/'); slash != std::string::npos) {
    subfolder = prefix.substr(0, slash);
    filename = prefix.substr(slash + 1);
  }
  auto& counter = counters_[{std::string(type), subfolder, filename}];
  if (counter == 0) counter = 1;
  std::vector<ImageRef> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    std::string base = filename;
    replace_all(base, "%batch_num%", std::to_string(i));
    char digits[16];
    std::snprintf(digits, sizeof digits, "%05u", static_cast<unsigned>(counter++));
    out.push_back({base + "_" + digits + "_.png", subfolder, std::string(type)});
  }
  return out;
}

const std::string& FileNamer::temp_suffix(std::string_view node_id, std::string_view class_type) {
  auto [it, inserted] = temp_suffixes_.try_emplace({std::string(node_id), std::string(class_type)});
  if (inserted) {
    // PreviewImage draws from this alphabet (sic: "p" twice, no "w").
    static constexpr std::string_view kLetters = "abcdefghijklmnopqrstupvxyz";
    std::string s = "_temp_";
    for (int i = 0; i < 5; ++i) s += kLetters[rng_() % kLetters.size()];
    it->second = std::move(s);
  }
  return it->second;
}

void FileNamer::retain_objects(
    const std::function<bool(std::string_view, std::string_view)>& keep) {
  std::erase_if(temp_suffixes_,
                [&](const auto& kv) { return !keep(kv.first.first, kv.first.second); });
}

void FileNamer::set_next_counter(std::string_view type, std::string_view subfolder,
                                 std::string_view filename, std::uint32_t next) {
  counters_[{std::string(type), std::string(subfolder), std::string(filename)}] = next;
}

}  // namespace comfyfarm::sim
