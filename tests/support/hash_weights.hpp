#pragma once
// The deterministic name-hashed weights of tools/fixtures/hash_weights.py:
// the fixture generator and the tests compute the same values, so a large
// checkpoint need not be committed. Keep both in step.
#include <cmath>
#include <cstdint>
#include <string>

#include "stpain/core/tensor.hpp"

namespace stpain::testing {

inline uint64_t fnv1a64(const std::string& s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001B3ull;
  return h;
}

inline uint64_t splitmix64(uint64_t x) {
  uint64_t z = x + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline Tensor<float> hash_init(const std::string& name, const Shape& shape) {
  Tensor<float> t = Tensor<float>::empty(shape);
  const uint64_t key = fnv1a64(name);
  const std::string leaf = name.substr(name.rfind('.') + 1);
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    const float u = static_cast<float>(static_cast<double>(splitmix64(key + static_cast<uint64_t>(i)) >> 40) /
                                           static_cast<double>(1 << 23) -
                                       1.0);
    float v;
    if (leaf == "layer_scale" || leaf == "gamma")
      v = 0.2f + 0.1f * u;
    else if (shape.rank() == 1 && leaf == "weight")
      v = 1.0f + 0.1f * u;
    else if (leaf == "bias")
      v = 0.05f * u;
    else
      v = u * static_cast<float>(std::sqrt(3.0 / static_cast<double>(n / shape[0])));
    t[i] = v;
  }
  return t;
}

}  // namespace stpain::testing
