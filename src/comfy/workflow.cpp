#include "comfy/workflow.hpp"

#include <boost/json/object.hpp>

#include <xxhash.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <functional>
#include <limits>
#include <queue>
#include <utility>

namespace comfyfarm::comfy {

namespace {

// Node and input positions. 32 bits: a document with 2^32 nodes would not fit in memory.
using Index = std::uint32_t;

// ---------------------------------------------------------------------------------------------
// Messages

// A string as a JSON-style quoted literal, so odd ids ("a\"b", newlines) stay readable.
void append_quoted(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xF];
    } else {
      out += ch;
    }
  }
  out += '"';
}

std::string quoted(std::string_view s) {
  std::string out;
  append_quoted(out, s);
  return out;
}

// `node "3" (KSampler)`, or `node "3"` while the class is unknown.
std::string node_label(std::string_view id, std::string_view class_type) {
  std::string out = "node ";
  append_quoted(out, id);
  if (!class_type.empty()) {
    out += " (";
    out += class_type;
    out += ')';
  }
  return out;
}

// `node "3" (KSampler) input "model"`
std::string input_label(std::string_view id, std::string_view class_type,
                        std::string_view input) {
  std::string out = node_label(id, class_type);
  out += " input ";
  append_quoted(out, input);
  return out;
}

// A short rendering of a JSON value for messages: the value itself when small, its kind if not.
std::string describe_value(const json::value& v) {
  if (v.is_null()) return "null";
  std::string text = dumps(v);
  if (text.size() <= 40) return std::string(kind_name(v)) + " " + text;
  return std::string(kind_name(v));
}

WorkflowIssue make_issue(WorkflowErrc code, std::string_view node_id, std::string_view input_name,
                         std::string message) {
  WorkflowIssue issue;
  issue.code = code;
  issue.node_id = std::string(node_id);
  issue.input_name = std::string(input_name);
  issue.message = std::move(message);
  return issue;
}

// ---------------------------------------------------------------------------------------------
// Model references

constexpr std::array<std::string_view, 8> kModelExtensions = {
    ".safetensors", ".ckpt", ".pt", ".pth", ".bin", ".gguf", ".onnx", ".sft"};

// Extensions of files that a "*_name" input may name but that are not models: input media,
// text, configs, fonts.
constexpr std::array<std::string_view, 27> kNonModelExtensions = {
    "png",  "jpg", "jpeg", "webp", "gif", "bmp",  "tif",  "tiff", "mp4",
    "webm", "mov", "avi",  "mkv",  "wav", "mp3",  "flac", "ogg",  "txt",
    "json", "csv", "yaml", "yml",  "ttf", "otf",  "html", "svg",  "exr"};

// Inputs that name model files but do not end in "_name".
constexpr std::array<std::string_view, 6> kModelInputNames = {
    "upscale_model", "model_path", "model_file", "ckpt_path", "ipadapter_file", "instantid_file"};

bool iequals_ascii(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    char y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

bool iends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && iequals_ascii(s.substr(s.size() - suffix.size()), suffix);
}

bool has_model_extension(std::string_view value) noexcept {
  return std::any_of(kModelExtensions.begin(), kModelExtensions.end(),
                     [&](std::string_view ext) { return iends_with(value, ext); });
}

// "dir/name.ext" with a short alphanumeric, not purely numeric, non-media extension.
bool looks_like_model_file(std::string_view value) noexcept {
  if (value.empty() || value.size() > 1024) return false;
  const std::size_t slash = value.find_last_of("/\\");
  const std::string_view base = slash == std::string_view::npos ? value : value.substr(slash + 1);
  const std::size_t dot = base.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  const std::string_view ext = base.substr(dot + 1);
  if (ext.empty() || ext.size() > 12) return false;
  bool has_letter = false;
  for (const char c : ext) {
    const bool digit = c >= '0' && c <= '9';
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (!digit && !letter && c != '_') return false;
    has_letter = has_letter || letter;
  }
  if (!has_letter) return false;
  return std::none_of(kNonModelExtensions.begin(), kNonModelExtensions.end(),
                      [&](std::string_view e) { return iequals_ascii(ext, e); });
}

// ---------------------------------------------------------------------------------------------
// Hashing

std::string to_hex(XXH128_hash_t h) {
  XXH128_canonical_t canonical;
  XXH128_canonicalFromHash(&canonical, h);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out(2 * sizeof canonical.digest, '0');
  for (std::size_t i = 0; i < sizeof canonical.digest; ++i) {
    out[2 * i] = kHex[canonical.digest[i] >> 4];
    out[2 * i + 1] = kHex[canonical.digest[i] & 0xF];
  }
  return out;
}

bool hash_less(const XXH128_hash_t& a, const XXH128_hash_t& b) noexcept {
  return a.high64 != b.high64 ? a.high64 < b.high64 : a.low64 < b.low64;
}

// Unambiguous byte encoding of the tuples that signatures are hashed from: fixed-width
// integers, length-prefixed strings, tagged records.
class Encoder {
 public:
  void clear() noexcept { buf_.clear(); }
  void tag(char t) { buf_ += t; }
  void u64(std::uint64_t v) {
    char bytes[8];
    for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
    buf_.append(bytes, sizeof bytes);
  }
  void str(std::string_view s) {
    u64(s.size());
    buf_.append(s.data(), s.size());
  }
  void hash(const XXH128_hash_t& h) {
    u64(h.low64);
    u64(h.high64);
  }
  [[nodiscard]] XXH128_hash_t digest() const noexcept {
    return XXH3_128bits(buf_.data(), buf_.size());
  }

 private:
  std::string buf_;
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Error types

std::string_view to_string(WorkflowErrc code) noexcept {
  switch (code) {
    case WorkflowErrc::kNotJson: return "not_json";
    case WorkflowErrc::kNotAnObject: return "not_an_object";
    case WorkflowErrc::kEmpty: return "empty";
    case WorkflowErrc::kUiFormat: return "ui_format";
    case WorkflowErrc::kNodeNotObject: return "node_not_object";
    case WorkflowErrc::kMissingClassType: return "missing_class_type";
    case WorkflowErrc::kClassTypeNotString: return "class_type_not_string";
    case WorkflowErrc::kInputsNotObject: return "inputs_not_object";
    case WorkflowErrc::kLinkToMissingNode: return "link_to_missing_node";
    case WorkflowErrc::kBadOutputIndex: return "bad_output_index";
    case WorkflowErrc::kCycle: return "cycle";
  }
  return "unknown";
}

Error WorkflowIssue::to_error() const { return fail(Errc::kInvalidArgument, message); }

Error WorkflowError::to_error() const {
  constexpr std::size_t kShown = 10;
  std::string message;
  for (std::size_t i = 0; i < issues.size() && i < kShown; ++i) {
    if (i != 0) message += "; ";
    message += issues[i].message;
  }
  if (issues.size() > kShown) {
    message += "; and " + std::to_string(issues.size() - kShown) + " more problems";
  }
  return fail(Errc::kInvalidArgument, std::move(message));
}

void throw_exception_from_error(const WorkflowError& e, const boost::source_location&) {
  throw ErrorException(e.to_error());
}

bool is_model_reference(std::string_view input_name, std::string_view value) noexcept {
  if (has_model_extension(value)) return true;
  const bool model_input =
      input_name.ends_with("_name") ||
      std::find(kModelInputNames.begin(), kModelInputNames.end(), input_name) !=
          kModelInputNames.end();
  return model_input && looks_like_model_file(value);
}

const NodeInput* Node::input(std::string_view name) const noexcept {
  for (const auto& in : inputs) {
    if (in.name == name) return &in;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// The shared, immutable state of a Workflow

struct detail::WorkflowImpl {
  json::value doc;
  std::vector<NodeInput> inputs;  // every node's inputs, node after node; Node::inputs spans it
  std::vector<Node> nodes;        // document order
  std::vector<Index> by_id;       // node indices sorted by id
  std::vector<Index> order;       // topological order
  // Distinct predecessors / successors of node i, in document order:
  // pred[pred_start[i] .. pred_start[i+1]), likewise succ.
  std::vector<Index> pred_start, pred, succ_start, succ;
  // Every link, grouped by source node: out_edge[out_start[i] .. out_start[i+1]) holds the
  // positions in `inputs` of the link inputs reading from node i, with their consumer node.
  struct OutEdge {
    Index consumer;
    Index input;
  };
  std::vector<Index> out_start;
  std::vector<OutEdge> out_edge;

  [[nodiscard]] std::optional<Index> find(std::string_view id) const noexcept {
    auto it = std::lower_bound(by_id.begin(), by_id.end(), id,
                               [&](Index i, std::string_view key) { return nodes[i].id < key; });
    if (it == by_id.end() || nodes[*it].id != id) return std::nullopt;
    return *it;
  }
};

namespace {

// Builds the Impl for a document and collects every problem on the way.
class Builder {
 public:
  Builder(detail::WorkflowImpl& impl, std::vector<WorkflowIssue>& issues)
      : impl_(impl), issues_(issues) {}

  void run() {
    if (!check_document()) return;
    read_nodes(impl_.doc.get_object());
    index_ids();
    read_inputs();
    // Pass 1 and 2 each report in document order; interleave them by node.
    std::stable_sort(issues_.begin(), issues_.end(), [&](const auto& a, const auto& b) {
      return *impl_.find(a.node_id) < *impl_.find(b.node_id);
    });
    build_adjacency();
    sort_topologically();
  }

 private:
  void add(WorkflowErrc code, std::string_view node_id, std::string_view input_name,
           std::string message) {
    issues_.push_back(make_issue(code, node_id, input_name, std::move(message)));
  }

  // The document as a whole: an object, in API format, with nodes.
  bool check_document() {
    const json::value& doc = impl_.doc;
    if (!doc.is_object()) {
      add(WorkflowErrc::kNotAnObject, "", "",
          "workflow must be a JSON object mapping node ids to nodes, got " +
              std::string(kind_name(doc)));
      return false;
    }
    const auto& top = doc.get_object();
    std::string_view ui_marker;
    if (auto* v = top.if_contains("nodes"); v && v->is_array()) {
      ui_marker = "it has a \"nodes\" array";
    } else if (auto* l = top.if_contains("links"); l && l->is_array()) {
      ui_marker = "it has a \"links\" array";
    } else if (auto* last = top.if_contains("last_node_id"); last && !last->is_object()) {
      ui_marker = "it has \"last_node_id\"";
    }
    if (!ui_marker.empty()) {
      add(WorkflowErrc::kUiFormat, "", "",
          "this is a UI-format workflow (" + std::string(ui_marker) +
              "), which ComfyUI's /prompt does not run; export it in API format instead: in "
              "ComfyUI use Workflow > Export (API), or in the legacy menu enable \"Dev mode "
              "options\" in the settings and click \"Save (API Format)\"");
      return false;
    }
    if (top.empty()) {
      add(WorkflowErrc::kEmpty, "", "", "workflow has no nodes");
      return false;
    }
    return true;
  }

  // Pass 1: every node's class_type, title and inputs object; nodes that fail stay in `nodes`
  // (so links to them are not reported as missing) but are marked invalid.
  void read_nodes(const json::object& top) {
    const std::size_t n = top.size();
    impl_.nodes.resize(n);
    valid_.assign(n, false);
    inputs_of_.assign(n, nullptr);
    std::size_t total_inputs = 0;
    std::size_t i = 0;
    for (const auto& kv : top) {
      Node& node = impl_.nodes[i];
      node.id = kv.key();
      const json::value& v = kv.value();
      const std::size_t at = i++;
      if (!v.is_object()) {
        add(WorkflowErrc::kNodeNotObject, node.id, "",
            node_label(node.id, "") +
                " must be an object with \"class_type\" and \"inputs\", got " +
                describe_value(v));
        continue;
      }
      const auto& obj = v.get_object();
      node.object = &obj;
      if (const auto* meta = obj.if_contains("_meta"); meta && meta->is_object()) {
        if (const auto* title = meta->get_object().if_contains("title");
            title && title->is_string()) {
          node.title = std::string_view(title->get_string());
        }
      }
      const auto* ct = obj.if_contains("class_type");
      if (ct == nullptr || (ct->is_string() && ct->get_string().empty())) {
        std::string message = node_label(node.id, "") + (ct ? " has an empty \"class_type\""
                                                            : " has no \"class_type\"");
        if (ct == nullptr && node.id == "prompt") {
          message += " (this looks like a POST /prompt body: send its \"prompt\" member, which "
                     "is the workflow)";
        }
        add(WorkflowErrc::kMissingClassType, node.id, "", std::move(message));
        continue;
      }
      if (!ct->is_string()) {
        add(WorkflowErrc::kClassTypeNotString, node.id, "",
            node_label(node.id, "") + " \"class_type\" must be a string, got " +
                describe_value(*ct));
        continue;
      }
      node.class_type = ct->get_string();
      const auto* ins = obj.if_contains("inputs");
      if (ins == nullptr) {
        add(WorkflowErrc::kInputsNotObject, node.id, "",
            node_label(node.id, node.class_type) + " has no \"inputs\" object");
        continue;
      }
      if (!ins->is_object()) {
        add(WorkflowErrc::kInputsNotObject, node.id, "",
            node_label(node.id, node.class_type) + " \"inputs\" must be an object, got " +
                describe_value(*ins));
        continue;
      }
      inputs_of_[at] = &ins->get_object();
      total_inputs += ins->get_object().size();
      valid_[at] = true;
    }
    impl_.inputs.reserve(total_inputs);
  }

  void index_ids() {
    auto& by_id = impl_.by_id;
    by_id.resize(impl_.nodes.size());
    for (std::size_t i = 0; i < by_id.size(); ++i) by_id[i] = static_cast<Index>(i);
    std::sort(by_id.begin(), by_id.end(),
              [&](Index a, Index b) { return impl_.nodes[a].id < impl_.nodes[b].id; });
  }

  // Pass 2: every input of every valid node; links are resolved against the ids.
  void read_inputs() {
    auto& nodes = impl_.nodes;
    auto& inputs = impl_.inputs;
    std::vector<std::size_t> first(nodes.size() + 1, 0);
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      first[i] = inputs.size();
      if (!valid_[i]) continue;
      const Node& node = nodes[i];
      for (const auto& kv : *inputs_of_[i]) {
        NodeInput in;
        in.name = kv.key();
        in.value = &kv.value();
        if (kv.value().is_array() && kv.value().get_array().size() == 2) {
          in.link = read_link(node, in.name, kv.value().get_array());
          if (!in.link) continue;  // reported; the bad input is left out of the graph
        }
        inputs.push_back(in);
      }
    }
    first[nodes.size()] = inputs.size();
    // `inputs` is complete: the spans can point into it now.
    for (std::size_t i = 0; i < nodes.size(); ++i) {
      nodes[i].inputs =
          std::span<const NodeInput>(inputs.data() + first[i], first[i + 1] - first[i]);
    }
  }

  std::optional<Link> read_link(const Node& node, std::string_view input,
                                const json::array& arr) {
    const json::value& id = arr[0];
    const json::value& index = arr[1];
    if (!id.is_string()) {
      add(WorkflowErrc::kBadOutputIndex, node.id, input,
          input_label(node.id, node.class_type, input) + " is a link whose node id is " +
              describe_value(id) + ", not a string; write node ids in links as strings, e.g. [" +
              (id.is_number() ? quoted(dumps(id)) : std::string("\"4\"")) + ", 0]");
      return std::nullopt;
    }
    std::uint64_t output_index = 0;
    if (index.is_uint64()) {
      output_index = index.get_uint64();
    } else if (index.is_int64() && index.get_int64() >= 0) {
      output_index = static_cast<std::uint64_t>(index.get_int64());
    } else {
      add(WorkflowErrc::kBadOutputIndex, node.id, input,
          input_label(node.id, node.class_type, input) + " links to node " +
              quoted(id.get_string()) + " with output index " + dumps(index) +
              "; an output index must be a non-negative integer");
      return std::nullopt;
    }
    const std::string_view source_id = id.get_string();
    const auto source = impl_.find(source_id);
    if (!source) {
      add(WorkflowErrc::kLinkToMissingNode, node.id, input,
          input_label(node.id, node.class_type, input) + " links to node " + quoted(source_id) +
              ", which does not exist");
      return std::nullopt;
    }
    if (!valid_[*source]) return std::nullopt;  // that node's own problem is reported already
    return Link{source_id, output_index, *source};
  }

  void build_adjacency() {
    const auto& nodes = impl_.nodes;
    const std::size_t n = nodes.size();
    auto& pred_start = impl_.pred_start;
    auto& pred = impl_.pred;
    pred_start.assign(n + 1, 0);
    pred.reserve(impl_.inputs.size());
    std::vector<Index> out_count(n, 0);
    for (std::size_t i = 0; i < n; ++i) {
      pred_start[i] = static_cast<Index>(pred.size());
      const auto begin = pred.size();
      for (const auto& in : nodes[i].inputs) {
        if (!in.link) continue;
        pred.push_back(static_cast<Index>(in.link->source));
        ++out_count[in.link->source];
      }
      // Distinct, in document order.
      std::sort(pred.begin() + static_cast<std::ptrdiff_t>(begin), pred.end());
      pred.erase(std::unique(pred.begin() + static_cast<std::ptrdiff_t>(begin), pred.end()),
                 pred.end());
    }
    pred_start[n] = static_cast<Index>(pred.size());

    // Successors: the transpose of pred; filling in consumer order keeps document order.
    auto& succ_start = impl_.succ_start;
    auto& succ = impl_.succ;
    succ_start.assign(n + 1, 0);
    for (const Index p : pred) ++succ_start[p + 1];
    for (std::size_t i = 0; i < n; ++i) succ_start[i + 1] += succ_start[i];
    succ.resize(pred.size());
    std::vector<Index> fill(succ_start.begin(), succ_start.end() - 1);
    for (std::size_t i = 0; i < n; ++i) {
      for (Index k = pred_start[i]; k < pred_start[i + 1]; ++k) {
        succ[fill[pred[k]]++] = static_cast<Index>(i);
      }
    }

    // Every link edge, grouped by source.
    auto& out_start = impl_.out_start;
    out_start.assign(n + 1, 0);
    for (std::size_t i = 0; i < n; ++i) out_start[i + 1] = out_start[i] + out_count[i];
    impl_.out_edge.resize(out_start[n]);
    std::copy(out_start.begin(), out_start.end() - 1, fill.begin());
    const NodeInput* base = impl_.inputs.data();
    for (std::size_t i = 0; i < n; ++i) {
      for (const auto& in : nodes[i].inputs) {
        if (!in.link) continue;
        impl_.out_edge[fill[in.link->source]++] =
            detail::WorkflowImpl::OutEdge{static_cast<Index>(i), static_cast<Index>(&in - base)};
      }
    }
  }

  // Kahn's algorithm, ties to the node first in the document; what is left is on or behind a
  // cycle.
  void sort_topologically() {
    const std::size_t n = impl_.nodes.size();
    std::vector<Index> waiting(n);
    std::priority_queue<Index, std::vector<Index>, std::greater<>> ready;
    std::size_t valid_count = 0;
    for (std::size_t i = 0; i < n; ++i) {
      if (!valid_[i]) continue;
      ++valid_count;
      waiting[i] = impl_.pred_start[i + 1] - impl_.pred_start[i];
      if (waiting[i] == 0) ready.push(static_cast<Index>(i));
    }
    auto& order = impl_.order;
    order.reserve(valid_count);
    while (!ready.empty()) {
      const Index i = ready.top();
      ready.pop();
      order.push_back(i);
      for (Index k = impl_.succ_start[i]; k < impl_.succ_start[i + 1]; ++k) {
        const Index s = impl_.succ[k];
        if (--waiting[s] == 0) ready.push(s);
      }
    }
    if (order.size() != valid_count) report_cycles(waiting);
  }

  // Finds the strongly connected components among the nodes Kahn could not order (iterative
  // Tarjan) and reports one shortest cycle per component through its first node.
  void report_cycles(const std::vector<Index>& waiting) {
    const std::size_t n = impl_.nodes.size();
    std::vector<bool> left(n, false);
    for (std::size_t i = 0; i < n; ++i) left[i] = valid_[i] && waiting[i] > 0;

    constexpr Index kUnvisited = std::numeric_limits<Index>::max();
    std::vector<Index> index(n, kUnvisited);
    std::vector<Index> low(n, 0);
    std::vector<bool> on_stack(n, false);
    std::vector<Index> stack;
    std::vector<std::pair<Index, Index>> frames;  // node, next successor position
    std::vector<std::vector<Index>> components;
    Index next_index = 0;

    for (std::size_t root = 0; root < n; ++root) {
      if (!left[root] || index[root] != kUnvisited) continue;
      frames.emplace_back(static_cast<Index>(root), impl_.succ_start[root]);
      index[root] = low[root] = next_index++;
      stack.push_back(static_cast<Index>(root));
      on_stack[root] = true;
      while (!frames.empty()) {
        auto& [v, pos] = frames.back();
        if (pos < impl_.succ_start[v + 1]) {
          const Index w = impl_.succ[pos++];
          if (!left[w]) continue;
          if (index[w] == kUnvisited) {
            index[w] = low[w] = next_index++;
            stack.push_back(w);
            on_stack[w] = true;
            frames.emplace_back(w, impl_.succ_start[w]);
          } else if (on_stack[w]) {
            low[v] = std::min(low[v], index[w]);
          }
          continue;
        }
        const Index done = v;
        frames.pop_back();
        if (!frames.empty()) {
          const Index parent = frames.back().first;
          low[parent] = std::min(low[parent], low[done]);
        }
        if (low[done] == index[done]) {
          std::vector<Index> component;
          Index w = 0;
          do {
            w = stack.back();
            stack.pop_back();
            on_stack[w] = false;
            component.push_back(w);
          } while (w != done);
          std::sort(component.begin(), component.end());
          components.push_back(std::move(component));
        }
      }
    }

    std::sort(components.begin(), components.end(),
              [](const auto& a, const auto& b) { return a.front() < b.front(); });
    for (const auto& component : components) report_cycle(component);
  }

  bool links_to(Index consumer, Index source) const {
    const auto begin = impl_.pred.begin() + impl_.pred_start[consumer];
    const auto end = impl_.pred.begin() + impl_.pred_start[consumer + 1];
    return std::binary_search(begin, end, source);
  }

  void report_cycle(const std::vector<Index>& component) {
    const auto& nodes = impl_.nodes;
    const Index start = component.front();
    if (component.size() == 1 && !links_to(start, start)) return;  // behind a cycle, not on one

    // Shortest cycle through `start` within the component (BFS along the data flow).
    std::vector<Index> path;
    if (links_to(start, start)) {
      path.push_back(start);
    } else {
      const std::size_t n = nodes.size();
      constexpr Index kNone = std::numeric_limits<Index>::max();
      std::vector<Index> parent(n, kNone);
      std::vector<bool> member(n, false);
      for (const Index c : component) member[c] = true;
      std::queue<Index> queue;
      queue.push(start);
      parent[start] = start;
      Index last = kNone;
      while (!queue.empty() && last == kNone) {
        const Index v = queue.front();
        queue.pop();
        for (Index k = impl_.succ_start[v]; k < impl_.succ_start[v + 1]; ++k) {
          const Index w = impl_.succ[k];
          if (w == start) {
            last = v;
            break;
          }
          if (!member[w] || parent[w] != kNone) continue;
          parent[w] = v;
          queue.push(w);
        }
      }
      for (Index v = last; v != start; v = parent[v]) path.push_back(v);
      path.push_back(start);
      std::reverse(path.begin(), path.end());
    }

    // The input of `start` that closes the cycle: its link from the path's last node.
    const Node& first = nodes[start];
    std::string_view closing_input;
    for (const auto& in : first.inputs) {
      if (in.link && in.link->source == path.back()) {
        closing_input = in.name;
        break;
      }
    }

    WorkflowIssue issue;
    issue.code = WorkflowErrc::kCycle;
    issue.node_id = std::string(first.id);
    issue.input_name = std::string(closing_input);
    for (const Index v : path) issue.cycle.emplace_back(nodes[v].id);
    if (path.size() == 1) {
      issue.message = input_label(first.id, first.class_type, closing_input) +
                      " links to itself, which makes a cycle";
    } else {
      // Short cycles are spelled out; long ones (generated graphs) show their ends.
      constexpr std::size_t kSpelledOut = 8;
      const bool long_cycle = path.size() > kSpelledOut;
      std::string message;
      if (long_cycle) {
        message = std::to_string(path.size()) + " nodes form a cycle: ";
      } else {
        message = "nodes ";
        for (std::size_t k = 0; k < path.size(); ++k) {
          if (k != 0) message += k + 1 == path.size() ? " and " : ", ";
          const Node& on = nodes[path[k]];
          message += quoted(on.id) + " (" + std::string(on.class_type) + ")";
        }
        message += " form a cycle: ";
      }
      for (std::size_t k = 0; k < path.size(); ++k) {
        if (long_cycle && k == kSpelledOut / 2) {
          message += "... -> ";
          k = path.size() - kSpelledOut / 2;
        }
        message += quoted(nodes[path[k]].id) + " -> ";
      }
      message += quoted(first.id) + " (" + input_label(first.id, "", closing_input) +
                 " links to node " + quoted(nodes[path.back()].id) + ")";
      if (component.size() > path.size()) {
        std::vector<bool> on_path(nodes.size(), false);
        for (const Index v : path) on_path[v] = true;
        std::string others;
        const std::size_t count = component.size() - path.size();
        std::size_t listed = 0;
        for (const Index c : component) {
          if (on_path[c]) continue;
          if (listed == kSpelledOut) {
            others += ", ...";
            break;
          }
          if (listed++ != 0) others += ", ";
          others += quoted(nodes[c].id);
        }
        message += count == 1 ? "; node " + others + " is on a cycle with them too"
                              : "; nodes " + others + " are on cycles with them too";
      }
      issue.message = std::move(message);
    }
    issues_.push_back(std::move(issue));
  }

  detail::WorkflowImpl& impl_;
  std::vector<WorkflowIssue>& issues_;
  std::vector<bool> valid_;                       // node passed pass 1
  std::vector<const json::object*> inputs_of_;    // its "inputs" object
};

}  // namespace

// ---------------------------------------------------------------------------------------------
// Workflow

WorkflowResult<Workflow> Workflow::parse(std::string_view text) {
  auto doc = parse_json(text);
  if (!doc) {
    return WorkflowError{{make_issue(WorkflowErrc::kNotJson, "", "",
                                     "workflow is not valid JSON: " + doc.error().message)}};
  }
  return from_json(std::move(*doc));
}

WorkflowResult<Workflow> Workflow::from_json(const json::value& doc) {
  return from_json(json::value(doc));
}

WorkflowResult<Workflow> Workflow::from_json(json::value&& doc) {
  // The Impl is built in place: its views point into impl->doc, which never moves again.
  auto impl = std::make_shared<detail::WorkflowImpl>();
  impl->doc = std::move(doc);
  std::vector<WorkflowIssue> issues;
  Builder(*impl, issues).run();
  if (!issues.empty()) return WorkflowError{std::move(issues)};
  return Workflow(std::move(impl));
}

const json::value& Workflow::to_json() const noexcept { return impl_->doc; }

std::size_t Workflow::size() const noexcept { return impl_->nodes.size(); }

std::span<const Node> Workflow::nodes() const noexcept { return impl_->nodes; }

const Node* Workflow::find(std::string_view id) const noexcept {
  const auto i = impl_->find(id);
  return i ? &impl_->nodes[*i] : nullptr;
}

std::optional<std::size_t> Workflow::index_of(std::string_view id) const noexcept {
  const auto i = impl_->find(id);
  if (!i) return std::nullopt;
  return *i;
}

std::vector<std::string_view> Workflow::topological_order() const {
  std::vector<std::string_view> out;
  out.reserve(impl_->order.size());
  for (const Index i : impl_->order) out.push_back(impl_->nodes[i].id);
  return out;
}

Result<std::vector<std::string_view>> Workflow::predecessors(std::string_view id) const {
  const auto i = impl_->find(id);
  if (!i) return fail(Errc::kNotFound, "no node " + quoted(id) + " in the workflow");
  std::vector<std::string_view> out;
  for (Index k = impl_->pred_start[*i]; k < impl_->pred_start[*i + 1]; ++k) {
    out.push_back(impl_->nodes[impl_->pred[k]].id);
  }
  return out;
}

Result<std::vector<std::string_view>> Workflow::successors(std::string_view id) const {
  const auto i = impl_->find(id);
  if (!i) return fail(Errc::kNotFound, "no node " + quoted(id) + " in the workflow");
  std::vector<std::string_view> out;
  for (Index k = impl_->succ_start[*i]; k < impl_->succ_start[*i + 1]; ++k) {
    out.push_back(impl_->nodes[impl_->succ[k]].id);
  }
  return out;
}

std::vector<std::string_view> Workflow::output_nodes(
    const std::function<bool(std::string_view)>& is_output_class) const {
  std::vector<std::string_view> out;
  for (const auto& node : impl_->nodes) {
    if (is_output_class(node.class_type)) out.push_back(node.id);
  }
  return out;
}

std::vector<std::string_view> Workflow::sink_nodes() const {
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < impl_->nodes.size(); ++i) {
    if (impl_->succ_start[i] == impl_->succ_start[i + 1]) out.push_back(impl_->nodes[i].id);
  }
  return out;
}

std::vector<WorkflowIssue> Workflow::check_output_indices(
    const std::function<std::optional<std::size_t>(std::string_view)>& output_count) const {
  std::vector<WorkflowIssue> issues;
  for (const auto& node : impl_->nodes) {
    for (const auto& in : node.inputs) {
      if (!in.link) continue;
      const Node& source = impl_->nodes[in.link->source];
      const auto count = output_count(source.class_type);
      if (!count || in.link->output_index < *count) continue;
      std::string message = input_label(node.id, node.class_type, in.name) + " links to output " +
                            std::to_string(in.link->output_index) + " of " +
                            node_label(source.id, source.class_type) + ", which has ";
      if (*count == 0) {
        message += "no outputs";
      } else if (*count == 1) {
        message += "only output 0";
      } else {
        message += std::to_string(*count) + " outputs (0 to " + std::to_string(*count - 1) + ")";
      }
      issues.push_back(
          make_issue(WorkflowErrc::kBadOutputIndex, node.id, in.name, std::move(message)));
    }
  }
  return issues;
}

std::vector<ModelReference> Workflow::model_references() const {
  std::vector<ModelReference> out;
  for (const auto& node : impl_->nodes) {
    for (const auto& in : node.inputs) {
      if (!in.value->is_string()) continue;
      const std::string_view file = in.value->get_string();
      if (is_model_reference(in.name, file)) out.push_back(ModelReference{node.id, in.name, file});
    }
  }
  return out;
}

std::string Workflow::content_hash() const {
  const std::string canonical = canonical_json(impl_->doc);
  return to_hex(XXH3_128bits(canonical.data(), canonical.size()));
}

std::string Workflow::structural_hash() const {
  const detail::WorkflowImpl& g = *impl_;
  const std::size_t n = g.nodes.size();
  std::vector<XXH128_hash_t> up(n);
  std::vector<XXH128_hash_t> down(n);
  std::vector<XXH128_hash_t> parts;
  Encoder item;
  Encoder sig;

  // Upstream: what a node computes, from sources to sinks.
  for (const Index i : g.order) {
    const Node& node = g.nodes[i];
    parts.clear();
    for (const auto& in : node.inputs) {
      item.clear();
      if (in.link) {
        item.tag('L');
        item.str(in.name);
        item.u64(in.link->output_index);
        item.hash(up[in.link->source]);
      } else if (in.value->is_string() && is_model_reference(in.name, in.value->get_string())) {
        item.tag('M');
        item.str(in.name);
        item.str(in.value->get_string());
      } else {
        continue;
      }
      parts.push_back(item.digest());
    }
    std::sort(parts.begin(), parts.end(), hash_less);
    sig.clear();
    sig.tag('U');
    sig.str(node.class_type);
    sig.u64(parts.size());
    for (const auto& p : parts) sig.hash(p);
    up[i] = sig.digest();
  }

  // Downstream: how a node's outputs are used, from sinks to sources; it includes `up`.
  for (auto it = g.order.rbegin(); it != g.order.rend(); ++it) {
    const Index i = *it;
    parts.clear();
    for (Index k = g.out_start[i]; k < g.out_start[i + 1]; ++k) {
      const auto& edge = g.out_edge[k];
      const NodeInput& in = g.inputs[edge.input];
      item.clear();
      item.tag('E');
      item.str(in.name);
      item.u64(in.link->output_index);
      item.hash(down[edge.consumer]);
      parts.push_back(item.digest());
    }
    std::sort(parts.begin(), parts.end(), hash_less);
    sig.clear();
    sig.tag('D');
    sig.hash(up[i]);
    sig.u64(parts.size());
    for (const auto& p : parts) sig.hash(p);
    down[i] = sig.digest();
  }

  std::sort(down.begin(), down.end(), hash_less);
  sig.clear();
  sig.tag('W');
  sig.u64(n);
  for (const auto& d : down) sig.hash(d);
  return to_hex(sig.digest());
}

}  // namespace comfyfarm::comfy
