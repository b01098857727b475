#include "sim/sim_server.hpp"
#include "core/random_id.hpp"

#include "comfy/bodies.hpp"
#include "comfy/json_util.hpp"
#include "comfy/messages.hpp"
#include "net/http_types.hpp"
#include "net/multipart_parser.hpp"
#include "net/router.hpp"
#include "net/run_blocking.hpp"
#include "net/websocket_session.hpp"
#include "sim/file_store.hpp"
#include "sim/png.hpp"
#include "sim/prompt_run.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <spdlog/spdlog.h>
#include <algorithm>
#include <atomic>
#include <cctype>
#include <charconv>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <list>
#include <map>
#include <random>
#include <unordered_map>
#include <utility>

namespace comfyfarm::sim {

namespace asio = boost::asio;
namespace json = boost::json;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t kMaxHistory = 10000;     // execution.MAXIMUM_HISTORY_SIZE
constexpr std::uint32_t kMaxImageSide = 2048;  // larger outputs are written scaled down
constexpr int kStepsPerYield = 64;  // steps played back to back before the strand is yielded
constexpr std::int64_t kMaxUploadSize = 104857600;

// ComfyUI's model folders (folder_paths.folder_names_and_paths at 0.3.64).
constexpr std::string_view kModelFolders[] = {
    "checkpoints",   "configs",          "loras",         "vae",
    "text_encoders", "diffusion_models", "clip_vision",   "style_models",
    "embeddings",    "diffusers",        "vae_approx",    "controlnet",
    "gligen",        "upscale_models",   "custom_nodes",  "hypernetworks",
    "photomaker",    "classifiers",      "model_patches", "audio_encoders"};

net::Response json_reply(const json::value& v, int status = 200) {
  return net::Response::text(comfy::dumps(v), status, "application/json; charset=utf-8");
}

/// What aiohttp answers when a handler raises (ComfyUI does not catch malformed bodies).
net::Response python_500() {
  return net::Response::text("500 Internal Server Error\n\nServer got itself in trouble", 500,
                             "text/plain; charset=utf-8");
}

net::Response empty_200() { return net::Response::empty(200); }

bool truthy(const json::value& v) { return comfy::python_truthy(v); }

/// Python's str() of a JSON value, as ComfyUI applies it to a client's prompt_id.
std::string python_str(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "None";
    case json::kind::bool_:
      return v.get_bool() ? "True" : "False";
    case json::kind::string:
      return std::string(v.get_string());
    default:
      return comfy::dumps(v);
  }
}

/// Python's float() of a JSON value; nullopt where Python raises.
std::optional<double> python_float(const json::value& v) {
  if (v.is_number()) return v.to_number<double>();
  if (v.is_bool()) return v.get_bool() ? 1.0 : 0.0;
  if (v.is_string()) {
    std::string s(v.get_string());
    while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.pop_back();
    std::size_t i = 0;
    while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
    if (i < s.size() && s[i] == '+') ++i;
    double d = 0.0;
    const auto r = std::from_chars(s.data() + i, s.data() + s.size(), d);
    if (i < s.size() && r.ec == std::errc() && r.ptr == s.data() + s.size()) return d;
  }
  return std::nullopt;
}

/// Python's int() of a query string value; nullopt where Python raises.
std::optional<std::int64_t> python_int(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (!s.empty() && s.front() == '+') s.remove_prefix(1);
  std::int64_t v = 0;
  const auto r = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || r.ec != std::errc() || r.ptr != s.data() + s.size()) return std::nullopt;
  return v;
}

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// Strips a " [input]" / " [output]" / " [temp]" annotation: (name, folder type).
std::pair<std::string_view, std::string_view> split_annotation(std::string_view name) {
  auto cut = [&](std::string_view tag, std::size_t n) {
    return name.size() >= tag.size() && name.substr(name.size() - tag.size()) == tag
               ? std::optional<std::string_view>(
                     name.substr(0, name.size() > n ? name.size() - n : 0))
               : std::nullopt;
  };
  if (auto s = cut("[output]", 9)) return {*s, "output"};
  if (auto s = cut("[input]", 8)) return {*s, "input"};
  if (auto s = cut("[temp]", 7)) return {*s, "temp"};
  return {name, "input"};
}

/// /proc/meminfo's MemTotal and MemAvailable in bytes (0 when unreadable).
std::pair<std::int64_t, std::int64_t> read_ram() {
  std::ifstream in("/proc/meminfo");
  std::string key;
  std::int64_t value = 0;
  std::string unit;
  std::int64_t total = 0;
  std::int64_t available = 0;
  while (in >> key >> value >> unit) {
    if (key == "MemTotal:") total = value * 1024;
    if (key == "MemAvailable:") available = value * 1024;
  }
  return {total, available};
}

/// One output image to write: the PNG is encoded on the file pool.
struct ImageWrite {
  std::string type;
  std::string subfolder;
  std::string filename;
  std::uint32_t width = 1;
  std::uint32_t height = 1;
  Rgb colour{};
  std::vector<std::pair<std::string, std::string>> text;
};

}  // namespace

std::shared_ptr<const SimShared> SimShared::create(SimData data) {
  const auto& models = data.models;
  auto list = [&models](std::string_view folder) {
    // LoadImage's file is checked against the server's own input folder, not a combo list.
    if (folder == "input") return std::vector<std::string>();
    return models.files(folder);
  };
  comfy::NodeCatalog catalog(data.object_info(list));
  return std::make_shared<const SimShared>(SimShared{std::move(data), std::move(catalog)});
}

/// The server's state; every member is touched only on `strand`, except the immutable ones.
struct SimServer::State {
  struct WsClient {
    std::shared_ptr<net::WebSocketSession> session;
    std::string sid;
    bool first_text_seen = false;
    bool preview_metadata = false;
  };
  struct Running {
    comfy::QueueItem item;
    std::optional<std::string> client_id;
    PromptRun* run = nullptr;  ///< a local of the worker coroutine, valid while set
  };
  struct HistoryRecord {
    std::string prompt_id;
    json::value entry;
  };

  using SyncFn = net::Response (State::*)(net::Request&);
  using AsyncFn = asio::awaitable<net::Response> (*)(std::shared_ptr<State>, net::Request*);

  State(asio::io_context& context, asio::thread_pool& pool, std::shared_ptr<const SimShared> sh,
        SimServerConfig cfg, FileStore fs)
      : strand(asio::make_strand(context)),
        file_pool(&pool),
        shared(std::move(sh)),
        config(std::move(cfg)),
        files(std::move(fs)),
        sim(shared->data, config.settings),
        faults(config.faults),
        fault_rng(config.fault_seed),
        id_rng(std::random_device{}()),
        wake_timer(strand),
        step_timer(strand) {}

  // ---- immutable -----------------------------------------------------------------------------
  asio::any_io_executor strand;
  asio::thread_pool* file_pool;
  std::shared_ptr<const SimShared> shared;
  SimServerConfig config;
  FileStore files;

  // ---- on the strand -------------------------------------------------------------------------
  SimState sim;
  FaultSet faults;
  std::mt19937_64 fault_rng;
  std::mt19937_64 id_rng;         ///< prompt ids and sids: unique, not part of --seed determinism
  asio::steady_timer wake_timer;  ///< the idle worker waits on it
  asio::steady_timer step_timer;  ///< paces a prompt's steps

  std::int64_t counter = 0;               ///< PromptServer.number
  std::vector<comfy::QueueItem> pending;  ///< sorted by (number, prompt_id)
  std::optional<Running> running;
  std::list<HistoryRecord> history;
  std::unordered_map<std::string, std::list<HistoryRecord>::iterator> history_index;

  std::map<std::uint64_t, WsClient> sockets;              ///< by session id, in connection order
  std::unordered_map<std::string, std::uint64_t> by_sid;  ///< the last socket of each client id

  std::map<std::string, InputFileInfo, std::less<>> inputs;  ///< files under input/
  std::uint64_t inputs_generation = 1;
  std::uint64_t object_info_generation = 0;
  json::value object_info;
  std::string object_info_body;

  bool pending_unload_models = false;
  bool pending_free_memory = false;
  std::uint64_t sampler_runs = 0;   ///< for oom=every:N, since the oom fault was set
  std::uint64_t crash_prompts = 0;  ///< prompts started since the crash fault was set
  std::uint64_t frames_sent = 0;    ///< WebSocket frames handed to sockets
  std::uint64_t prompts_done = 0;

  std::uint16_t port = 0;  ///< as bound
  bool stopping = false;
  bool worker_running = false;
  std::function<void()> on_worker_stopped;

  // ---- helpers -------------------------------------------------------------------------------

  std::string tag() const { return "sim[" + std::to_string(config.index) + "]"; }

  double uniform() { return static_cast<double>(fault_rng() >> 11) * 0x1.0p-53; }
  bool chance(double p) { return p >= 1.0 || (p > 0.0 && uniform() < p); }

  std::int64_t queue_remaining() const {
    return static_cast<std::int64_t>(pending.size()) + (running ? 1 : 0);
  }

  void wake_worker() { wake_timer.cancel(); }

  // ---- WebSocket -----------------------------------------------------------------------------

  /// Sends `payload` to the route's sockets; false when nobody receives it.
  void deliver(Route route, const std::optional<std::string>& client,
               const std::shared_ptr<const std::string>& payload, bool binary) {
    if (route == Route::kBroadcast) {
      // Registered sockets only: one whose client id was taken over by a newer socket is no
      // longer in ComfyUI's table and gets nothing.
      for (const auto& [sid, id] : by_sid) {
        if (const auto s = sockets.find(id); s != sockets.end()) {
          s->second.session->send_shared(payload, binary);
          ++frames_sent;
        }
      }
    } else if (route == Route::kClient && client) {
      if (const auto it = by_sid.find(*client); it != by_sid.end()) {
        if (const auto s = sockets.find(it->second); s != sockets.end()) {
          s->second.session->send_shared(payload, binary);
          ++frames_sent;
        }
      }
    }
  }

  bool has_recipient(Route route, const std::optional<std::string>& client) const {
    if (route == Route::kBroadcast) return !by_sid.empty();
    return route == Route::kClient && client && by_sid.contains(*client);
  }

  void send_event(Route route, const std::optional<std::string>& client, const comfy::Event& e) {
    if (!has_recipient(route, client)) return;
    deliver(route, client, std::make_shared<const std::string>(comfy::encode_event(e)), false);
  }

  void play(const Step& step, const std::optional<std::string>& client) {
    if (step.route == Route::kNone || !has_recipient(step.route, client)) return;
    if (const auto* e = std::get_if<comfy::Event>(&step.payload)) {
      deliver(step.route, client, std::make_shared<const std::string>(comfy::encode_event(*e)),
              false);
    } else if (const auto* b = std::get_if<comfy::BinaryEvent>(&step.payload)) {
      const auto bytes = comfy::encode_binary(*b);
      deliver(step.route, client, std::make_shared<const std::string>(bytes.begin(), bytes.end()),
              true);
    }
  }

  void broadcast_status() {
    comfy::Status s;
    s.queue_remaining = queue_remaining();
    send_event(Route::kBroadcast, std::nullopt, comfy::Event(std::move(s)));
  }

  void drop_sockets(std::string_view why) {
    if (!sockets.empty())
      spdlog::info("{}: {}: closing {} WebSocket(s)", tag(), why, sockets.size());
    for (auto& [id, c] : sockets)
      c.session->close(net::CloseCode::kInternalError, std::string(why));
  }

  void ws_opened(const std::shared_ptr<net::WebSocketSession>& session, std::string client_id) {
    if (stopping) {
      session->close(net::CloseCode::kGoingAway, "server shutting down");
      return;
    }
    std::string sid = client_id.empty() ? random_hex(id_rng, 32) : std::move(client_id);
    sockets[session->id()] = WsClient{session, sid, false, false};
    by_sid[sid] = session->id();
    comfy::Status status;
    status.queue_remaining = queue_remaining();
    status.sid = sid;
    session->send_text(comfy::encode_event(comfy::Event(std::move(status))));
    ++frames_sent;
    // Reconnect: the client that owns the running prompt is told which node runs.
    if (running && running->client_id == sid && running->run != nullptr &&
        running->run->last_executing_node()) {
      comfy::Executing e;
      e.node = *running->run->last_executing_node();
      session->send_text(comfy::encode_event(comfy::Event(std::move(e))));
      ++frames_sent;
    }
  }

  void ws_message(std::uint64_t id, const net::WebSocketMessage& message) {
    const auto it = sockets.find(id);
    if (it == sockets.end() || message.binary || it->second.first_text_seen) return;
    // ComfyUI looks at the first text frame that parses as a JSON object, once.
    const auto hello = comfy::parse_client_hello(message.data);
    if (!hello) return;
    it->second.first_text_seen = true;
    if (!hello->feature_flags) return;
    it->second.preview_metadata = hello->preview_metadata;
    comfy::FeatureFlags reply;
    reply.flags = features();
    it->second.session->send_text(comfy::encode_event(comfy::Event(std::move(reply))));
    ++frames_sent;
  }

  void ws_closed(std::uint64_t id) {
    const auto it = sockets.find(id);
    if (it == sockets.end()) return;
    // Unlike ComfyUI, a closing old socket does not unregister a newer one of the same id.
    if (const auto s = by_sid.find(it->second.sid); s != by_sid.end() && s->second == id) {
      by_sid.erase(s);
    }
    sockets.erase(it);
  }

  static json::object features() {
    json::object f;
    f["supports_preview_metadata"] = true;
    f["max_upload_size"] = kMaxUploadSize;
    return f;
  }

  // ---- queue and history ---------------------------------------------------------------------

  void enqueue(comfy::QueueItem item) {
    const auto less = [](const comfy::QueueItem& a, const comfy::QueueItem& b) {
      const double na = a.number.as_double();
      const double nb = b.number.as_double();
      if (na != nb) return na < nb;
      return a.prompt_id < b.prompt_id;
    };
    const auto at = std::upper_bound(pending.begin(), pending.end(), item, less);
    pending.insert(at, std::move(item));
    broadcast_status();
    wake_worker();
  }

  void store_history(comfy::HistoryEntry entry) {
    for (const char* key : {"auth_token_comfy_org", "api_key_comfy_org"}) {
      entry.prompt.extra_data.erase(key);
    }
    comfy::History h;
    const std::string id = entry.prompt_id;
    h.entries.push_back(std::move(entry));
    json::value doc = h.to_json();
    json::value value = std::move(doc.get_object()[id]);
    if (const auto it = history_index.find(id); it != history_index.end()) {
      it->second->entry = std::move(value);  // a reused id keeps its place, as a Python dict does
      return;
    }
    if (history.size() > kMaxHistory) {
      history_index.erase(history.front().prompt_id);
      history.pop_front();
    }
    history.push_back({id, std::move(value)});
    history_index[id] = std::prev(history.end());
  }

  void apply_free(bool unload_models, bool free_memory) {
    if (!unload_models && !free_memory) return;
    sim.free(unload_models, free_memory);
    spdlog::debug("{}: free (unload_models={}, free_memory={})", tag(), unload_models, free_memory);
  }

  // ---- files ---------------------------------------------------------------------------------

  bool file_exists(std::string_view folder, std::string_view filename) const {
    if (folder == "input") {
      if (inputs.contains(filename)) return true;
    }
    return files.exists(folder, filename);
  }

  void note_input(InputFileInfo info) {
    const std::string name = info.name;
    inputs.insert_or_assign(name, std::move(info));
    ++inputs_generation;
  }

  const std::string& object_info_text() {
    if (object_info_generation != inputs_generation) {
      std::vector<std::string> images;
      for (const auto& [name, info] : inputs) {
        if (name.find('/') == std::string::npos && FileStore::is_image_name(name)) {
          images.push_back(name);
        }
      }
      object_info = shared->data.object_info_json(images);
      object_info_body = comfy::dumps(object_info);
      object_info_generation = inputs_generation;
    }
    return object_info_body;
  }

  // ---- faults --------------------------------------------------------------------------------

  std::optional<NodeFault> node_fault(std::string_view class_type) {
    if (std::find(faults.node_error_classes.begin(), faults.node_error_classes.end(), class_type) !=
        faults.node_error_classes.end()) {
      NodeFault f;
      f.kind = NodeFault::Kind::kNodeError;
      return f;
    }
    if (shared->data.timing.is_sampler(class_type)) {
      ++sampler_runs;
      const bool periodic = faults.oom_every > 0 && sampler_runs % faults.oom_every == 0;
      if (periodic || (faults.oom_every == 0 && chance(faults.oom_probability))) {
        NodeFault f;
        f.kind = NodeFault::Kind::kOutOfMemory;
        f.exception_type = "torch.OutOfMemoryError";
        return f;
      }
    }
    return std::nullopt;
  }

  void set_faults(FaultSet next) {
    if (next.oom_every != faults.oom_every || next.oom_probability != faults.oom_probability) {
      sampler_runs = 0;
    }
    if (next.crash_after != faults.crash_after ||
        next.crash_probability != faults.crash_probability) {
      crash_prompts = 0;
    }
    faults = std::move(next);
    wake_worker();  // stall may have been lifted
  }

  json::object faults_json() const {
    json::object out;
    out["server"] = config.index;
    out["faults"] = faults.to_json();
    json::array specs;
    for (auto& s : faults.specs()) specs.emplace_back(std::move(s));
    out["specs"] = std::move(specs);
    return out;
  }

  [[noreturn]] void crash_now(const std::string& prompt_id) {
    spdlog::critical("{}: crash fault: killing the process (SIGKILL) while prompt {} runs", tag(),
                     prompt_id);
    spdlog::default_logger()->flush();
    std::fflush(nullptr);
    std::raise(SIGKILL);
    std::_Exit(137);
  }

  PlanRequest plan_request(const comfy::QueueItem& item, const std::optional<std::string>& client) {
    PlanRequest req;
    req.item = item;
    if (client) {
      if (const auto it = by_sid.find(*client); it != by_sid.end()) {
        if (const auto s = sockets.find(it->second); s != sockets.end()) {
          req.preview_metadata = s->second.preview_metadata;
        }
      }
    }
    // The run calls these synchronously on the strand, while this State is alive.
    State* self = this;
    req.fault = [self](std::string_view, std::string_view class_type) {
      return self->node_fault(class_type);
    };
    req.input_image_size = [self](std::string_view filename) -> std::optional<ImageSize> {
      const auto [name, folder] = split_annotation(filename);
      if (folder != "input") return std::nullopt;
      const auto it = self->inputs.find(name);
      if (it == self->inputs.end() || it->second.width <= 0 || it->second.height <= 0) {
        return std::nullopt;
      }
      return ImageSize{it->second.width, it->second.height};
    };
    req.input_fingerprint = [self](std::string_view filename) -> std::string {
      const auto [name, folder] = split_annotation(filename);
      const auto it = self->inputs.find(name);
      return folder == "input" && it != self->inputs.end() ? it->second.fingerprint : std::string();
    };
    return req;
  }

  std::vector<ImageWrite> image_writes(const Step& step, const comfy::QueueItem& item) const {
    std::vector<ImageWrite> out;
    for (const auto& f : step.files) {
      ImageWrite w;
      w.type = f.ref.type;
      w.subfolder = f.ref.subfolder;
      w.filename = f.ref.filename;
      w.colour = f.colour;
      const auto width = static_cast<std::uint64_t>(std::max<std::int64_t>(1, f.width));
      const auto height = static_cast<std::uint64_t>(std::max<std::int64_t>(1, f.height));
      const std::uint64_t side = std::max(width, height);
      if (side > kMaxImageSide) {
        w.width =
            static_cast<std::uint32_t>(std::max<std::uint64_t>(1, width * kMaxImageSide / side));
        w.height =
            static_cast<std::uint32_t>(std::max<std::uint64_t>(1, height * kMaxImageSide / side));
        w.text.emplace_back("comfyfarm_size", std::to_string(width) + "x" + std::to_string(height));
      } else {
        w.width = static_cast<std::uint32_t>(width);
        w.height = static_cast<std::uint32_t>(height);
      }
      // SaveImage's metadata: the prompt and every extra_pnginfo entry, as JSON text.
      w.text.emplace_back("prompt", comfy::dumps(json::value(item.prompt)));
      if (const auto* png = item.extra_data.if_contains("extra_pnginfo");
          png != nullptr && png->is_object()) {
        for (const auto& kv : png->get_object()) {
          w.text.emplace_back(std::string(kv.key()), comfy::dumps(kv.value()));
        }
      }
      out.push_back(std::move(w));
    }
    return out;
  }

  // ---- HTTP: dispatch ------------------------------------------------------------------------

  /// Runs a handler on the strand, with the http-latency and http-error faults around it.
  static asio::awaitable<net::Response> on_strand(std::shared_ptr<State> self, SyncFn sync,
                                                  AsyncFn async, net::Request* req,
                                                  bool faultable) {
    std::uint64_t latency = 0;
    bool error = false;
    if (faultable) {
      latency = self->faults.http_latency_ms;
      error = self->chance(self->faults.http_error_rate);
    }
    net::Response res;
    if (error) {
      res = net::Response::text("503 Service Unavailable\n\ncomfyfarm sim: http-error fault", 503,
                                "text/plain; charset=utf-8");
    } else if (sync != nullptr) {
      res = ((*self).*sync)(*req);
    } else {
      auto inner = async(self, req);
      res = co_await std::move(inner);
    }
    if (latency > 0) {
      asio::steady_timer timer(self->strand, std::chrono::milliseconds(latency));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    co_return res;
  }

  static net::Handler handler(const std::shared_ptr<State>& self, SyncFn sync,
                              bool faultable = true) {
    return [self, sync, faultable](net::Request& req) {
      return asio::co_spawn(self->strand, on_strand(self, sync, nullptr, &req, faultable),
                            asio::use_awaitable);
    };
  }

  static net::Handler async_handler(const std::shared_ptr<State>& self, AsyncFn async) {
    return [self, async](net::Request& req) {
      return asio::co_spawn(self->strand, on_strand(self, nullptr, async, &req, true),
                            asio::use_awaitable);
    };
  }

  // ---- HTTP: ComfyUI routes ------------------------------------------------------------------

  net::Response post_prompt(net::Request& req) {
    auto parsed = comfy::parse_json(req.body);
    if (!parsed) return python_500();
    if (parsed->is_array()) {
      ++counter;  // `"number" in list` is False, `"prompt" in list` too
      return json_reply(comfy::no_prompt_error().to_json(), 400);
    }
    if (!parsed->is_object()) return python_500();
    const json::object& body = parsed->get_object();

    comfy::Number number;
    if (const auto* n = body.if_contains("number")) {
      const auto d = python_float(*n);
      if (!d) return python_500();
      number = *d;
    } else {
      const std::int64_t c = counter++;
      const auto* front = body.if_contains("front");
      number = front != nullptr && truthy(*front) ? -c : c;
    }
    const auto* prompt = body.if_contains("prompt");
    if (prompt == nullptr) return json_reply(comfy::no_prompt_error().to_json(), 400);
    const std::string prompt_id =
        body.contains("prompt_id") ? python_str(body.at("prompt_id")) : uuid4(id_rng);
    if (!prompt->is_object()) return python_500();

    comfy::ValidateOptions options;
    if (const auto* targets = body.if_contains("partial_execution_targets");
        targets != nullptr && !targets->is_null()) {
      if (!targets->is_array()) return python_500();
      std::vector<std::string> ids;
      for (const auto& t : targets->get_array()) {
        if (!t.is_string()) return python_500();
        ids.emplace_back(t.get_string());
      }
      options.partial_execution_targets = std::move(ids);
    }
    options.file_exists = [this](std::string_view folder, std::string_view filename) {
      return file_exists(folder, filename);
    };
    auto outcome =
        comfy::validate_prompt(prompt->get_object(), shared->validation_catalog, options);
    if (outcome.http_status == 500) return python_500();
    if (!outcome.ok) {
      spdlog::debug("{}: invalid prompt: {}", tag(),
                    outcome.error ? outcome.error->error.message : std::string("?"));
      if (!outcome.error) return python_500();
      return json_reply(outcome.error->to_json(), 400);
    }

    json::object extra_data;
    if (const auto* e = body.if_contains("extra_data")) {
      if (!e->is_object()) return python_500();
      extra_data = e->get_object();
    }
    if (const auto* c = body.if_contains("client_id")) extra_data["client_id"] = *c;
    for (const char* key : {"auth_token_comfy_org", "api_key_comfy_org"}) extra_data.erase(key);

    comfy::QueueItem item;
    item.number = number;
    item.prompt_id = prompt_id;
    item.prompt = std::move(outcome.normalized_prompt);
    item.extra_data = std::move(extra_data);
    item.outputs_to_execute = outcome.outputs_to_execute;
    spdlog::debug("{}: got prompt {}", tag(), prompt_id);
    enqueue(std::move(item));

    comfy::PromptResponse reply;
    reply.prompt_id = prompt_id;
    reply.number = number;
    reply.node_errors = std::move(outcome.node_errors);
    return json_reply(reply.to_json());
  }

  json::value exec_info() const {
    json::object info;
    info["queue_remaining"] = queue_remaining();
    json::object out;
    out["exec_info"] = std::move(info);
    return out;
  }

  net::Response get_prompt(net::Request&) { return json_reply(exec_info()); }

  net::Response get_queue(net::Request&) {
    json::array run;
    if (running) run.push_back(running->item.to_json());
    json::array pend;
    for (const auto& item : pending) pend.push_back(item.to_json());
    json::object out;
    out["queue_running"] = std::move(run);
    out["queue_pending"] = std::move(pend);
    return json_reply(out);
  }

  net::Response post_queue(net::Request& req) {
    auto parsed = comfy::parse_json(req.body);
    if (!parsed || !parsed->is_object()) return python_500();
    const auto& body = parsed->get_object();
    if (const auto* clear = body.if_contains("clear"); clear != nullptr && truthy(*clear)) {
      pending.clear();
      broadcast_status();
    }
    if (const auto* del = body.if_contains("delete")) {
      if (!del->is_array()) return python_500();
      for (const auto& id : del->get_array()) {
        const auto it =
            std::find_if(pending.begin(), pending.end(), [&](const comfy::QueueItem& q) {
              return id.is_string() && q.prompt_id == id.get_string();
            });
        if (it != pending.end()) {
          pending.erase(it);
          broadcast_status();
        }
      }
    }
    return empty_200();
  }

  net::Response get_history(net::Request& req) {
    auto query = req.query();
    if (!query) return python_500();
    std::optional<std::int64_t> max_items;
    std::int64_t offset = -1;
    if (const auto m = query->get("max_items")) {
      max_items = python_int(*m);
      if (!max_items) return python_500();
    }
    if (const auto o = query->get("offset")) {
      const auto v = python_int(*o);
      if (!v) return python_500();
      offset = *v;
    }
    if (offset < 0 && max_items) offset = static_cast<std::int64_t>(history.size()) - *max_items;
    json::object out;
    std::int64_t i = 0;
    for (const auto& rec : history) {
      if (i >= offset) {
        out[rec.prompt_id] = rec.entry;
        if (max_items && static_cast<std::int64_t>(out.size()) >= *max_items) break;
      }
      ++i;
    }
    return json_reply(out);
  }

  net::Response get_history_item(net::Request& req) {
    const std::string id(req.param("prompt_id").value_or(""));
    json::object out;
    if (const auto it = history_index.find(id); it != history_index.end()) {
      out[id] = it->second->entry;
    }
    return json_reply(out);
  }

  net::Response post_history(net::Request& req) {
    auto parsed = comfy::parse_json(req.body);
    if (!parsed || !parsed->is_object()) return python_500();
    const auto& body = parsed->get_object();
    if (const auto* clear = body.if_contains("clear"); clear != nullptr && truthy(*clear)) {
      history.clear();
      history_index.clear();
    }
    if (const auto* del = body.if_contains("delete")) {
      if (!del->is_array()) return python_500();
      for (const auto& id : del->get_array()) {
        if (!id.is_string()) continue;
        if (const auto it = history_index.find(std::string(id.get_string()));
            it != history_index.end()) {
          history.erase(it->second);
          history_index.erase(it);
        }
      }
    }
    return empty_200();
  }

  net::Response post_interrupt(net::Request& req) {
    auto parsed = comfy::parse_json(req.body);
    std::optional<std::string> target;
    if (parsed) {
      if (parsed->is_array() || parsed->is_string() || parsed->is_number() || parsed->is_bool()) {
        return python_500();  // json_data.get(...) on a non-dict
      }
      if (parsed->is_object()) {
        if (const auto* id = parsed->get_object().if_contains("prompt_id");
            id != nullptr && truthy(*id)) {
          target = id->is_string() ? std::string(id->get_string()) : python_str(*id);
        }
      }
    }
    if (running && running->run != nullptr && (!target || *target == running->item.prompt_id)) {
      spdlog::debug("{}: interrupt {}", tag(), running->item.prompt_id);
      running->run->request_interrupt();
    }
    return empty_200();
  }

  net::Response post_free(net::Request& req) {
    auto parsed = comfy::parse_json(req.body);
    if (!parsed || !parsed->is_object()) return python_500();
    const auto& body = parsed->get_object();
    const auto* u = body.if_contains("unload_models");
    const auto* f = body.if_contains("free_memory");
    const bool unload = u != nullptr && truthy(*u);
    const bool free_memory = f != nullptr && truthy(*f);
    if (running) {
      // The worker reads these flags after the current prompt.
      pending_unload_models = pending_unload_models || unload;
      pending_free_memory = pending_free_memory || free_memory;
    } else {
      apply_free(unload || free_memory, free_memory);
    }
    return empty_200();
  }

  net::Response get_system_stats(net::Request&) {
    const auto [ram_total, ram_free] = read_ram();
    json::object system;
    system["os"] = "posix";
    system["ram_total"] = ram_total;
    system["ram_free"] = ram_free;
    system["comfyui_version"] = "0.3.64";
    system["required_frontend_version"] = "1.27.10";
    system["installed_templates_version"] = "0.1.95";
    system["required_templates_version"] = "0.1.95";
    system["python_version"] = "3.12.3 (main, Aug 14 2025, 17:47:21) [GCC 13.3.0]";
    system["pytorch_version"] = "2.8.0+cu128";
    system["embedded_python"] = false;
    json::array argv;
    for (const auto& a : config.argv) argv.emplace_back(a);
    if (config.argv.empty()) {
      for (const char* a : {"main.py", "--listen"}) argv.emplace_back(a);
      argv.emplace_back(config.listen.host);
      argv.emplace_back("--port");
      argv.emplace_back(std::to_string(port));
    }
    system["argv"] = std::move(argv);
    const auto& vram = sim.vram();
    json::object device;
    device["name"] = "cuda:0 " + config.gpu_name + " : cudaMallocAsync";
    device["type"] = "cuda";
    device["index"] = 0;
    device["vram_total"] = vram.total_bytes();
    device["vram_free"] = vram.free_bytes();
    device["torch_vram_total"] = vram.resident_bytes() + vram.activation_bytes();
    device["torch_vram_free"] = 0;
    json::array devices;
    devices.push_back(std::move(device));
    json::object out;
    out["system"] = std::move(system);
    out["devices"] = std::move(devices);
    return json_reply(out);
  }

  net::Response get_features(net::Request&) { return json_reply(features()); }
  net::Response get_empty_list(net::Request&) { return json_reply(json::array()); }

  net::Response get_models(net::Request&) {
    json::array out;
    for (const auto f : kModelFolders) out.emplace_back(f);
    for (const auto& f : shared->data.models.folders()) {
      if (std::find(std::begin(kModelFolders), std::end(kModelFolders), f) ==
          std::end(kModelFolders)) {
        out.emplace_back(f);
      }
    }
    return json_reply(out);
  }

  net::Response get_models_folder(net::Request& req) {
    const std::string folder(req.param("folder").value_or(""));
    const auto folders = shared->data.models.folders();
    const bool known = std::find(std::begin(kModelFolders), std::end(kModelFolders), folder) !=
                           std::end(kModelFolders) ||
                       std::find(folders.begin(), folders.end(), folder) != folders.end();
    if (!known) return net::Response::empty(404);
    json::array out;
    for (auto& f : shared->data.models.files(folder)) out.emplace_back(std::move(f));
    return json_reply(out);
  }

  static asio::awaitable<void> slow_object_info(std::shared_ptr<State> self) {
    if (self->faults.slow_object_info_ms > 0) {
      asio::steady_timer timer(self->strand,
                               std::chrono::milliseconds(self->faults.slow_object_info_ms));
      co_await timer.async_wait(asio::as_tuple(asio::use_awaitable));
    }
  }

  static asio::awaitable<net::Response> get_object_info(std::shared_ptr<State> self,
                                                        net::Request*) {
    auto wait = slow_object_info(self);
    co_await std::move(wait);
    co_return net::Response::text(self->object_info_text(), 200, "application/json; charset=utf-8");
  }

  static asio::awaitable<net::Response> get_object_info_class(std::shared_ptr<State> self,
                                                              net::Request* req) {
    const std::string name(req->param("node_class").value_or(""));
    auto wait = slow_object_info(self);
    co_await std::move(wait);
    self->object_info_text();
    json::object out;
    if (const auto* entry = self->object_info.get_object().if_contains(name)) out[name] = *entry;
    co_return json_reply(out);
  }

  static asio::awaitable<net::Response> get_view(std::shared_ptr<State> self, net::Request* req) {
    auto query = req->query();
    if (!query) co_return net::Response::empty(400);
    const FileStore store = self->files;
    const net::QueryParams params = std::move(*query);
    auto work = [&store, &params] { return store.view(params); };
    FileReply file = co_await net::run_blocking(*self->file_pool, work);
    net::Response res;
    res.status = file.status;
    if (file.status == 200) {
      res.body = std::move(file.body);
      res.headers.set("Content-Type", file.content_type);
      res.headers.set("Content-Disposition", "filename=\"" + file.disposition_name + "\"");
    }
    co_return res;
  }

  static asio::awaitable<net::Response> upload(std::shared_ptr<State> self, net::Request* req,
                                               bool mask) {
    const std::string content_type(req->headers.get("Content-Type").value_or(""));
    auto parts = net::parse_multipart(content_type, req->body);
    if (!parts) co_return net::Response::empty(400);
    const FileStore store = self->files;
    const std::vector<net::FormPart> form = std::move(*parts);
    auto work = [&store, &form, mask] { return store.upload(form, mask); };
    FileReply file = co_await net::run_blocking(*self->file_pool, work);
    if (file.stored_input) self->note_input(std::move(*file.stored_input));
    if (file.status != 200 && file.body.empty()) co_return net::Response::empty(file.status);
    co_return net::Response::text(std::move(file.body), file.status, file.content_type);
  }

  static asio::awaitable<net::Response> upload_image(std::shared_ptr<State> self,
                                                     net::Request* req) {
    auto inner = upload(self, req, false);
    co_return co_await std::move(inner);
  }

  static asio::awaitable<net::Response> upload_mask(std::shared_ptr<State> self,
                                                    net::Request* req) {
    auto inner = upload(self, req, true);
    co_return co_await std::move(inner);
  }

  net::Response get_root(net::Request&) {
    return net::Response::text(
        "<!DOCTYPE html><html><head><title>ComfyUI</title></head><body>comfyfarm sim: a "
        "simulated ComfyUI server (no web UI).</body></html>",
        200, "text/html; charset=utf-8");
  }

  // ---- HTTP: simulator routes ----------------------------------------------------------------

  net::Response get_sim_faults(net::Request&) { return json_reply(faults_json()); }

  net::Response post_sim_faults(net::Request& req) {
    auto parsed = comfy::parse_json(req.body.empty() ? std::string_view("{}") : req.body);
    json::object err;
    if (!parsed || !parsed->is_object()) {
      err["error"] = "the body must be a JSON object of faults, e.g. {\"oom\": 0.5}";
      return json_reply(err, 400);
    }
    FaultSet next = faults;
    bool drop_now = false;
    if (auto r = next.apply_json(parsed->get_object(), &drop_now); !r) {
      err["error"] = r.error().message;
      return json_reply(err, 400);
    }
    set_faults(std::move(next));
    spdlog::info("{}: faults now: {}", tag(), comfy::dumps(faults.to_json()));
    if (drop_now) drop_sockets("ws-drop fault");
    return json_reply(faults_json());
  }

  net::Response delete_sim_faults(net::Request&) {
    set_faults(FaultSet{});
    spdlog::info("{}: faults cleared", tag());
    return json_reply(faults_json());
  }

  net::Response get_sim_state(net::Request&) {
    const auto& vram = sim.vram();
    json::array resident;
    for (const auto& m : vram.resident()) {
      json::object r;
      r["key"] = m.key;
      r["bytes"] = m.bytes;
      resident.push_back(std::move(r));
    }
    json::object v;
    v["total"] = vram.total_bytes();
    v["free"] = vram.free_bytes();
    v["reserved"] = vram.reserved_bytes();
    v["activations"] = vram.activation_bytes();
    v["resident"] = std::move(resident);
    json::object out;
    out["server"] = config.index;
    out["vram"] = std::move(v);
    out["cache_entries"] = sim.cache().size();
    out["queue_remaining"] = queue_remaining();
    out["running"] = running ? json::value(running->item.prompt_id) : json::value(nullptr);
    out["history_entries"] = history.size();
    out["websockets"] = sockets.size();
    out["frames_sent"] = frames_sent;
    out["prompts_done"] = prompts_done;
    out["faults"] = faults.to_json();
    return json_reply(out);
  }

  // ---- the worker ----------------------------------------------------------------------------

  static asio::awaitable<void> worker(std::shared_ptr<State> self) {
    for (;;) {
      if (self->stopping) co_return;
      if (self->pending.empty() || self->faults.stall) {
        self->wake_timer.expires_at(asio::steady_timer::time_point::max());
        co_await self->wake_timer.async_wait(asio::as_tuple(asio::use_awaitable));
        continue;
      }
      comfy::QueueItem item = std::move(self->pending.front());
      self->pending.erase(self->pending.begin());
      auto run = run_prompt(self, std::move(item));
      co_await std::move(run);
    }
  }

  static asio::awaitable<void> run_prompt(std::shared_ptr<State> self, comfy::QueueItem item) {
    State& s = *self;
    std::optional<std::string> client;
    if (const auto* c = item.extra_data.if_contains("client_id"); c != nullptr && c->is_string()) {
      client = std::string(c->get_string());
    }
    if (s.chance(s.faults.ws_drop)) s.drop_sockets("ws-drop fault");
    s.running = Running{item, client, nullptr};
    s.broadcast_status();  // dequeued: the count does not change

    bool crash = false;
    if (s.faults.crash_after) {
      crash = s.crash_prompts == *s.faults.crash_after;
    } else {
      crash = s.chance(s.faults.crash_probability);
    }
    ++s.crash_prompts;
    const bool silent = s.chance(s.faults.ws_silence);
    const std::string prompt_id = item.prompt_id;
    const auto started_at = std::chrono::steady_clock::now();

    auto started = PromptRun::start(s.shared->data, s.sim, s.plan_request(item, client));
    if (!started) {
      // Validation passed, so the planner should accept the graph; end the prompt cleanly.
      spdlog::error("{}: prompt {} cannot run: {}", s.tag(), prompt_id, started.error().message);
      s.running.reset();
      for (const auto& step : closing_steps(prompt_id, client.has_value(), s.queue_remaining())) {
        s.play(step, client);
      }
      co_return;
    }
    PromptRun run = std::move(*started);
    s.running->run = &run;

    auto deadline = std::chrono::steady_clock::now();
    int unpaced = 0;
    bool played_any = false;
    bool executing_seen = false;
    while (!run.done()) {
      const double delay_ms = run.delay_before_next_ms();
      deadline += std::chrono::duration_cast<std::chrono::steady_clock::duration>(
          std::chrono::duration<double, std::milli>(delay_ms));
      if (deadline > std::chrono::steady_clock::now()) {
        s.step_timer.expires_at(deadline);
        co_await s.step_timer.async_wait(asio::as_tuple(asio::use_awaitable));
        unpaced = 0;
      } else if (++unpaced >= kStepsPerYield) {
        // Let HTTP handlers and sockets of this strand in between long unpaced runs.
        s.step_timer.expires_at(std::chrono::steady_clock::now());
        co_await s.step_timer.async_wait(asio::as_tuple(asio::use_awaitable));
        unpaced = 0;
      }
      if (s.stopping) {
        s.running.reset();
        co_return;
      }
      Step step = run.next_step(now_ms());
      if (crash && (executing_seen || step.terminal)) {
        // The node is running: let the frames already sent leave, as they would have on a real
        // server some time before it died, then die.
        s.step_timer.expires_after(std::chrono::milliseconds(50));
        co_await s.step_timer.async_wait(asio::as_tuple(asio::use_awaitable));
        s.crash_now(prompt_id);
      }
      if (!step.files.empty()) {
        const FileStore store = s.files;
        const std::vector<ImageWrite> writes = s.image_writes(step, item);
        const std::string log_tag = s.tag();
        auto work = [&store, &writes, &log_tag] {
          for (const auto& w : writes) {
            const auto png = encode_png(w.width, w.height, w.colour, w.text);
            if (auto r = store.write(w.type, w.subfolder, w.filename, png); !r) {
              spdlog::warn("{}: {}", log_tag, r.error().message);
            }
          }
        };
        co_await net::run_blocking(*s.file_pool, work);
        if (s.stopping) {
          s.running.reset();
          co_return;
        }
      }
      if (!(silent && played_any)) s.play(step, client);
      played_any = true;
      if (const auto* e = std::get_if<comfy::Event>(&step.payload);
          e != nullptr && std::holds_alternative<comfy::Executing>(*e)) {
        executing_seen = true;
      }
    }

    s.store_history(run.history_entry());
    s.running.reset();
    ++s.prompts_done;
    for (const auto& step : closing_steps(prompt_id, client.has_value(), s.queue_remaining())) {
      if (!silent) s.play(step, client);
    }
    spdlog::debug(
        "{}: prompt {} executed in {:.3f} s", s.tag(), prompt_id,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started_at).count());
    if (s.pending_unload_models || s.pending_free_memory) {
      s.apply_free(s.pending_unload_models || s.pending_free_memory, s.pending_free_memory);
      s.pending_unload_models = false;
      s.pending_free_memory = false;
    }
  }

  void begin_stop(std::function<void()> done) {
    stopping = true;
    wake_timer.cancel();
    step_timer.cancel();
    if (worker_running) {
      on_worker_stopped = std::move(done);
    } else {
      done();
    }
  }
};

Result<std::unique_ptr<SimServer>> SimServer::create(asio::io_context& context,
                                                     asio::thread_pool& file_pool,
                                                     std::shared_ptr<const SimShared> shared,
                                                     SimServerConfig config) {
  auto store = FileStore::create(config.root_dir);
  if (!store) return store.error();
  const auto inputs = store->scan_inputs();
  const auto counters = store->scan_output_counters();

  std::unique_ptr<SimServer> server(new SimServer());
  auto st = std::make_shared<State>(context, file_pool, std::move(shared), std::move(config),
                                    std::move(*store));
  for (const auto& info : inputs) st->inputs.insert_or_assign(info.name, info);
  for (const auto& c : counters)
    st->sim.files().set_next_counter("output", c.subfolder, c.filename, c.next);

  using S = State;
  auto router = std::make_shared<net::Router>();
  auto& r = *router;
  const auto get = net::Method::kGet;
  const auto post = net::Method::kPost;
  r.add_with_api_alias(post, "/prompt", S::handler(st, &S::post_prompt));
  r.add_with_api_alias(get, "/prompt", S::handler(st, &S::get_prompt));
  r.add_with_api_alias(get, "/queue", S::handler(st, &S::get_queue));
  r.add_with_api_alias(post, "/queue", S::handler(st, &S::post_queue));
  r.add_with_api_alias(get, "/history", S::handler(st, &S::get_history));
  r.add_with_api_alias(post, "/history", S::handler(st, &S::post_history));
  r.add_with_api_alias(get, "/history/{prompt_id}", S::handler(st, &S::get_history_item));
  r.add_with_api_alias(post, "/interrupt", S::handler(st, &S::post_interrupt));
  r.add_with_api_alias(post, "/free", S::handler(st, &S::post_free));
  r.add_with_api_alias(get, "/system_stats", S::handler(st, &S::get_system_stats));
  r.add_with_api_alias(get, "/features", S::handler(st, &S::get_features));
  r.add_with_api_alias(get, "/embeddings", S::handler(st, &S::get_empty_list));
  r.add_with_api_alias(get, "/extensions", S::handler(st, &S::get_empty_list));
  r.add_with_api_alias(get, "/models", S::handler(st, &S::get_models));
  r.add_with_api_alias(get, "/models/{folder}", S::handler(st, &S::get_models_folder));
  r.add_with_api_alias(get, "/object_info", S::async_handler(st, &S::get_object_info));
  r.add_with_api_alias(get, "/object_info/{node_class}",
                       S::async_handler(st, &S::get_object_info_class));
  r.add_with_api_alias(get, "/view", S::async_handler(st, &S::get_view));
  r.add_with_api_alias(post, "/upload/image", S::async_handler(st, &S::upload_image));
  r.add_with_api_alias(post, "/upload/mask", S::async_handler(st, &S::upload_mask));
  r.add(get, "/", S::handler(st, &S::get_root));
  r.add(get, "/sim/faults", S::handler(st, &S::get_sim_faults, false));
  r.add(post, "/sim/faults", S::handler(st, &S::post_sim_faults, false));
  r.add(net::Method::kDelete, "/sim/faults", S::handler(st, &S::delete_sim_faults, false));
  r.add(get, "/sim/state", S::handler(st, &S::get_sim_state, false));

  std::weak_ptr<State> weak = st;
  r.add_websocket_with_api_alias("/ws", [weak](
                                            const net::Request& req,
                                            const std::shared_ptr<net::WebSocketSession>& session) {
    auto self = weak.lock();
    if (!self) {
      session->close(net::CloseCode::kGoingAway, "server shutting down");
      return;
    }
    const std::uint64_t id = session->id();
    session->on_message([weak, id](net::WebSocketMessage message) {
      if (auto s = weak.lock()) {
        asio::post(s->strand,
                   [s, id, message = std::move(message)] { s->ws_message(id, message); });
      }
    });
    session->on_close([weak, id](const net::WebSocketCloseInfo&) {
      if (auto s = weak.lock()) asio::post(s->strand, [s, id] { s->ws_closed(id); });
    });
    asio::post(self->strand, [self, session, client = req.query_param("clientId").value_or("")] {
      self->ws_opened(session, client);
    });
  });

  net::HttpServerOptions options;
  options.listen = st->config.listen;
  options.server_header = "Python/3.12 aiohttp/3.12.15";
  auto http = net::HttpServer::create(context, router, options);
  if (!http) return http.error();
  st->port = (*http)->port();
  server->state_ = std::move(st);
  server->http_ = std::move(*http);
  return server;
}

SimServer::~SimServer() = default;

void SimServer::start() {
  http_->start();
  auto st = state_;
  asio::post(st->strand, [st] {
    st->worker_running = true;
    asio::co_spawn(st->strand, State::worker(st), [st](std::exception_ptr e) {
      if (e) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& ex) {
          spdlog::error("{}: worker failed: {}", st->tag(), ex.what());
        } catch (...) {
          spdlog::error("{}: worker failed with an unknown exception", st->tag());
        }
      }
      st->worker_running = false;
      st->running.reset();
      if (st->on_worker_stopped) {
        auto done = std::move(st->on_worker_stopped);
        st->on_worker_stopped = nullptr;
        done();
      }
    });
  });
}

void SimServer::stop(std::chrono::milliseconds grace, std::function<void()> on_stopped) {
  auto remaining = std::make_shared<std::atomic<int>>(2);
  std::function<void()> done = [remaining, on_stopped = std::move(on_stopped)] {
    if (remaining->fetch_sub(1) == 1 && on_stopped) on_stopped();
  };
  auto st = state_;
  asio::post(st->strand, [st, done] { st->begin_stop(done); });
  http_->stop(grace, done);
}

std::string SimServer::local_address() const { return http_->local_address(); }
std::uint16_t SimServer::port() const { return http_->port(); }
std::size_t SimServer::index() const noexcept { return state_->config.index; }

}  // namespace comfyfarm::sim
