#pragma once
// A PEMF-like dataset made from one real face photo, so every pipeline of the
// project (frames -> landmarks / ConvNeXt features -> classifiers) runs end to
// end without the real database. It is written in PEMF's layout, which
// index_pemf (pemf.hpp) reads as it is:
//   <out>/Pictures/Modified/S###/{Neutral, Posed Pain, Algometer Pain, Laser Pain}/
//         {Colour frames, BW frames}/frame_00.jpg ... frame_19.jpg
//   <out>/metadata.csv        one row per clip (see metadata_csv below)
//   <out>/synthetic_pemf.txt  what made the set; marks the folder as one this
//                             generator may replace (SyntheticPemfOptions::overwrite)
// metadata.csv is written last and atomically: a folder without it is an
// interrupted run.
//
// How a frame is made. dlib's 68 landmarks are found on the photo once, and
// extra points are placed around them (forehead, cheeks, a ring around head and
// hair, a frame well outside the image) so one fixed triangulation covers the
// whole picture. Every subject is an identity drawn around the photo's face:
// face shape (jaw width, face length, eye distance, nose and mouth
// proportions, brow height, scale), skin, hair and background / clothing
// colours, lighting, focus, and half of them mirrored. Every clip adds head
// pose drifting over the clip, blinks and pixel noise; pain clips move through
// onset -> apex -> offset with the PSPI action units (AU4 brow lowering, AU6 /
// AU7 cheek raise / lid tightening, AU9 / AU10 nose wrinkle / upper-lip raise,
// AU43 eye closure) at an intensity drawn per condition: posed clips strongest
// but a quarter of them weak, algometer and laser clips varied, and the onset
// at a random frame. Neutral clips only blink, move and have noise, with the
// same head-motion and blink statistics as pain clips so only the expression
// tells them apart. The photo is warped piecewise-affinely from its points to
// the frame's (one cv::remap per frame: seamless, no holes), and B/W frames are
// the same frames in grey.
//
// Deterministic: every subject and clip draws from its own generator seeded
// from (seed, subject, condition), so the bytes written do not depend on the
// number of threads.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <memory>
#include <mutex>
#include <numbers>
#include <string>
#include <system_error>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "stpain/core/error.hpp"
#include "stpain/core/parallel.hpp"
#include "stpain/core/progress.hpp"
#include "stpain/core/random.hpp"
#include "stpain/data/image.hpp"
#include "stpain/data/landmarks.hpp"
#include "stpain/data/pemf.hpp"
#include "stpain/io/atomic_file.hpp"

namespace stpain {

struct SyntheticPemfOptions {
  int64_t subjects = 68;
  int64_t frames = 20;   // per clip
  int image_size = 256;  // frames are image_size x image_size, the face about 0.4 of the width
  uint64_t seed = 1;
  int jpeg_quality = 90;
  bool colour_frames = true;                         // write `Colour frames`
  bool bw_frames = true;                             // write `BW frames` (false: colour only)
  bool overwrite = false;                            // replace an earlier synthetic set in the output folder
  std::string photo = "tests/data/astronaut.png";    // one frontal face
  std::string model_path = kDebianShapePredictor68;  // dlib's 68-point shape predictor
  int threads = 0;                                   // workers over subjects; 0: num_threads()
  // How far the action units move the face, as a multiple of the base
  // amplitudes (a full AU4 lowers the brows by 5.5% of the face width). At 1
  // the movements are a pixel or two at the default size, about what dlib's
  // integer landmarks resolve, and a logistic regression on four landmark
  // distances reaches ~75% balanced accuracy (subject folds); at 2, ~88%:
  // learnable, not trivial. The intensities in metadata.csv do not change.
  double expression_scale = 2.0;

  void validate() const {
    STPAIN_CHECK(subjects >= 1 && subjects <= 999, Error, "SyntheticPemfOptions: subjects must be in [1, 999], got ",
                 subjects);
    STPAIN_CHECK(frames >= 2 && frames <= 1000, Error, "SyntheticPemfOptions: frames must be in [2, 1000], got ",
                 frames);
    STPAIN_CHECK(image_size >= 128 && image_size <= 1024, Error,
                 "SyntheticPemfOptions: image_size must be in [128, 1024] (dlib needs faces of ~80 px), got ",
                 image_size);
    STPAIN_CHECK(jpeg_quality >= 1 && jpeg_quality <= 100, Error,
                 "SyntheticPemfOptions: jpeg_quality must be in [1, 100], got ", jpeg_quality);
    STPAIN_CHECK(colour_frames || bw_frames, Error, "SyntheticPemfOptions: neither colour nor B/W frames asked for");
    STPAIN_CHECK(threads >= 0, Error, "SyntheticPemfOptions: threads must be >= 0, got ", threads);
    STPAIN_CHECK(expression_scale > 0 && expression_scale <= 4, Error,
                 "SyntheticPemfOptions: expression_scale must be in (0, 4], got ", expression_scale);
  }
};

// FACS intensities of the PSPI action units, 0 (absent) to 5 (maximum).
struct ActionUnits {
  double au4 = 0, au6 = 0, au7 = 0, au9 = 0, au10 = 0, au43 = 0;
  // Prkachin and Solomon: AU4 + max(AU6, AU7) + max(AU9, AU10) + AU43.
  double pspi() const { return au4 + std::max(au6, au7) + std::max(au9, au10) + au43; }
};

// One stimulus clip as generated (its colour and B/W folders share it).
struct SyntheticClip {
  std::string clip;     // PEMF's Clip id: "S001A" (A algometer, L laser, N neutral, P posed)
  std::string subject;  // "S001"
  PemfCondition condition = PemfCondition::neutral;
  int label = 0;              // 0 Neutral, 1 pain
  double intensity = 0;       // 0-8, as PEMF's Intensity: 8 x the expression's strength
  ActionUnits apex;           // at the apex frame
  int64_t onset_frame = -1;   // last frame before the expression starts; -1 for neutral clips
  int64_t apex_frame = -1;    // first frame at full expression; -1 for neutral clips
  int64_t offset_frame = -1;  // first frame the expression is gone again (frames - 1 if never); -1 neutral
  bool mirrored = false;      // the subject is the photo mirrored

  // "Posed", "Spontaneous" (algometer, laser) or "Neutral".
  const char* kind() const {
    return condition == PemfCondition::neutral      ? "Neutral"
           : condition == PemfCondition::posed_pain ? "Posed"
                                                    : "Spontaneous";
  }
};

struct SyntheticPemf {
  std::filesystem::path root;          // the output folder (give it to index_pemf)
  std::filesystem::path modified_dir;  // root/Pictures/Modified
  std::filesystem::path metadata;      // root/metadata.csv
  std::vector<SyntheticClip> clips;    // by subject, then clip id (A, L, N, P)
  int64_t images_written = 0;
  double seconds = 0;
};

// PEMF's letter for a condition in clip ids: A, L, N or P.
inline char pemf_clip_letter(PemfCondition c) {
  switch (c) {
    case PemfCondition::algometer_pain: return 'A';
    case PemfCondition::laser_pain: return 'L';
    case PemfCondition::neutral: return 'N';
    case PemfCondition::posed_pain: return 'P';
  }
  return '?';
}

namespace synthetic_pemf_detail {

namespace fs = std::filesystem;
using Points = std::vector<cv::Point2d>;

inline constexpr const char* kMarkerFile = "synthetic_pemf.txt";
inline constexpr const char* kMetadataFile = "metadata.csv";
inline constexpr const char* kMetadataHeader =
    "clip,subject,condition,kind,label,intensity,AU4,AU6,AU7,AU9,AU10,AU43,pspi,onset_frame,apex_frame,"
    "offset_frame,mirrored";

// Conditions in the order of their clip letters (and of PEMF's folder names).
inline constexpr std::array<PemfCondition, 4> kConditions = {PemfCondition::algometer_pain, PemfCondition::laser_pain,
                                                             PemfCondition::neutral, PemfCondition::posed_pain};

// ---------------------------------------------------------------- the mesh
// The 68 landmarks, then points that make the warp local and cover the image.
inline constexpr int kForehead = 68;    // 6 above the brows (above 17, 19, 21, 22, 24, 26)
inline constexpr int kCheeks = 74;      // under the eyes: subject's right, left
inline constexpr int kNasolabial = 76;  // beside the line from nose wing to mouth corner
inline constexpr int kHeadRing = 78;    // 16 around the hair and chin
inline constexpr int kRingPoints = 16;
inline constexpr int kFacePoints = 94;  // everything above moves with the head
inline constexpr int kBorder = 94;      // 16 on a square well outside the image: the still background
inline constexpr int kBorderPoints = 16;
inline constexpr int kMeshPoints = 110;

using Triangle = std::array<int, 3>;

// dlib's 68 points of the mirrored face: point k of the mirror image is point
// kMirror68[k] of the original (jaw, brows, eyes and mouth swap sides).
// clang-format off
inline constexpr std::array<int, 68> kMirror68 = {
    16, 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0,  // jaw
    26, 25, 24, 23, 22, 21, 20, 19, 18, 17,                    // brows
    27, 28, 29, 30, 35, 34, 33, 32, 31,                        // nose
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,            // eyes
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55,            // outer lips
    64, 63, 62, 61, 60, 67, 66, 65};                           // inner lips
// clang-format on

inline double norm(cv::Point2d p) { return std::hypot(p.x, p.y); }
inline cv::Point2d mid(cv::Point2d a, cv::Point2d b) { return 0.5 * (a + b); }

// The face's own axes and size, from its 68 points.
struct FaceFrame {
  cv::Point2d centre;  // mean of the 68 points
  cv::Point2d right;   // unit, from the subject's right jaw (point 0) to the left (16)
  cv::Point2d down;    // unit, perpendicular to `right`, towards the chin
  double width = 0;    // jaw width |p16 - p0|
  cv::Point2d head_centre() const { return centre - 0.3 * width * down; }  // middle of hair + face
};

inline FaceFrame face_frame(const Points& p) {
  FaceFrame f;
  for (int k = 0; k < kNumLandmarks; ++k) f.centre += p[static_cast<size_t>(k)];
  f.centre *= 1.0 / kNumLandmarks;
  const cv::Point2d across = p[16] - p[0];
  f.width = norm(across);
  f.right = across * (1.0 / f.width);
  f.down = {-f.right.y, f.right.x};
  return f;
}

// Appends the forehead, cheek, nasolabial and head-ring points to 68
// landmarks. They are placed by rule from the landmarks, so a face of another
// shape gets them in the same places relative to its features.
inline Points with_face_points(Points p) {
  const FaceFrame f = face_frame(p);
  const double w = f.width;
  p.resize(kFacePoints);
  const int brows[6] = {17, 19, 21, 22, 24, 26};
  const double outwards[6] = {-0.06, 0, 0, 0, 0, 0.06};  // the ends fan out, clear of the jaw's top
  for (int i = 0; i < 6; ++i)
    p[static_cast<size_t>(kForehead + i)] =
        p[static_cast<size_t>(brows[i])] - 0.2 * w * f.down + outwards[i] * w * f.right;
  p[kCheeks] = mid(p[40], p[41]) + 0.16 * w * f.down;
  p[kCheeks + 1] = mid(p[46], p[47]) + 0.16 * w * f.down;
  p[kNasolabial] = mid(p[31], p[48]) - 0.08 * w * f.right - 0.02 * w * f.down;
  p[kNasolabial + 1] = mid(p[35], p[54]) + 0.08 * w * f.right - 0.02 * w * f.down;
  const cv::Point2d hc = f.head_centre();
  for (int k = 0; k < kRingPoints; ++k) {
    const double a = 2 * std::numbers::pi * k / kRingPoints;
    p[static_cast<size_t>(kHeadRing + k)] = hc + 0.98 * w * std::cos(a) * f.right + 1.04 * w * std::sin(a) * f.down;
  }
  return p;
}

// 16 points on a square `margin` outside a size x size image (corners and 3 per side).
inline Points border_points(int size, double margin) {
  Points b;
  const double lo = -margin, hi = size - 1 + margin;
  for (int i = 0; i < 4; ++i) {
    const double t = lo + (hi - lo) * i / 4.0;
    b.push_back({t, lo});              // top, left to right
    b.push_back({hi, t});              // right, top to bottom
    b.push_back({hi - (t - lo), hi});  // bottom, right to left
    b.push_back({lo, hi - (t - lo)});  // left, bottom to top
  }
  return b;
}

// Delaunay triangles of the points (cv::Subdiv2D), as indices into them.
inline std::vector<Triangle> triangulate(const Points& points) {
  double lo = 1e300, hi = -1e300;
  for (const auto& p : points) lo = std::min({lo, p.x, p.y}), hi = std::max({hi, p.x, p.y});
  const float pad = static_cast<float>(0.1 * (hi - lo) + 1);
  cv::Subdiv2D subdiv(cv::Rect(static_cast<int>(std::floor(lo - pad)), static_cast<int>(std::floor(lo - pad)),
                               static_cast<int>(std::ceil(hi - lo + 2 * pad)),
                               static_cast<int>(std::ceil(hi - lo + 2 * pad))));
  std::vector<cv::Point2f> fp;
  for (const auto& p : points) fp.emplace_back(static_cast<float>(p.x), static_cast<float>(p.y));
  subdiv.insert(fp);
  std::vector<cv::Vec6f> list;
  subdiv.getTriangleList(list);
  auto index_of = [&](float x, float y) {
    for (size_t i = 0; i < fp.size(); ++i)
      if (std::abs(fp[i].x - x) < 1e-3f && std::abs(fp[i].y - y) < 1e-3f) return static_cast<int>(i);
    return -1;  // one of Subdiv2D's virtual outer vertices
  };
  std::vector<Triangle> triangles;
  for (const auto& t : list) {
    const Triangle tri = {index_of(t[0], t[1]), index_of(t[2], t[3]), index_of(t[4], t[5])};
    if (tri[0] >= 0 && tri[1] >= 0 && tri[2] >= 0) triangles.push_back(tri);
  }
  return triangles;
}

// The piecewise-affine warp: pixel q of the output, inside target triangle
// (t0, t1, t2) with barycentric weights l, samples the source at
// l0 s0 + l1 s1 + l2 s2. The map is continuous across shared edges, so one
// remap gives no seams; pixels on an edge are taken by the first triangle.
// Returns false when some pixel is in no triangle (the mesh does not cover the image).
inline bool warp_map(const Points& source, const Points& target, const std::vector<Triangle>& triangles, int size,
                     cv::Mat& map_x, cv::Mat& map_y) {
  map_x.create(size, size, CV_32F);
  map_y.create(size, size, CV_32F);
  cv::Mat taken(size, size, CV_8U, cv::Scalar(0));
  for (const Triangle& tri : triangles) {
    const cv::Point2d t0 = target[static_cast<size_t>(tri[0])], t1 = target[static_cast<size_t>(tri[1])],
                      t2 = target[static_cast<size_t>(tri[2])];
    const cv::Point2d s0 = source[static_cast<size_t>(tri[0])], s1 = source[static_cast<size_t>(tri[1])],
                      s2 = source[static_cast<size_t>(tri[2])];
    const cv::Point2d e1 = t1 - t0, e2 = t2 - t0;
    const double det = e1.x * e2.y - e1.y * e2.x;
    if (std::abs(det) < 1e-9) continue;  // collapsed: its neighbours cover the line
    const int x0 = std::max(0, static_cast<int>(std::floor(std::min({t0.x, t1.x, t2.x})))),
              x1 = std::min(size - 1, static_cast<int>(std::ceil(std::max({t0.x, t1.x, t2.x})))),
              y0 = std::max(0, static_cast<int>(std::floor(std::min({t0.y, t1.y, t2.y})))),
              y1 = std::min(size - 1, static_cast<int>(std::ceil(std::max({t0.y, t1.y, t2.y}))));
    constexpr double eps = 1e-6;  // pixel centres on an edge belong to both sides
    for (int y = y0; y <= y1; ++y) {
      uint8_t* done = taken.ptr<uint8_t>(y);
      float* mx = map_x.ptr<float>(y);
      float* my = map_y.ptr<float>(y);
      for (int x = x0; x <= x1; ++x) {
        if (done[x]) continue;
        const double dx = x - t0.x, dy = y - t0.y;
        const double l1 = (dx * e2.y - dy * e2.x) / det, l2 = (e1.x * dy - e1.y * dx) / det, l0 = 1 - l1 - l2;
        if (l0 < -eps || l1 < -eps || l2 < -eps) continue;
        done[x] = 1;
        mx[x] = static_cast<float>(l0 * s0.x + l1 * s1.x + l2 * s2.x);
        my[x] = static_cast<float>(l0 * s0.y + l1 * s1.y + l2 * s2.y);
      }
    }
  }
  return cv::countNonZero(taken) == size * size;
}

// ---------------------------------------------------------------- the photo

// The photo's face, as one orientation (plain or mirrored) of the source:
// the image, its mesh points, the same points in an output frame before any
// identity or pose, the triangles, and where skin, hair and background are.
struct SourceFace {
  cv::Mat photo;  // 8-bit BGR
  Points source;  // kMeshPoints, photo pixels
  Points base;    // kMeshPoints, output pixels (the photo's face centred and scaled)
  std::vector<Triangle> triangles;
  FaceFrame frame;                 // of `base`
  cv::Mat skin, hair, background;  // CV_32F weights in the photo's pixels, summing to <= 1
};

// Where the photo's skin, hair and background are, as soft weights. Skin:
// the face outline (+ neck) except eyes and mouth, and coloured pixels just
// around it; hair: coloured pixels in an ellipse around the head, above the
// mouth; background: everything outside the face that is neither (backdrop,
// clothes). The backdrop is told from hair and skin by its low saturation;
// eye whites and teeth keep their colours.
inline void find_regions(SourceFace& s) {
  const FaceFrame f = face_frame(s.source);
  const double w = f.width;
  const cv::Size size = s.photo.size();
  auto pt = [&](cv::Point2d p) { return cv::Point(cvRound(p.x), cvRound(p.y)); };
  auto local = [&](cv::Point2d q) { return cv::Point2d((q - f.centre).dot(f.right), (q - f.centre).dot(f.down)); };
  auto global = [&](cv::Point2d l) { return f.centre + l.x * f.right + l.y * f.down; };

  std::vector<cv::Point> outline;  // jaw, then the forehead points back across
  for (int k = 0; k <= 16; ++k) outline.push_back(pt(s.source[static_cast<size_t>(k)]));
  for (int k = 5; k >= 0; --k) outline.push_back(pt(s.source[static_cast<size_t>(kForehead + k)]));
  const std::vector<cv::Point> neck = {pt(s.source[5]), pt(s.source[11]), pt(s.source[11] + 0.3 * w * f.down),
                                       pt(s.source[5] + 0.3 * w * f.down)};
  cv::Mat face8(size, CV_8U, cv::Scalar(0));
  for (const auto& polygon : {outline, neck})  // one at a time: fillPoly leaves overlaps of several empty
    cv::fillPoly(face8, std::vector<std::vector<cv::Point>>{polygon}, cv::Scalar(255));
  const int grow = std::max(1, cvRound(0.05 * w));
  cv::Mat grown8;
  cv::dilate(face8, grown8, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(2 * grow + 1, 2 * grow + 1)));

  // Head: an ellipse around hair and face, cut off at the mouth (the neck is not hair).
  const double cut = local(mid(s.source[48], s.source[54])).y;
  std::vector<cv::Point> head_outline;
  for (int k = 0; k < 64; ++k) {
    const double a = 2 * std::numbers::pi * k / 64;
    cv::Point2d l = local(f.head_centre()) + cv::Point2d(0.86 * w * std::cos(a), 0.93 * w * std::sin(a));
    l.y = std::min(l.y, cut);
    head_outline.push_back(pt(global(l)));
  }
  cv::Mat head8(size, CV_8U, cv::Scalar(0));
  cv::fillPoly(head8, std::vector<std::vector<cv::Point>>{head_outline}, cv::Scalar(255));

  auto soft = [&](const cv::Mat& m8, double sigma) {
    cv::Mat m;
    m8.convertTo(m, CV_32F, 1.0 / 255);
    cv::GaussianBlur(m, m, cv::Size(), sigma);
    return m;
  };
  cv::Mat hsv, channels[3], coloured;
  cv::cvtColor(s.photo, hsv, cv::COLOR_BGR2HSV);
  cv::split(hsv, channels);
  channels[1].convertTo(coloured, CV_32F, 1.0 / 25, -30.0 / 25);  // saturation 30 -> 0, 55 -> 1
  cv::min(cv::max(coloured, 0.0), 1.0, coloured);
  cv::GaussianBlur(coloured, coloured, cv::Size(), 1.0);

  cv::Mat features8(size, CV_8U, cv::Scalar(0));
  for (const auto& [first, last] : {std::pair{36, 41}, std::pair{42, 47}, std::pair{60, 67}}) {
    std::vector<cv::Point> polygon;
    for (int k = first; k <= last; ++k) polygon.push_back(pt(s.source[static_cast<size_t>(k)]));
    cv::fillPoly(features8, std::vector<std::vector<cv::Point>>{polygon}, cv::Scalar(255));
  }
  cv::dilate(features8, features8, cv::getStructuringElement(cv::MORPH_ELLIPSE, cv::Size(5, 5)));
  const cv::Mat sure_skin = soft(face8, 1.0).mul(1.0 - soft(features8, 1.0));  // whatever its colour (highlights)
  const cv::Mat skin = cv::max(sure_skin, soft(grown8, std::max(1.0, 0.02 * w)).mul(coloured));
  const cv::Mat hair = (1.0 - skin).mul(soft(head8, 0.02 * w)).mul(coloured);
  s.skin = skin;
  s.hair = hair;
  s.background = (1.0 - skin - hair).mul(1.0 - soft(face8, 0.02 * w));
}

// The photo with a wide, blurred margin (its edge pixels smeared out), so a
// moved or enlarged head never samples past the photo's edges.
inline cv::Mat pad_photo(const cv::Mat& photo, int pad) {
  cv::Mat padded, smooth;
  cv::copyMakeBorder(photo, padded, pad, pad, pad, pad, cv::BORDER_REPLICATE);
  cv::GaussianBlur(padded, smooth, cv::Size(), pad / 8.0);
  photo.copyTo(smooth(cv::Rect(pad, pad, photo.cols, photo.rows)));
  return smooth;
}

// The photo's face in both orientations, from the photo and its 68 points.
inline std::array<SourceFace, 2> source_faces(const cv::Mat& photo, const Points& landmarks, int size) {
  const int pad = std::max(photo.cols, photo.rows) / 4;
  const cv::Mat padded = pad_photo(photo, pad);
  std::array<SourceFace, 2> faces;
  for (int mirrored = 0; mirrored < 2; ++mirrored) {
    SourceFace& s = faces[static_cast<size_t>(mirrored)];
    Points p(kNumLandmarks);
    for (int k = 0; k < kNumLandmarks; ++k) {
      const int from = mirrored ? kMirror68[static_cast<size_t>(k)] : k;
      const cv::Point2d q = landmarks[static_cast<size_t>(from)] + cv::Point2d(pad, pad);
      p[static_cast<size_t>(k)] = mirrored ? cv::Point2d(padded.cols - 1 - q.x, q.y) : q;
    }
    if (mirrored)
      cv::flip(padded, s.photo, 1);
    else
      s.photo = padded;
    s.source = with_face_points(p);
    // Output frame: the head (hair + face) centred, the jaw 0.4 of the width, upright.
    const FaceFrame f = face_frame(s.source);
    const double scale = 0.4 * size / f.width;
    const cv::Point2d out_centre(0.5 * size, 0.5 * size), hc = f.head_centre();
    auto to_output = [&](cv::Point2d q) {
      const cv::Point2d d = q - hc;
      return out_centre + scale * cv::Point2d(d.dot(f.right), d.dot(f.down));
    };
    auto to_photo = [&](cv::Point2d o) {
      const cv::Point2d d = (o - out_centre) * (1.0 / scale);
      return hc + d.x * f.right + d.y * f.down;
    };
    s.base.resize(kMeshPoints);
    for (int k = 0; k < kFacePoints; ++k) s.base[static_cast<size_t>(k)] = to_output(s.source[static_cast<size_t>(k)]);
    s.source.resize(kMeshPoints);
    const Points border = border_points(size, 0.3 * size);
    for (int k = 0; k < kBorderPoints; ++k) {
      s.base[static_cast<size_t>(kBorder + k)] = border[static_cast<size_t>(k)];
      s.source[static_cast<size_t>(kBorder + k)] = to_photo(border[static_cast<size_t>(k)]);
    }
    s.triangles = triangulate(s.base);
    s.frame = face_frame(s.base);
    find_regions(s);
  }
  return faces;
}

// ---------------------------------------------------------------- subjects

// SplitMix64: independent seeds for subjects and clips from one seed.
inline uint64_t mix_seed(uint64_t seed, uint64_t a, uint64_t b = 0) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull * (a + 1) + 0xbf58476d1ce4e5b9ull * (b + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct Lighting {
  double angle = 0, strength = 0, brightness = 1;  // a linear gradient across the image
  std::array<double, 3> white_balance{1, 1, 1};    // BGR gains
};

struct Subject {
  const SourceFace* face = nullptr;
  bool mirrored = false;
  Points neutral;                       // kMeshPoints in output pixels: this subject's face at rest, before pose
  FaceFrame frame;                      // of `neutral`
  std::array<double, 4> eye_opening{};  // |41-37|, |40-38|, |47-43|, |46-44| of `neutral`
  cv::Mat photo;                        // the photo recoloured (skin, hair, background) and focused
  Lighting lighting;
  double expressiveness = 1;  // scales every pain expression of the subject
};

// Index ranges of the face's parts, which move as wholes in small random shifts.
inline constexpr std::array<std::array<int, 2>, 7> kParts = {
    {{0, 16}, {17, 21}, {22, 26}, {27, 35}, {36, 41}, {42, 47}, {48, 67}}};

// Shifts every part of the face by its own small random offset (sigma in
// pixels): shape differences and micro-movements that keep each part intact.
inline void shift_parts(Points& p, double sigma, Generator& g) {
  for (const auto& [first, last] : kParts) {
    const cv::Point2d d{g.normal(0, sigma), g.normal(0, sigma)};  // braces: drawn in order
    for (int k = first; k <= last; ++k) p[static_cast<size_t>(k)] += d;
  }
}

// The subject's face shape: the photo's landmarks moved within plausible
// ranges, the other points placed around them again, then scaled.
inline Points draw_identity(const SourceFace& s, Generator& g) {
  const FaceFrame f = s.frame;
  const double w = f.width;
  auto local = [&](cv::Point2d q) { return cv::Point2d((q - f.centre).dot(f.right), (q - f.centre).dot(f.down)); };
  auto global = [&](cv::Point2d l) { return f.centre + l.x * f.right + l.y * f.down; };
  std::vector<cv::Point2d> l(kNumLandmarks);
  for (int k = 0; k < kNumLandmarks; ++k) l[static_cast<size_t>(k)] = local(s.base[static_cast<size_t>(k)]);
  auto at = [&](int k) -> cv::Point2d& { return l[static_cast<size_t>(k)]; };

  const double jaw = g.uniform(0.88, 1.14), length = g.uniform(0.93, 1.08), eyes = g.uniform(-0.035, 0.035) * w,
               nose_length = g.uniform(0.92, 1.08), nose_width = g.uniform(0.85, 1.2),
               mouth_width = g.uniform(0.88, 1.12), mouth_shift = g.uniform(-0.012, 0.012) * w,
               brow_height = g.uniform(-0.02, 0.02) * w, scale = g.uniform(0.9, 1.1);
  // Jaw width: the lower jaw fully, the temples half.
  for (int k = 0; k <= 16; ++k) at(k).x *= 1 + ((k <= 1 || k >= 15) ? 0.5 : 1.0) * (jaw - 1);
  // Eye distance: eyes and brows apart or together.
  for (int k : {17, 18, 19, 20, 21, 36, 37, 38, 39, 40, 41}) at(k).x -= eyes;
  for (int k : {22, 23, 24, 25, 26, 42, 43, 44, 45, 46, 47}) at(k).x += eyes;
  for (int k = 17; k <= 26; ++k) at(k).y += brow_height;
  // Nose: length from the bridge, width around the tip; the mouth follows the nose's end.
  const double bridge = at(27).y, tip_before = at(33).y;
  for (int k = 28; k <= 35; ++k) at(k).y = bridge + nose_length * (at(k).y - bridge);
  const double nose_shift = at(33).y - tip_before, nose_middle = at(33).x;
  for (int k = 31; k <= 35; ++k) at(k).x = nose_middle + nose_width * (at(k).x - nose_middle);
  // Mouth: width around its middle, position; then the lower face's length below the nose.
  const double mouth_middle = 0.5 * (at(48).x + at(54).x);
  for (int k = 48; k <= 67; ++k) {
    at(k).x = mouth_middle + mouth_width * (at(k).x - mouth_middle);
    at(k).y += nose_shift + mouth_shift;
  }
  const double below = at(33).y;
  auto stretch = [&](int k) {
    if (at(k).y > below) at(k).y = below + length * (at(k).y - below);
  };
  for (int k = 2; k <= 14; ++k) stretch(k);
  for (int k = 48; k <= 67; ++k) stretch(k);
  Points p(kNumLandmarks);
  for (int k = 0; k < kNumLandmarks; ++k) p[static_cast<size_t>(k)] = global(scale * at(k));
  shift_parts(p, 0.006 * w, g);
  p = with_face_points(std::move(p));
  p.resize(kMeshPoints);
  for (int k = kFacePoints; k < kMeshPoints; ++k) p[static_cast<size_t>(k)] = s.base[static_cast<size_t>(k)];
  return p;
}

// BGR gains: a skin tone from light to dark brown with a little hue.
inline std::array<double, 3> draw_skin_gain(Generator& g, double tone) {
  const std::array<double, 3> light{1.05, 1.04, 1.02}, dark{0.42, 0.52, 0.66};
  std::array<double, 3> gain;
  for (int c = 0; c < 3; ++c)
    gain[static_cast<size_t>(c)] =
        (light[static_cast<size_t>(c)] + tone * (dark[static_cast<size_t>(c)] - light[static_cast<size_t>(c)])) *
        g.uniform(0.96, 1.04);
  return gain;
}

// The photo with this subject's colours: skin, hair and background regions
// each multiplied by their own BGR gains, then slightly out of focus or not.
inline cv::Mat recolour(const SourceFace& s, const std::array<double, 3>& skin, const std::array<double, 3>& hair,
                        const std::array<double, 3>& background, double blur) {
  cv::Mat out(s.photo.size(), CV_8UC3);
  for (int y = 0; y < out.rows; ++y) {
    const cv::Vec3b* in = s.photo.ptr<cv::Vec3b>(y);
    const float *ws = s.skin.ptr<float>(y), *wh = s.hair.ptr<float>(y), *wb = s.background.ptr<float>(y);
    cv::Vec3b* o = out.ptr<cv::Vec3b>(y);
    for (int x = 0; x < out.cols; ++x) {
      const double rest = 1.0 - ws[x] - wh[x] - wb[x];
      for (int c = 0; c < 3; ++c)
        o[x][c] = cv::saturate_cast<uint8_t>(in[x][c] * (ws[x] * skin[static_cast<size_t>(c)] +
                                                         wh[x] * hair[static_cast<size_t>(c)] +
                                                         wb[x] * background[static_cast<size_t>(c)] + rest));
    }
  }
  if (blur >= 0.3) cv::GaussianBlur(out, out, cv::Size(), blur);
  return out;
}

inline Subject draw_subject(const std::array<SourceFace, 2>& faces, Generator& g) {
  Subject sub;
  sub.mirrored = g.bernoulli(0.5);
  sub.face = &faces[sub.mirrored ? 1 : 0];
  sub.neutral = draw_identity(*sub.face, g);
  sub.frame = face_frame(sub.neutral);
  const auto& n = sub.neutral;
  sub.eye_opening = {norm(n[41] - n[37]), norm(n[40] - n[38]), norm(n[47] - n[43]), norm(n[46] - n[44])};

  const double tone = g.uniform();
  const std::array<double, 3> skin = draw_skin_gain(g, tone);
  // Hair from black to fair, darker on average with darker skin.
  const double hair_level = g.uniform(0.3, 1.15) * (1 - 0.4 * tone);
  const double red = g.uniform(0.9, 1.15);
  const std::array<double, 3> hair{hair_level * g.uniform(0.9, 1.05), hair_level, hair_level * red};
  // Backdrop and clothes: lighter or darker, a little tinted.
  const double backdrop = g.uniform(0.65, 1.15);
  std::array<double, 3> background;
  for (double& b : background) b = backdrop * g.uniform(0.85, 1.15);
  sub.photo = recolour(*sub.face, skin, hair, background, g.uniform(0.0, 0.9));

  sub.lighting.angle = g.uniform(0, 2 * std::numbers::pi);
  sub.lighting.strength = g.uniform(0.0, 0.35);
  sub.lighting.brightness = g.uniform(0.85, 1.1);
  sub.expressiveness = g.uniform(0.75, 1.0);
  return sub;
}

// ---------------------------------------------------------------- clips

// A clip's plan: the expression's strength and timing, blinks, head motion,
// lighting and noise.
struct ClipPlan {
  SyntheticClip info;
  int64_t frames = 0;
  double onset = 0, rise = 1, hold = 0, fall = 1;                    // frames
  std::vector<double> blink;                                         // eye closure per frame from blinking, 0-1
  double angle0 = 0, angle_drift = 0, wobble = 0, wobble_phase = 0;  // degrees
  cv::Point2d shift0, shift_drift;                                   // pixels
  double scale0 = 1, scale_drift = 0;
  Lighting lighting;
  double noise = 1;  // pixel noise sigma, grey levels
  uint64_t noise_seed = 0;
  double expression_scale = 1;  // SyntheticPemfOptions::expression_scale

  // 0 before the onset, rising to 1 at the apex, held, falling back to 0.
  double envelope(double t) const {
    if (info.condition == PemfCondition::neutral) return 0;
    auto smooth = [](double u) { return u * u * (3 - 2 * u); };
    const double u = t - onset;
    if (u <= 0) return 0;
    if (u < rise) return smooth(u / rise);
    if (u <= rise + hold) return 1;
    if (u < rise + hold + fall) return 1 - smooth((u - rise - hold) / fall);
    return 0;
  }
};

inline double round2(double v) { return std::round(v * 100) / 100; }

inline ClipPlan draw_clip(const Subject& sub, const std::string& subject, PemfCondition condition, int64_t frames,
                          int size, Generator& g) {
  ClipPlan plan;
  plan.frames = frames;
  SyntheticClip& info = plan.info;
  info.clip = subject + pemf_clip_letter(condition);
  info.subject = subject;
  info.condition = condition;
  info.label = condition == PemfCondition::neutral ? 0 : 1;
  info.mirrored = sub.mirrored;

  // Strength 0-1 and how much each action unit takes of it.
  double strength = 0;
  std::array<double, 6> weight{};  // AU4, AU6, AU7, AU9, AU10, AU43
  switch (condition) {
    case PemfCondition::neutral: break;
    case PemfCondition::posed_pain:  // acted: usually the full expression, sometimes half-hearted
      strength = g.bernoulli(0.25) ? g.uniform(0.15, 0.35) : g.uniform(0.6, 1.0);
      weight = {g.uniform(0.7, 1), g.uniform(0.5, 1), g.uniform(0.5, 1),
                g.uniform(0.3, 1), g.uniform(0.3, 1), g.uniform(0.3, 1)};
      break;
    case PemfCondition::algometer_pain:  // pressure: brows and tightened lids, little else
      strength = g.uniform(0.1, 0.75);
      weight = {g.uniform(0.5, 1), g.uniform(0.3, 0.9), g.uniform(0.4, 1),
                g.uniform(0, 0.5), g.uniform(0, 0.5),   g.uniform(0, 0.6)};
      break;
    case PemfCondition::laser_pain:  // a heat pulse: eyes squeezed shut, brows down
      strength = g.uniform(0.15, 0.85);
      weight = {g.uniform(0.5, 1),   g.uniform(0.3, 1),   g.uniform(0.5, 1),
                g.uniform(0.1, 0.6), g.uniform(0.1, 0.6), g.uniform(0.4, 1)};
      break;
  }
  strength *= sub.expressiveness;
  info.intensity = round2(8 * strength);
  info.apex = {round2(5 * strength * weight[0]), round2(5 * strength * weight[1]), round2(5 * strength * weight[2]),
               round2(5 * strength * weight[3]), round2(5 * strength * weight[4]), round2(5 * strength * weight[5])};

  // Timing: the onset somewhere in the first 40% of the clip, the apex held a while.
  const double T = static_cast<double>(frames);
  plan.onset = static_cast<double>(g.randint(std::max<int64_t>(1, static_cast<int64_t>(0.4 * T))) + 1);
  plan.onset = std::min(plan.onset, T - 2);
  plan.rise = std::max(1.0, g.uniform(0.12, 0.3) * T);
  plan.hold = g.uniform(0.1, 0.35) * T;
  plan.fall = std::max(1.0, g.uniform(0.12, 0.3) * T);
  if (condition != PemfCondition::neutral) {
    info.onset_frame = static_cast<int64_t>(plan.onset);
    double best = -1;
    for (int64_t t = 0; t < frames; ++t)
      if (const double e = plan.envelope(static_cast<double>(t)); e > best + 1e-12) best = e, info.apex_frame = t;
    info.offset_frame = frames - 1;
    for (int64_t t = frames - 1; t > info.apex_frame && plan.envelope(static_cast<double>(t)) == 0; --t)
      info.offset_frame = t;
  }

  // Blinks: none, one or two, each a frame or two; the same odds in every condition.
  plan.blink.assign(static_cast<size_t>(frames), 0.0);
  const int64_t blinks = g.randint(3);
  for (int64_t b = 0; b < blinks; ++b) {
    const int64_t at = g.randint(frames);
    const double depth = g.uniform(0.6, 0.95);
    plan.blink[static_cast<size_t>(at)] = std::max(plan.blink[static_cast<size_t>(at)], depth);
    if (at + 1 < frames && g.bernoulli(0.5))
      plan.blink[static_cast<size_t>(at + 1)] = std::max(plan.blink[static_cast<size_t>(at + 1)], 0.5 * depth);
  }

  // Head pose: an offset for the clip, a drift over it and a slow wobble.
  plan.angle0 = g.normal(0, 2.5);
  plan.angle_drift = g.normal(0, 2.5);
  plan.wobble = g.uniform(0, 1.0);
  plan.wobble_phase = g.uniform(0, 2 * std::numbers::pi);
  plan.shift0 = {g.normal(0, 0.02 * size), g.normal(0, 0.02 * size)};
  plan.shift_drift = {g.normal(0, 0.015 * size), g.normal(0, 0.015 * size)};
  plan.scale0 = std::exp(g.normal(0, 0.03));
  plan.scale_drift = g.normal(0, 0.02);

  plan.lighting = sub.lighting;
  plan.lighting.angle += g.normal(0, 0.2);
  plan.lighting.strength *= g.uniform(0.85, 1.15);
  plan.lighting.brightness *= g.uniform(0.95, 1.05);
  for (double& wb : plan.lighting.white_balance) wb = g.uniform(0.97, 1.03);
  plan.noise = g.uniform(1.0, 3.0);
  plan.noise_seed = g.next_u64();
  return plan;
}

// The subject's points at frame t of a clip: expression, then head pose.
inline Points frame_points(const Subject& sub, const ClipPlan& plan, int64_t t, Generator& g) {
  const FaceFrame& f = sub.frame;
  const double w = f.width;
  Points p = sub.neutral;
  auto move = [&](int k, double right, double down) { p[static_cast<size_t>(k)] += right * f.right + down * f.down; };
  // Towards the face's vertical middle line (positive: inwards).
  auto inwards = [&](int k) { return (p[static_cast<size_t>(k)] - f.centre).dot(f.right) < 0 ? 1.0 : -1.0; };

  const double e = plan.envelope(static_cast<double>(t));
  const ActionUnits& a = plan.info.apex;
  const double k = e * plan.expression_scale / 5;
  const double au4 = k * a.au4, au6 = k * a.au6, au7 = k * a.au7, au9 = k * a.au9, au10 = k * a.au10,
               au43 = std::min(1.0, k * a.au43);
  const double open = 0.25 * (sub.eye_opening[0] + sub.eye_opening[1] + sub.eye_opening[2] + sub.eye_opening[3]);

  // AU4 brow lowerer: brows down and together, the inner ends most.
  const double brow_down[5] = {0.45, 0.65, 0.85, 1.0, 1.0}, brow_in[5] = {0.2, 0.35, 0.55, 0.8, 1.0};
  for (int i = 0; i < 5; ++i) {
    for (int k : {17 + i, 26 - i}) move(k, inwards(k) * 0.035 * w * au4 * brow_in[i], 0.055 * w * au4 * brow_down[i]);
  }
  for (int k = kForehead; k < kForehead + 6; ++k) move(k, inwards(k) * 0.015 * w * au4, 0.018 * w * au4);
  move(27, 0, 0.01 * w * au4);
  // AU9 nose wrinkler: nose wings and bridge up, the inner brows a little down (the lip: below).
  for (int k : {31, 35}) move(k, -inwards(k) * 0.008 * w * au9, -0.03 * w * au9);
  for (int k : {32, 33, 34}) move(k, 0, -0.02 * w * au9);
  for (int k : {28, 29}) move(k, 0, -0.008 * w * au9);
  for (int k : {20, 21, 22, 23}) move(k, 0, 0.015 * w * au9);
  // AU10 upper-lip raiser (AU9 lifts the lip too).
  const double lip = 0.04 * au10 + 0.012 * au9;
  for (int k : {49, 50, 51, 52, 53}) move(k, 0, -w * lip);
  for (int k : {61, 62, 63}) move(k, 0, -0.85 * w * lip);
  for (int k : {48, 54, 60, 64}) move(k, 0, -0.3 * w * lip);
  for (int k : {kNasolabial, kNasolabial + 1}) move(k, 0, -0.5 * w * lip - 0.015 * w * au6);
  // AU6 cheek raiser and AU7 lid tightener: cheeks and lower lids up, upper lids a little down.
  for (int k : {kCheeks, kCheeks + 1}) move(k, 0, -0.04 * w * au6);
  for (int k : {36, 45}) move(k, 0, -0.01 * w * au6);
  for (int k : {40, 41, 46, 47}) move(k, 0, -open * (0.25 * au6 + 0.35 * au7));
  for (int k : {37, 38, 43, 44}) move(k, 0, open * 0.15 * au7 + 0.012 * w * au4);
  // AU43 eyes closed (or a blink): upper lids down onto the lower lids, never past them.
  const double closure = std::max(0.92 * au43, plan.blink[static_cast<size_t>(t)]);
  const double gap = std::max(0.5, 0.06 * open);
  // Micro-movements: the parts of the face shift a little every frame.
  shift_parts(p, 0.003 * w, g);
  const std::array<std::array<int, 2>, 4> lids = {{{37, 41}, {38, 40}, {43, 47}, {44, 46}}};
  for (const auto& [upper, lower] : lids) {
    cv::Point2d& u = p[static_cast<size_t>(upper)];
    const cv::Point2d& l = p[static_cast<size_t>(lower)];
    const double apart = (l - u).dot(f.down);  // how far the upper lid is above the lower one
    const double down = closure * std::max(0.0, apart - gap);
    u += down * f.down;
    const double remaining = (l - u).dot(f.down);
    if (remaining < gap) u -= (gap - remaining) * f.down;
  }

  // Head pose: rotation, scale and shift about the face's centre; the border stays.
  const double T = static_cast<double>(std::max<int64_t>(plan.frames - 1, 1));
  const double s = static_cast<double>(t) / T;
  const double angle =
      (plan.angle0 + plan.angle_drift * s + plan.wobble * std::sin(2 * std::numbers::pi * s + plan.wobble_phase)) *
      std::numbers::pi / 180;
  const double scale = plan.scale0 * (1 + plan.scale_drift * s);
  const cv::Point2d shift = plan.shift0 + s * plan.shift_drift;
  const double c = std::cos(angle), sn = std::sin(angle);
  for (int k = 0; k < kFacePoints; ++k) {
    const cv::Point2d d = p[static_cast<size_t>(k)] - f.centre;
    p[static_cast<size_t>(k)] = f.centre + shift + scale * cv::Point2d(c * d.x - sn * d.y, sn * d.x + c * d.y);
  }
  return p;
}

// Lighting (a gradient, brightness and white balance) and sensor noise on a frame.
inline void light_and_noise(cv::Mat& frame, const Lighting& l, double flicker, double noise, cv::RNG& rng) {
  const int size = frame.rows;
  cv::Mat grain(frame.size(), CV_32FC3);
  rng.fill(grain, cv::RNG::NORMAL, 0, noise);
  const double cx = std::cos(l.angle) / (0.5 * size), cy = std::sin(l.angle) / (0.5 * size);
  for (int y = 0; y < size; ++y) {
    cv::Vec3b* px = frame.ptr<cv::Vec3b>(y);
    const cv::Vec3f* n = grain.ptr<cv::Vec3f>(y);
    for (int x = 0; x < frame.cols; ++x) {
      const double gain =
          std::max(0.3, l.brightness * flicker * (1 + l.strength * ((x - 0.5 * size) * cx + (y - 0.5 * size) * cy)));
      for (int c = 0; c < 3; ++c)
        px[x][c] = cv::saturate_cast<uint8_t>(px[x][c] * gain * l.white_balance[static_cast<size_t>(c)] + n[x][c]);
    }
  }
}

inline cv::Mat render_frame(const Subject& sub, const Points& target, int size) {
  cv::Mat map_x, map_y, frame;
  // The border points lie 0.3 x size outside the image, far beyond any pose or
  // face shape drawn here, so this holds for every photo.
  STPAIN_CHECK(warp_map(sub.face->source, target, sub.face->triangles, size, map_x, map_y), Error,
               "synthetic PEMF: the face mesh does not cover the whole frame (a bug)");
  cv::remap(sub.photo, frame, map_x, map_y, cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  return frame;
}

// ---------------------------------------------------------------- files

// "frame_07.jpg": zero-padded to at least 2 digits, more for long clips, so names sort as numbers.
inline std::string frame_name(int64_t t, int64_t frames) {
  const size_t digits = std::max<size_t>(2, std::to_string(frames - 1).size());
  std::string number = std::to_string(t);
  if (number.size() < digits) number.insert(0, digits - number.size(), '0');
  return "frame_" + number + ".jpg";
}

inline void write_jpeg(const fs::path& path, const cv::Mat& image, int quality) {
  bool ok = false;
  try {
    ok = cv::imwrite(path.string(), image, {cv::IMWRITE_JPEG_QUALITY, quality});
  } catch (const cv::Exception& e) {
    throw Error(detail::concat(path.string(), ": cannot write JPEG: ", e.what()));
  }
  STPAIN_CHECK(ok, Error, path.string(), ": cannot write JPEG");
}

// Refuses a non-empty output folder unless overwriting is asked for and the
// folder holds nothing but an earlier synthetic set (its marker file, Pictures,
// metadata.csv); then removes that set, metadata first so a crash in between
// never leaves a complete-looking set behind.
inline void prepare_output(const fs::path& out, bool overwrite) {
  std::error_code ec;
  if (!fs::exists(out, ec)) {
    fs::create_directories(out, ec);
    STPAIN_CHECK(!ec, Error, out.string(), ": cannot create folder: ", ec.message());
    return;
  }
  STPAIN_CHECK(fs::is_directory(out, ec), Error, out.string(), ": exists and is not a folder");
  std::vector<std::string> entries;
  for (const auto& e : fs::directory_iterator(out, ec)) entries.push_back(e.path().filename().string());
  STPAIN_CHECK(!ec, Error, out.string(), ": cannot list folder: ", ec.message());
  if (entries.empty()) return;
  STPAIN_CHECK(overwrite, Error, out.string(),
               ": folder exists and is not empty; refusing to overwrite (the overwrite option, --overwrite in "
               "make_synthetic_pemf, replaces a synthetic set made here; or choose a new folder)");
  const bool marked = std::find(entries.begin(), entries.end(), kMarkerFile) != entries.end();
  STPAIN_CHECK(marked, Error, out.string(), ": not a synthetic PEMF folder (no ", kMarkerFile,
               "); refusing to delete anything in it: choose an empty or new folder");
  for (const auto& e : entries)
    STPAIN_CHECK(e == kMarkerFile || e == kMetadataFile || e == "Pictures" ||
                     e.rfind(std::string(kMetadataFile) + ".tmp.", 0) == 0,
                 Error, out.string(), ": holds '", e,
                 "', which this generator did not write; refusing to overwrite: move it or choose another folder");
  for (const auto& e : entries)
    if (e != "Pictures" && e != kMarkerFile) fs::remove(out / e);
  fs::remove_all(out / "Pictures", ec);
  STPAIN_CHECK(!ec, Error, (out / "Pictures").string(), ": cannot remove: ", ec.message());
}

// metadata.csv: header kMetadataHeader, one row per clip. AU values and
// intensity have two decimals; frames are -1 in neutral clips.
inline std::string metadata_csv(const std::vector<SyntheticClip>& clips) {
  std::string csv = std::string(kMetadataHeader) + "\n";
  for (const auto& c : clips) {
    char row[512];
    std::snprintf(row, sizeof row, "%s,%s,%s,%s,%d,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%lld,%lld,%lld,%d\n",
                  c.clip.c_str(), c.subject.c_str(), condition_name(c.condition), c.kind(), c.label, c.intensity,
                  c.apex.au4, c.apex.au6, c.apex.au7, c.apex.au9, c.apex.au10, c.apex.au43, c.apex.pspi(),
                  static_cast<long long>(c.onset_frame), static_cast<long long>(c.apex_frame),
                  static_cast<long long>(c.offset_frame), c.mirrored ? 1 : 0);
    csv += row;
  }
  return csv;
}

// The photo's 68 points (dlib); throws Error when the photo has no face.
inline Points photo_landmarks(const cv::Mat& photo, const SyntheticPemfOptions& o) {
  LandmarkOptions lo;
  lo.model_path = o.model_path;
  lo.threads = 1;
  LandmarkDetector detector(lo);
  const FrameLandmarks found = detector.detect(photo);
  STPAIN_CHECK(found.detected(), Error, "photo ", o.photo, ": dlib finds no face in it (a frontal face is needed)");
  Points p;
  for (const auto& q : found.points) p.emplace_back(q.x, q.y);
  return p;
}

}  // namespace synthetic_pemf_detail

// Writes the synthetic set into out_dir (see the top of this file). Prints a
// progress line ("clips 12/272 ... ETA") to `progress` unless it is null.
// Throws Error for bad options, a missing photo or one without a face, an
// output folder it may not overwrite, or a file it cannot write.
inline SyntheticPemf make_synthetic_pemf(const std::filesystem::path& out_dir, const SyntheticPemfOptions& o = {},
                                         std::FILE* progress = nullptr) {
  namespace fs = std::filesystem;
  using namespace synthetic_pemf_detail;
  o.validate();
  const cv::Mat photo = read_image(o.photo);  // before touching the output: a missing photo changes nothing
  const std::array<SourceFace, 2> faces = source_faces(photo, photo_landmarks(photo, o), o.image_size);
  prepare_output(out_dir, o.overwrite);
  write_file_atomically(
      (out_dir / kMarkerFile).string(),
      detail::concat("Synthetic PEMF-like dataset made by stpain (include/stpain/data/synthetic_pemf.hpp)\n", "photo: ",
                     o.photo, "\nsubjects: ", o.subjects, "\nframes: ", o.frames, "\nimage size: ", o.image_size,
                     "\nseed: ", o.seed, "\nmetadata.csv is written last: without it the set is incomplete.\n"));

  SyntheticPemf result;
  result.root = out_dir;
  result.modified_dir = out_dir / "Pictures" / "Modified";
  result.metadata = out_dir / kMetadataFile;
  const auto start = std::chrono::steady_clock::now();

  const int64_t n = o.subjects;
  std::vector<std::vector<SyntheticClip>> clips(static_cast<size_t>(n));
  std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
  std::atomic<int64_t> next{0}, images{0};
  std::mutex progress_mutex;
  int64_t clips_done = 0;
  std::unique_ptr<Progress> bar;
  if (progress) bar = std::make_unique<Progress>("clips", 4 * n, progress);

  auto make_subject = [&](int64_t s) {
    char name[24];
    std::snprintf(name, sizeof name, "S%03lld", static_cast<long long>(s + 1));
    Generator g(mix_seed(o.seed, static_cast<uint64_t>(s)));
    const Subject sub = draw_subject(faces, g);
    for (size_t c = 0; c < kConditions.size(); ++c) {
      const PemfCondition condition = kConditions[c];
      Generator cg(mix_seed(o.seed, static_cast<uint64_t>(s), c + 1));
      ClipPlan plan = draw_clip(sub, name, condition, o.frames, o.image_size, cg);
      plan.expression_scale = o.expression_scale;
      const fs::path stimulus = result.modified_dir / name / condition_name(condition);
      const fs::path colour_dir = stimulus / "Colour frames", bw_dir = stimulus / "BW frames";
      if (o.colour_frames) fs::create_directories(colour_dir);
      if (o.bw_frames) fs::create_directories(bw_dir);
      cv::RNG rng(plan.noise_seed);
      for (int64_t t = 0; t < o.frames; ++t) {
        cv::Mat frame = render_frame(sub, frame_points(sub, plan, t, cg), o.image_size);
        light_and_noise(frame, plan.lighting, cg.normal(1, 0.008), plan.noise, rng);
        const std::string file = frame_name(t, o.frames);
        if (o.colour_frames) write_jpeg(colour_dir / file, frame, o.jpeg_quality), ++images;
        if (o.bw_frames) {
          cv::Mat grey;
          cv::cvtColor(frame, grey, cv::COLOR_BGR2GRAY);
          write_jpeg(bw_dir / file, grey, o.jpeg_quality), ++images;
        }
      }
      clips[static_cast<size_t>(s)].push_back(plan.info);
      std::lock_guard<std::mutex> lock(progress_mutex);
      ++clips_done;
      if (bar) bar->update(clips_done, detail::concat(images.load(), " images"));
    }
  };
  fs::create_directories(result.modified_dir);  // here, not racing in the workers
  const int64_t workers = std::min<int64_t>(o.threads > 0 ? o.threads : num_threads(), n);
  parallel_chunks(workers, workers, [&](int64_t, int64_t, int64_t) {
    for (int64_t s; (s = next.fetch_add(1)) < n;) {
      try {
        make_subject(s);
      } catch (...) {
        errors[static_cast<size_t>(s)] = std::current_exception();
      }
    }
  });
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);

  for (auto& subject_clips : clips)
    for (auto& c : subject_clips) result.clips.push_back(std::move(c));
  write_file_atomically(result.metadata.string(), metadata_csv(result.clips));
  result.images_written = images.load();
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (bar) bar->finish(detail::concat(result.images_written, " images"));
  return result;
}

}  // namespace stpain
