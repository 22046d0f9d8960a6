#pragma once
// Puts every landmark clip [frames, points, 2] in its own face frame: the
// clip's mean landmark position at the origin and its mean face size (RMS
// distance of the points to their centre) equal to 1. Who the subject is and
// where they sat matter less; how the face moves within the clip is kept.
#include <cmath>

#include "stpain/core/tensor.hpp"

namespace stpain {

// clips [N, frames, points, 2] -> the same shape, each clip normalised on its own.
inline Tensor<float> normalize_landmark_clips(const Tensor<float>& clips) {
  STPAIN_CHECK(clips.rank() == 4 && clips.size(3) == 2, ShapeError, "normalize_landmark_clips: ", clips.shape().str(),
               " is not [clips, frames, points, 2]");
  Tensor<float> out = Tensor<float>::empty(clips.shape());
  const int64_t per = clips.size(1) * clips.size(2);
  for (int64_t c = 0; c < clips.size(0); ++c) {
    const float* p = clips.data() + c * per * 2;
    double cx = 0, cy = 0;
    for (int64_t i = 0; i < per; ++i) {
      cx += p[2 * i];
      cy += p[2 * i + 1];
    }
    cx /= static_cast<double>(per);
    cy /= static_cast<double>(per);
    double ss = 0;
    for (int64_t i = 0; i < per; ++i) ss += (p[2 * i] - cx) * (p[2 * i] - cx) + (p[2 * i + 1] - cy) * (p[2 * i + 1] - cy);
    const double scale = ss > 0 ? 1.0 / std::sqrt(ss / static_cast<double>(per)) : 1.0;
    float* q = out.data() + c * per * 2;
    for (int64_t i = 0; i < per; ++i) {
      q[2 * i] = static_cast<float>((p[2 * i] - cx) * scale);
      q[2 * i + 1] = static_cast<float>((p[2 * i + 1] - cy) * scale);
    }
  }
  return out;
}

}  // namespace stpain
