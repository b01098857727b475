#include "sim/sim_host.hpp"

#include <boost/json/array.hpp>

#include <spdlog/spdlog.h>
#include <unistd.h>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <system_error>

namespace comfyfarm::sim {

namespace fs = std::filesystem;

namespace {

Result<std::string> read_text(const fs::path& path, std::string_view what) {
  std::ifstream in(path, std::ios::binary);
  if (!in)
    return fail(Errc::kInvalidArgument, std::string(what) + " " + path.string() + ": cannot read");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

Error in_file(const fs::path& path, const Error& e) {
  return Error{Errc::kInvalidArgument, path.string() + ": " + e.message};
}

Result<fs::path> make_temp_root() {
  std::error_code ec;
  fs::path base = fs::temp_directory_path(ec);
  if (ec) base = "/tmp";
  std::string pattern = (base / "comfyfarm-sim-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return fail(Errc::kUnavailable, "cannot create a temporary directory under " + base.string());
  }
  return fs::path(pattern);
}

}  // namespace

Result<SimData> load_sim_data(const SimDataSources& sources) {
  std::vector<std::string> catalogs;
  std::vector<std::string> timings;
  std::vector<std::string> models;
  for (const auto& p : sources.catalog_files) {
    auto text = read_text(p, "catalog");
    if (!text) return text.error();
    if (auto check = NodeCatalog::parse(*text); !check) return in_file(p, check.error());
    catalogs.push_back(std::move(*text));
  }
  for (const auto& p : sources.timing_files) {
    auto text = read_text(p, "timing file");
    if (!text) return text.error();
    if (auto check = TimingModel::parse(*text); !check) return in_file(p, check.error());
    timings.push_back(std::move(*text));
  }
  std::vector<std::string> model_list;
  if (sources.models) {
    std::error_code ec;
    const fs::path p(*sources.models);
    if (fs::is_regular_file(p, ec)) {
      auto text = read_text(p, "models file");
      if (!text) return text.error();
      if (auto check = ModelLibrary::parse(*text); !check) return in_file(p, check.error());
      models.push_back(std::move(*text));
    } else {
      std::string_view rest = *sources.models;
      while (!rest.empty()) {
        const auto comma = rest.find(',');
        const auto item = rest.substr(0, comma);
        if (!item.empty()) model_list.emplace_back(item);
        if (comma == std::string_view::npos) break;
        rest = rest.substr(comma + 1);
      }
      if (model_list.empty()) {
        return fail(Errc::kInvalidArgument,
                    "--models: '" + *sources.models +
                        "' is neither a file nor a list like checkpoints/a.safetensors,b.ckpt");
      }
    }
  }
  auto data = SimData::load(catalogs, timings, models);
  if (!data) return data.error();
  if (!model_list.empty()) {
    // Resolve before clearing, so that known names keep their sizes and families.
    std::vector<ModelFile> files;
    for (const auto& entry : model_list) {
      const auto slash = entry.find('/');
      const std::string folder =
          slash == std::string::npos ? "checkpoints" : entry.substr(0, slash);
      const std::string name = slash == std::string::npos ? entry : entry.substr(slash + 1);
      if (name.empty()) {
        return fail(Errc::kInvalidArgument, "--models: '" + entry + "' has no file name");
      }
      files.push_back(data->models.resolve(folder, name));
    }
    data->models.clear_files();
    for (auto& f : files) data->models.add(std::move(f));
  }
  return data;
}

Result<std::unique_ptr<SimHost>> SimHost::create(boost::asio::io_context& context,
                                                 std::shared_ptr<const SimShared> shared,
                                                 SimHostOptions options) {
  if (options.count == 0) return fail(Errc::kInvalidArgument, "--count must be at least 1");
  if (options.listen.port != 0 &&
      static_cast<std::size_t>(options.listen.port) + options.count - 1 > 65535) {
    return fail(Errc::kInvalidArgument,
                "--count " + std::to_string(options.count) + " servers from port " +
                    std::to_string(options.listen.port) + " go past port 65535");
  }
  std::vector<FaultSet> faults(options.count);
  for (const auto& spec : options.faults) {
    if (spec.target && *spec.target >= options.count) {
      return fail(Errc::kInvalidArgument, "--fault @" + std::to_string(*spec.target) + ":" +
                                              spec.name + ": there are only " +
                                              std::to_string(options.count) +
                                              " servers (indexes from 0)");
    }
    for (std::size_t i = 0; i < options.count; ++i) {
      if (spec.target && *spec.target != i) continue;
      std::optional<std::string_view> value;
      if (spec.value) value = *spec.value;
      if (auto r = faults[i].apply(spec.name, value); !r) return r.error();
    }
  }

  std::unique_ptr<SimHost> host(new SimHost());
  if (options.output_dir.empty()) {
    auto root = make_temp_root();
    if (!root) return root.error();
    host->root_ = std::move(*root);
    host->remove_root_ = true;
  } else {
    std::error_code ec;
    fs::create_directories(options.output_dir, ec);
    if (ec) {
      return fail(Errc::kInvalidArgument,
                  "--output-dir " + options.output_dir.string() + ": " + ec.message());
    }
    host->root_ = fs::absolute(options.output_dir, ec);
  }
  host->file_pool_ = std::make_unique<boost::asio::thread_pool>(1);

  for (std::size_t i = 0; i < options.count; ++i) {
    SimServerConfig config;
    config.index = options.first_index + i;
    config.listen = options.listen;
    if (options.listen.port != 0) {
      config.listen.port = static_cast<std::uint16_t>(options.listen.port + i);
    }
    config.gpu_name = options.gpu_name;
    SimSettings settings = SimSettings::defaults(shared->data);
    if (options.speed) settings.speed = *options.speed;
    if (options.time_scale) settings.time_scale = *options.time_scale;
    settings.vram_total_bytes = options.vram_bytes;
    settings.seed = options.seed + i;
    settings.sampler_previews = options.sampler_previews;
    config.settings = settings;
    config.faults = faults[i];
    config.fault_seed = options.seed + i;
    config.root_dir =
        options.count == 1 ? host->root_ : host->root_ / ("server-" + std::to_string(i));
    auto server = SimServer::create(context, *host->file_pool_, shared, std::move(config));
    if (!server) {
      return Error{server.error().code,
                   "server " + std::to_string(i) + ": " + server.error().message};
    }
    host->servers_.push_back(std::move(*server));
  }
  return host;
}

SimHost::~SimHost() {
  servers_.clear();
  if (file_pool_) file_pool_->join();
  if (remove_root_ && !root_.empty()) {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
}

void SimHost::start() {
  spdlog::info("sim: {} server(s), files under {}", servers_.size(), root_.string());
  for (auto& s : servers_) {
    s->start();
    spdlog::info("sim[{}]: listening on http://{}", s->index(), s->local_address());
  }
}

void SimHost::stop(std::chrono::milliseconds grace, std::function<void()> on_stopped) {
  auto remaining = std::make_shared<std::atomic<std::size_t>>(servers_.size());
  auto done = std::make_shared<std::function<void()>>(std::move(on_stopped));
  if (servers_.empty()) {
    if (*done) (*done)();
    return;
  }
  for (auto& s : servers_) {
    s->stop(grace, [remaining, done] {
      if (remaining->fetch_sub(1) == 1 && *done) (*done)();
    });
  }
}

std::vector<std::string> SimHost::addresses() const {
  std::vector<std::string> out;
  for (const auto& s : servers_) out.push_back(s->local_address());
  return out;
}

boost::json::object SimHost::ready_fields() const {
  boost::json::array servers;
  for (const auto& s : servers_) {
    boost::json::object o;
    o["http"] = s->local_address();
    servers.push_back(std::move(o));
  }
  boost::json::object out;
  out["servers"] = std::move(servers);
  return out;
}

}  // namespace comfyfarm::sim
