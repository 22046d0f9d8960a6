#pragma once
// The authors' training augmentation for face clips (SEED_FACTS section 2),
// on 8-bit BGR frames before preprocessing. One random draw is made per clip
// and applied identically to all its frames, so the clip stays a coherent
// sequence. In the order applied:
//   1. horizontal flip, p = 0.5
//   2. brightness: add a delta ~ U(0, 0.4) to the [0, 1] intensities
//   3. contrast: per channel, (x - mean) * factor + mean, factor ~ U(0.8, 1.2)
//   4. saturation: HSV saturation * factor (clipped to [0, 1]), factor ~ U(0.8, 1.2)
//   5. hue: rotate the [0, 1) hue circle by a delta ~ U(0, 0.1)
//   6. with p = 0.7: translate by U(-0.2, 0.2) of the width and of the height,
//      then rotate by U(-15, 15) degrees about the centre (counter-clockwise
//      as seen for positive angles), bilinear, border filled with 0
//   7. crop a square of side U(0.8, 1) * size at a random place, resize back
//   8. with p = 0.5: cutout, a rectangle of area U(0.02, 0.4) of the frame and
//      aspect (height / width) U(0.3, 3.3) at a random place, filled with 0
//
// Colour steps 2-5 follow tf.image's adjust_* semantics on float images and
// run in one float pass; values are clipped to [0, 255] once, at the end (an
// 8-bit frame cannot hold more). Brightness and hue: tf.image.random_brightness
// (x, 0.4) and random_hue(x, 0.1) draw symmetric deltas, U(-0.4, 0.4) and
// U(-0.1, 0.1). The authors' code is not at hand here and SEED_FACTS records
// U(0, 0.4) and U(0, 0.1), so those are the defaults; set brightness_delta /
// hue_delta to {-0.4, 0.4} / {-0.1, 0.1} for the symmetric tf.image draws.
//
// Geometry is stated in fractions of the frame and the rotation is made in
// the square view the network sees (the frame squash-resized to size x size,
// as FramePreprocess does by default), so a 640x480 frame moves exactly as the
// authors' 224x224 frames did; "size" above is each dimension, and the
// cutout's area and aspect are those of the square view. On a square frame
// this is plain pixel geometry.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

#include "stpain/core/error.hpp"
#include "stpain/core/random.hpp"
#include "stpain/data/image.hpp"

namespace stpain {

// Draws uniformly from [lo, hi).
struct UniformRange {
  double lo = 0, hi = 0;
  double draw(Generator& g) const { return g.uniform(lo, hi); }
};

// Which parts run and their ranges; defaults are the authors' (see top).
struct FrameAugmentOptions {
  bool flip = true;
  double flip_probability = 0.5;
  bool brightness = true;
  UniformRange brightness_delta{0.0, 0.4};  // added to [0, 1] intensities
  bool contrast = true;
  UniformRange contrast_factor{0.8, 1.2};
  bool saturation = true;
  UniformRange saturation_factor{0.8, 1.2};
  bool hue = true;
  UniformRange hue_delta{0.0, 0.1};  // fraction of the hue circle
  bool translate_rotate = true;
  double translate_rotate_probability = 0.7;
  UniformRange translate_fraction{-0.2, 0.2};  // of the width (x) and height (y)
  UniformRange rotate_degrees{-15.0, 15.0};
  bool crop = true;
  UniformRange crop_side_fraction{0.8, 1.0};
  bool cutout = true;
  double cutout_probability = 0.5;
  UniformRange cutout_area_fraction{0.02, 0.4};
  UniformRange cutout_aspect{0.3, 3.3};  // height / width

  // Every part switched off: the draw is the identity.
  static FrameAugmentOptions none() {
    FrameAugmentOptions o;
    o.flip = o.brightness = o.contrast = o.saturation = o.hue = o.translate_rotate = o.crop = o.cutout = false;
    return o;
  }

  // Throws Error naming the bad option.
  void validate() const {
    auto probability = [](const char* name, double p) {
      STPAIN_CHECK(p >= 0 && p <= 1, Error, "FrameAugmentOptions: ", name, " must be in [0, 1], got ", p);
    };
    auto range = [](const char* name, const UniformRange& r, double min, double max) {
      STPAIN_CHECK(r.lo <= r.hi && r.lo >= min && r.hi <= max, Error, "FrameAugmentOptions: ", name, " [", r.lo, ", ",
                   r.hi, ") must be ordered and within [", min, ", ", max, "]");
    };
    probability("flip_probability", flip_probability);
    probability("translate_rotate_probability", translate_rotate_probability);
    probability("cutout_probability", cutout_probability);
    range("brightness_delta", brightness_delta, -1, 1);
    range("contrast_factor", contrast_factor, 0, 1e3);
    range("saturation_factor", saturation_factor, 0, 1e3);
    range("hue_delta", hue_delta, -1, 1);
    range("translate_fraction", translate_fraction, -1, 1);
    range("rotate_degrees", rotate_degrees, -360, 360);
    range("crop_side_fraction", crop_side_fraction, 1e-6, 1);
    range("cutout_area_fraction", cutout_area_fraction, 0, 1);
    range("cutout_aspect", cutout_aspect, 1e-6, 1e6);
  }

  // The enabled parts and their ranges, e.g. for provenance and cache keys:
  // "flip p=0.5, brightness U(0,0.4), ..."; "none" when all are off.
  std::string describe() const {
    std::string s;
    auto add = [&s](const std::string& part) { s += (s.empty() ? "" : ", ") + part; };
    auto u = [](const UniformRange& r) { return detail::concat("U(", r.lo, ",", r.hi, ")"); };
    if (flip) add(detail::concat("flip p=", flip_probability));
    if (brightness) add("brightness " + u(brightness_delta));
    if (contrast) add("contrast " + u(contrast_factor));
    if (saturation) add("saturation " + u(saturation_factor));
    if (hue) add("hue " + u(hue_delta));
    if (translate_rotate)
      add(detail::concat("p=", translate_rotate_probability, " translate ", u(translate_fraction), " rotate ",
                         u(rotate_degrees), " deg"));
    if (crop) add("crop " + u(crop_side_fraction));
    if (cutout)
      add(detail::concat("p=", cutout_probability, " cutout area ", u(cutout_area_fraction), " aspect ",
                         u(cutout_aspect)));
    return s.empty() ? "none" : s;
  }
};

// One clip's augmentation: every random value, so applying it is
// deterministic. The default draw is the identity.
struct FrameAugmentDraw {
  bool flip = false;
  double brightness_delta = 0;   // added to [0, 1] intensities
  double contrast_factor = 1;    // per channel, around the channel's mean
  double saturation_factor = 1;  // HSV saturation multiplier
  double hue_delta = 0;          // fraction of the hue circle
  bool translate_rotate = false;
  double translate_x = 0, translate_y = 0;  // fractions of width / height
  double rotate_degrees = 0;                // counter-clockwise as seen
  bool crop = false;
  double crop_side = 1;           // fraction of each dimension
  double crop_x = 0, crop_y = 0;  // place in the room left around the crop, [0, 1]
  bool cutout = false;
  double cutout_area = 0;             // fraction of the frame's area
  double cutout_aspect = 1;           // height / width
  double cutout_x = 0, cutout_y = 0;  // place in the room left around the rectangle, [0, 1]
};

// One draw. The generator advances by the same 15 values whatever the
// options, so switching a part off leaves the other parts' draws unchanged.
inline FrameAugmentDraw draw_frame_augment(Generator& g, const FrameAugmentOptions& o = {}) {
  o.validate();
  FrameAugmentDraw d;
  const bool flip = g.uniform() < o.flip_probability;
  const double brightness = o.brightness_delta.draw(g), contrast = o.contrast_factor.draw(g),
               saturation = o.saturation_factor.draw(g), hue = o.hue_delta.draw(g);
  const bool move = g.uniform() < o.translate_rotate_probability;
  const double tx = o.translate_fraction.draw(g), ty = o.translate_fraction.draw(g), angle = o.rotate_degrees.draw(g);
  const double side = o.crop_side_fraction.draw(g), crop_x = g.uniform(), crop_y = g.uniform();
  const bool cut = g.uniform() < o.cutout_probability;
  const double area = o.cutout_area_fraction.draw(g), aspect = o.cutout_aspect.draw(g), cut_x = g.uniform(),
               cut_y = g.uniform();

  d.flip = o.flip && flip;
  if (o.brightness) d.brightness_delta = brightness;
  if (o.contrast) d.contrast_factor = contrast;
  if (o.saturation) d.saturation_factor = saturation;
  if (o.hue) d.hue_delta = hue;
  if (o.translate_rotate && move) {
    d.translate_rotate = true;
    d.translate_x = tx;
    d.translate_y = ty;
    d.rotate_degrees = angle;
  }
  if (o.crop) {
    d.crop = true;
    d.crop_side = side;
    d.crop_x = crop_x;
    d.crop_y = crop_y;
  }
  if (o.cutout && cut) {
    d.cutout = true;
    d.cutout_area = area;
    d.cutout_aspect = aspect;
    d.cutout_x = cut_x;
    d.cutout_y = cut_y;
  }
  return d;
}

// Step 6 as a forward map (source pixel -> augmented pixel, pixel centres at
// integer coordinates) for a frame of `size`: the matrix cv::warpAffine takes.
inline cv::Matx23d frame_augment_motion(const FrameAugmentDraw& d, cv::Size size) {
  // In unit-square coordinates q = (p + 0.5) / (W, H): q' = R (q + t - c) + c,
  // c the centre. Back in pixels, R is conjugated by the scale D = diag(W, H).
  const double w = size.width, h = size.height;
  const double a = d.rotate_degrees * std::numbers::pi / 180, cs = std::cos(a), sn = std::sin(a);
  const cv::Matx22d rotation(cs, sn, -sn, cs);  // y points down: counter-clockwise as seen
  const cv::Matx22d scale(w, 0, 0, h), unscale(1 / w, 0, 0, 1 / h);
  const cv::Matx22d linear = scale * rotation * unscale;
  const cv::Vec2d half(0.5, 0.5), centre(0.5, 0.5), shift(d.translate_x, d.translate_y);
  const cv::Vec2d offset = linear * half + scale * (rotation * (shift - centre)) + scale * centre - half;
  return {linear(0, 0), linear(0, 1), offset[0], linear(1, 0), linear(1, 1), offset[1]};
}

// Step 7's crop in a frame of `size`: floor(side * each dimension), at least 1.
inline cv::Rect frame_augment_crop_rect(const FrameAugmentDraw& d, cv::Size size) {
  const int w = std::clamp(static_cast<int>(std::floor(d.crop_side * size.width)), 1, size.width);
  const int h = std::clamp(static_cast<int>(std::floor(d.crop_side * size.height)), 1, size.height);
  const int x = static_cast<int>(std::lround(d.crop_x * (size.width - w)));
  const int y = static_cast<int>(std::lround(d.crop_y * (size.height - h)));
  return {x, y, w, h};
}

// Step 8's rectangle in a frame of `size`. A side longer than the frame (large
// area with an extreme aspect) is cut to the frame rather than redrawn.
inline cv::Rect frame_augment_cutout_rect(const FrameAugmentDraw& d, cv::Size size) {
  const double hf = std::min(1.0, std::sqrt(d.cutout_area * d.cutout_aspect));
  const double wf = std::min(1.0, std::sqrt(d.cutout_area / d.cutout_aspect));
  const int w = std::clamp(static_cast<int>(std::lround(wf * size.width)), 0, size.width);
  const int h = std::clamp(static_cast<int>(std::lround(hf * size.height)), 0, size.height);
  const int x = static_cast<int>(std::lround(d.cutout_x * (size.width - w)));
  const int y = static_cast<int>(std::lround(d.cutout_y * (size.height - h)));
  return {x, y, w, h};
}

namespace augment_detail {

// tf.image's RGB <-> HSV, h in [0, 1).
inline void rgb_to_hsv(float r, float g, float b, float& h, float& s, float& v) {
  const float mx = std::max({r, g, b}), mn = std::min({r, g, b}), range = mx - mn;
  v = mx;
  s = mx > 0 ? range / mx : 0.f;
  h = 0.f;
  if (range > 0) {
    if (mx == r)
      h = (g - b) / range;
    else if (mx == g)
      h = (b - r) / range + 2.f;
    else
      h = (r - g) / range + 4.f;
    h /= 6.f;
    if (h < 0) h += 1.f;
  }
}

inline void hsv_to_rgb(float h, float s, float v, float& r, float& g, float& b) {
  const float h6 = h * 6.f, sector = std::floor(h6), f = h6 - sector;
  const float p = v * (1 - s), q = v * (1 - s * f), t = v * (1 - s * (1 - f));
  switch (static_cast<int>(sector) % 6) {
    case 0: r = v, g = t, b = p; break;
    case 1: r = q, g = v, b = p; break;
    case 2: r = p, g = v, b = t; break;
    case 3: r = p, g = q, b = v; break;
    case 4: r = t, g = p, b = v; break;
    default: r = v, g = p, b = q; break;
  }
}

// Steps 2-5 in one float pass over an 8-bit BGR frame.
inline cv::Mat adjust_colour(const cv::Mat& bgr, const FrameAugmentDraw& d) {
  const bool hsv = d.saturation_factor != 1 || d.hue_delta != 0;
  if (d.brightness_delta == 0 && d.contrast_factor == 1 && !hsv) return bgr;
  // Brightness is a uniform add, so the contrast step's mean is the frame's
  // mean plus the delta (no clipping in between, as in tf.image).
  const cv::Scalar frame_mean = cv::mean(bgr);
  float mean[3];
  for (int c = 0; c < 3; ++c) mean[c] = static_cast<float>(frame_mean[c] / 255.0 + d.brightness_delta);
  const float delta = static_cast<float>(d.brightness_delta), contrast = static_cast<float>(d.contrast_factor),
              saturation = static_cast<float>(d.saturation_factor);
  const float hue = static_cast<float>(d.hue_delta - std::floor(d.hue_delta));  // into [0, 1)
  cv::Mat out(bgr.size(), CV_8UC3);
  for (int y = 0; y < bgr.rows; ++y) {
    const uint8_t* in = bgr.ptr<uint8_t>(y);
    uint8_t* o = out.ptr<uint8_t>(y);
    for (int x = 0; x < bgr.cols; ++x) {
      float v[3];  // B, G, R
      for (int c = 0; c < 3; ++c) v[c] = ((in[3 * x + c] / 255.f + delta) - mean[c]) * contrast + mean[c];
      if (hsv) {
        float h, s, val;
        rgb_to_hsv(v[2], v[1], v[0], h, s, val);
        s = std::clamp(s * saturation, 0.f, 1.f);
        h += hue;
        if (h >= 1.f) h -= 1.f;
        hsv_to_rgb(h, s, val, v[2], v[1], v[0]);
      }
      for (int c = 0; c < 3; ++c) o[3 * x + c] = cv::saturate_cast<uint8_t>(v[c] * 255.f);
    }
  }
  return out;
}

}  // namespace augment_detail

// One frame (8-bit, 3-channel BGR) augmented by `draw`; same size, a new
// image (the input is left alone). Deterministic: the same draw gives the
// same pixels.
inline cv::Mat apply_frame_augment(const cv::Mat& bgr, const FrameAugmentDraw& d) {
  STPAIN_CHECK(!bgr.empty() && bgr.type() == CV_8UC3, Error, "apply_frame_augment: expected an 8-bit BGR image, got ",
               bgr.empty() ? std::string("an empty one") : cv::typeToString(bgr.type()));
  const cv::Size size = bgr.size();
  cv::Mat x = bgr;
  if (d.flip) {
    cv::Mat flipped;
    cv::flip(x, flipped, 1);
    x = flipped;
  }
  x = augment_detail::adjust_colour(x, d);
  if (d.translate_rotate) {
    cv::Mat moved;
    cv::warpAffine(x, moved, cv::Mat(frame_augment_motion(d, size)), size, cv::INTER_LINEAR, cv::BORDER_CONSTANT,
                   cv::Scalar::all(0));
    x = moved;
  }
  if (d.crop) {
    const cv::Rect r = frame_augment_crop_rect(d, size);
    cv::Mat resized;
    cv::resize(x(r), resized, size, 0, 0, cv::INTER_LINEAR);
    x = resized;
  }
  if (x.data == bgr.data) x = bgr.clone();  // everything so far was the identity
  if (d.cutout) x(frame_augment_cutout_rect(d, size)).setTo(cv::Scalar::all(0));
  return x;
}

// A clip's frames, all augmented by the one draw (in parallel).
inline std::vector<cv::Mat> augment_clip(const std::vector<cv::Mat>& frames, const FrameAugmentDraw& d) {
  std::vector<cv::Mat> out(frames.size());
  detail::for_each_frame(static_cast<int64_t>(frames.size()), [&](int64_t i) {
    out[static_cast<size_t>(i)] = apply_frame_augment(frames[static_cast<size_t>(i)], d);
  });
  return out;
}

// Draws once from `g` and augments the whole clip with that draw.
inline std::vector<cv::Mat> augment_clip(const std::vector<cv::Mat>& frames, Generator& g,
                                         const FrameAugmentOptions& o = {}) {
  return augment_clip(frames, draw_frame_augment(g, o));
}

}  // namespace stpain
