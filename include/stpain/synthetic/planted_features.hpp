#pragma once
// Generated clip features with a planted signal, to prove the sequence
// trainers learn temporal patterns and do not leak: PEMF-shaped sets (subjects
// x 4 clips: 1 no pain, 3 pain) of [frames, dim] features where
//   - every subject has its own offset vector (identity, as a face would),
//   - pain clips rise and fall (onset -> apex -> offset) along a fixed "pain"
//     direction at a random intensity, starting at a random frame,
//   - every clip has noise and short "blinks" along another direction,
// so a per-frame average separates them only partly and the timing matters.
// With shuffle_labels the labels are permuted: nothing should be learnable.
#include <cmath>
#include <numbers>

#include "stpain/core/random.hpp"
#include "stpain/io/clip_features.hpp"

namespace stpain {

struct PlantedFeatureOptions {
  int64_t subjects = 68;
  int64_t frames = 20;
  int64_t dim = 32;
  double intensity_min = 1.0, intensity_max = 2.0;  // of the pain movement, in noise units
  double subject_spread = 1.0;                      // size of the per-subject offsets
  bool shuffle_labels = false;
  uint64_t seed = 1;
};

inline ClipFeatures make_planted_features(const PlantedFeatureOptions& o) {
  Generator g(o.seed);
  auto unit_vector = [&] {
    std::vector<double> v(static_cast<size_t>(o.dim));
    double n = 0;
    for (auto& x : v) {
      x = g.normal();
      n += x * x;
    }
    for (auto& x : v) x /= std::sqrt(n);
    return v;
  };
  const std::vector<double> pain_direction = unit_vector(), blink_direction = unit_vector();
  const char* conditions[] = {"Neutral", "Posed Pain", "Algometer Pain", "Laser Pain"};
  ClipFeatures f;
  const int64_t clips = o.subjects * 4;
  f.features = Tensor<float>::empty({clips, o.frames, o.dim});
  for (int64_t s = 0; s < o.subjects; ++s) {
    char name[32];
    std::snprintf(name, sizeof name, "S%03lld", static_cast<long long>(s + 1));
    f.subject_names.push_back(name);
    std::vector<double> offset = unit_vector();
    for (auto& x : offset) x *= o.subject_spread * std::sqrt(static_cast<double>(o.dim)) * 0.3;
    for (int c = 0; c < 4; ++c) {
      const int64_t clip = s * 4 + c;
      const bool pain = c > 0;
      const double intensity = pain ? g.uniform(o.intensity_min, o.intensity_max) : 0.0;
      const int64_t onset = g.randint(std::max<int64_t>(1, o.frames / 3));
      const int64_t length = o.frames / 2 + g.randint(std::max<int64_t>(1, o.frames / 3));
      const int64_t blink = g.randint(o.frames);
      for (int64_t t = 0; t < o.frames; ++t) {
        const double phase = static_cast<double>(t - onset) / static_cast<double>(length);
        const double movement = phase >= 0 && phase <= 1 ? intensity * std::sin(std::numbers::pi * phase) : 0.0;
        const double blink_amount = std::abs(t - blink) <= 1 ? 1.0 : 0.0;
        for (int64_t d = 0; d < o.dim; ++d)
          f.features(clip, t, d) = static_cast<float>(offset[static_cast<size_t>(d)] + 0.5 * g.normal() +
                                                      movement * 2.0 * pain_direction[static_cast<size_t>(d)] +
                                                      blink_amount * blink_direction[static_cast<size_t>(d)]);
      }
      f.labels.push_back(pain);
      f.subjects.push_back(s);
      f.clip_ids.push_back(std::string(name) + "/" + conditions[c]);
      f.conditions.push_back(conditions[c]);
    }
  }
  if (o.shuffle_labels) g.shuffle(f.labels);
  f.provenance = {{"backbone", "planted signal features"}, {"synthetic", "planted temporal pain pattern"},
                  {"seed", std::to_string(o.seed)}, {"shuffled_labels", o.shuffle_labels ? "yes" : "no"}};
  return f;
}

}  // namespace stpain
