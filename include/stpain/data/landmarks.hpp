#pragma once
// 68 face landmarks per frame with dlib, as the paper's landmark pipeline
// extracts them: dlib's HOG frontal face detector finds the face, the 68-point
// shape predictor (Debian's libdlib-data) places the points. Points are (x, y)
// in pixels of the image given (dlib rounds them to whole pixels).
//
// Per frame: detect with options.upsample / adjust_threshold; when nothing is
// found, retry once with more upsampling (pyramid_up) and a lower threshold;
// when still nothing, the frame is `missing`. Of several faces the largest is
// taken (or the best-scoring, FacePick::best_score).
//
// Per clip: a missing frame gets the landmarks of the nearest detected frame
// before it (carried forward), or, for frames before the first detection, of
// the first detected frame (carried backward), and is marked `carried`. A clip
// with no face in any frame stays all `missing`; asking it for points throws
// NoFaceError naming the clip: it is never filled with zeros.
//
// Threads: dlib's detector keeps scratch state (not safe to share), so every
// worker has its own copy; the shape predictor is documented thread-safe and
// shared. Frames of a clip are spread over num_threads() workers.
//
// Also here: VideoReader, frames from a video file through OpenCV.
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <filesystem>
#include <limits>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include <dlib/image_processing.h>
#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/image_transforms.h>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include "stpain/core/error.hpp"
#include "stpain/core/parallel.hpp"
#include "stpain/core/tensor.hpp"
#include "stpain/data/image.hpp"
#include "stpain/data/pemf.hpp"

namespace stpain {

inline constexpr int kNumLandmarks = 68;

// Where Debian's libdlib-data installs the 68-point model.
inline constexpr const char* kDebianShapePredictor68 = "/usr/share/dlib/shape_predictor_68_face_landmarks.dat";

// A clip in which no frame has a face: its landmarks cannot be made up.
struct NoFaceError : Error {
  using Error::Error;
};

enum class FacePick { largest, best_score };

struct LandmarkOptions {
  std::string model_path = kDebianShapePredictor68;  // dlib's shape_predictor_68_face_landmarks.dat
  int upsample = 0;                // pyramid_up steps before the first try (each doubles the size)
  double adjust_threshold = 0.0;   // dlib's detection threshold offset (0: dlib's default)
  bool retry = true;               // second try on frames where the first finds nothing
  int retry_upsample = 1;          // dlib's detector needs faces of ~80 px; one step finds ~40 px faces
  double retry_adjust_threshold = -0.5;
  FacePick pick = FacePick::largest;
  int threads = 0;                 // workers for a clip's frames; 0: num_threads()

  void validate() const {
    STPAIN_CHECK(upsample >= 0 && upsample <= 4 && retry_upsample >= 0 && retry_upsample <= 4, Error,
                 "LandmarkOptions: upsample steps must be in [0, 4], got ", upsample, " and ", retry_upsample);
    STPAIN_CHECK(threads >= 0, Error, "LandmarkOptions: threads must be >= 0, got ", threads);
  }
};

enum class LandmarkStatus : uint8_t {
  detected,           // found on the first try
  detected_on_retry,  // found with the retry's upsampling / lower threshold
  carried,            // no face here: points copied from frame source_frame
  missing,            // no face here and none in the clip to carry from
};

inline const char* status_name(LandmarkStatus s) {
  switch (s) {
    case LandmarkStatus::detected: return "detected";
    case LandmarkStatus::detected_on_retry: return "detected on retry";
    case LandmarkStatus::carried: return "carried";
    case LandmarkStatus::missing: return "missing";
  }
  return "?";
}

struct LandmarkPoint {
  float x = 0, y = 0;
};

// dlib's face rectangle, inclusive pixel bounds.
struct FaceBox {
  long left = 0, top = 0, right = -1, bottom = -1;
  long width() const { return right - left + 1; }
  long height() const { return bottom - top + 1; }
};

struct FrameLandmarks {
  LandmarkStatus status = LandmarkStatus::missing;
  std::array<LandmarkPoint, kNumLandmarks> points{};
  FaceBox box;                                           // the face the points belong to
  double score = std::numeric_limits<double>::quiet_NaN();  // detector confidence; NaN unless detected here
  int faces = 0;                                         // faces the detector found in this frame
  int64_t source_frame = -1;                             // frame the points come from (itself when detected)

  bool detected() const { return status == LandmarkStatus::detected || status == LandmarkStatus::detected_on_retry; }
  bool carried() const { return status == LandmarkStatus::carried; }
  bool has_points() const { return detected() || carried(); }
};

// A sequence of frames' landmarks and where the clip came from.
struct ClipLandmarks {
  std::string id;         // clip id (PEMF "S001/Posed Pain/Colour frames", a file name, ...)
  std::string subject;    // "S001"; empty outside PEMF
  std::string condition;  // "Posed Pain"; empty outside PEMF
  int label = -1;         // 0 no pain, 1 pain, -1 unknown
  std::vector<FrameLandmarks> frames;

  int64_t size() const { return static_cast<int64_t>(frames.size()); }
  int64_t count(LandmarkStatus s) const {
    return std::count_if(frames.begin(), frames.end(), [&](const FrameLandmarks& f) { return f.status == s; });
  }
  bool has_face() const {
    return std::any_of(frames.begin(), frames.end(), [](const FrameLandmarks& f) { return f.detected(); });
  }
  // "20 frames: 18 detected (1 on retry), 2 carried"
  std::string summary() const {
    const int64_t retried = count(LandmarkStatus::detected_on_retry);
    std::string s = detail::concat(size(), " frames: ", count(LandmarkStatus::detected) + retried, " detected");
    if (retried) s += detail::concat(" (", retried, " on retry)");
    if (const int64_t c = count(LandmarkStatus::carried)) s += detail::concat(", ", c, " carried");
    if (const int64_t m = count(LandmarkStatus::missing)) s += detail::concat(", ", m, " missing");
    return s;
  }
  // Throws NoFaceError naming the clip when a frame has no points.
  void require_points() const {
    STPAIN_CHECK(has_face(), NoFaceError, "clip ", id.empty() ? "(unnamed)" : id, ": no face in any of its ",
                 size(), " frames");
    for (size_t t = 0; t < frames.size(); ++t)
      STPAIN_CHECK(frames[t].has_points(), NoFaceError, "clip ", id, ": frame ", t,
                   " has no landmarks (missing frames not carried over yet: call carry_over_missing)");
  }
  // Tensor [frames, 68, 2] of (x, y) pixels.
  Tensor<float> points() const {
    require_points();
    Tensor<float> out = Tensor<float>::empty({size(), kNumLandmarks, 2});
    float* p = out.data();
    for (const auto& f : frames)
      for (const auto& pt : f.points) {
        *p++ = pt.x;
        *p++ = pt.y;
      }
    return out;
  }
};

// Fills missing frames from the nearest detected frame before them, or the
// first detected frame for leading ones, and marks them carried. A clip
// without any detection is left as it is (all missing).
inline void carry_over_missing(ClipLandmarks& clip) {
  auto& f = clip.frames;
  const auto first = std::find_if(f.begin(), f.end(), [](const FrameLandmarks& x) { return x.detected(); });
  if (first == f.end()) return;
  int64_t source = first - f.begin();
  for (size_t t = 0; t < f.size(); ++t) {
    if (f[t].detected()) {
      source = f[t].source_frame = static_cast<int64_t>(t);
      continue;
    }
    if (f[t].status != LandmarkStatus::missing) continue;  // already carried
    const FrameLandmarks& from = f[static_cast<size_t>(source)];
    f[t].status = LandmarkStatus::carried;
    f[t].points = from.points;
    f[t].box = from.box;
    f[t].score = std::numeric_limits<double>::quiet_NaN();  // no detection of its own
    f[t].source_frame = source;
  }
}

namespace landmarks_detail {

using Image = dlib::array2d<dlib::bgr_pixel>;

// Any 8-bit grey / BGR / BGRA Mat -> dlib BGR image (same memory layout, one copy).
inline void to_dlib(const cv::Mat& image, Image& out) {
  STPAIN_CHECK(!image.empty(), Error, "landmarks: empty image");
  STPAIN_CHECK(image.depth() == CV_8U, Error, "landmarks: expected an 8-bit image, got OpenCV type ",
               cv::typeToString(image.type()));
  const cv::Mat bgr = detail::to_bgr_or_gray(image, false);
  out.set_size(bgr.rows, bgr.cols);
  for (int y = 0; y < bgr.rows; ++y) std::memcpy(&out[y][0], bgr.ptr<uint8_t>(y), static_cast<size_t>(bgr.cols) * 3);
}

// dlib's Python detector.run(image, upsample, threshold): detect on the
// upsampled image, map the boxes back to the original's pixels.
inline std::vector<dlib::rect_detection> run_detector(dlib::frontal_face_detector& detector, const Image& image,
                                                      int upsample, double adjust_threshold) {
  std::vector<dlib::rect_detection> found;
  if (upsample == 0) {
    detector(image, found, adjust_threshold);
    return found;
  }
  dlib::pyramid_down<2> pyramid;
  Image big, bigger;
  dlib::pyramid_up(image, big, pyramid);
  for (int i = 1; i < upsample; ++i) {
    dlib::pyramid_up(big, bigger, pyramid);
    dlib::swap(big, bigger);
  }
  detector(big, found, adjust_threshold);
  for (auto& d : found) d.rect = pyramid.rect_down(d.rect, static_cast<unsigned int>(upsample));
  return found;
}

inline const dlib::rect_detection& pick(const std::vector<dlib::rect_detection>& found, FacePick rule) {
  auto better = [rule](const dlib::rect_detection& a, const dlib::rect_detection& b) {
    if (rule == FacePick::largest && a.rect.area() != b.rect.area()) return a.rect.area() > b.rect.area();
    return a.detection_confidence > b.detection_confidence;
  };
  return *std::min_element(found.begin(), found.end(), better);
}

}  // namespace landmarks_detail

// Loads dlib's 68-point shape predictor. Throws Error naming the file (and
// the Debian package it comes from) when it is missing or not such a model.
inline std::shared_ptr<const dlib::shape_predictor> load_shape_predictor(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  STPAIN_CHECK(fs::is_regular_file(path, ec), Error, "shape predictor model ", path,
               ": no such file. dlib's 68-point model comes with Debian's libdlib-data package "
               "(apt-get install libdlib-data), installed as ",
               kDebianShapePredictor68);
  auto model = std::make_shared<dlib::shape_predictor>();
  try {
    dlib::deserialize(path) >> *model;
  } catch (const std::exception& e) {
    throw FormatError(detail::concat(path, ": not a dlib shape predictor model (", e.what(), ")"));
  }
  STPAIN_CHECK(model->num_parts() == kNumLandmarks, FormatError, path, ": a ", model->num_parts(),
               "-point shape predictor; the 68-point one (shape_predictor_68_face_landmarks.dat) is needed");
  return model;
}

class LandmarkDetector {
 public:
  explicit LandmarkDetector(LandmarkOptions options = {})
      : options_((options.validate(), std::move(options))),
        predictor_(load_shape_predictor(options_.model_path)),
        detectors_(1, dlib::get_frontal_face_detector()) {}

  const LandmarkOptions& options() const { return options_; }
  int workers() const { return options_.threads > 0 ? options_.threads : num_threads(); }

  // One frame (8-bit grey, BGR or BGRA). Not for concurrent calls on one
  // LandmarkDetector: the many-frame calls below parallelise themselves.
  FrameLandmarks detect(const cv::Mat& image) { return detect_with(detectors_[0], image); }

  // Frames in parallel; nothing carried over.
  std::vector<FrameLandmarks> detect_frames(const std::vector<cv::Mat>& frames) {
    std::vector<FrameLandmarks> out(frames.size());
    run_parallel(static_cast<int64_t>(frames.size()), [&](dlib::frontal_face_detector& d, int64_t i) {
      out[static_cast<size_t>(i)] = detect_with(d, frames[static_cast<size_t>(i)]);
    });
    return out;
  }

  // A clip: every frame, then missing frames carried over (see the top).
  ClipLandmarks detect_clip(const std::vector<cv::Mat>& frames, std::string id = "") {
    ClipLandmarks clip;
    clip.id = std::move(id);
    clip.frames = detect_frames(frames);
    carry_over_missing(clip);
    return clip;
  }

  // A clip from image files, read in the workers. An unreadable file throws
  // FormatError starting with its path and naming the clip.
  ClipLandmarks detect_clip(const std::vector<std::filesystem::path>& paths, std::string id = "") {
    ClipLandmarks clip;
    clip.id = std::move(id);
    clip.frames.resize(paths.size());
    const int64_t n = static_cast<int64_t>(paths.size());
    run_parallel(n, [&](dlib::frontal_face_detector& d, int64_t i) {
      cv::Mat image;
      try {
        image = read_image(paths[static_cast<size_t>(i)]);
      } catch (const FormatError& e) {
        throw FormatError(detail::concat(e.what(), " (frame ", i + 1, " of ", n,
                                         clip.id.empty() ? "" : ", clip ", clip.id, ")"));
      }
      clip.frames[static_cast<size_t>(i)] = detect_with(d, image);
    });
    carry_over_missing(clip);
    return clip;
  }

  // A PEMF clip, with its subject, condition and label.
  ClipLandmarks detect_clip(const PemfClip& pemf) {
    ClipLandmarks clip = detect_clip(pemf.frames, pemf.id);
    clip.subject = pemf.subject;
    clip.condition = pemf.condition_name();
    clip.label = pemf.label;
    return clip;
  }

 private:
  FrameLandmarks detect_with(dlib::frontal_face_detector& detector, const cv::Mat& image) const {
    landmarks_detail::Image img;
    landmarks_detail::to_dlib(image, img);
    FrameLandmarks out;
    auto found = landmarks_detail::run_detector(detector, img, options_.upsample, options_.adjust_threshold);
    out.status = LandmarkStatus::detected;
    if (found.empty() && options_.retry) {
      found = landmarks_detail::run_detector(detector, img, options_.retry_upsample, options_.retry_adjust_threshold);
      out.status = LandmarkStatus::detected_on_retry;
    }
    out.faces = static_cast<int>(found.size());
    if (found.empty()) {
      out.status = LandmarkStatus::missing;
      return out;
    }
    const dlib::rect_detection& face = landmarks_detail::pick(found, options_.pick);
    const dlib::full_object_detection shape = (*predictor_)(img, face.rect);
    for (int k = 0; k < kNumLandmarks; ++k)
      out.points[static_cast<size_t>(k)] = {static_cast<float>(shape.part(static_cast<unsigned long>(k)).x()),
                                            static_cast<float>(shape.part(static_cast<unsigned long>(k)).y())};
    out.box = {face.rect.left(), face.rect.top(), face.rect.right(), face.rect.bottom()};
    out.score = face.detection_confidence;
    out.source_frame = 0;  // a lone frame is its own source; carry_over_missing sets the index in a clip
    return out;
  }

  // job(detector, i) for i in [0, n) over workers() threads, each with its
  // own detector, taking frames one at a time (retries make some frames
  // slower). Rethrows the exception of the lowest failing index.
  template <class Job>
  void run_parallel(int64_t n, Job&& job) {
    if (n <= 0) return;
    const int64_t workers = std::min<int64_t>(this->workers(), n);
    while (static_cast<int64_t>(detectors_.size()) < workers) detectors_.push_back(detectors_[0]);
    std::vector<std::exception_ptr> errors(static_cast<size_t>(n));
    std::atomic<int64_t> next{0};
    parallel_chunks(workers, workers, [&](int64_t worker, int64_t, int64_t) {
      for (int64_t i; (i = next.fetch_add(1)) < n;) {
        try {
          job(detectors_[static_cast<size_t>(worker)], i);
        } catch (...) {
          errors[static_cast<size_t>(i)] = std::current_exception();
        }
      }
    });
    for (auto& e : errors)
      if (e) std::rethrow_exception(e);
  }

  LandmarkOptions options_;
  std::shared_ptr<const dlib::shape_predictor> predictor_;
  std::vector<dlib::frontal_face_detector> detectors_;  // one per worker
};

// Frames of a video file through OpenCV (FFmpeg backend on Debian), keeping
// every `every`-th frame, at most max_frames of them (0: all).
struct VideoOptions {
  int64_t every = 1;
  int64_t max_frames = 0;
};

class VideoReader {
 public:
  VideoReader(const std::filesystem::path& path, VideoOptions options = {})
      : path_(path.string()), options_(options) {
    STPAIN_CHECK(options.every >= 1 && options.max_frames >= 0, Error, path_,
                 ": video options need every >= 1 and max_frames >= 0, got every ", options.every,
                 " and max_frames ", options.max_frames);
    std::error_code ec;
    STPAIN_CHECK(std::filesystem::is_regular_file(path, ec), FormatError, path_, ": no such file");
    // FFmpeg first: the same decoder whatever else OpenCV was built with.
    STPAIN_CHECK(capture_.open(path_, cv::CAP_FFMPEG) || capture_.open(path_, cv::CAP_ANY), FormatError, path_,
                 ": cannot open video (not a video, or a codec / container OpenCV's backends cannot read)");
  }

  double fps() const { return capture_.get(cv::CAP_PROP_FPS); }
  // The container's frame count (an estimate for some formats).
  int64_t frame_count_hint() const { return static_cast<int64_t>(capture_.get(cv::CAP_PROP_FRAME_COUNT)); }

  // The next kept frame (8-bit BGR) and its index in the video; false at the end.
  bool next(cv::Mat& frame, int64_t& index) {
    if (options_.max_frames && kept_ >= options_.max_frames) return false;
    while (capture_.grab()) {  // grab() without decoding for frames we skip
      const int64_t i = position_++;
      if (i % options_.every != 0) continue;
      STPAIN_CHECK(capture_.retrieve(frame) && !frame.empty(), FormatError, path_, ": cannot decode frame ", i);
      index = i;
      ++kept_;
      return true;
    }
    return false;
  }

 private:
  std::string path_;
  VideoOptions options_;
  cv::VideoCapture capture_;
  int64_t position_ = 0, kept_ = 0;
};

// All kept frames of a video (and their indices when asked). Throws
// FormatError when the file yields no frame at all.
inline std::vector<cv::Mat> read_video_frames(const std::filesystem::path& path, VideoOptions options = {},
                                              std::vector<int64_t>* indices = nullptr) {
  VideoReader reader(path, options);
  std::vector<cv::Mat> frames;
  cv::Mat frame;
  int64_t index = 0;
  while (reader.next(frame, index)) {
    frames.push_back(frame.clone());
    if (indices) indices->push_back(index);
  }
  STPAIN_CHECK(!frames.empty(), FormatError, path.string(), ": no frame could be read from the video");
  return frames;
}

}  // namespace stpain
