#pragma once
// Deterministic random numbers. std::mt19937_64's stream is fixed by the C++
// standard, but the std distributions are not, so the draws are made here:
// the same seed gives the same weights, dropout masks and shuffles everywhere.
#include <cmath>
#include <cstdint>
#include <numbers>
#include <random>
#include <vector>

namespace stpain {

class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : engine_(seed) {}
  void seed(uint64_t s) {
    engine_.seed(s);
    has_spare_ = false;
  }

  uint64_t next_u64() { return engine_(); }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  double uniform(double lo, double hi) { return lo + (hi - lo) * uniform(); }
  // Standard normal (Box-Muller, spare value kept).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = uniform();
    while (u1 <= 0.0) u1 = uniform();
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2.0 * std::numbers::pi * u2);
    has_spare_ = true;
    return r * std::cos(2.0 * std::numbers::pi * u2);
  }
  double normal(double mean, double stddev) { return mean + stddev * normal(); }
  bool bernoulli(double p) { return uniform() < p; }
  // Uniform integer in [0, n).
  int64_t randint(int64_t n) { return static_cast<int64_t>(uniform() * static_cast<double>(n)); }

  // Fisher-Yates shuffle.
  template <class V>
  void shuffle(V& v) {
    for (int64_t i = static_cast<int64_t>(v.size()) - 1; i > 0; --i) std::swap(v[i], v[randint(i + 1)]);
  }
  std::vector<int64_t> permutation(int64_t n) {
    std::vector<int64_t> p(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) p[i] = i;
    shuffle(p);
    return p;
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0.0;
  bool has_spare_ = false;
};

// The generator layers draw their initial weights and dropout masks from,
// unless they are given one. manual_seed() makes a run repeatable.
inline Generator& default_generator() {
  static Generator g(0x5eed);
  return g;
}
inline void manual_seed(uint64_t seed) { default_generator().seed(seed); }

}  // namespace stpain
