#pragma once
// Crops a clip's frames to the face before they are resized for a network.
// PEMF-like frames show the head and shoulders: squash-resized to a small
// input the face is a few dozen pixels wide and an expression moves it by one
// or two. One square box serves the whole clip (the 68 points' extent in a
// few probe frames, widened by a margin), so the crop does not follow the
// face and movement between frames is kept.
#include <algorithm>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "stpain/core/error.hpp"
#include "stpain/data/landmarks.hpp"

namespace stpain {

struct FaceCropOptions {
  double margin = 0.2;   // added on every side, as a fraction of the points' larger extent
  int probe_frames = 3;  // frames the detector runs on (first, middle, last, ...)

  void validate() const {
    STPAIN_CHECK(margin >= 0 && margin <= 2, Error, "FaceCropOptions: margin must be in [0, 2], got ", margin);
    STPAIN_CHECK(probe_frames >= 1, Error, "FaceCropOptions: probe_frames must be >= 1, got ", probe_frames);
  }
  std::string describe() const { return detail::concat("face crop (margin ", margin, ", ", probe_frames, " probes)"); }
};

// The square around `points` (x0, y0, x1, y1), widened by `margin` on every
// side and moved (not shrunk) to lie inside a width x height image; it is
// shrunk only when the image itself is smaller than the square.
inline cv::Rect square_crop_box(double x0, double y0, double x1, double y1, double margin, int width, int height) {
  const double side_wanted = std::max(x1 - x0, y1 - y0) * (1 + 2 * margin);
  const int side = std::max(1, std::min({static_cast<int>(std::lround(side_wanted)), width, height}));
  const double cx = 0.5 * (x0 + x1), cy = 0.5 * (y0 + y1);
  const int left = std::clamp(static_cast<int>(std::lround(cx - 0.5 * side)), 0, width - side);
  const int top = std::clamp(static_cast<int>(std::lround(cy - 0.5 * side)), 0, height - side);
  return {left, top, side, side};
}

// The clip's face box. Throws NoFaceError naming the clip when no probe frame has
// a face (the caller reports the clip and leaves it out).
inline cv::Rect clip_face_box(LandmarkDetector& detector, const std::vector<cv::Mat>& frames, const std::string& clip,
                              const FaceCropOptions& o = {}) {
  o.validate();
  STPAIN_CHECK(!frames.empty(), Error, "face crop: clip ", clip, " has no frames");
  const int n = static_cast<int>(frames.size()), probes = std::min(o.probe_frames, n);
  std::vector<cv::Mat> probe;
  for (int i = 0; i < probes; ++i) probe.push_back(frames[static_cast<size_t>(probes == 1 ? n / 2 : i * (n - 1) / (probes - 1))]);
  double x0 = 1e30, y0 = 1e30, x1 = -1e30, y1 = -1e30;
  for (const FrameLandmarks& f : detector.detect_frames(probe)) {
    if (!f.detected()) continue;
    for (const LandmarkPoint& p : f.points) {
      x0 = std::min<double>(x0, p.x), x1 = std::max<double>(x1, p.x);
      y0 = std::min<double>(y0, p.y), y1 = std::max<double>(y1, p.y);
    }
  }
  STPAIN_CHECK(x1 >= x0, NoFaceError, "face crop: no face found in ", clip, " (", probes, " frames tried)");
  return square_crop_box(x0, y0, x1, y1, o.margin, frames[0].cols, frames[0].rows);
}

// The frames cut to `box` (views, no copy). Frames must share one size.
inline std::vector<cv::Mat> crop_frames(const std::vector<cv::Mat>& frames, const cv::Rect& box) {
  std::vector<cv::Mat> out;
  out.reserve(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    STPAIN_CHECK((box & cv::Rect(0, 0, frames[i].cols, frames[i].rows)) == box, ShapeError, "face crop: frame ", i + 1,
                 " is ", frames[i].cols, "x", frames[i].rows, ", smaller than the clip's box ending at (", box.br().x, ", ",
                 box.br().y, ")");
    out.push_back(frames[i](box));
  }
  return out;
}

// The clip's frames cut to its face box: what the visual pipeline feeds the network.
inline std::vector<cv::Mat> crop_to_face(LandmarkDetector& detector, const std::vector<cv::Mat>& frames,
                                         const std::string& clip, const FaceCropOptions& o = {}) {
  return crop_frames(frames, clip_face_box(detector, frames, clip, o));
}

}  // namespace stpain
