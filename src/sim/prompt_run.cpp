#include "sim/prompt_run.hpp"

#include "comfy/workflow.hpp"
#include "sim/detail/execution_list.hpp"
#include "sim/detail/graph_eval.hpp"
#include "sim/detail/python_repr.hpp"
#include "sim/sim_data.hpp"
#include "sim/sim_state.hpp"

#include <boost/assert.hpp>
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include <algorithm>
#include <cmath>
#include <deque>
#include <map>
#include <set>
#include <utility>

namespace comfyfarm::sim {

namespace {

using detail::NodeFacts;
using detail::Shape;
using detail::ValueInfo;

/// One traceback entry as Python 3.11 formats it: location, the code line, and carets under the
/// failing expression (from `caret_from` to the end of the line; none when empty).
std::string traceback_frame(std::string_view location, std::string_view code,
                            std::string_view caret_from) {
  std::string out = "  " + std::string(location) + "\n    " + std::string(code) + "\n";
  if (const auto pos = code.find(caret_from); !caret_from.empty() && pos != std::string::npos) {
    out.append(4 + pos, ' ');
    out.append(code.size() - pos, '^');
    out += '\n';
  }
  return out;
}

/// The first frames of every traceback ComfyUI 0.3.64 reports for an exception raised inside a
/// node function (execution.py), as in shared/fixtures/comfyui-real/runtime_error.
std::vector<std::string> traceback_head() {
  return {
      traceback_frame("File \"ComfyUI/execution.py\", line 496, in execute",
                      "output_data, output_ui, has_subgraph, has_pending_tasks = await "
                      "get_output_data(prompt_id, unique_id, obj, input_data_all, "
                      "execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
                      "hidden_inputs=hidden_inputs)",
                      "await"),
      traceback_frame("File \"ComfyUI/execution.py\", line 315, in get_output_data",
                      "return_values = await _async_map_node_over_list(prompt_id, unique_id, obj, "
                      "input_data_all, obj.FUNCTION, allow_interrupt=True, "
                      "execution_block_cb=execution_block_cb, pre_execute_cb=pre_execute_cb, "
                      "hidden_inputs=hidden_inputs)",
                      "await"),
      traceback_frame("File \"ComfyUI/execution.py\", line 289, in _async_map_node_over_list",
                      "await process_inputs(input_dict, i)", ""),
      traceback_frame("File \"ComfyUI/execution.py\", line 277, in process_inputs",
                      "result = f(**inputs)", "f(**inputs)"),
  };
}

constexpr std::string_view kOomMessage =
    "Allocation on device \nThis error means you ran out of memory on your GPU.\n\nTIPS: If the "
    "workflow worked before you might have accidentally set the batch_size to a large number.";

std::uint64_t salt_of(std::string_view s, std::uint64_t extra) {
  std::uint64_t h = 1469598103934665603ULL ^ extra;
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
  return h;
}

/// str()/repr() of a value as ComfyUI's format_value would show it: primitives stay JSON
/// primitives, anything else becomes a string.
json::value python_view(const ValueInfo& v, std::string_view source_id, std::size_t index) {
  if (v.scalar && (v.scalar->is_primitive() || v.scalar->is_string())) return *v.scalar;
  const Shape shape = v.shape.value_or(Shape{512, 512, 1});
  const std::uint64_t salt = salt_of(source_id, index);
  if (v.type == "IMAGE") {
    const std::int64_t dims[] = {shape.batch, shape.height, shape.width, 3};
    const auto rgb = v.rgb.value_or(std::array<double, 3>{0.5, 0.5, 0.5});
    // torch holds float32: print the float32 value, as torch does.
    const double values[] = {static_cast<float>(rgb[0]), static_cast<float>(rgb[1]),
                             static_cast<float>(rgb[2])};
    return json::value(detail::torch_repr(dims, values));
  }
  if (v.type == "MASK") {
    const std::int64_t dims[] = {shape.batch, shape.height, shape.width};
    const double values[] = {0.0};
    return json::value(detail::torch_repr(dims, values));
  }
  if (v.type == "LATENT") {
    const std::int64_t dims[] = {shape.batch, 4, std::max<std::int64_t>(1, shape.height / 8),
                                 std::max<std::int64_t>(1, shape.width / 8)};
    const double values[] = {0.0};
    return json::value("{'samples': " + detail::torch_repr(dims, values) + "}");
  }
  if (v.type == "CONDITIONING") {
    const std::int64_t cond[] = {1, 77, 768};
    const std::int64_t pooled[] = {1, 768};
    const double values[] = {0.0};
    return json::value("[[" + detail::torch_repr(cond, values) +
                       ", {'pooled_output': " + detail::torch_repr(pooled, values) + "}]]");
  }
  if (v.type == "MODEL")
    return json::value(detail::object_repr("comfy.model_patcher.ModelPatcher", salt));
  if (v.type == "CLIP") return json::value(detail::object_repr("comfy.sd.CLIP", salt));
  if (v.type == "VAE") return json::value(detail::object_repr("comfy.sd.VAE", salt));
  if (v.type == "CONTROL_NET") {
    return json::value(detail::object_repr("comfy.controlnet.ControlNet", salt));
  }
  if (v.type == "UPSCALE_MODEL") {
    return json::value(
        detail::object_repr("spandrel.__helpers.model_descriptor.ImageModelDescriptor", salt));
  }
  if (v.type == "INT" || v.type == "FLOAT" || v.type == "STRING" || v.type == "BOOLEAN") {
    return nullptr;  // a value the simulator cannot compute
  }
  return json::value(detail::object_repr("object", salt));
}

/// PreviewAny's text of its source.
std::string preview_text(const std::optional<json::value>& literal, const ValueInfo* linked,
                         std::string_view source_id, std::size_t index) {
  std::optional<json::value> v = literal;
  if (!v && linked != nullptr) v = python_view(*linked, source_id, index);
  if (!v || v->is_null()) return "None";
  if (v->is_string()) return std::string(v->get_string());
  return detail::py_str(*v);  // str(int/float/bool)
}

std::string module_path(std::string_view python_module) {
  std::string p(python_module);
  std::replace(p.begin(), p.end(), '.', '/');
  return "ComfyUI/" + p + ".py";
}

Rgb to_rgb(const std::optional<std::array<double, 3>>& c) {
  if (!c) return {};
  auto byte = [](double x) {
    return static_cast<std::uint8_t>(std::clamp(std::lround(x * 255.0), 0L, 255L));
  };
  return {byte((*c)[0]), byte((*c)[1]), byte((*c)[2])};
}

/// One entry of the progress registry (comfy_execution/progress.py).
struct ProgressEntry {
  std::string node_id;
  comfy::Number value;
  comfy::Number max;
  std::string state;
};

/// A step not yet played. Effects run when it is played, so that the state a server observes
/// between steps (VRAM, cache, history) matches what it has sent.
struct Item {
  enum class Kind { kEvent, kProgress, kBinary, kCheckpoint };
  Kind kind = Kind::kEvent;
  double delay_ms = 0.0;
  Route route = Route::kNone;
  std::optional<comfy::Event> event{};
  std::optional<comfy::BinaryEvent> binary{};
  std::size_t node = 0;  ///< index of the node it belongs to
  // kProgress: the registry change, applied when played.
  enum class Progress { kStart, kUpdate, kFinish, kCachedFinish };
  Progress progress = Progress::kStart;
  comfy::Number value{};
  comfy::Number max{};
  bool interruptible = false;  ///< a ProgressBar update: the interrupt flag is checked first
  bool terminal = false;
  bool finishes_node = false;        ///< the node is complete: cache it, release its activations
  std::optional<json::object> ui{};  ///< UI to record in the history (executed items)
  std::vector<OutputFile> files{};
  std::vector<StateChange> changes{};
  bool unload_all = false;  ///< an OOM: ComfyUI unloads every model
};

}  // namespace

FaultHook node_error_for_classes(std::vector<std::string> classes) {
  return [classes = std::move(classes)](std::string_view,
                                        std::string_view class_type) -> std::optional<NodeFault> {
    if (std::find(classes.begin(), classes.end(), class_type) == classes.end()) {
      return std::nullopt;
    }
    return NodeFault{};
  };
}

struct PromptRun::Impl {
  const SimData* data = nullptr;
  SimState* state = nullptr;
  PlanRequest request;
  comfy::Workflow graph;
  std::vector<NodeFacts> facts;
  std::map<std::string, ModelFile, std::less<>> model_files;  // every file a loader names
  std::string prompt_id;
  std::optional<std::string> client_id;
  std::optional<std::string> last_executing;
  std::vector<std::string> cached_nodes;  // graph key order
  detail::ExecutionList list;
  std::deque<Item> queue;
  bool started = false;
  bool finished = false;
  bool interrupt = false;
  Outcome outcome = Outcome::kRunning;
  std::vector<ProgressEntry> registry;
  std::vector<std::string> executed;
  std::vector<std::uint64_t> activations;  // per node index: bytes held while it runs
  json::object outputs;
  json::object meta;
  std::vector<comfy::Event> messages;

  Impl(const SimData& d, SimState& s, PlanRequest r, comfy::Workflow g)
      : data(&d),
        state(&s),
        request(std::move(r)),
        graph(std::move(g)),
        list([this](std::size_t n) { return sources(n); },
             [this](std::size_t n) { return state->cache().contains(facts[n].signature); },
             [this](std::size_t n) {
               return data->catalog.is_output_node(graph.nodes()[n].class_type);
             }) {}

  [[nodiscard]] bool has_client() const { return client_id.has_value(); }
  [[nodiscard]] Route client_only() const { return has_client() ? Route::kClient : Route::kNone; }
  [[nodiscard]] Route client_or_all() const {
    return has_client() ? Route::kClient : Route::kBroadcast;
  }
  [[nodiscard]] const comfy::Node& node(std::size_t n) const { return graph.nodes()[n]; }
  [[nodiscard]] std::string id(std::size_t n) const { return std::string(node(n).id); }

  std::vector<std::size_t> sources(std::size_t n) const {
    std::vector<std::size_t> out;
    for (const auto& in : node(n).inputs) {
      if (in.link) out.push_back(in.link->source);
    }
    return out;
  }

  // ---- queue building ----------------------------------------------------------------------

  void push_event(comfy::Event e, Route route, std::size_t n, double delay = 0.0) {
    Item it;
    it.kind = Item::Kind::kEvent;
    it.event = std::move(e);
    it.route = route;
    it.node = n;
    it.delay_ms = delay;
    queue.push_back(std::move(it));
  }

  Item& push_progress(std::size_t n, Item::Progress p, comfy::Number value, comfy::Number max,
                      double delay = 0.0) {
    Item it;
    it.kind = Item::Kind::kProgress;
    it.route = client_or_all();
    it.node = n;
    it.progress = p;
    it.value = value;
    it.max = max;
    it.delay_ms = delay;
    queue.push_back(std::move(it));
    return queue.back();
  }

  void push_binary(comfy::BinaryEvent b, Route route, std::size_t n) {
    Item it;
    it.kind = Item::Kind::kBinary;
    it.binary = std::move(b);
    it.route = route;
    it.node = n;
    queue.push_back(std::move(it));
  }

  void push_terminal_interrupted(std::size_t n, double delay) {
    comfy::ExecutionInterrupted e;
    e.prompt_id = prompt_id;
    e.node_id = id(n);
    e.node_type = std::string(node(n).class_type);
    e.executed = executed;
    queue.clear();
    // Sent to the client when there is one; ComfyUI broadcasts it otherwise.
    push_event(std::move(e), client_or_all(), n, delay);
    queue.back().terminal = true;
  }

  void push_terminal_error(std::size_t n, double delay, const NodeFault& fault) {
    comfy::ExecutionError e;
    e.prompt_id = prompt_id;
    e.node_id = id(n);
    e.node_type = std::string(node(n).class_type);
    e.executed = executed;
    const bool oom = fault.kind == NodeFault::Kind::kOutOfMemory;
    if (oom) {
      e.exception_type = "torch.OutOfMemoryError";
      e.exception_message = std::string(kOomMessage);
    } else {
      e.exception_type = fault.exception_type.empty() ? "RuntimeError" : fault.exception_type;
      const std::string message = fault.exception_message.empty()
                                      ? "comfyfarm sim: injected failure in node " + id(n) + " (" +
                                            std::string(node(n).class_type) + ")"
                                      : fault.exception_message;
      e.exception_message = message + "\n";  // "{ex}\n{tips}" with empty tips
    }
    e.traceback = traceback_head();
    const auto* info = data->catalog.find(node(n).class_type);
    const std::string module = info != nullptr ? info->python_module : "nodes";
    // The node's own frame: the simulator's fault stands where the node's code would raise.
    e.traceback.push_back(traceback_frame(
        "File \"" + module_path(oom ? "comfy.model_management" : module) + "\", line 1, in " +
            (oom ? std::string("load_models_gpu") : std::string(node(n).class_type)),
        "raise " + e.exception_type + "(...)", ""));
    e.current_inputs = current_inputs(n);
    for (const auto& nd : graph.nodes()) e.current_outputs.emplace_back(nd.id);
    queue.clear();
    push_event(std::move(e), client_only(), n, delay);
    queue.back().terminal = true;
    queue.back().unload_all = oom;
    if (activations[n] > 0) {
      // The failed node's activations go with it.
      state->vram().release(activations[n]);
      queue.back().changes.push_back(
          {StateChange::Kind::kActivationReleased, id(n), activations[n]});
      activations[n] = 0;
    }
  }

  json::value current_inputs(std::size_t n) const {
    json::object out;
    const comfy::Node& nd = node(n);
    for (const auto& in : nd.inputs) {
      json::array values;
      if (in.link) {
        const auto& src = facts[in.link->source];
        if (in.link->output_index < src.outputs.size()) {
          values.push_back(python_view(src.outputs[in.link->output_index], in.link->node_id,
                                       in.link->output_index));
        } else {
          values.emplace_back(nullptr);
        }
      } else if (in.value->is_primitive() || in.value->is_string()) {
        values.push_back(*in.value);
      } else {
        values.emplace_back(detail::py_str(*in.value));
      }
      out.emplace(in.name, std::move(values));
    }
    if (const auto* info = data->catalog.find(nd.class_type); info != nullptr && info->hidden) {
      for (const auto& h : *info->hidden) {
        const auto* type = std::get_if<std::string>(&h.type);
        if (type == nullptr) continue;
        json::array values;
        if (*type == "PROMPT") {
          values.emplace_back(detail::py_str(json::value(request.item.prompt)));
        } else if (*type == "EXTRA_PNGINFO") {
          const auto* png = request.item.extra_data.if_contains("extra_pnginfo");
          if (png == nullptr) {
            values.emplace_back(nullptr);
          } else {
            values.emplace_back(detail::py_str(*png));
          }
        } else if (*type == "UNIQUE_ID") {
          values.emplace_back(nd.id);
        } else {
          continue;
        }
        out.emplace(h.name, std::move(values));
      }
    }
    return out;
  }

  /// Queues what happens when the ExecutionList hands out node n (before its interrupt check).
  void stage(std::size_t n) {
    if (const auto* hit = state->cache().find(facts[n].signature)) {
      // A cached output node: replay its UI, then a finished snapshot with integers 1/1.
      comfy::Executed e;
      e.node = id(n);
      e.display_node = id(n);
      e.output = hit->ui ? json::value(*hit->ui) : json::value(nullptr);
      e.prompt_id = prompt_id;
      push_event(std::move(e), client_only(), n);
      queue.back().ui = hit->ui;
      push_progress(n, Item::Progress::kCachedFinish, 1, 1).finishes_node = true;
      return;
    }
    push_progress(n, Item::Progress::kStart, 0.0, 1.0);
    comfy::Executing e;
    e.node = id(n);
    e.display_node = id(n);
    e.prompt_id = prompt_id;
    push_event(std::move(e), client_only(), n);
    Item check;
    check.kind = Item::Kind::kCheckpoint;
    check.node = n;
    queue.push_back(std::move(check));
  }

  /// What node n's cost depends on. `sampler` holds the sampler name the result points to.
  CostInputs cost_inputs(std::size_t n, const ClassBehaviour& b, const Shape& shape,
                         std::string& sampler) const {
    const comfy::Node& nd = node(n);
    auto literal = [&](const std::string& input) {
      return detail::input_value(nd, input, *data, facts);
    };
    CostInputs in;
    in.megapixels = shape.megapixels();
    in.batch = shape.batch;
    in.arch = facts[n].arch;
    if (!b.sampler_input.empty()) {
      if (const auto v = literal(b.sampler_input); v && v->is_string()) {
        sampler = std::string(v->get_string());
      }
    }
    in.sampler = sampler;
    if (!b.cfg_input.empty()) in.cfg = detail::as_double(literal(b.cfg_input));
    if (b.progress.kind == ProgressKind::kSteps) {
      const std::int64_t steps = detail::as_int(literal(b.progress.steps)).value_or(0);
      std::int64_t first = 0;
      std::int64_t last = steps;
      if (!b.progress.start.empty()) first = detail::as_int(literal(b.progress.start)).value_or(0);
      if (!b.progress.end.empty()) last = detail::as_int(literal(b.progress.end)).value_or(steps);
      in.steps = std::max<std::int64_t>(0, std::min(last, steps) - first);
    }
    return in;
  }

  /// VRAM taken by a node that is about to run.
  struct Acquired {
    double load_ms = 0.0;           ///< reading files from disk, re-uploading evicted weights
    bool loaded_from_disk = false;  ///< a loader that had to read a file
    std::vector<StateChange> changes{};
  };

  /// Makes node n's model files resident (a loader's own files; with uses_models, the files
  /// its inputs carry), pinned against eviction, then reserves its activations. On an
  /// out-of-memory, queues the terminal error and returns nullopt.
  std::optional<Acquired> acquire_vram(std::size_t n, const ClassBehaviour& b, const CostInputs& in,
                                       double error_delay_ms) {
    const NodeFacts& f = facts[n];
    const double time_scale = state->settings().time_scale;
    std::vector<std::string> pinned;
    for (const auto& m : f.loads) pinned.push_back(m.key());
    if (b.uses_models) pinned.insert(pinned.end(), f.needs.begin(), f.needs.end());

    Acquired out;
    auto out_of_memory = [&] {
      push_terminal_error(n, error_delay_ms + out.load_ms,
                          NodeFault{NodeFault::Kind::kOutOfMemory, {}, {}});
      auto& last = queue.back();
      last.changes.insert(last.changes.begin(), out.changes.begin(), out.changes.end());
      return std::nullopt;
    };
    auto evicted = [&](const std::vector<ResidentModel>& models) {
      for (const auto& m : models) {
        out.changes.push_back({StateChange::Kind::kModelEvicted, m.key, m.bytes});
      }
    };
    for (const auto& m : f.loads) {
      auto r = state->vram().load(m.key(), m.vram_bytes, pinned);
      if (!r) return out_of_memory();
      evicted(r->evicted);
      if (r->was_resident) {
        out.load_ms += data->timing.resident_load_ms(time_scale);
      } else {
        out.loaded_from_disk = true;
        out.load_ms += data->timing.load_ms(m.size_bytes, time_scale);
        out.changes.push_back({StateChange::Kind::kModelLoaded, m.key(), m.vram_bytes});
      }
    }
    if (b.uses_models) {
      for (const auto& key : f.needs) {
        const auto it = model_files.find(key);
        if (it == model_files.end()) continue;
        auto r = state->vram().load(key, it->second.vram_bytes, pinned);
        if (!r) return out_of_memory();
        evicted(r->evicted);
        if (!r->was_resident) {
          out.load_ms += data->timing.upload_ms(it->second.vram_bytes, time_scale);
          out.changes.push_back({StateChange::Kind::kModelLoaded, key, it->second.vram_bytes});
        }
      }
    }
    const auto activation = static_cast<std::uint64_t>(
        static_cast<double>(b.activation_base_bytes) +
        static_cast<double>(b.activation_per_megapixel_bytes) * in.megapixels *
            static_cast<double>(std::max<std::int64_t>(1, in.batch)));
    if (activation > 0) {
      auto r = state->vram().allocate(activation, pinned);
      if (!r) return out_of_memory();
      evicted(*r);
      activations[n] = activation;
      out.changes.push_back({StateChange::Kind::kActivationAllocated, id(n), activation});
    }
    return out;
  }

  /// The image a preview frame of node n shows: its first linked input's colour.
  std::vector<std::uint8_t> preview_png(std::size_t n, std::int64_t width,
                                        std::int64_t height) const {
    std::optional<std::array<double, 3>> rgb;
    for (const auto& in : node(n).inputs) {
      if (in.link && in.link->output_index < facts[in.link->source].outputs.size()) {
        rgb = facts[in.link->source].outputs[in.link->output_index].rgb;
        break;
      }
    }
    return encode_png(static_cast<std::uint32_t>(std::max<std::int64_t>(1, width)),
                      static_cast<std::uint32_t>(std::max<std::int64_t>(1, height)), to_rgb(rgb));
  }

  /// Queues node n's work, once its interrupt check passed: faults, VRAM, progress, UI, finish.
  void run_node(std::size_t n) {
    const comfy::Node& nd = node(n);
    const auto& b = data->timing.behaviour(nd.class_type);
    const auto& settings = state->settings();
    const auto& d = data->timing.default_shape();
    const Shape shape = facts[n].work_shape.value_or(Shape{d.width, d.height, d.batch});
    std::string sampler;
    const CostInputs in = cost_inputs(n, b, shape, sampler);
    const NodeCost cost = data->timing.cost(b, in, settings.speed, settings.time_scale);
    const double base_ms = b.base_ms * settings.time_scale / settings.speed;

    // An injected fault raises right after the node's fixed cost.
    if (request.fault) {
      if (auto fault = request.fault(nd.id, nd.class_type)) {
        push_terminal_error(n, base_ms, *fault);
        return;
      }
    }
    auto vram = acquire_vram(n, b, in, base_ms);
    if (!vram) return;

    // The node's time goes before its first work step. A loader's fixed cost is part of
    // loading: a loader whose files are all resident costs only the residency check.
    const bool resident_loader = !facts[n].loads.empty() && !vram->loaded_from_disk;
    double pending = (resident_loader ? 0.0 : cost.setup_ms) + vram->load_ms;
    std::vector<StateChange> changes = std::move(vram->changes);
    // The first work step carries the node's time and the VRAM changes of its start.
    auto first_work = [&](Item& it, double extra_ms) {
      it.delay_ms = pending + extra_ms;
      pending = 0.0;
      if (!changes.empty()) it.changes = std::move(changes);
      changes.clear();
    };

    const bool steps_kind = b.progress.kind == ProgressKind::kSteps && cost.updates > 0;
    const bool images_kind = b.progress.kind == ProgressKind::kImages;
    if (steps_kind || images_kind) {
      // ProgressBar updates: samplers report 1..steps, SaveImageWebsocket 0..batch-1. Each
      // update checks the interrupt flag first. A frame goes with each of SaveImageWebsocket's
      // (its images) and, with previews on, each sampler step (a latent-sized preview).
      const std::int64_t count = cost.updates;
      const bool frame = images_kind || settings.sampler_previews;
      const bool with_metadata = request.preview_metadata && has_client();
      for (std::int64_t i = 0; i < count; ++i) {
        const std::int64_t value = (steps_kind ? 1 : 0) + i;
        Item& update = push_progress(n, Item::Progress::kUpdate, value, count);
        update.interruptible = true;
        first_work(update, cost.per_update_ms);
        comfy::Progress progress;
        progress.value = value;
        progress.max = count;
        progress.prompt_id = prompt_id;
        progress.node = id(n);
        std::vector<std::uint8_t> png;
        if (frame) {
          png = images_kind ? preview_png(n, shape.width, shape.height)
                            : preview_png(n, shape.width / 8, shape.height / 8);
        }
        if (frame && with_metadata) {
          comfy::PreviewImageWithMetadata preview;
          preview.metadata = comfy::make_preview_metadata(id(n), prompt_id, id(n), std::nullopt,
                                                          id(n), "image/png");
          preview.image = std::move(png);
          push_binary(std::move(preview), Route::kClient, n);
          push_event(std::move(progress), client_or_all(), n);
        } else {
          push_event(std::move(progress), client_or_all(), n);
          if (frame) {
            comfy::PreviewImage preview;
            preview.format = comfy::ImageFormat::kPng;
            preview.image = std::move(png);
            push_binary(std::move(preview), client_or_all(), n);
          }
        }
      }
    }

    if (b.progress_text_image_size) {
      comfy::ProgressText t;
      t.node_id = id(n);
      t.text = "width: " + std::to_string(shape.width) +
               ", height: " + std::to_string(shape.height) +
               "\n batch size: " + std::to_string(shape.batch);
      push_binary(std::move(t), Route::kBroadcast, n);
      first_work(queue.back(), 0.0);
    }

    if (auto ui = build_ui(n, b, shape)) {
      comfy::Executed e;
      e.node = id(n);
      e.display_node = id(n);
      e.output = json::value(ui->first);
      e.prompt_id = prompt_id;
      push_event(std::move(e), client_only(), n);
      first_work(queue.back(), 0.0);
      queue.back().ui = std::move(ui->first);
      queue.back().files = std::move(ui->second);
    }

    // finish_progress: value = max, integers after ProgressBar updates, floats otherwise.
    Item& fin = push_progress(n, Item::Progress::kFinish, 0, 0);
    first_work(fin, 0.0);
    fin.finishes_node = true;
  }

  /// The node's UI and the files behind it, or nullopt for a node without UI.
  std::optional<std::pair<json::object, std::vector<OutputFile>>> build_ui(std::size_t n,
                                                                           const ClassBehaviour& b,
                                                                           const Shape& shape) {
    const comfy::Node& nd = node(n);
    if (b.ui == UiKind::kNone) return std::nullopt;
    json::object ui;
    std::vector<OutputFile> files;
    if (b.ui == UiKind::kText) {
      const comfy::NodeInput* source = nd.input("source");
      if (source == nullptr && !nd.inputs.empty()) source = &nd.inputs.front();
      std::string text = "None";
      if (source != nullptr) {
        if (source->link) {
          const auto& src = facts[source->link->source];
          const ValueInfo* v = source->link->output_index < src.outputs.size()
                                   ? &src.outputs[source->link->output_index]
                                   : nullptr;
          text = preview_text(std::nullopt, v, source->link->node_id, source->link->output_index);
        } else {
          text = preview_text(*source->value, nullptr, {}, 0);
        }
      }
      json::array texts;
      texts.emplace_back(text);
      ui.emplace("text", std::move(texts));
      return std::pair{std::move(ui), std::move(files)};
    }
    std::string prefix = "ComfyUI";
    std::string type = "output";
    if (b.ui == UiKind::kSaveImages) {
      if (const auto v = detail::input_value(nd, "filename_prefix", *data, facts);
          v && v->is_string()) {
        prefix = std::string(v->get_string());
      }
    } else {
      prefix += state->files().temp_suffix(nd.id, nd.class_type);
      type = "temp";
    }
    const auto names =
        state->files().next_names(type, prefix, shape.width, shape.height,
                                  static_cast<std::size_t>(std::max<std::int64_t>(1, shape.batch)));
    std::optional<std::array<double, 3>> rgb;
    for (const auto& in : nd.inputs) {
      if (in.link && in.link->output_index < facts[in.link->source].outputs.size()) {
        rgb = facts[in.link->source].outputs[in.link->output_index].rgb;
        break;
      }
    }
    json::array images;
    for (std::size_t i = 0; i < names.size(); ++i) {
      json::object ref;
      ref.emplace("filename", names[i].filename);
      ref.emplace("subfolder", names[i].subfolder);
      ref.emplace("type", names[i].type);
      images.emplace_back(std::move(ref));
      files.push_back({id(n), names[i], shape.width, shape.height, i, to_rgb(rgb)});
    }
    ui.emplace("images", std::move(images));
    return std::pair{std::move(ui), std::move(files)};
  }

  /// Refills the queue when it ran dry and resolves the front's interrupt checks.
  void settle() {
    while (!finished) {
      if (queue.empty()) {
        expand();
        continue;
      }
      Item& front = queue.front();
      if (front.kind == Item::Kind::kCheckpoint) {
        const std::size_t n = front.node;
        queue.pop_front();
        if (interrupt) {
          push_terminal_interrupted(n, 0.0);
        } else {
          run_node(n);
        }
        continue;
      }
      if (front.interruptible && interrupt) {
        // The ProgressBar hook raises before reporting: the step's compute time has passed.
        const std::size_t n = front.node;
        const double delay = front.delay_ms;
        std::vector<StateChange> changes = std::move(front.changes);
        if (activations[n] > 0) {
          state->vram().release(activations[n]);
          changes.push_back({StateChange::Kind::kActivationReleased, id(n), activations[n]});
          activations[n] = 0;
        }
        push_terminal_interrupted(n, delay);
        queue.back().changes = std::move(changes);
        continue;
      }
      break;
    }
  }

  void expand() {
    if (!started) {
      started = true;
      comfy::ExecutionStart s;
      s.prompt_id = prompt_id;
      push_event(std::move(s), client_only(), 0);
      comfy::ExecutionCached c;
      c.nodes = cached_nodes;
      c.prompt_id = prompt_id;
      push_event(std::move(c), client_only(), 0);
      return;
    }
    if (list.empty()) {
      comfy::ExecutionSuccess s;
      s.prompt_id = prompt_id;
      push_event(std::move(s), client_only(), 0);
      queue.back().terminal = true;
      return;
    }
    const auto n = list.pick();
    if (!n) {
      // Unreachable for a validated graph (cycles are rejected); end as ComfyUI would.
      comfy::ExecutionError e;
      e.prompt_id = prompt_id;
      e.exception_message = "Dependency cycle detected";
      e.exception_type = "graph.DependencyCycleError";
      e.current_inputs = json::array();
      push_event(std::move(e), client_only(), 0);
      queue.back().terminal = true;
      return;
    }
    stage(*n);
  }

  ProgressEntry& registry_entry(const std::string& node_id) {
    for (auto& e : registry) {
      if (e.node_id == node_id) return e;
    }
    // ensure_entry: a new node starts pending with integers 0/1.
    registry.push_back({node_id, 0, 1, "pending"});
    return registry.back();
  }

  comfy::ProgressState snapshot() const {
    comfy::ProgressState s;
    s.prompt_id = prompt_id;
    for (const auto& e : registry) {
      if (e.state == "pending") continue;
      comfy::NodeProgress p;
      p.value = e.value;
      p.max = e.max;
      p.state = e.state;
      p.node_id = e.node_id;
      p.prompt_id = prompt_id;
      p.display_node_id = e.node_id;
      p.real_node_id = e.node_id;
      s.nodes.push_back(std::move(p));
    }
    return s;
  }

  Step play(std::int64_t now_ms) {
    settle();
    BOOST_ASSERT(!queue.empty());
    Item it = std::move(queue.front());
    queue.pop_front();
    Step step;
    step.delay_ms = it.delay_ms;
    step.route = it.route;
    step.files = std::move(it.files);
    step.changes = std::move(it.changes);
    step.terminal = it.terminal;
    switch (it.kind) {
      case Item::Kind::kProgress: {
        auto& e = registry_entry(id(it.node));
        switch (it.progress) {
          case Item::Progress::kStart:
          case Item::Progress::kUpdate:
            e.state = "running";
            e.value = it.value;
            e.max = it.max;
            break;
          case Item::Progress::kFinish:
          case Item::Progress::kCachedFinish:
            e.state = "finished";
            e.value = e.max;
            break;
        }
        step.payload = comfy::Event(snapshot());
        break;
      }
      case Item::Kind::kBinary:
        step.payload = std::move(*it.binary);
        break;
      case Item::Kind::kEvent: {
        comfy::Event e = std::move(*it.event);
        std::visit(
            [&](auto& m) {
              using M = std::decay_t<decltype(m)>;
              if constexpr (std::is_same_v<M, comfy::ExecutionStart> ||
                            std::is_same_v<M, comfy::ExecutionCached> ||
                            std::is_same_v<M, comfy::ExecutionSuccess> ||
                            std::is_same_v<M, comfy::ExecutionError> ||
                            std::is_same_v<M, comfy::ExecutionInterrupted>) {
                m.timestamp = now_ms;
                messages.emplace_back(m);
              }
              if constexpr (std::is_same_v<M, comfy::Executing>) last_executing = m.display_node;
              if constexpr (std::is_same_v<M, comfy::ExecutionSuccess>) outcome = Outcome::kSuccess;
              if constexpr (std::is_same_v<M, comfy::ExecutionError>) outcome = Outcome::kError;
              if constexpr (std::is_same_v<M, comfy::ExecutionInterrupted>) {
                outcome = Outcome::kInterrupted;
              }
            },
            e);
        step.payload = std::move(e);
        break;
      }
      case Item::Kind::kCheckpoint:
        break;  // settle() never leaves one at the front
    }
    if (it.ui) {
      const std::string node_id = id(it.node);
      outputs.insert_or_assign(node_id, *it.ui);
      json::object m;
      m.emplace("node_id", node_id);
      m.emplace("display_node", node_id);
      m.emplace("parent_node", nullptr);
      m.emplace("real_node_id", node_id);
      meta.insert_or_assign(node_id, std::move(m));
    }
    if (it.finishes_node) {
      const std::size_t n = it.node;
      const bool was_cached = it.progress == Item::Progress::kCachedFinish;
      if (!was_cached) {
        executed.push_back(id(n));
        CacheEntry entry;
        // The UI rode on the node's executed step; keep it with the cache entry for replays.
        if (const auto* out = outputs.if_contains(id(n)); out != nullptr && out->is_object()) {
          entry.ui = out->get_object();
        }
        state->cache().store(facts[n].signature, std::move(entry));
        step.changes.push_back({StateChange::Kind::kCacheStored, id(n), 0});
        if (activations[n] > 0) {
          state->vram().release(activations[n]);
          step.changes.push_back({StateChange::Kind::kActivationReleased, id(n), activations[n]});
          activations[n] = 0;
        }
      }
      list.complete(n);
    }
    if (it.unload_all) {
      std::uint64_t bytes = 0;
      for (const auto& m : state->vram().unload_all()) bytes += m.bytes;
      step.changes.push_back({StateChange::Kind::kModelsUnloaded, {}, bytes});
    }
    if (step.terminal) finished = true;
    return step;
  }
};

PromptRun::PromptRun(std::unique_ptr<Impl> impl) noexcept : impl_(std::move(impl)) {}
PromptRun::PromptRun(PromptRun&&) noexcept = default;
PromptRun& PromptRun::operator=(PromptRun&&) noexcept = default;
PromptRun::~PromptRun() = default;

Result<PromptRun> PromptRun::start(const SimData& data, SimState& state, PlanRequest request) {
  auto graph = comfy::Workflow::from_json(json::value(request.item.prompt));
  if (!graph) {
    const auto err = graph.error();
    return fail(Errc::kInvalidArgument, "prompt: " + err.to_error().message);
  }
  for (const auto& nd : graph->nodes()) {
    if (!data.catalog.contains(nd.class_type)) {
      return fail(Errc::kInvalidArgument, "prompt: node " + std::string(nd.id) + ": class " +
                                              std::string(nd.class_type) +
                                              " is not in the node catalog");
    }
  }
  for (const auto& out : request.item.outputs_to_execute) {
    if (graph->find(out) == nullptr) {
      return fail(Errc::kInvalidArgument, "prompt: output " + out + " is not a node of the graph");
    }
  }
  auto impl = std::make_unique<Impl>(data, state, std::move(request), std::move(*graph));
  Impl& r = *impl;
  r.prompt_id = r.request.item.prompt_id;
  if (const auto* cid = r.request.item.extra_data.if_contains("client_id");
      cid != nullptr && cid->is_string()) {
    r.client_id = std::string(cid->get_string());
  }

  detail::InputFileHooks hooks;
  if (r.request.input_image_size) {
    hooks.image_shape = [&r](std::string_view name) -> std::optional<Shape> {
      const auto s = r.request.input_image_size(name);
      if (!s) return std::nullopt;
      return Shape{s->width, s->height, 1};
    };
  }
  hooks.fingerprint = r.request.input_fingerprint;
  r.facts = detail::evaluate_graph(r.graph, data, hooks, state.next_prompt_serial());
  for (const auto& f : r.facts) {
    for (const auto& m : f.loads) r.model_files.insert_or_assign(m.key(), m);
  }
  r.activations.assign(r.facts.size(), 0);

  // Prompt start: classic cache clean_unused, then the node objects the prompt keeps.
  std::set<std::string, std::less<>> signatures;
  for (const auto& f : r.facts) signatures.insert(f.signature);
  state.cache().retain_only(signatures);
  state.files().retain_objects([&r](std::string_view node_id, std::string_view class_type) {
    const auto* nd = r.graph.find(node_id);
    return nd != nullptr && nd->class_type == class_type;
  });
  const auto nodes = r.graph.nodes();
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (state.cache().contains(r.facts[i].signature)) r.cached_nodes.emplace_back(nodes[i].id);
  }
  for (const auto& out : r.request.item.outputs_to_execute) {
    r.list.add_node(*r.graph.index_of(out));
  }
  return PromptRun(std::move(impl));
}

bool PromptRun::done() const noexcept { return impl_->finished; }

double PromptRun::delay_before_next_ms() {
  if (impl_->finished) return 0.0;
  impl_->settle();
  return impl_->queue.empty() ? 0.0 : impl_->queue.front().delay_ms;
}

Step PromptRun::next_step(std::int64_t now_ms) {
  BOOST_ASSERT(!impl_->finished);
  return impl_->play(now_ms);
}

void PromptRun::request_interrupt() noexcept {
  if (!impl_->finished) impl_->interrupt = true;
}

Outcome PromptRun::outcome() const noexcept { return impl_->outcome; }
const std::string& PromptRun::prompt_id() const noexcept { return impl_->prompt_id; }
const std::optional<std::string>& PromptRun::client_id() const noexcept { return impl_->client_id; }
const std::optional<std::string>& PromptRun::last_executing_node() const noexcept {
  return impl_->last_executing;
}

comfy::HistoryEntry PromptRun::history_entry() const {
  comfy::HistoryEntry h;
  h.prompt_id = impl_->prompt_id;
  h.prompt = impl_->request.item;
  h.outputs = impl_->outputs;
  comfy::HistoryStatus status;
  status.status_str = impl_->outcome == Outcome::kSuccess ? "success" : "error";
  status.completed = impl_->outcome == Outcome::kSuccess;
  status.messages = impl_->messages;
  h.status = std::move(status);
  h.meta = impl_->meta;
  return h;
}

std::vector<Step> closing_steps(std::string_view prompt_id, bool has_client,
                                std::int64_t queue_remaining) {
  std::vector<Step> out;
  Step status;
  comfy::Status s;
  s.queue_remaining = queue_remaining;
  status.payload = comfy::Event(std::move(s));
  status.route = Route::kBroadcast;
  out.push_back(std::move(status));
  if (has_client) {
    Step end;
    comfy::Executing e;
    e.prompt_id = std::string(prompt_id);
    end.payload = comfy::Event(std::move(e));
    end.route = Route::kClient;
    out.push_back(std::move(end));
  }
  return out;
}

std::vector<Step> run_to_end(PromptRun& run, std::int64_t start_ms) {
  std::vector<Step> steps;
  double clock = static_cast<double>(start_ms);
  while (!run.done()) {
    clock += run.delay_before_next_ms();
    steps.push_back(run.next_step(static_cast<std::int64_t>(clock)));
  }
  return steps;
}

}  // namespace comfyfarm::sim
