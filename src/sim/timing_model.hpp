// TimingModel: how each node class behaves in the simulator and what it costs (time, VRAM), read
// from data (data/sim/timing.json plus user files). The formula is in docs/sim-model.md.
#pragma once

#include "core/error.hpp"

#include <boost/json/value.hpp>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace comfyfarm::sim {

namespace json = boost::json;

/// How a node's output image/latent size follows from its inputs. Sizes are in pixels (a latent
/// of a 512x512 image is 512x512 here, not 64x64).
struct ShapeRule {
  std::string from{};    ///< input inherited from ("" = the first linked input with a size)
  std::string width{};   ///< literal INT input replacing the width (0 keeps the aspect)
  std::string height{};  ///< literal INT input replacing the height
  std::string batch{};   ///< literal INT input replacing the batch size
  std::string scale{};   ///< literal FLOAT input multiplying width and height
  double factor = 1.0;   ///< constant multiplier of width and height
  std::string model_factor_input{};  ///< input whose model file's "scale" replaces factor
  std::string input_image{};  ///< literal input naming a file of the input folder (LoadImage)
};

/// Which ProgressBar a node drives while it runs.
enum class ProgressKind {
  kNone,    ///< no progress messages
  kSteps,   ///< a sampler: updates 1..steps (max = steps run)
  kImages,  ///< one update per image, 0-based, with the image as a preview frame
            ///< (SaveImageWebsocket)
};

struct ProgressRule {
  ProgressKind kind = ProgressKind::kNone;
  std::string steps = "steps";  ///< literal INT input with the step count
  std::string start{};          ///< literal INT input: first step run (KSamplerAdvanced)
  std::string end{};            ///< literal INT input: step to stop at (KSamplerAdvanced)
};

/// The UI a node returns ("executed" output and the history's outputs).
enum class UiKind {
  kNone,
  kSaveImages,     ///< {"images": [{filename, subfolder, type: "output"}]}, filename_prefix input
  kPreviewImages,  ///< {"images": [... type "temp"]}, ComfyUI_temp_<5 letters>_NNNNN_.png
  kText,           ///< {"text": [str(source)]} (PreviewAny)
};

/// Values the simulator computes itself, so that text outputs and downstream sizes are right.
enum class EvalKind {
  kNone,
  kPrimitive,   ///< output 0 = input "value" (PrimitiveInt, PrimitiveString, ...)
  kConcat,      ///< string_a + delimiter + string_b
  kImageSize,   ///< width, height, batch_size of input "image"
  kEmptyImage,  ///< an image of one colour: input "color" (0xRRGGBB)
  kInvert,      ///< 1 - each channel of the input image's colour
};

/// One class's behaviour and cost coefficients. Absent coefficients are 0.
struct ClassBehaviour {
  double base_ms = 0.0;                     ///< fixed cost per execution
  double per_image_ms = 0.0;                ///< per image of the batch
  double per_megapixel_ms = 0.0;            ///< per megapixel of each image of the batch
  double per_step_megapixel_ms = 0.0;       ///< per sampler step and megapixel of each image
  std::uint64_t activation_base_bytes = 0;  ///< VRAM held while the node runs
  std::uint64_t activation_per_megapixel_bytes = 0;  ///< more, per megapixel x batch
  bool uses_models = false;  ///< needs the model files of its inputs resident in VRAM
  /// Combo inputs filled at run time from a folder: input name -> folder ("checkpoints",
  /// "loras", ..., or "input" for uploaded images). A class with a model folder here is a
  /// loader: executing it loads those files.
  std::vector<std::pair<std::string, std::string>> combo_folders{};
  std::optional<ShapeRule> shape{};
  ProgressRule progress{};
  UiKind ui = UiKind::kNone;
  EvalKind eval = EvalKind::kNone;
  bool progress_text_image_size = false;  ///< sends "width: W, height: H\n batch size: B" (type 3)
  bool always_rerun = false;        ///< IS_CHANGED returns a new value every time (never cached)
  bool not_idempotent = false;      ///< NOT_IDEMPOTENT: the node id is part of the cache key
  std::string fingerprint_input{};  ///< IS_CHANGED hashes the input file this input names
  std::string sampler_input{};      ///< input with the sampler name (sampler_factors)
  std::string cfg_input{};          ///< input with the CFG scale (cfg1_factor at 1.0)
};

/// What a node's cost depends on, gathered by the planner from the graph.
struct CostInputs {
  double megapixels = 0.0;  ///< of one image of the node's work size
  std::int64_t batch = 1;
  std::int64_t steps = 0;  ///< sampler steps actually run
  std::string_view sampler{};
  std::optional<double> cfg{};
  std::string_view arch{};  ///< model family of the node's model input ("sd15", "sdxl", ...)
};

/// A node's modeled duration, in ms of the simulated clock (speed and time_scale applied).
struct NodeCost {
  double setup_ms = 0.0;       ///< before the first progress update, or the whole node
  double per_update_ms = 0.0;  ///< between progress updates
  std::int64_t updates = 0;    ///< progress updates (0 for nodes without progress)

  [[nodiscard]] double total_ms() const {
    return setup_ms + per_update_ms * static_cast<double>(updates);
  }
};

/// The default size used when nothing upstream gives one.
struct DefaultShape {
  std::int64_t width = 512;
  std::int64_t height = 512;
  std::int64_t batch = 1;
};

/// Class behaviours and global coefficients. Immutable after loading; safe to share.
class TimingModel {
 public:
  /// Parses one timing file (schema in docs/sim-model.md). Unknown keys are errors
  /// (Errc::kInvalidArgument naming the path), so a misspelt coefficient does not pass silently.
  [[nodiscard]] static Result<TimingModel> parse(std::string_view json_text);
  [[nodiscard]] static Result<TimingModel> from_json(const json::value& doc);
  /// The built-in model (data/sim/timing.json, compiled in).
  [[nodiscard]] static Result<TimingModel> load_default();

  /// Applies a later file: its classes replace whole class entries, and the globals it sets
  /// replace these (factor tables are merged key by key).
  [[nodiscard]] Result<void> merge_json(std::string_view json_text);

  /// The behaviour of a class; the file's "default" entry for classes it does not list.
  [[nodiscard]] const ClassBehaviour& behaviour(std::string_view class_type) const;
  [[nodiscard]] bool has_class(std::string_view class_type) const;

  /// Whether the class runs sampler steps (ProgressKind::kSteps): what "every Nth sampler"
  /// faults count.
  [[nodiscard]] bool is_sampler(std::string_view class_type) const {
    return behaviour(class_type).progress.kind == ProgressKind::kSteps;
  }

  /// Compute time of one execution, divided by speed (relative GPU speed, 1.0 = RTX 4090) and
  /// multiplied by time_scale. Model loading is not included (see load_ms/upload_ms).
  [[nodiscard]] NodeCost cost(const ClassBehaviour& b, const CostInputs& in, double speed,
                              double time_scale) const;
  [[nodiscard]] NodeCost cost(std::string_view class_type, const CostInputs& in, double speed,
                              double time_scale) const {
    return cost(behaviour(class_type), in, speed, time_scale);
  }
  /// Reading a model file from disk (a loader whose file is not resident), times time_scale.
  /// Disk speed does not depend on the GPU, so speed does not apply.
  [[nodiscard]] double load_ms(std::uint64_t file_bytes, double time_scale) const;
  /// Moving weights that were evicted from VRAM back onto the GPU, times time_scale.
  [[nodiscard]] double upload_ms(std::uint64_t vram_bytes, double time_scale) const;
  /// A loader whose file is already resident, times time_scale.
  [[nodiscard]] double resident_load_ms(double time_scale) const {
    return resident_load_ms_ * time_scale;
  }

  [[nodiscard]] double default_speed() const noexcept { return speed_; }
  [[nodiscard]] double default_time_scale() const noexcept { return time_scale_; }
  [[nodiscard]] std::uint64_t vram_reserved_bytes() const noexcept { return vram_reserved_; }
  [[nodiscard]] const DefaultShape& default_shape() const noexcept { return default_shape_; }
  [[nodiscard]] double arch_factor(std::string_view arch) const;
  [[nodiscard]] double sampler_factor(std::string_view sampler) const;

 private:
  [[nodiscard]] Result<void> apply(const json::value& doc);

  double speed_ = 1.0;
  double time_scale_ = 1.0;
  double disk_read_bytes_per_s_ = 2.5e9;
  double vram_upload_bytes_per_s_ = 12e9;
  double resident_load_ms_ = 5.0;
  double cfg1_factor_ = 0.55;
  std::uint64_t vram_reserved_ = 0;
  DefaultShape default_shape_{};
  std::map<std::string, double, std::less<>> arch_factors_;
  std::map<std::string, double, std::less<>> sampler_factors_;
  ClassBehaviour default_{};
  std::map<std::string, ClassBehaviour, std::less<>> classes_;
};

}  // namespace comfyfarm::sim
