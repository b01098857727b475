#include "sim/model_library.hpp"

#include "comfy/json_util.hpp"
#include "sim/default_data.hpp"
#include "sim/detail/data_reader.hpp"

#include <boost/json/object.hpp>

#include <algorithm>
#include <set>
#include <string>
#include <utility>

namespace comfyfarm::sim {

namespace {

using detail::DataReader;

constexpr std::uint64_t kFallbackBytes = 1'000'000'000;

Result<void> read_file_fields(const DataReader& r, const json::object& o, const std::string& path,
                              ModelFile& out) {
  for (auto [key, field] : {std::pair{"folder", &out.folder}, std::pair{"filename", &out.filename},
                            std::pair{"kind", &out.kind}, std::pair{"arch", &out.arch}}) {
    if (auto s = r.string(o, key, path, *field); !s) return s;
  }
  if (auto b = r.bytes(o, "size_bytes", path, out.size_bytes); !b) return b;
  if (auto b = r.bytes(o, "vram_bytes", path, out.vram_bytes); !b) return b;
  return r.number(o, "scale", path, out.scale);
}

}  // namespace

Result<ModelLibrary> ModelLibrary::parse(std::string_view json_text) {
  auto doc = comfy::parse_json(json_text);
  if (!doc) return fail(Errc::kInvalidArgument, "models: " + doc.error().message);
  return from_json(*doc);
}

Result<ModelLibrary> ModelLibrary::from_json(const json::value& doc) {
  const DataReader r("models");
  if (!doc.is_object()) return r.expected("", "an object", doc);
  const auto& o = doc.get_object();
  if (auto k = r.only_keys(o, "", {"schema", "folder_defaults", "models"}); !k) return k.error();
  std::string schema = "comfyfarm-sim-models/1";
  if (auto s = r.string(o, "schema", "", schema); !s) return s.error();
  if (schema != "comfyfarm-sim-models/1") {
    return r.error("schema", "unsupported schema \"" + schema + "\"");
  }
  ModelLibrary lib;
  if (const auto* defaults = o.if_contains("folder_defaults")) {
    if (!defaults->is_object()) return r.expected("folder_defaults", "an object", *defaults);
    for (const auto& kv : defaults->get_object()) {
      const std::string path = "folder_defaults." + std::string(kv.key());
      if (!kv.value().is_object()) return r.expected(path, "an object", kv.value());
      const auto& fo = kv.value().get_object();
      if (auto k = r.only_keys(fo, path, {"kind", "arch", "size_bytes", "vram_bytes", "scale"});
          !k) {
        return k.error();
      }
      ModelFile d;
      if (auto f = read_file_fields(r, fo, path, d); !f) return f.error();
      d.folder = std::string(kv.key());
      lib.folder_defaults_.insert_or_assign(d.folder, std::move(d));
    }
  }
  if (const auto* models = o.if_contains("models")) {
    if (!models->is_array()) return r.expected("models", "an array", *models);
    std::size_t i = 0;
    for (const auto& m : models->get_array()) {
      const std::string path = "models[" + std::to_string(i++) + "]";
      if (!m.is_object()) return r.expected(path, "an object", m);
      const auto& mo = m.get_object();
      if (auto k = r.only_keys(
              mo, path,
              {"folder", "filename", "kind", "arch", "size_bytes", "vram_bytes", "scale"});
          !k) {
        return k.error();
      }
      ModelFile f;
      if (auto rf = read_file_fields(r, mo, path, f); !rf) return rf.error();
      if (f.folder.empty() || f.filename.empty()) {
        return r.error(path, "\"folder\" and \"filename\" are required");
      }
      if (f.size_bytes == 0) return r.error(path, "\"size_bytes\" is required");
      lib.add(std::move(f));
    }
  }
  return lib;
}

Result<ModelLibrary> ModelLibrary::load_default() { return parse(default_models_json()); }

void ModelLibrary::merge(const ModelLibrary& other) {
  for (const auto& [folder, d] : other.folder_defaults_)
    folder_defaults_.insert_or_assign(folder, d);
  for (const auto& f : other.files_) add(f);
}

void ModelLibrary::add(ModelFile file) {
  if (file.vram_bytes == 0) file.vram_bytes = file.size_bytes;
  for (auto& f : files_) {
    if (f.folder == file.folder && f.filename == file.filename) {
      f = std::move(file);
      return;
    }
  }
  files_.push_back(std::move(file));
}

const ModelFile* ModelLibrary::find(std::string_view folder,
                                    std::string_view filename) const noexcept {
  for (const auto& f : files_) {
    if (f.folder == folder && f.filename == filename) return &f;
  }
  return nullptr;
}

ModelFile ModelLibrary::resolve(std::string_view folder, std::string_view filename) const {
  if (const auto* f = find(folder, filename)) return *f;
  ModelFile out;
  if (const auto it = folder_defaults_.find(folder); it != folder_defaults_.end()) {
    out = it->second;
  }
  out.folder = std::string(folder);
  out.filename = std::string(filename);
  if (out.size_bytes == 0) out.size_bytes = kFallbackBytes;
  if (out.vram_bytes == 0) out.vram_bytes = out.size_bytes;
  return out;
}

std::vector<std::string> ModelLibrary::files(std::string_view folder) const {
  std::vector<std::string> out;
  for (const auto& f : files_) {
    if (f.folder == folder) out.push_back(f.filename);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> ModelLibrary::folders() const {
  std::set<std::string> s;
  for (const auto& f : files_) s.insert(f.folder);
  for (const auto& [folder, d] : folder_defaults_) s.insert(folder);
  return {s.begin(), s.end()};
}

}  // namespace comfyfarm::sim
