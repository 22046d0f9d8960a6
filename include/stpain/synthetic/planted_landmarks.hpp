#pragma once
// Generated landmark clips with a planted pain movement, PEMF-shaped
// (subjects x 4 clips: 1 no pain, 3 pain; [frames, 68, 2] pixels):
//   - every subject has its own face: the template (face_template.hpp) with
//     per-point shape jitter, scale and position;
//   - every clip has head motion (slow drift and rotation), landmark noise
//     and a blink;
//   - pain clips move through onset -> apex -> offset with PSPI action units:
//     brow lowering (AU4: brows move down towards the eyes) and eye closure /
//     lid tightening (AU6/7/43: upper lids move down), at a random intensity.
// With shuffle_labels the labels are permuted: nothing should be learnable.
#include <cmath>
#include <numbers>

#include "stpain/core/random.hpp"
#include "stpain/core/tensor.hpp"
#include "stpain/synthetic/face_template.hpp"

namespace stpain {

struct PlantedLandmarkOptions {
  int64_t subjects = 68;
  int64_t frames = 20;
  double intensity_min = 0.5, intensity_max = 1.0;  // fraction of the brow-eye distance at the apex
  double noise = 0.6;                               // landmark noise, pixels
  bool shuffle_labels = false;
  uint64_t seed = 1;
};

struct PlantedLandmarks {
  Tensor<float> points;  // [clips, frames, 68, 2]
  std::vector<int64_t> labels, subjects;
};

inline PlantedLandmarks make_planted_landmarks(const PlantedLandmarkOptions& o) {
  Generator g(o.seed);
  const int64_t clips = o.subjects * 4;
  PlantedLandmarks d{Tensor<float>::empty({clips, o.frames, 68, 2}), {}, {}};
  for (int64_t s = 0; s < o.subjects; ++s) {
    std::array<std::array<double, 2>, 68> face;  // this subject's neutral face, pixels
    const double scale = g.uniform(70, 110), cx = g.uniform(200, 300), cy = g.uniform(200, 280);
    const double width = g.uniform(0.9, 1.1);
    for (int p = 0; p < 68; ++p)
      face[static_cast<size_t>(p)] = {cx + scale * (kFaceTemplate68[static_cast<size_t>(p)][0] * width + g.normal(0, 0.02)),
                                      cy + scale * (kFaceTemplate68[static_cast<size_t>(p)][1] + g.normal(0, 0.02))};
    const double brow_drop = scale * 0.12, lid_drop = scale * 0.05;  // AU4, AU43 at full intensity
    for (int c = 0; c < 4; ++c) {
      const int64_t clip = s * 4 + c;
      const bool pain = c > 0;
      const double intensity = pain ? g.uniform(o.intensity_min, o.intensity_max) : 0.0;
      const int64_t onset = g.randint(std::max<int64_t>(1, o.frames / 4));
      const int64_t length = o.frames / 2 + g.randint(std::max<int64_t>(1, o.frames / 3));
      const int64_t blink = g.randint(o.frames);
      const double drift_x = g.normal(0, 0.3), drift_y = g.normal(0, 0.3), turn = g.normal(0, 0.004);
      for (int64_t t = 0; t < o.frames; ++t) {
        const double phase = static_cast<double>(t - onset) / static_cast<double>(length);
        const double au = phase >= 0 && phase <= 1 ? intensity * std::sin(std::numbers::pi * phase) : 0.0;
        const double closing = std::max(au, std::abs(t - blink) <= 1 ? 0.8 : 0.0);
        const double angle = turn * static_cast<double>(t), ca = std::cos(angle), sa = std::sin(angle);
        for (int p = 0; p < 68; ++p) {
          double x = face[static_cast<size_t>(p)][0], y = face[static_cast<size_t>(p)][1];
          if (p >= 17 && p <= 26) y += brow_drop * au;                                  // brows (AU4)
          if (p == 37 || p == 38 || p == 43 || p == 44) y += lid_drop * closing;         // upper lids (AU43, blinks)
          const double rx = cx + ca * (x - cx) - sa * (y - cy), ry = cy + sa * (x - cx) + ca * (y - cy);
          d.points(clip, t, p, 0) = static_cast<float>(rx + drift_x * static_cast<double>(t) + g.normal(0, o.noise));
          d.points(clip, t, p, 1) = static_cast<float>(ry + drift_y * static_cast<double>(t) + g.normal(0, o.noise));
        }
      }
      d.labels.push_back(pain);
      d.subjects.push_back(s);
    }
  }
  if (o.shuffle_labels) g.shuffle(d.labels);
  return d;
}

}  // namespace stpain
