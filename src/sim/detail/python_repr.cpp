#include "sim/detail/python_repr.hpp"

#include "comfy/python_repr.hpp"

#include "comfy/json_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string_view>
#include <vector>

namespace comfyfarm::sim::detail {

namespace {


constexpr std::int64_t kEdgeItems = 3;
constexpr std::int64_t kThreshold = 1000;
constexpr std::int64_t kLineWidth = 80;

struct Formatter {
  bool int_mode = true;
  std::size_t width = 1;

  explicit Formatter(std::span<const double> values) {
    std::vector<double> nonzero;
    for (const double v : values) {
      if (std::isfinite(v) && v != 0.0) nonzero.push_back(v);
    }
    if (nonzero.empty()) return;
    for (const double v : nonzero) int_mode = int_mode && v == std::ceil(v);
    for (const double v : nonzero) {
      width = std::max(width, int_mode ? plain(v).size() + 1 : fixed(v).size());
    }
  }

  static std::string plain(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.0f", v);
    return buf;
  }
  static std::string fixed(double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.4f", v);
    return buf;
  }

  [[nodiscard]] std::string format(double v) const {
    std::string s = int_mode ? plain(v) + "." : fixed(v);
    if (s.size() < width) s.insert(0, width - s.size(), ' ');
    return s;
  }
};

struct TensorPrinter {
  std::span<const std::int64_t> shape;
  std::span<const double> values;
  bool summarize = false;
  Formatter formatter;

  std::string print(std::size_t dim, std::int64_t indent) const {
    const std::int64_t size = shape[dim];
    const bool cut = summarize && size > 2 * kEdgeItems;
    std::vector<std::int64_t> indices;
    if (cut) {
      for (std::int64_t i = 0; i < kEdgeItems; ++i) indices.push_back(i);
      indices.push_back(-1);
      for (std::int64_t i = size - kEdgeItems; i < size; ++i) indices.push_back(i);
    } else {
      for (std::int64_t i = 0; i < size; ++i) indices.push_back(i);
    }
    const bool last = dim + 1 == shape.size();
    if (last) {
      std::vector<std::string> data;
      for (const auto i : indices) {
        data.push_back(i < 0
                           ? std::string(" ...")
                           : formatter.format(values[static_cast<std::size_t>(i) % values.size()]));
      }
      const auto element_length = static_cast<std::int64_t>(formatter.width) + 2;
      const auto per_line = static_cast<std::size_t>(
          std::max<std::int64_t>(1, (kLineWidth - indent) / element_length));
      std::string out = "[";
      for (std::size_t i = 0; i < data.size(); ++i) {
        if (i > 0) {
          if (i % per_line == 0) {
            out += ",\n";
            out.append(static_cast<std::size_t>(indent + 1), ' ');
          } else {
            out += ", ";
          }
        }
        out += data[i];
      }
      out += ']';
      return out;
    }
    const std::size_t remaining = shape.size() - dim;
    std::string separator = ",";
    separator.append(remaining - 1, '\n');
    separator.append(static_cast<std::size_t>(indent + 1), ' ');
    std::string out = "[";
    for (std::size_t k = 0; k < indices.size(); ++k) {
      if (k > 0) out += separator;
      out += indices[k] < 0 ? std::string("...") : print(dim + 1, indent + 1);
    }
    out += ']';
    return out;
  }
};

}  // namespace

std::string torch_repr(std::span<const std::int64_t> shape, std::span<const double> values) {
  static constexpr double kZero = 0.0;
  if (values.empty()) values = std::span<const double>(&kZero, 1);
  std::int64_t numel = 1;
  for (const auto d : shape) numel *= d;
  if (shape.empty() || numel == 0) return "tensor([])";
  TensorPrinter p{shape, values, numel > kThreshold, Formatter(values)};
  return "tensor(" + p.print(0, 7) + ")";
}

std::string object_repr(std::string_view qualified_type, std::uint64_t salt) {
  char buf[32];
  std::snprintf(
      buf, sizeof buf, "0x7f%010llx",
      static_cast<unsigned long long>((salt * 0x9E3779B97F4A7C15ULL) >> 24) & 0xffffffffffULL);
  return "<" + std::string(qualified_type) + " object at " + buf + ">";
}

}  // namespace comfyfarm::sim::detail
