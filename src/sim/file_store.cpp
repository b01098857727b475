#include "sim/file_store.hpp"

#include "comfy/json_util.hpp"

#include <boost/json/object.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <system_error>

namespace comfyfarm::sim {

namespace fs = std::filesystem;

namespace {

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

/// Python's `s[:-n]`.
std::string drop_last(std::string s, std::size_t n) {
  s.resize(s.size() > n ? s.size() - n : 0);
  return s;
}

/// folder_paths.annotated_filepath: "name [output]" -> ("name", "output").
std::pair<std::string, std::optional<std::string>> annotated(std::string name) {
  if (ends_with(name, "[output]")) return {drop_last(std::move(name), 9), "output"};
  if (ends_with(name, "[input]")) return {drop_last(std::move(name), 8), "input"};
  if (ends_with(name, "[temp]")) return {drop_last(std::move(name), 7), "temp"};
  return {std::move(name), std::nullopt};
}

/// os.path.commonpath((abspath(p), base)) == base, with both absolute.
bool inside(const fs::path& base, const fs::path& p) {
  const fs::path rel = p.lexically_normal().lexically_relative(base.lexically_normal());
  if (rel.empty()) return false;
  const auto first = rel.begin()->string();
  return first != "..";
}

/// os.path.splitext: the extension starts at the last '.' of the base name, leading dots
/// excluded.
std::pair<std::string, std::string> splitext(const std::string& name) {
  const auto slash = name.find_last_of('/');
  const std::size_t base = slash == std::string::npos ? 0 : slash + 1;
  std::size_t start = base;
  while (start < name.size() && name[start] == '.') ++start;
  const auto dot = name.find_last_of('.');
  if (dot == std::string::npos || dot < start) return {name, ""};
  return {name.substr(0, dot), name.substr(dot)};
}

std::optional<std::string> read_whole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return std::nullopt;
  return data;
}

bool write_whole(const fs::path& path, std::string_view bytes) {
  std::error_code ec;
  fs::create_directories(path.parent_path(), ec);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return false;
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  return static_cast<bool>(out);
}

std::uint32_t be32(std::string_view b, std::size_t at) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(b[at])) << 24) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 1])) << 16) |
         (static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 2])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 3]));
}

std::uint32_t be16(std::string_view b, std::size_t at) {
  return (static_cast<std::uint32_t>(static_cast<unsigned char>(b[at])) << 8) |
         static_cast<std::uint32_t>(static_cast<unsigned char>(b[at + 1]));
}

std::string form_value(const std::vector<net::FormPart>& parts, std::string_view name,
                       std::string fallback) {
  const auto* p = net::find_part(parts, name);
  return p == nullptr ? fallback : p->data;
}

FileReply status_only(int status) {
  FileReply r;
  r.status = status;
  return r;
}

FileReply python_crash() {
  FileReply r;
  r.status = 500;
  r.body = "500 Internal Server Error\n\nServer got itself in trouble";
  r.content_type = "text/plain; charset=utf-8";
  return r;
}

}  // namespace

Result<FileStore> FileStore::create(fs::path root) {
  std::error_code ec;
  root = fs::absolute(root, ec);
  if (ec) return fail(Errc::kInvalidArgument, "output dir " + root.string() + ": " + ec.message());
  fs::remove_all(root / "temp", ec);
  for (const char* sub : {"input", "output", "temp"}) {
    fs::create_directories(root / sub, ec);
    if (ec) {
      return fail(Errc::kUnavailable,
                  "cannot create " + (root / sub).string() + ": " + ec.message());
    }
  }
  return FileStore(std::move(root));
}

std::optional<fs::path> FileStore::folder(std::string_view type) const {
  if (type == "input" || type == "output" || type == "temp") return root_ / std::string(type);
  return std::nullopt;
}

FileReply FileStore::view(const net::QueryParams& query) const {
  const auto filename_q = query.get("filename");
  if (!filename_q) return status_only(404);
  auto [filename, annotated_type] = annotated(std::string(*filename_q));
  if (filename.empty()) return status_only(400);
  if (filename.front() == '/' || filename.find("..") != std::string::npos) {
    return status_only(400);
  }
  const std::string type =
      annotated_type ? *annotated_type : std::string(query.get("type").value_or("output"));
  auto dir = folder(type);
  if (!dir) return status_only(400);
  if (const auto sub = query.get("subfolder")) {
    const fs::path full = *dir / std::string(*sub);
    if (!inside(*dir, full)) return status_only(403);
    dir = full;
  }
  const auto slash = filename.find_last_of('/');
  const std::string base = slash == std::string::npos ? filename : filename.substr(slash + 1);
  const fs::path file = *dir / base;
  std::error_code ec;
  if (base.empty() || !fs::is_regular_file(file, ec)) return status_only(404);
  auto data = read_whole(file);
  if (!data) return status_only(404);
  FileReply r;
  r.body = std::move(*data);
  r.content_type = content_type_for(base);
  r.disposition_name = base;
  return r;
}

FileReply FileStore::upload(const std::vector<net::FormPart>& parts, bool mask) const {
  const auto* image = net::find_part(parts, "image");
  if (image == nullptr || !image->filename) return status_only(400);
  std::string filename = *image->filename;
  if (filename.empty()) return status_only(400);

  const auto* type_part = net::find_part(parts, "type");
  const std::string type = type_part == nullptr ? "input" : type_part->data;
  const auto upload_dir = folder(type);
  if (!upload_dir) return python_crash();  // get_dir_by_type: UnboundLocalError

  std::optional<fs::path> original;
  if (mask) {
    const auto* ref_part = net::find_part(parts, "original_ref");
    if (ref_part == nullptr) return python_crash();  // json.loads(None)
    auto ref = comfy::parse_json(ref_part->data);
    if (!ref || !ref->is_object()) return python_crash();
    const auto& obj = ref->get_object();
    const auto* fname = obj.if_contains("filename");
    if (fname == nullptr || !fname->is_string()) return python_crash();
    auto [orig_name, orig_type] = annotated(std::string(fname->get_string()));
    if (orig_name.empty()) return status_only(400);
    if (orig_name.front() == '/' || orig_name.find("..") != std::string::npos) {
      return status_only(400);
    }
    std::string t = "output";
    if (orig_type) {
      t = *orig_type;
    } else if (const auto* tv = obj.if_contains("type"); tv != nullptr && tv->is_string()) {
      t = std::string(tv->get_string());
    }
    auto dir = folder(t);
    if (!dir) return status_only(400);
    if (const auto* sv = obj.if_contains("subfolder");
        sv != nullptr && sv->is_string() && !sv->get_string().empty()) {
      const fs::path full = *dir / std::string(sv->get_string());
      if (!inside(*dir, full)) return status_only(403);
      dir = full;
    }
    original = *dir / orig_name;
  }

  const std::string subfolder = form_value(parts, "subfolder", "");
  const fs::path full_folder =
      (*upload_dir / fs::path(subfolder.empty() ? "." : subfolder).lexically_normal())
          .lexically_normal();
  fs::path filepath = (full_folder / filename).lexically_normal();
  if (!inside(*upload_dir, filepath)) return status_only(400);

  const std::string overwrite = form_value(parts, "overwrite", "");
  bool duplicate = false;
  std::error_code ec;
  if (overwrite != "true" && overwrite != "1") {
    const auto [stem, ext] = splitext(filename);
    for (int i = 1; fs::exists(filepath, ec); ++i) {
      if (const auto existing = read_whole(filepath); existing && *existing == image->data) {
        duplicate = true;
        break;
      }
      filename = stem + " (" + std::to_string(i) + ")" + ext;
      filepath = full_folder / filename;
    }
  }
  // /upload/mask saves only when the original exists (ComfyUI composes onto it).
  const bool save = !duplicate && (!mask || (original && fs::is_regular_file(*original, ec)));
  if (save && !write_whole(filepath, image->data)) return python_crash();

  boost::json::object body;
  body["name"] = filename;
  body["subfolder"] = subfolder;
  body["type"] = type;
  FileReply r;
  r.body = comfy::dumps(body);
  r.content_type = "application/json; charset=utf-8";
  if (type == "input" && (save || duplicate)) {
    const fs::path rel = filepath.lexically_relative(*upload_dir);
    r.stored_input = describe(rel.generic_string(), image->data);
  }
  return r;
}

Result<void> FileStore::write(std::string_view type, std::string_view subfolder,
                              std::string_view filename,
                              const std::vector<std::uint8_t>& bytes) const {
  const auto dir = folder(type);
  if (!dir) return fail(Errc::kInvalidArgument, "unknown folder type " + std::string(type));
  const fs::path path = (*dir / std::string(subfolder) / std::string(filename)).lexically_normal();
  if (!inside(*dir, path) || filename.empty()) {
    return fail(Errc::kInvalidArgument,
                "Saving image outside the output folder is not allowed: " + path.string());
  }
  const std::string_view view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (!write_whole(path, view)) return fail(Errc::kUnavailable, "cannot write " + path.string());
  return {};
}

bool FileStore::exists(std::string_view type, std::string_view relative) const {
  const auto dir = folder(type);
  if (!dir || relative.empty()) return false;
  const fs::path path = (*dir / std::string(relative)).lexically_normal();
  std::error_code ec;
  return inside(*dir, path) && fs::is_regular_file(path, ec);
}

std::vector<InputFileInfo> FileStore::scan_inputs() const {
  std::vector<InputFileInfo> out;
  const fs::path dir = root_ / "input";
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    auto data = read_whole(it->path());
    if (!data) continue;
    out.push_back(describe(it->path().lexically_relative(dir).generic_string(), *data));
  }
  return out;
}

std::vector<ExistingCounter> FileStore::scan_output_counters() const {
  std::map<std::pair<std::string, std::string>, std::uint32_t> next;
  const fs::path dir = root_ / "output";
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const std::string stem = splitext(it->path().filename().string()).first;
    // "<name>_<digits>_": the counter between the last two underscores.
    if (stem.size() < 3 || stem.back() != '_') continue;
    const auto under = stem.find_last_of('_', stem.size() - 2);
    if (under == std::string::npos) continue;
    const std::string_view digits(stem.data() + under + 1, stem.size() - under - 2);
    std::uint32_t n = 0;
    const auto r = std::from_chars(digits.data(), digits.data() + digits.size(), n);
    if (digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size()) continue;
    std::string sub = it->path().parent_path().lexically_relative(dir).generic_string();
    if (sub == ".") sub.clear();
    auto& slot = next[{sub, stem.substr(0, under)}];
    slot = std::max(slot, n + 1);
  }
  std::vector<ExistingCounter> out;
  for (const auto& [key, n] : next) out.push_back({key.first, key.second, n});
  return out;
}

InputFileInfo FileStore::describe(std::string name, std::string_view bytes) {
  InputFileInfo info;
  info.name = std::move(name);
  info.fingerprint =
      std::to_string(bytes.size()) + "-" + std::to_string(std::hash<std::string_view>{}(bytes));
  static constexpr std::string_view kPng = "\x89PNG\r\n\x1a\n";
  if (bytes.size() >= 24 && bytes.substr(0, 8) == kPng && bytes.substr(12, 4) == "IHDR") {
    info.width = be32(bytes, 16);
    info.height = be32(bytes, 20);
    return info;
  }
  if (bytes.size() >= 4 && static_cast<unsigned char>(bytes[0]) == 0xFF &&
      static_cast<unsigned char>(bytes[1]) == 0xD8) {
    std::size_t at = 2;
    while (at + 9 < bytes.size()) {
      if (static_cast<unsigned char>(bytes[at]) != 0xFF) break;
      const auto marker = static_cast<unsigned char>(bytes[at + 1]);
      const std::uint32_t length = be16(bytes, at + 2);
      const bool sof =
          marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
      if (sof) {
        info.height = be16(bytes, at + 5);
        info.width = be16(bytes, at + 7);
        break;
      }
      at += 2 + length;
    }
  }
  return info;
}

bool FileStore::is_image_name(std::string_view name) {
  std::string ext = splitext(std::string(name)).second;
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static constexpr std::array<std::string_view, 10> kImages = {
      ".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".avif", ".jfif"};
  return std::find(kImages.begin(), kImages.end(), ext) != kImages.end();
}

std::string FileStore::content_type_for(std::string_view filename) {
  std::string ext = splitext(std::string(filename)).second;
  for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  static const std::map<std::string, std::string, std::less<>> kTypes = {
      {".png", "image/png"},   {".jpg", "image/jpeg"},        {".jpeg", "image/jpeg"},
      {".webp", "image/webp"}, {".gif", "image/gif"},         {".bmp", "image/bmp"},
      {".tif", "image/tiff"},  {".tiff", "image/tiff"},       {".svg", "image/svg+xml"},
      {".avif", "image/avif"}, {".json", "application/json"}, {".txt", "text/plain"},
      {".mp4", "video/mp4"},   {".webm", "video/webm"},       {".mov", "video/quicktime"},
      {".mp3", "audio/mpeg"},  {".wav", "audio/x-wav"},       {".flac", "audio/flac"},
      {".ogg", "audio/ogg"},   {".glb", "model/gltf-binary"},
  };
  const auto it = kTypes.find(ext);
  return it == kTypes.end() ? "application/octet-stream" : it->second;
}

}  // namespace comfyfarm::sim
