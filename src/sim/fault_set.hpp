// FaultSet: the faults one simulated server injects (`comfyfarm sim --fault SPEC`, and the
// /sim/faults routes), with the spec grammar parsed and printed in one place.
#pragma once

#include "core/error.hpp"

#include <boost/json/object.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace comfyfarm::sim {

/// One `--fault` argument: `[@INDEX:]NAME[=VALUE]`, not yet applied to a FaultSet.
struct FaultSpec {
  std::optional<std::size_t> target{};  ///< `@INDEX:`: only that server of a --count process
  std::string name{};                   ///< "oom", "http-latency", ...
  std::optional<std::string> value{};   ///< the text after '=', if any
};

/// Splits `[@INDEX:]NAME[=VALUE]`; kInvalidArgument for a malformed target or an empty name.
/// The name and value are checked only by FaultSet::apply.
[[nodiscard]] Result<FaultSpec> parse_fault_spec(std::string_view text);

/// The faults of one simulated server. A plain value: the server keeps one on its strand and
/// reads it at each decision, so a change through /sim/faults applies from the next decision.
///
/// Grammar (VALUE after '='; P is a probability in [0, 1], N and MS non-negative integers):
///
///   oom[=P|every:N]          the sampler node raises torch.OutOfMemoryError: with probability P
///                            per sampler run, or on every Nth sampler run (no value: every one)
///   crash[=P|after:N]        the process dies (SIGKILL) mid-prompt: with probability P per
///                            prompt, or after N prompts ran (no value: after:0, the first one)
///   stall[=on|off]           accept prompts but never start them (they stay pending)
///   ws-silence[=P]           a prompt's WebSocket messages stop after execution_start (P per
///                            prompt; no value: every prompt); it still runs to the end
///   ws-drop[=P|now]          close every WebSocket when a prompt starts (P per prompt; no
///                            value: every prompt); `now` closes them once, at once
///   http-latency=MS          every HTTP reply waits MS first
///   http-error=P             that fraction of HTTP requests is answered 503
///   slow-object-info=MS      /object_info replies wait MS more
///   node-error=CLASS[,CLASS] nodes of these classes raise RuntimeError when they run
///
/// A value of 0 (or `off`) turns a fault off.
struct FaultSet {
  double oom_probability = 0.0;
  std::uint64_t oom_every = 0;  ///< 0: not periodic
  double crash_probability = 0.0;
  std::optional<std::uint64_t> crash_after{};
  bool stall = false;
  double ws_silence = 0.0;  ///< probability per prompt
  double ws_drop = 0.0;     ///< probability per prompt start
  std::uint64_t http_latency_ms = 0;
  double http_error_rate = 0.0;
  std::uint64_t slow_object_info_ms = 0;
  std::vector<std::string> node_error_classes{};

  /// Applies one `NAME[=VALUE]` (a spec's target is the caller's business). kInvalidArgument
  /// names the spec and what is wrong. `ws-drop=now` is accepted and sets nothing here (the
  /// server acts on it at once); `drop_now` tells the caller.
  [[nodiscard]] Result<void> apply(std::string_view name, std::optional<std::string_view> value,
                                   bool* drop_now = nullptr);

  /// True when no fault is on.
  [[nodiscard]] bool empty() const noexcept;

  /// The active faults as canonical specs ("oom=every:3", "http-latency=200"), in grammar order.
  [[nodiscard]] std::vector<std::string> specs() const;

  /// The active faults as an object {"oom": "every:3", "stall": true, "http-latency": 200, ...},
  /// the shape POST /sim/faults accepts.
  [[nodiscard]] boost::json::object to_json() const;

  /// Applies a POST /sim/faults body: an object whose keys are fault names with a value each
  /// (number, string, true, or false/null to turn it off; node-error also takes an array), plus
  /// optionally "specs": ["oom=0.5", ...]. "mode": "replace" clears the set first (default
  /// "merge"). kInvalidArgument names the key at fault, and then nothing was changed.
  [[nodiscard]] Result<void> apply_json(const boost::json::object& body, bool* drop_now = nullptr);

  friend bool operator==(const FaultSet&, const FaultSet&) = default;
};

}  // namespace comfyfarm::sim
