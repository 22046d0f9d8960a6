#pragma once
// SMOTE (Chawla et al. 2002) as imbalanced-learn 0.10 implements it, draw for
// draw: with the same random_state its output equals imblearn's
// SMOTE(k_neighbors=k, random_state=seed).fit_resample(X, y).
//
// For every class but the majority ('auto' strategy), (majority - count) new
// samples are made: pick a random (sample, neighbour) pair among the class's
// k nearest neighbours (Euclidean, the sample itself excluded) and place the
// new sample at a uniform random point on the segment between them. imblearn
// draws from a fresh numpy RandomState(seed) for each class: all the indices
// first (randint), then all the steps (uniform); NumpyRandomState reproduces
// numpy's legacy stream (MT19937, masked rejection, 53-bit doubles).
// Use it on training folds only: new samples are interpolations of real ones.
#include <algorithm>
#include <cstdint>
#include <map>
#include <numeric>
#include <random>
#include <vector>

#include "stpain/core/error.hpp"
#include "stpain/core/tensor.hpp"

namespace stpain {

// numpy.random.RandomState(seed): randint and random_sample as numpy draws them.
class NumpyRandomState {
 public:
  explicit NumpyRandomState(uint32_t seed) : mt_(seed) {}  // std::mt19937(s) is init_genrand(s), as numpy

  // Uniform integer in [0, high) by masked rejection (numpy's legacy randint).
  int64_t randint(int64_t high) {
    const uint64_t range = static_cast<uint64_t>(high) - 1;
    if (range == 0) return 0;
    uint64_t mask = range;
    for (int s : {1, 2, 4, 8, 16, 32}) mask |= mask >> s;
    STPAIN_CHECK(range <= 0xFFFFFFFFull, Error, "NumpyRandomState::randint: range ", high, " needs 64-bit draws");
    for (;;) {
      const uint64_t v = static_cast<uint64_t>(mt_()) & mask;
      if (v <= range) return static_cast<int64_t>(v);
    }
  }
  // Uniform double in [0, 1) from two 32-bit draws (numpy's random_sample).
  double random_sample() {
    const uint64_t a = mt_() >> 5, b = mt_() >> 6;
    return (static_cast<double>(a) * 67108864.0 + static_cast<double>(b)) / 9007199254740992.0;
  }

 private:
  std::mt19937 mt_;
};

struct SmoteOptions {
  int k_neighbors = 5;
  uint32_t random_state = 42;
};

struct SmoteResult {
  Tensor<float> x;  // [original + new, features]: the original rows first, then new ones by class
  std::vector<int64_t> y;
  int64_t original = 0;  // rows before the synthetic ones
};

namespace detail {
// For each row of x [n, f], the indices of its k nearest other rows, nearest first.
inline std::vector<std::vector<int64_t>> nearest_neighbors(const std::vector<const float*>& rows, int64_t f, int k) {
  const auto n = static_cast<int64_t>(rows.size());
  std::vector<std::vector<int64_t>> out(static_cast<size_t>(n));
  std::vector<std::pair<double, int64_t>> dist(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double d = 0;
      for (int64_t c = 0; c < f; ++c) {
        const double diff = static_cast<double>(rows[i][c]) - rows[j][c];
        d += diff * diff;
      }
      dist[static_cast<size_t>(j)] = {d, j};
    }
    // The sample itself is its own nearest neighbour (distance 0); sklearn's
    // kneighbors returns it first and SMOTE drops that column.
    std::partial_sort(dist.begin(), dist.begin() + k + 1, dist.end(), [&](const auto& a, const auto& b) {
      if (a.first != b.first) return a.first < b.first;
      if ((a.second == i) != (b.second == i)) return a.second == i;
      return a.second < b.second;
    });
    for (int m = 1; m <= k; ++m) out[static_cast<size_t>(i)].push_back(dist[static_cast<size_t>(m)].second);
  }
  return out;
}
}  // namespace detail

// x [n, features] (e.g. clips flattened to frames*68*2), y class labels.
inline SmoteResult smote(const Tensor<float>& x, const std::vector<int64_t>& y, const SmoteOptions& o = {}) {
  STPAIN_CHECK(x.rank() == 2 && x.size(0) == static_cast<int64_t>(y.size()), ShapeError, "smote: x ",
               x.shape().str(), " needs one label per row, got ", y.size());
  const int64_t f = x.size(1);
  std::map<int64_t, std::vector<int64_t>> by_class;
  for (size_t i = 0; i < y.size(); ++i) by_class[y[i]].push_back(static_cast<int64_t>(i));
  size_t majority = 0;
  for (const auto& [c, idx] : by_class) majority = std::max(majority, idx.size());

  std::vector<std::vector<float>> new_rows;
  std::vector<int64_t> new_labels;
  for (const auto& [cls, idx] : by_class) {
    const auto n_new = static_cast<int64_t>(majority - idx.size());
    if (n_new == 0) continue;
    STPAIN_CHECK(static_cast<int64_t>(idx.size()) > o.k_neighbors, Error, "smote: class ", cls, " has ", idx.size(),
                 " samples, needs more than k_neighbors = ", o.k_neighbors);
    std::vector<const float*> rows;
    for (int64_t i : idx) rows.push_back(x.data() + i * f);
    const auto nn = detail::nearest_neighbors(rows, f, o.k_neighbors);
    NumpyRandomState rs(o.random_state);  // imblearn re-creates it per class
    std::vector<int64_t> picks(static_cast<size_t>(n_new));
    for (auto& p : picks) p = rs.randint(static_cast<int64_t>(idx.size()) * o.k_neighbors);
    for (int64_t s = 0; s < n_new; ++s) {
      const double step = rs.random_sample();
      const int64_t row = picks[static_cast<size_t>(s)] / o.k_neighbors, col = picks[static_cast<size_t>(s)] % o.k_neighbors;
      const float* base = rows[static_cast<size_t>(row)];
      const float* other = rows[static_cast<size_t>(nn[static_cast<size_t>(row)][static_cast<size_t>(col)])];
      std::vector<float> v(static_cast<size_t>(f));
      // As numpy: the difference in float32, the step and the sum in float64.
      for (int64_t c = 0; c < f; ++c) {
        const float diff = other[c] - base[c];
        v[static_cast<size_t>(c)] = static_cast<float>(static_cast<double>(base[c]) + step * static_cast<double>(diff));
      }
      new_rows.push_back(std::move(v));
      new_labels.push_back(cls);
    }
  }
  SmoteResult r;
  r.original = x.size(0);
  r.x = Tensor<float>::empty({x.size(0) + static_cast<int64_t>(new_rows.size()), f});
  std::copy(x.begin(), x.end(), r.x.begin());
  for (size_t i = 0; i < new_rows.size(); ++i)
    std::copy(new_rows[i].begin(), new_rows[i].end(), r.x.data() + (x.size(0) + static_cast<int64_t>(i)) * f);
  r.y = y;
  r.y.insert(r.y.end(), new_labels.begin(), new_labels.end());
  return r;
}

}  // namespace stpain
