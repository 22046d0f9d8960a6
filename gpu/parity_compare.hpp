#pragma once
// Compares the outputs of a parity case (gpu/parity_cases.hpp) on a backend
// with the cpu backend's: per tensor, max |actual - cpu| / max |cpu|.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "gpu/parity_cases.hpp"

namespace stpain::parity {

struct Difference {
  std::string what;              // "LayerNorm: grad weight"
  double relative = 0;           // max |actual - cpu| / max(max |cpu|, floor)
  double scale = 0;              // max |cpu|; 0 would make the comparison vacuous
  bool same_shape = false;
};

inline std::vector<Difference> compare(const CaseInfo& info, const CaseOutput& actual, const CaseOutput& expected) {
  std::vector<Difference> out;
  for (size_t i = 0; i < expected.values.size(); ++i) {
    Difference d{info.name + ": " + expected.names[i]};
    if (i >= actual.values.size() || actual.names[i] != expected.names[i]) {
      out.push_back(d);  // same_shape false: missing or out of order
      continue;
    }
    const auto& a = actual.values[i];
    const auto& e = expected.values[i];
    d.same_shape = a.shape() == e.shape();
    if (d.same_shape) {
      double diff = 0;
      for (int64_t j = 0; j < e.numel(); ++j) {
        const double x = std::fabs(double(a[j]) - double(e[j]));
        diff = std::isnan(x) ? INFINITY : std::max(diff, x);
        d.scale = std::max(d.scale, std::fabs(double(e[j])));
      }
      const double floor = expected.names[i].rfind("grad ", 0) == 0 ? info.grad_floor : 0.0;
      d.relative = diff == 0 ? 0.0 : diff / std::max(d.scale, floor);
    }
    out.push_back(d);
  }
  if (actual.values.size() != expected.values.size()) out.push_back({info.name + ": number of outputs"});
  return out;
}

}  // namespace stpain::parity
