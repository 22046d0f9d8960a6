#pragma once
// Augmentation of landmark clips [T, V, 2]: one random similarity transform
// (small rotation, scale and translation about the clip's mean landmark
// position) applied to every frame, so the motion within the clip is kept.
// Training folds only.
#include <cmath>
#include <numbers>

#include "stpain/core/random.hpp"
#include "stpain/core/tensor.hpp"

namespace stpain {

struct LandmarkAugment {
  double max_rotation_degrees = 5.0;
  double max_scale = 0.05;        // scale drawn from [1 - s, 1 + s]
  double max_translation = 0.02;  // fraction of the clip's landmark spread
};

inline Tensor<float> augment_landmark_clip(const Tensor<float>& clip, const LandmarkAugment& a, Generator& g) {
  STPAIN_CHECK(clip.rank() == 3 && clip.size(2) == 2, ShapeError, "augment_landmark_clip: clip ", clip.shape().str(),
               " is not [frames, points, 2]");
  const int64_t n = clip.size(0) * clip.size(1);
  double cx = 0, cy = 0;
  for (int64_t i = 0; i < n; ++i) {
    cx += clip[2 * i];
    cy += clip[2 * i + 1];
  }
  cx /= static_cast<double>(n);
  cy /= static_cast<double>(n);
  double spread = 0;
  for (int64_t i = 0; i < n; ++i) spread = std::max({spread, std::fabs(clip[2 * i] - cx), std::fabs(clip[2 * i + 1] - cy)});
  const double angle = g.uniform(-a.max_rotation_degrees, a.max_rotation_degrees) * std::numbers::pi / 180.0;
  const double scale = g.uniform(1 - a.max_scale, 1 + a.max_scale);
  const double tx = g.uniform(-a.max_translation, a.max_translation) * spread;
  const double ty = g.uniform(-a.max_translation, a.max_translation) * spread;
  const double c = std::cos(angle) * scale, s = std::sin(angle) * scale;
  Tensor<float> out = Tensor<float>::empty(clip.shape());
  for (int64_t i = 0; i < n; ++i) {
    const double x = clip[2 * i] - cx, y = clip[2 * i + 1] - cy;
    out[2 * i] = static_cast<float>(cx + tx + c * x - s * y);
    out[2 * i + 1] = static_cast<float>(cy + ty + s * x + c * y);
  }
  return out;
}

}  // namespace stpain
